// Vectorized, multithreaded per-tensor quantization kernels on raw buffers. They run the AVX-512
// code of internal/quantize_avx512.h when the CPU has AVX-512 (checked at run time) and the
// plain loops of reference_kernels.h otherwise; both give bit-identical results, and
// reference_kernels.h is their specification.
//
// Work is split across LibTorch's intra-op threads (at::parallel_for) in chunks of at least
// kQuantizeGrainSize elements, so small tensors stay on the calling thread.
#ifndef POLARIS_QUANTIZATION_FAST_KERNELS_H_
#define POLARIS_QUANTIZATION_FAST_KERNELS_H_

#include <cstdint>

namespace polaris::quantization {

// Elements below which splitting across threads costs more than it saves (about 10 us of
// work on one core; the wake-up of a second OpenMP thread costs a few us).
inline constexpr int64_t kQuantizeGrainSize = 32768;

// See reference::Quantize. Returns false when an input is NaN (the output is then unspecified).
bool QuantizeFast(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                  int32_t qmax, int8_t* q);
bool QuantizeFast(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                  int32_t qmax, uint8_t* q);

// See reference::Dequantize.
void DequantizeFast(const int8_t* q, int64_t n, float scale, int32_t zero_point, float* x);
void DequantizeFast(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x);

// See reference::Requantize.
void RequantizeFast(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                    int32_t qmin, int32_t qmax, int8_t* q);
void RequantizeFast(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                    int32_t qmin, int32_t qmax, uint8_t* q);

// See reference::MinMax; n >= 1. Returns false when an element is NaN.
bool MinMaxFast(const float* x, int64_t n, float* min, float* max);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_FAST_KERNELS_H_
