#include "quantization/internal/linear_int4_avx512.h"

#include <immintrin.h>

#include <cstdint>

namespace polaris::quantization::internal {
namespace {

// Mask of the first `count` (< 16) lanes, or all lanes for count >= 16.
inline __mmask16 LaneMask(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF)
                     : static_cast<__mmask16>((1u << count) - 1u);
}

// Dot products of kRows rows of x with kCols rows of w over k, plus bias.
template <int kRows, int kCols>
inline void DotBlock(const float* x, int64_t k, const float* w, const float* bias, float* y,
                     int64_t ldy) {
  __m512 acc[kRows][kCols];
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kCols; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int64_t l = 0; l < k; l += 16) {
    const __mmask16 mask = LaneMask(k - l);
    __m512 w_lanes[kCols];
    for (int j = 0; j < kCols; ++j) w_lanes[j] = _mm512_maskz_loadu_ps(mask, w + j * k + l);
    for (int i = 0; i < kRows; ++i) {
      const __m512 x_lanes = _mm512_maskz_loadu_ps(mask, x + i * k + l);
      for (int j = 0; j < kCols; ++j) acc[i][j] = _mm512_fmadd_ps(x_lanes, w_lanes[j], acc[i][j]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kCols; ++j) y[i * ldy + j] = _mm512_reduce_add_ps(acc[i][j]) + bias[j];
  }
}

}  // namespace

void DequantizeU4RowsAvx512(const uint8_t* packed, int64_t bytes_per_row, const float* scale,
                            const float* offset, int64_t group_size, int64_t rows, int64_t k,
                            float* out) {
  const int64_t groups = k / group_size;
  const __m128i low_nibbles = _mm_set1_epi8(0x0F);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = packed + r * bytes_per_row;
    for (int64_t g = 0; g < groups; ++g) {
      const __m512 scale_lanes = _mm512_set1_ps(scale[r * groups + g]);
      const __m512 offset_lanes = _mm512_set1_ps(offset[r * groups + g]);
      for (int64_t c = g * group_size; c < (g + 1) * group_size; c += 16) {
        // 8 bytes hold 16 values; interleaving low and high nibbles restores their order.
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + c / 2));
        const __m128i low = _mm_and_si128(bytes, low_nibbles);
        const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_nibbles);
        const __m512 values = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(low, high)));
        _mm512_storeu_ps(out + r * k + c, _mm512_fmadd_ps(values, scale_lanes, offset_lanes));
      }
    }
  }
}

void GemmF32RowsAvx512(const float* x, int64_t m, int64_t k, const float* w, int64_t rows,
                       const float* bias, float* y, int64_t ldy) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) DotBlock<4, 4>(x + i * k, k, w + r * k, bias + r, y + i * ldy + r, ldy);
    for (; r < rows; ++r) DotBlock<4, 1>(x + i * k, k, w + r * k, bias + r, y + i * ldy + r, ldy);
  }
  for (; i < m; ++i) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) DotBlock<1, 4>(x + i * k, k, w + r * k, bias + r, y + i * ldy + r, ldy);
    for (; r < rows; ++r) DotBlock<1, 1>(x + i * k, k, w + r * k, bias + r, y + i * ldy + r, ldy);
  }
}

}  // namespace polaris::quantization::internal
