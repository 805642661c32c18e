#include "quantization/internal/quantize_avx512.h"

#include <immintrin.h>

#include <cstdint>

namespace polaris::quantization::internal {
namespace {

// Mask of the first `count` (< 16) lanes.
inline __mmask16 TailMask(int64_t count) {
  return static_cast<__mmask16>((1u << count) - 1u);
}

// Constants of one affine quantization, broadcast to all lanes.
struct AffineConstants {
  __m512 inverse_scale;
  __m512 zero_point;
  __m512 qmin;
  __m512 qmax;
};

// round_half_even(x * inverse_scale) + zero_point, clamped, as int32 lanes. Clamping happens in
// float so the float-to-int conversion is exact.
inline __m512i QuantizeLanes(__m512 x, const AffineConstants& k) {
  const __m512 scaled = _mm512_roundscale_ps(_mm512_mul_ps(x, k.inverse_scale),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 clamped =
      _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(scaled, k.zero_point), k.qmin), k.qmax);
  return _mm512_cvtps_epi32(clamped);
}

// Q is int8_t or uint8_t: in-range int32 lanes truncate to the right byte for both.
template <typename Q>
bool QuantizeF32Avx512(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                       int32_t qmax, Q* q) {
  const AffineConstants k{_mm512_set1_ps(1.0f / scale),
                          _mm512_set1_ps(static_cast<float>(zero_point)),
                          _mm512_set1_ps(static_cast<float>(qmin)),
                          _mm512_set1_ps(static_cast<float>(qmax))};
  __mmask16 nan_lanes = 0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 x0 = _mm512_loadu_ps(x + i);
    const __m512 x1 = _mm512_loadu_ps(x + i + 16);
    const __m512 x2 = _mm512_loadu_ps(x + i + 32);
    const __m512 x3 = _mm512_loadu_ps(x + i + 48);
    nan_lanes |= _mm512_cmp_ps_mask(x0, x1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(x2, x3, _CMP_UNORD_Q);
    // Four 16-byte results form one 64-byte store.
    const __m128i b0 = _mm512_cvtepi32_epi8(QuantizeLanes(x0, k));
    const __m128i b1 = _mm512_cvtepi32_epi8(QuantizeLanes(x1, k));
    const __m128i b2 = _mm512_cvtepi32_epi8(QuantizeLanes(x2, k));
    const __m128i b3 = _mm512_cvtepi32_epi8(QuantizeLanes(x3, k));
    __m512i bytes = _mm512_castsi128_si512(b0);
    bytes = _mm512_inserti32x4(bytes, b1, 1);
    bytes = _mm512_inserti32x4(bytes, b2, 2);
    bytes = _mm512_inserti32x4(bytes, b3, 3);
    _mm512_storeu_si512(reinterpret_cast<void*>(q + i), bytes);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 x0 = _mm512_loadu_ps(x + i);
    nan_lanes |= _mm512_cmp_ps_mask(x0, x0, _CMP_UNORD_Q);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(QuantizeLanes(x0, k)));
  }
  if (i < n) {
    const __mmask16 mask = TailMask(n - i);
    const __m512 x0 = _mm512_maskz_loadu_ps(mask, x + i);
    nan_lanes |= _mm512_mask_cmp_ps_mask(mask, x0, x0, _CMP_UNORD_Q);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, mask, QuantizeLanes(x0, k));
  }
  return nan_lanes == 0;
}

inline __m512 DequantizeLanes(__m512i values, __m512i zero_point, __m512 scale) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(values, zero_point)), scale);
}

template <bool kSigned, typename Q>
void DequantizeToF32Avx512(const Q* q, int64_t n, float scale, int32_t zero_point, float* x) {
  const __m512 scale_lanes = _mm512_set1_ps(scale);
  const __m512i zero_lanes = _mm512_set1_epi32(zero_point);
  auto widen = [](__m128i bytes) {
    return kSigned ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i bytes = _mm512_loadu_si512(reinterpret_cast<const void*>(q + i));
    _mm512_storeu_ps(x + i, DequantizeLanes(widen(_mm512_extracti32x4_epi32(bytes, 0)),
                                            zero_lanes, scale_lanes));
    _mm512_storeu_ps(x + i + 16, DequantizeLanes(widen(_mm512_extracti32x4_epi32(bytes, 1)),
                                                 zero_lanes, scale_lanes));
    _mm512_storeu_ps(x + i + 32, DequantizeLanes(widen(_mm512_extracti32x4_epi32(bytes, 2)),
                                                 zero_lanes, scale_lanes));
    _mm512_storeu_ps(x + i + 48, DequantizeLanes(widen(_mm512_extracti32x4_epi32(bytes, 3)),
                                                 zero_lanes, scale_lanes));
  }
  for (; i + 16 <= n; i += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
    _mm512_storeu_ps(x + i, DequantizeLanes(widen(bytes), zero_lanes, scale_lanes));
  }
  if (i < n) {
    const __mmask16 mask = TailMask(n - i);
    const __m128i bytes = _mm_maskz_loadu_epi8(mask, q + i);
    _mm512_mask_storeu_ps(x + i, mask, DequantizeLanes(widen(bytes), zero_lanes, scale_lanes));
  }
}

template <typename Q>
void RequantizeS32Avx512(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                         int32_t qmin, int32_t qmax, Q* q) {
  const AffineConstants k{_mm512_set1_ps(multiplier),
                          _mm512_set1_ps(static_cast<float>(zero_point)),
                          _mm512_set1_ps(static_cast<float>(qmin)),
                          _mm512_set1_ps(static_cast<float>(qmax))};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 values = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i),
                     _mm512_cvtepi32_epi8(QuantizeLanes(values, k)));
  }
  if (i < n) {
    const __mmask16 mask = TailMask(n - i);
    const __m512 values = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, acc + i));
    _mm512_mask_cvtepi32_storeu_epi8(q + i, mask, QuantizeLanes(values, k));
  }
}

}  // namespace

bool QuantizeF32ToS8Avx512(const float* x, int64_t n, float scale, int32_t zero_point,
                           int32_t qmin, int32_t qmax, int8_t* q) {
  return QuantizeF32Avx512(x, n, scale, zero_point, qmin, qmax, q);
}

bool QuantizeF32ToU8Avx512(const float* x, int64_t n, float scale, int32_t zero_point,
                           int32_t qmin, int32_t qmax, uint8_t* q) {
  return QuantizeF32Avx512(x, n, scale, zero_point, qmin, qmax, q);
}

void DequantizeS8ToF32Avx512(const int8_t* q, int64_t n, float scale, int32_t zero_point,
                             float* x) {
  DequantizeToF32Avx512<true>(q, n, scale, zero_point, x);
}

void DequantizeU8ToF32Avx512(const uint8_t* q, int64_t n, float scale, int32_t zero_point,
                             float* x) {
  DequantizeToF32Avx512<false>(q, n, scale, zero_point, x);
}

void RequantizeS32ToS8Avx512(const int32_t* acc, int64_t n, float multiplier,
                             int32_t zero_point, int32_t qmin, int32_t qmax, int8_t* q) {
  RequantizeS32Avx512(acc, n, multiplier, zero_point, qmin, qmax, q);
}

void RequantizeS32ToU8Avx512(const int32_t* acc, int64_t n, float multiplier,
                             int32_t zero_point, int32_t qmin, int32_t qmax, uint8_t* q) {
  RequantizeS32Avx512(acc, n, multiplier, zero_point, qmin, qmax, q);
}

bool MinMaxF32Avx512(const float* x, int64_t n, float* min, float* max) {
  __m512 lo0 = _mm512_set1_ps(x[0]);
  __m512 hi0 = lo0;
  __m512 lo1 = lo0;
  __m512 hi1 = lo0;
  __mmask16 nan_lanes = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + i);
    const __m512 x1 = _mm512_loadu_ps(x + i + 16);
    nan_lanes |= _mm512_cmp_ps_mask(x0, x1, _CMP_UNORD_Q);
    lo0 = _mm512_min_ps(lo0, x0);
    hi0 = _mm512_max_ps(hi0, x0);
    lo1 = _mm512_min_ps(lo1, x1);
    hi1 = _mm512_max_ps(hi1, x1);
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? static_cast<__mmask16>(0xffff) : TailMask(n - i);
    // Masked-off lanes load x[0], which leaves the running min and max unchanged.
    const __m512 x0 = _mm512_mask_loadu_ps(_mm512_set1_ps(x[0]), mask, x + i);
    nan_lanes |= _mm512_cmp_ps_mask(x0, x0, _CMP_UNORD_Q);
    lo0 = _mm512_min_ps(lo0, x0);
    hi0 = _mm512_max_ps(hi0, x0);
  }
  if (nan_lanes != 0) return false;
  *min = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
  *max = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
  return true;
}

}  // namespace polaris::quantization::internal
