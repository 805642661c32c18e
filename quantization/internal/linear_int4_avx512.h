// AVX-512 pieces of Int4Linear; callers check CpuFeatures().avx512 first.
#ifndef POLARIS_QUANTIZATION_INTERNAL_LINEAR_INT4_AVX512_H_
#define POLARIS_QUANTIZATION_INTERNAL_LINEAR_INT4_AVX512_H_

#include <cstdint>

namespace polaris::quantization::internal {

// Unpacks `rows` rows of `k` UINT4 values (`bytes_per_row` packed bytes each) and writes
// q * scale[g] + offset[g] for group g = column / group_size into out[row * k + column].
// Requires group_size % 16 == 0. `scale` and `offset` have `k / group_size` entries per row.
void DequantizeU4RowsAvx512(const uint8_t* packed, int64_t bytes_per_row, const float* scale,
                            const float* offset, int64_t group_size, int64_t rows, int64_t k,
                            float* out);

// y[i * ldy + r] = sum_l x[i * k + l] * w[r * k + l] + bias[r] for i < m, r < rows, with
// 4 x 4 register blocks of 16-lane partial sums.
void GemmF32RowsAvx512(const float* x, int64_t m, int64_t k, const float* w, int64_t rows,
                       const float* bias, float* y, int64_t ldy);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_LINEAR_INT4_AVX512_H_
