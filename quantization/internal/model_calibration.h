// Activation calibration on a flat graph: runs calibration batches through a probe of the
// graph and feeds each observed value to its own observer.
#ifndef POLARIS_QUANTIZATION_INTERNAL_MODEL_CALIBRATION_H_
#define POLARIS_QUANTIZATION_INTERNAL_MODEL_CALIBRATION_H_

#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "quantization/calibration.h"
#include "quantization/internal/model_graph.h"
#include "quantization/quant_params.h"
#include "torch/csrc/jit/ir/ir.h"

namespace polaris::quantization::internal {

// A float value of the graph whose range int8 conversion needs.
struct ActivationSite {
  torch::jit::Value* value = nullptr;
  // Where it is, for messages and reports: "input of conv1", "output of layer1.conv1 + relu".
  std::string description;
};

// Observes every site's value while `inputs` (examples along dimension 0) run through the
// model in batches of `batch_size`, and returns per-tensor quantization parameters for each
// site in order, from observers made with `options`.
// Errors: kInvalidArgument when `inputs` is empty, when a site's value is not a floating-point
// tensor, or when it contains NaN or Inf (naming the site), or the model's error.
absl::StatusOr<std::vector<QuantParams>> CalibrateActivations(
    const FlatModel& flat, const std::vector<ActivationSite>& sites, const at::Tensor& inputs,
    const CalibrationOptions& options, int64_t batch_size, bool show_progress);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MODEL_CALIBRATION_H_
