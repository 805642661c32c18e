#include "quantization/internal/model_calibration.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/progress.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::quantization::internal {

absl::StatusOr<std::vector<QuantParams>> CalibrateActivations(
    const FlatModel& flat, const std::vector<ActivationSite>& sites, const at::Tensor& inputs,
    const CalibrationOptions& options, int64_t batch_size, bool show_progress) {
  if (!inputs.defined() || inputs.dim() == 0 || inputs.size(0) == 0) {
    return absl::InvalidArgumentError(
        "the calibration data has no examples; pass at least one batch of inputs");
  }
  if (sites.empty()) return std::vector<QuantParams>{};

  std::vector<std::unique_ptr<Observer>> observers;
  for (size_t i = 0; i < sites.size(); ++i) {
    POLARIS_ASSIGN_OR_RETURN(std::unique_ptr<Observer> observer, MakeObserver(options));
    observers.push_back(std::move(observer));
  }
  std::vector<torch::jit::Value*> values;
  for (const ActivationSite& site : sites) values.push_back(site.value);
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module probe, BuildProbeModule(flat, values));

  const int64_t examples = inputs.size(0);
  Progress progress("calibrate", examples, "image", show_progress);
  for (int64_t start = 0; start < examples; start += batch_size) {
    const at::Tensor batch = inputs.slice(0, start, std::min(examples, start + batch_size));
    POLARIS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, RunProbeModule(probe, batch));
    for (size_t i = 0; i < sites.size(); ++i) {
      absl::Status observed = observers[i]->Observe(outputs[1 + i]);
      if (!observed.ok()) {
        return Annotate(observed, absl::StrCat("calibrating the ", sites[i].description));
      }
    }
    progress.Update(std::min(examples, start + batch_size));
  }
  progress.Finish();

  std::vector<QuantParams> params;
  for (size_t i = 0; i < sites.size(); ++i) {
    absl::StatusOr<QuantParams> site_params = observers[i]->ComputeQuantParams();
    if (!site_params.ok()) {
      return Annotate(site_params.status(),
                      absl::StrCat("choosing the scale of the ", sites[i].description));
    }
    params.push_back(*std::move(site_params));
  }
  return params;
}

}  // namespace polaris::quantization::internal
