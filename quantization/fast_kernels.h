// Vectorized, multithreaded per-tensor quantization kernels on raw buffers. They run the AVX-512
// code of internal/quantize_avx512.h when the CPU has AVX-512 (checked at run time), else the
// plain loops of reference_kernels.h. Both give bit-identical results, and
// reference_kernels.h is their specification.
//
// Work is split across LibTorch's intra-op threads (at::parallel_for) in chunks of at least
// kQuantizeGrainSize elements, so small tensors stay on the calling thread.
#ifndef POLARIS_QUANTIZATION_FAST_KERNELS_H_
#define POLARIS_QUANTIZATION_FAST_KERNELS_H_

#include <cstdint>

namespace polaris::quantization {

// Elements below which work stays on the calling thread. One core quantizes about 10^4
// elements per microsecond while the data is in cache (kernels_benchmark), so a chunk of this
// size is about 25 us of work. That is far more than an OpenMP fork-join costs on an idle
// machine. On a busy machine each fork-join waits until the other thread gets a core, so
// small tensors avoid it altogether.
inline constexpr int64_t kQuantizeGrainSize = 1 << 18;

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
