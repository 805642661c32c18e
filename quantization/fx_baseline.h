// PyTorch's own int8 quantization (the FX workflow) of the reference residual CNN, run through
// Debian's python3-torch, as the baseline that polaris's int8 results are compared with.
#ifndef POLARIS_QUANTIZATION_FX_BASELINE_H_
#define POLARIS_QUANTIZATION_FX_BASELINE_H_

#include <string>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {

// Runs `/usr/bin/python3 quantization/fx_reference.py` on the TorchScript file `model_path`,
// calibrating on `calibration_inputs`, and loads the frozen int8 model it writes. The script
// path is relative to the current directory, which is the runfiles tree under `bazel run`, so
// the binary needs "//quantization:fx_reference.py" in its data. Files go to the user's cache
// directory, named after `tag`. Errors: kInternal when the script fails (its output is on
// stderr), or the errors of writing the calibration file and loading the result.
absl::StatusOr<torch::jit::Module> QuantizeWithPytorchFx(const std::string& model_path,
                                                         const at::Tensor& calibration_inputs,
                                                         const std::string& tag);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_FX_BASELINE_H_
