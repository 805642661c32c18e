// Quantization parameters (scale and zero point, per tensor or per channel) and how they are
// chosen from a clipping range.
//
// Affine quantization maps a real value x to the integer
//   q = clamp(round_half_even(x * (1 / scale)) + zero_point, qmin, qmax)
// and back to x' = (q - zero_point) * scale. Per-channel parameters hold one scale and zero
// point for each index along `axis`; per-tensor parameters hold one of each and axis == -1.
//
//   POLARIS_ASSIGN_OR_RETURN(QuantParams params,
//                            ChooseQuantParams(w.amin({1}), w.amax({1}), QuantDtype::kInt8,
//                                              QuantScheme::kSymmetric, /*axis=*/0));
#ifndef POLARIS_QUANTIZATION_QUANT_PARAMS_H_
#define POLARIS_QUANTIZATION_QUANT_PARAMS_H_

#include <cstdint>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace polaris::quantization {

// Integer formats. INT4 and UINT4 values are held one per int8/uint8 element until PackInt4
// stores two per byte.
enum class QuantDtype { kInt8, kUInt8, kInt4, kUInt4 };

// kSymmetric fixes the real value 0 at the middle of the integer range (zero_point 0 for signed
// types, 2^(bits-1) for unsigned ones) and uses a range symmetric around 0. kAsymmetric maps the
// clipping range [min, max], widened to contain 0, onto the whole integer range.
enum class QuantScheme { kSymmetric, kAsymmetric };

// The representable integers of a QuantDtype, inclusive.
struct QuantRange {
  int64_t min;
  int64_t max;
};

QuantRange RangeOf(QuantDtype dtype);
int BitsOf(QuantDtype dtype);
bool IsSigned(QuantDtype dtype);
// "int8", "uint8", "int4" or "uint4".
absl::string_view QuantDtypeName(QuantDtype dtype);
// Returns the LibTorch dtype that stores unpacked values: at::kChar for signed, at::kByte for
// unsigned formats.
at::ScalarType StorageTypeOf(QuantDtype dtype);

// Returns the QuantDtype for `bits` in {4, 8}. Returns kInvalidArgument for any other number of
// bits, naming the supported set.
absl::StatusOr<QuantDtype> QuantDtypeFromBits(int bits, bool is_signed);

struct QuantParams {
  at::Tensor scale;       // float32 [channels], or [1] per tensor; every entry finite and > 0
  at::Tensor zero_point;  // int64, same shape as `scale`; every entry inside RangeOf(dtype)
  int64_t axis = -1;      // -1 per tensor, else the channel dimension of the quantized tensor
  QuantDtype dtype = QuantDtype::kInt8;
  QuantScheme scheme = QuantScheme::kSymmetric;

  bool per_channel() const { return axis >= 0; }
};

// Smallest scale ChooseQuantParams returns: the smallest normal float32, so that 1 / scale stays
// finite.
inline constexpr float kMinScale = 1.17549435e-38f;

// Chooses scale and zero point that map the clipping range [min, max] onto `dtype`.
// `min` and `max` are float tensors of one element (axis == -1) or of shape [channels]
// (axis >= 0, one range per channel). For kSymmetric, max_abs = max(|min|, |max|) and
// scale = max_abs / (qmax - zero_point), so both +max_abs and -max_abs are representable.
// For kAsymmetric the range is widened to contain 0 (so that 0 is exact, which zero padding
// needs), scale = (max - min) / (qmax - qmin) and zero_point = qmin - round(min / scale).
// A channel whose range is zero (all zeros) gets scale 1; a constant non-zero channel gets a
// scale that represents its value exactly at one end of the range. Scales below kMinScale are
// raised to it.
// Returns kInvalidArgument when min or max contain NaN or Inf, when min > max somewhere, when
// their shapes differ or do not fit `axis`.
absl::StatusOr<QuantParams> ChooseQuantParams(const at::Tensor& min, const at::Tensor& max,
                                              QuantDtype dtype, QuantScheme scheme,
                                              int64_t axis);

// Checks the invariants documented on QuantParams, and when `x` is defined, that `axis` is a
// dimension of `x` whose size equals the number of channels. `what` names the tensor in
// messages ("weight of fc1"). Returns kInvalidArgument naming the first violation.
absl::Status ValidateQuantParams(const QuantParams& params, const at::Tensor& x,
                                 absl::string_view what);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_QUANT_PARAMS_H_
