// Tensor-level quantization: quantize, dequantize and fake-quantize float tensors per tensor or
// per channel (any axis), pack INT4 values two per byte, and cast to FP16/BF16 and back.
//
//   POLARIS_ASSIGN_OR_RETURN(QuantParams params, ChooseQuantParams(...));
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor q, Quantize(weight, params));    // int8 values
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor w, Dequantize(q, params));       // float32 again
//
// Numerics (the same for every path, see reference_kernels.h):
//   q = clamp(round_half_even(x * (1.0f / scale)) + zero_point, qmin, qmax)
//   x' = float(q - zero_point) * scale
// with the multiplication done in float32. Values beyond the range saturate at qmin or qmax
// (they never wrap around), and so do +Inf and -Inf; NaN is an error. Quantize and Dequantize
// run on the vectorized kernels of fast_kernels.h, once per contiguous run of one channel
// (the whole tensor per tensor); those kernels give results bit-identical to the plain loops.
#ifndef POLARIS_QUANTIZATION_QUANTIZE_H_
#define POLARIS_QUANTIZATION_QUANTIZE_H_

#include <cstdint>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "quantization/quant_params.h"

namespace polaris::quantization {

// Quantizes the floating-point tensor `x` (converted to float32 first) with `params`.
// Returns a tensor of x's shape with StorageTypeOf(params.dtype) (int8 or uint8; INT4 values
// one per element). Returns kInvalidArgument when params are invalid for `x`
// (ValidateQuantParams), when `x` is not floating point, or when it contains NaN, naming the
// index of the first NaN found.
absl::StatusOr<at::Tensor> Quantize(const at::Tensor& x, const QuantParams& params);

// Maps quantized values back to float32. `q` must have StorageTypeOf(params.dtype).
// Returns kInvalidArgument when it has another dtype or params do not fit it.
absl::StatusOr<at::Tensor> Dequantize(const at::Tensor& q, const QuantParams& params);

// Dequantize(Quantize(x, params), params): the float32 values that quantization keeps.
absl::StatusOr<at::Tensor> FakeQuantize(const at::Tensor& x, const QuantParams& params);

// Packs INT4 values two per byte along the last dimension: a tensor of shape [..., n] becomes a
// uint8 tensor of shape [..., ceil(n / 2)]. Byte j stores element 2j in its low nibble (bits
// 0-3) and element 2j + 1 in its high nibble (bits 4-7); when n is odd the high nibble of the
// last byte is 0. `values` is int8 holding [-8, 7] (stored as two's complement nibbles) or
// uint8 holding [0, 15]. A 0-d tensor is treated as [1].
// Returns kInvalidArgument for another dtype or a value outside that range, naming its index.
absl::StatusOr<at::Tensor> PackInt4(const at::Tensor& values);

// Inverse of PackInt4: `packed` is uint8 [..., bytes] and `count` the number of values per
// row, so bytes == ceil(count / 2). Returns int8 [..., count] with values in [-8, 7] when
// `is_signed` (nibbles sign-extended), else uint8 [..., count] with values in [0, 15].
// Returns kInvalidArgument when `packed` is not uint8 or `count` does not match its last
// dimension.
absl::StatusOr<at::Tensor> UnpackInt4(const at::Tensor& packed, int64_t count, bool is_signed);

// Casts a floating-point tensor to float16 or bfloat16 with round-to-nearest-even, as IEEE 754
// and LibTorch's conversions do. Finite values beyond the float16 range (|x| > 65504, after
// rounding) become +-Inf; bfloat16 has float32's exponent range. NaN stays NaN.
// Returns kInvalidArgument when `x` is not floating point.
absl::StatusOr<at::Tensor> CastToFloat16(const at::Tensor& x);
absl::StatusOr<at::Tensor> CastToBFloat16(const at::Tensor& x);
// Casts float16 or bfloat16 (or any floating type) back to float32; exact for both.
absl::StatusOr<at::Tensor> CastToFloat32(const at::Tensor& x);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_QUANTIZE_H_
