// AVX-512 single-threaded quantization kernels. Callers must check CpuFeatures().avx512 first;
// fast_kernels.h does, and splits the work across threads. Each function computes exactly what
// its namesake in reference_kernels.h specifies, bit for bit.
#ifndef POLARIS_QUANTIZATION_INTERNAL_QUANTIZE_AVX512_H_
#define POLARIS_QUANTIZATION_INTERNAL_QUANTIZE_AVX512_H_

#include <cstdint>

namespace polaris::quantization::internal {

// Return false when an input is NaN, like reference::Quantize.
bool QuantizeF32ToS8Avx512(const float* x, int64_t n, float scale, int32_t zero_point,
                           int32_t qmin, int32_t qmax, int8_t* q);
bool QuantizeF32ToU8Avx512(const float* x, int64_t n, float scale, int32_t zero_point,
                           int32_t qmin, int32_t qmax, uint8_t* q);

void DequantizeS8ToF32Avx512(const int8_t* q, int64_t n, float scale, int32_t zero_point,
                             float* x);
void DequantizeU8ToF32Avx512(const uint8_t* q, int64_t n, float scale, int32_t zero_point,
                             float* x);

void RequantizeS32ToS8Avx512(const int32_t* acc, int64_t n, float multiplier,
                             int32_t zero_point, int32_t qmin, int32_t qmax, int8_t* q);
void RequantizeS32ToU8Avx512(const int32_t* acc, int64_t n, float multiplier,
                             int32_t zero_point, int32_t qmin, int32_t qmax, uint8_t* q);

// n >= 1. Returns false when an element is NaN.
bool MinMaxF32Avx512(const float* x, int64_t n, float* min, float* max);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_QUANTIZE_AVX512_H_
