#include "quantization/fx_baseline.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/serialization/pickle.h"

namespace polaris::quantization {

absl::StatusOr<torch::jit::Module> QuantizeWithPytorchFx(const std::string& model_path,
                                                         const at::Tensor& calibration_inputs,
                                                         const std::string& tag) {
  POLARIS_ASSIGN_OR_RETURN(const std::string cache, UserCacheDir());
  const std::string calibration_path = absl::StrCat(cache, "/", tag, "_fx_calibration.pt");
  const std::string out_path = absl::StrCat(cache, "/", tag, "_fx_int8.pt");
  POLARIS_ASSIGN_OR_RETURN(
      const std::vector<char> bytes,
      CallTorch("serializing the calibration inputs",
                [&] { return torch::jit::pickle_save(calibration_inputs); }));
  POLARIS_RETURN_IF_ERROR(
      WriteFileAtomically(calibration_path, absl::string_view(bytes.data(), bytes.size())));

  const std::string command =
      absl::StrCat("/usr/bin/python3 quantization/fx_reference.py '", model_path, "' '",
                   calibration_path, "' '", out_path, "'");
  std::fprintf(stderr, "quantizing with PyTorch FX: %s\n", command.c_str());
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("'", command, "' failed"));
  }
  return LoadModel(out_path);
}

}  // namespace polaris::quantization
