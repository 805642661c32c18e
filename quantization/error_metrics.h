// Per-tensor measures of how far a quantized (approximated) tensor is from its reference.
//
//   POLARIS_ASSIGN_OR_RETURN(QuantizationError error, MeasureQuantizationError(w, w_fake));
//   std::printf("SQNR %.1f dB\n", error.sqnr_db);
#ifndef POLARIS_QUANTIZATION_ERROR_METRICS_H_
#define POLARIS_QUANTIZATION_ERROR_METRICS_H_

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"

namespace polaris::quantization {

struct QuantizationError {
  // 10 * log10(sum(reference^2) / sum((reference - approximation)^2)). +Inf when the two are
  // equal; -Inf when the reference is all zeros but the approximation is not.
  double sqnr_db = 0.0;
  double max_abs_error = 0.0;
  double mean_abs_error = 0.0;
  // <reference, approximation> / (|reference| |approximation|); 1 when both are all zeros and
  // 0 when only one is.
  double cosine_similarity = 0.0;
};

// Computes the metrics above in double precision over all elements.
// Returns kInvalidArgument when either tensor is undefined, not floating point, empty, when
// the shapes differ, or when either contains NaN or Inf.
absl::StatusOr<QuantizationError> MeasureQuantizationError(const at::Tensor& reference,
                                                           const at::Tensor& approximation);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_ERROR_METRICS_H_
