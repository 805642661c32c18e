// Plain-loop reference implementations of the quantization kernels. They are the exact
// specification that the vectorized kernels (fast_kernels.h) are tested against, so they are
// written for clarity, not speed.
//
// Rounding is round-half-to-even (std::nearbyint in the default floating-point environment),
// and the multiplication by 1 / scale happens in float32, exactly as the vectorized code does,
// so both produce identical integers.
#ifndef POLARIS_QUANTIZATION_REFERENCE_KERNELS_H_
#define POLARIS_QUANTIZATION_REFERENCE_KERNELS_H_

#include <cstdint>

namespace polaris::quantization::reference {

// q[i] = clamp(nearbyint(x[i] * (1.0f / scale)) + zero_point, qmin, qmax) for i in [0, n).
// +Inf saturates to qmax and -Inf to qmin. Returns false, leaving q unspecified, when an x[i]
// is NaN; true otherwise.
bool Quantize(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
              int32_t qmax, int8_t* q);
bool Quantize(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
              int32_t qmax, uint8_t* q);

// x[i] = float(q[i] - zero_point) * scale.
void Dequantize(const int8_t* q, int64_t n, float scale, int32_t zero_point, float* x);
void Dequantize(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x);

// Converts int32 accumulators of one quantized domain into another:
// q[i] = clamp(nearbyint(float(acc[i]) * multiplier) + zero_point, qmin, qmax), where
// multiplier = input_scale * weight_scale / output_scale is computed by the caller.
void Requantize(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                int32_t qmin, int32_t qmax, int8_t* q);
void Requantize(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                int32_t qmin, int32_t qmax, uint8_t* q);

// Minimum and maximum of x[0..n), n >= 1. Returns false when an element is NaN.
bool MinMax(const float* x, int64_t n, float* min, float* max);

}  // namespace polaris::quantization::reference

#endif  // POLARIS_QUANTIZATION_REFERENCE_KERNELS_H_
