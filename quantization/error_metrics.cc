#include "quantization/error_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/torch_status.h"

namespace polaris::quantization {
namespace {

absl::Status CheckOperand(const at::Tensor& x, absl::string_view name) {
  if (!x.defined() || !x.is_floating_point() || x.numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be a non-empty floating-point tensor, got ",
        x.defined() ? absl::StrCat(c10::toString(x.scalar_type()), " ", c10::str(x.sizes()))
                    : "an undefined tensor"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QuantizationError> MeasureQuantizationError(const at::Tensor& reference,
                                                           const at::Tensor& approximation) {
  if (absl::Status status = CheckOperand(reference, "reference"); !status.ok()) return status;
  if (absl::Status status = CheckOperand(approximation, "approximation"); !status.ok()) {
    return status;
  }
  if (reference.sizes() != approximation.sizes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference has shape ", c10::str(reference.sizes()),
                     " but approximation has shape ", c10::str(approximation.sizes())));
  }

  return CallTorch("measuring quantization error", [&]() -> absl::StatusOr<QuantizationError> {
    const at::Tensor r = reference.to(at::kDouble).contiguous();
    const at::Tensor a = approximation.to(at::kDouble).contiguous();
    const double* r_data = r.data_ptr<double>();
    const double* a_data = a.data_ptr<double>();
    const int64_t n = r.numel();

    double signal = 0.0;
    double noise = 0.0;
    double approximation_energy = 0.0;
    double dot = 0.0;
    double abs_sum = 0.0;
    double abs_max = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(r_data[i]) || !std::isfinite(a_data[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot measure quantization error: element ", i, " is ", r_data[i],
            " in the reference and ", a_data[i], " in the approximation (NaN or Inf)"));
      }
      const double difference = r_data[i] - a_data[i];
      signal += r_data[i] * r_data[i];
      approximation_energy += a_data[i] * a_data[i];
      noise += difference * difference;
      dot += r_data[i] * a_data[i];
      abs_sum += std::abs(difference);
      abs_max = std::max(abs_max, std::abs(difference));
    }

    QuantizationError error;
    constexpr double kInf = std::numeric_limits<double>::infinity();
    if (noise == 0.0) {
      error.sqnr_db = kInf;
    } else if (signal == 0.0) {
      error.sqnr_db = -kInf;
    } else {
      error.sqnr_db = 10.0 * std::log10(signal / noise);
    }
    error.max_abs_error = abs_max;
    error.mean_abs_error = abs_sum / static_cast<double>(n);
    if (signal == 0.0 && approximation_energy == 0.0) {
      error.cosine_similarity = 1.0;
    } else if (signal == 0.0 || approximation_energy == 0.0) {
      error.cosine_similarity = 0.0;
    } else {
      error.cosine_similarity = dot / std::sqrt(signal * approximation_energy);
    }
    return error;
  });
}

}  // namespace polaris::quantization
