// AVX-512 kernels. Written by hand because no library here multiplies a sparse weight by a
// dense activation matrix fast enough: LibTorch 1.13's CSR matmul runs at 0.7x of dense
// OpenBLAS on a 1024 x 1024 layer at 90% sparsity, and oneDNN 2.6 has no sparse matmul.
//
// Scheme: the batch (or the output pixels of a convolution) lies along B's rows. For a tile
// of up to 64 columns, the output row r is held in up to four zmm accumulators; each stored
// weight W[r, k] is broadcast and multiplied into B[k, tile] with one FMA per 16 columns. A
// 64-column tile of B for a depth of 1024 is 256 KiB, so it stays in L2 while every row of W
// streams past it. Per stored weight the CSR kernel issues 4 loads and 4 FMAs. The fp32 peak
// measured on the Zen 4 build machines is one 512-bit FMA per cycle per core, so we estimate
// at least 4 cycles per stored weight.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "sparse/internal/spmm.h"

namespace polaris::sparse::internal {
#include "sparse/internal/direct_conv.inc"
}  // namespace polaris::sparse::internal

namespace polaris::sparse::internal {
namespace {

constexpr int kLanes = 16;
constexpr int kMaxVectors = 4;
constexpr int64_t kTile = kLanes * kMaxVectors;

template <bool kMasked>
inline __m512 LoadB(const float* address, __mmask16 tail) {
  if constexpr (kMasked) return _mm512_maskz_loadu_ps(tail, address);
  return _mm512_loadu_ps(address);
}

template <bool kMasked>
inline void StoreY(float* address, __m512 value, __mmask16 tail) {
  if constexpr (kMasked) {
    _mm512_mask_storeu_ps(address, tail, value);
  } else {
    _mm512_storeu_ps(address, value);
  }
}

// Calls runner.Run<vectors, masked>(c0, tail) for every tile of up to 64 columns: full tiles
// with four unmasked vectors, then one tile of 1 to 4 vectors whose last vector is masked.
template <typename Runner>
bool ForEachColumnTile(const Runner& runner, int64_t columns) {
  int64_t c0 = 0;
  for (; c0 + kTile <= columns; c0 += kTile) {
    if (!runner.template Run<kMaxVectors, false>(c0, 0xFFFF)) return false;
  }
  const int64_t rest = columns - c0;
  if (rest == 0) return true;
  const int vectors = static_cast<int>((rest + kLanes - 1) / kLanes);
  const int last_lanes = static_cast<int>(rest - (vectors - 1) * kLanes);
  const __mmask16 tail = static_cast<__mmask16>((1u << last_lanes) - 1u);
  switch (vectors) {
    case 1:
      return runner.template Run<1, true>(c0, tail);
    case 2:
      return runner.template Run<2, true>(c0, tail);
    case 3:
      return runner.template Run<3, true>(c0, tail);
    default:
      return runner.template Run<4, true>(c0, tail);
  }
}

// Accumulators of one output row for kVectors vectors, in kSets independent sets so that a
// narrow tile still has four FMA chains in flight (an FMA's latency is 4 cycles on Zen 4).
template <int kVectors>
struct RowAccumulators {
  static constexpr int kSets = kMaxVectors / kVectors;
  __m512 sum[kSets][kVectors];

  explicit RowAccumulators(float initial) {
#pragma GCC unroll 4
    for (int s = 0; s < kSets; ++s) {
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        sum[s][v] = s == 0 ? _mm512_set1_ps(initial) : _mm512_setzero_ps();
      }
    }
  }

  template <bool kMasked>
  inline void MultiplyAdd(int set, float weight, const float* b_row, __mmask16 tail) {
    const __m512 broadcast = _mm512_set1_ps(weight);
#pragma GCC unroll 4
    for (int v = 0; v < kVectors - 1; ++v) {
      sum[set][v] = _mm512_fmadd_ps(broadcast, _mm512_loadu_ps(b_row + v * kLanes), sum[set][v]);
    }
    const __m512 last = LoadB<kMasked>(b_row + (kVectors - 1) * kLanes, tail);
    sum[set][kVectors - 1] = _mm512_fmadd_ps(broadcast, last, sum[set][kVectors - 1]);
  }

  template <bool kMasked>
  inline void Store(float* y_row, __mmask16 tail) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      __m512 total = sum[0][v];
#pragma GCC unroll 4
      for (int s = 1; s < kSets; ++s) total = _mm512_add_ps(total, sum[s][v]);
      if (v == kVectors - 1) {
        StoreY<kMasked>(y_row + v * kLanes, total, tail);
      } else {
        _mm512_storeu_ps(y_row + v * kLanes, total);
      }
    }
  }
};

struct CsrRunner {
  const CsrView& w;
  const DenseOperands& io;
  int64_t row_begin;
  int64_t row_end;

  template <int kVectors, bool kMasked>
  bool Run(int64_t c0, __mmask16 tail) const {
    int64_t row = row_begin;
    // Pairs only for full-width tiles, whose single accumulator set adds a row's weights in
    // the same order alone or paired, so results do not depend on how rows are split among
    // threads.
    if constexpr (RowAccumulators<kVectors>::kSets == 1) {
      for (; row + 2 <= row_end; row += 2) {
        if (!RunTwoRows<kVectors, kMasked>(c0, tail, row)) return false;
      }
    }
    for (; row < row_end; ++row) {
      if (!RunOneRow<kVectors, kMasked>(c0, tail, row)) return false;
    }
    return true;
  }

 private:
  template <int kVectors, bool kMasked>
  bool RunOneRow(int64_t c0, __mmask16 tail, int64_t row) const {
    using Accumulators = RowAccumulators<kVectors>;
    constexpr int kSets = Accumulators::kSets;
    const uint32_t depth = static_cast<uint32_t>(w.depth);
    Accumulators accumulators(io.bias != nullptr ? io.bias[row] : 0.0f);
    const float* b = io.b + c0;
    int32_t k = w.row_offsets[row];
    const int32_t end = w.row_offsets[row + 1];
    for (; k + kSets <= end; k += kSets) {
#pragma GCC unroll 4
      for (int s = 0; s < kSets; ++s) {
        const uint32_t column = static_cast<uint32_t>(w.column_indices[k + s]);
        if (column >= depth) return false;
        accumulators.template MultiplyAdd<kMasked>(s, w.values[k + s], b + column * io.b_stride,
                                                   tail);
      }
    }
    for (; k < end; ++k) {
      const uint32_t column = static_cast<uint32_t>(w.column_indices[k]);
      if (column >= depth) return false;
      accumulators.template MultiplyAdd<kMasked>(0, w.values[k], b + column * io.b_stride, tail);
    }
    accumulators.template Store<kMasked>(io.y + row * io.y_stride + c0, tail);
    return true;
  }

  // Rows `row` and `row + 1` together: their stored weights are interleaved, so twice as many
  // independent loads of B and FMA chains are in flight while loads wait on L2.
  template <int kVectors, bool kMasked>
  bool RunTwoRows(int64_t c0, __mmask16 tail, int64_t row) const {
    using Accumulators = RowAccumulators<kVectors>;
    const uint32_t depth = static_cast<uint32_t>(w.depth);
    Accumulators first(io.bias != nullptr ? io.bias[row] : 0.0f);
    Accumulators second(io.bias != nullptr ? io.bias[row + 1] : 0.0f);
    const float* b = io.b + c0;
    int32_t k0 = w.row_offsets[row];
    const int32_t end0 = w.row_offsets[row + 1];
    int32_t k1 = end0;
    const int32_t end1 = w.row_offsets[row + 2];
    for (; k0 < end0 && k1 < end1; ++k0, ++k1) {
      const uint32_t column0 = static_cast<uint32_t>(w.column_indices[k0]);
      const uint32_t column1 = static_cast<uint32_t>(w.column_indices[k1]);
      if (column0 >= depth || column1 >= depth) return false;
      first.template MultiplyAdd<kMasked>(0, w.values[k0], b + column0 * io.b_stride, tail);
      second.template MultiplyAdd<kMasked>(0, w.values[k1], b + column1 * io.b_stride, tail);
    }
    for (; k0 < end0; ++k0) {
      const uint32_t column = static_cast<uint32_t>(w.column_indices[k0]);
      if (column >= depth) return false;
      first.template MultiplyAdd<kMasked>(0, w.values[k0], b + column * io.b_stride, tail);
    }
    for (; k1 < end1; ++k1) {
      const uint32_t column = static_cast<uint32_t>(w.column_indices[k1]);
      if (column >= depth) return false;
      second.template MultiplyAdd<kMasked>(0, w.values[k1], b + column * io.b_stride, tail);
    }
    first.template Store<kMasked>(io.y + row * io.y_stride + c0, tail);
    second.template Store<kMasked>(io.y + (row + 1) * io.y_stride + c0, tail);
    return true;
  }
};

// Returns the sum of the 16 lanes. (GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized
// inside its own header.)
inline float HorizontalSum(__m512 value) {
  const __m256 half =
      _mm256_add_ps(_mm512_castps512_ps256(value), _mm512_extractf32x8_ps(value, 1));
  const __m128 quarter = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
  const __m128 pairs = _mm_add_ps(quarter, _mm_movehl_ps(quarter, quarter));
  return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)));
}

// y[r] = bias[r] + sum_k W[r, k] * B[k, 0] for a single column: gathers 16 elements of B's
// column per step instead of wasting 15 of 16 lanes on broadcasts.
bool CsrSpmvAvx512(const CsrView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end) {
  const __m512i depth = _mm512_set1_epi32(static_cast<int32_t>(w.depth));
  const __m512i stride = _mm512_set1_epi32(static_cast<int32_t>(io.b_stride));
  for (int64_t row = row_begin; row < row_end; ++row) {
    __m512 sum = _mm512_setzero_ps();
    for (int32_t k = w.row_offsets[row]; k < w.row_offsets[row + 1]; k += kLanes) {
      const int32_t lanes = std::min<int32_t>(kLanes, w.row_offsets[row + 1] - k);
      const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1u);
      const __m512i columns = _mm512_maskz_loadu_epi32(mask, w.column_indices + k);
      if (_mm512_mask_cmpge_epu32_mask(mask, columns, depth) != 0) return false;
      const __m512i offsets = _mm512_mullo_epi32(columns, stride);
      const __m512 b = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, offsets, io.b, 4);
      sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w.values + k), b, sum);
    }
    const float bias = io.bias != nullptr ? io.bias[row] : 0.0f;
    io.y[row * io.y_stride] = bias + HorizontalSum(sum);
  }
  return true;
}

// kRows rows of one block row (starting at row_in_block) against a tile of kVectors vectors:
// each element of B's tile is loaded once per block and reused for the kRows rows.
struct BsrRunner {
  const BsrView& w;
  const DenseOperands& io;
  int64_t block_row_begin;
  int64_t block_row_end;

  template <int kRows, int kVectors, bool kMasked>
  bool RunRows(int64_t c0, __mmask16 tail, int64_t block_row, int64_t row_in_block) const {
    const int64_t block_size = w.block_rows * w.block_columns;
    const uint32_t block_depth = static_cast<uint32_t>(w.depth / w.block_columns);
    const int64_t first_row = block_row * w.block_rows + row_in_block;
    __m512 sum[kRows][kVectors];
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const float initial = io.bias != nullptr ? io.bias[first_row + i] : 0.0f;
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) sum[i][v] = _mm512_set1_ps(initial);
    }
    for (int32_t k = w.row_offsets[block_row]; k < w.row_offsets[block_row + 1]; ++k) {
      const uint32_t block_column = static_cast<uint32_t>(w.column_indices[k]);
      if (block_column >= block_depth) return false;
      const float* values = w.values + k * block_size + row_in_block * w.block_columns;
      const float* b_rows = io.b + block_column * w.block_columns * io.b_stride + c0;
      for (int64_t j = 0; j < w.block_columns; ++j) {
        const float* b_row = b_rows + j * io.b_stride;
        __m512 b[kVectors];
#pragma GCC unroll 4
        for (int v = 0; v < kVectors - 1; ++v) b[v] = _mm512_loadu_ps(b_row + v * kLanes);
        b[kVectors - 1] = LoadB<kMasked>(b_row + (kVectors - 1) * kLanes, tail);
#pragma GCC unroll 4
        for (int i = 0; i < kRows; ++i) {
          const __m512 broadcast = _mm512_set1_ps(values[i * w.block_columns + j]);
#pragma GCC unroll 4
          for (int v = 0; v < kVectors; ++v) {
            sum[i][v] = _mm512_fmadd_ps(broadcast, b[v], sum[i][v]);
          }
        }
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      float* y_row = io.y + (first_row + i) * io.y_stride + c0;
#pragma GCC unroll 4
      for (int v = 0; v < kVectors - 1; ++v) _mm512_storeu_ps(y_row + v * kLanes, sum[i][v]);
      StoreY<kMasked>(y_row + (kVectors - 1) * kLanes, sum[i][kVectors - 1], tail);
    }
    return true;
  }

  template <int kVectors, bool kMasked>
  bool Run(int64_t c0, __mmask16 tail) const {
    for (int64_t block_row = block_row_begin; block_row < block_row_end; ++block_row) {
      for (int64_t i = 0; i < w.block_rows; i += 4) {
        bool ok = true;
        switch (std::min<int64_t>(4, w.block_rows - i)) {
          case 1:
            ok = RunRows<1, kVectors, kMasked>(c0, tail, block_row, i);
            break;
          case 2:
            ok = RunRows<2, kVectors, kMasked>(c0, tail, block_row, i);
            break;
          case 3:
            ok = RunRows<3, kVectors, kMasked>(c0, tail, block_row, i);
            break;
          default:
            ok = RunRows<4, kVectors, kMasked>(c0, tail, block_row, i);
            break;
        }
        if (!ok) return false;
      }
    }
    return true;
  }
};

struct NmRunner {
  const NmView& w;
  const DenseOperands& io;
  int64_t row_begin;
  int64_t row_end;

  template <int kVectors, bool kMasked>
  bool Run(int64_t c0, __mmask16 tail) const {
    using Accumulators = RowAccumulators<kVectors>;
    constexpr int kSets = Accumulators::kSets;
    const int64_t groups = w.depth / w.m;
    const int64_t slots = groups * w.n;
    for (int64_t row = row_begin; row < row_end; ++row) {
      Accumulators accumulators(io.bias != nullptr ? io.bias[row] : 0.0f);
      const float* values = w.values + row * slots;
      const uint8_t* positions = w.indices + row * slots;
      const float* b = io.b + c0;
      int set = 0;
      for (int64_t group = 0; group < groups; ++group) {
        const int64_t base = group * w.m;
        for (int j = 0; j < w.n; ++j) {
          const int64_t slot = group * w.n + j;
          if (positions[slot] >= w.m) return false;
          const float* b_row = b + (base + positions[slot]) * io.b_stride;
          accumulators.template MultiplyAdd<kMasked>(set, values[slot], b_row, tail);
          set = set + 1 == kSets ? 0 : set + 1;
        }
      }
      accumulators.template Store<kMasked>(io.y + row * io.y_stride + c0, tail);
    }
    return true;
  }
};

// Transposes the 16 x 16 tile at `source` into `target` in registers: interleave pairs of
// rows (unpack ps), then pairs of pairs (unpack pd), then exchange 128-bit lanes twice.
inline void Transpose16x16(const float* source, int64_t source_stride, float* target,
                           int64_t target_stride) {
  __m512 rows[16];
  __m512 pairs[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) rows[i] = _mm512_loadu_ps(source + i * source_stride);
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    pairs[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    pairs[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  // quads[4 g + j], 128-bit lane l: column 4 l + j of rows 4 g .. 4 g + 3.
  __m512 quads[16];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512d low = _mm512_castps_pd(pairs[4 * g]);
    const __m512d high = _mm512_castps_pd(pairs[4 * g + 1]);
    const __m512d low2 = _mm512_castps_pd(pairs[4 * g + 2]);
    const __m512d high2 = _mm512_castps_pd(pairs[4 * g + 3]);
    quads[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(low, low2));
    quads[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(low, low2));
    quads[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(high, high2));
    quads[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(high, high2));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 even01 = _mm512_shuffle_f32x4(quads[j], quads[4 + j], 0x88);
    const __m512 odd01 = _mm512_shuffle_f32x4(quads[j], quads[4 + j], 0xdd);
    const __m512 even23 = _mm512_shuffle_f32x4(quads[8 + j], quads[12 + j], 0x88);
    const __m512 odd23 = _mm512_shuffle_f32x4(quads[8 + j], quads[12 + j], 0xdd);
    _mm512_storeu_ps(target + j * target_stride, _mm512_shuffle_f32x4(even01, even23, 0x88));
    _mm512_storeu_ps(target + (4 + j) * target_stride, _mm512_shuffle_f32x4(odd01, odd23, 0x88));
    _mm512_storeu_ps(target + (8 + j) * target_stride, _mm512_shuffle_f32x4(even01, even23, 0xdd));
    _mm512_storeu_ps(target + (12 + j) * target_stride, _mm512_shuffle_f32x4(odd01, odd23, 0xdd));
  }
}

}  // namespace

void TransposeAvx512(const float* source, int64_t source_stride, int64_t row_begin, int64_t row_end,
                     int64_t columns, float* target, int64_t target_stride) {
  int64_t r0 = row_begin;
  for (; r0 + 16 <= row_end; r0 += 16) {
    int64_t c0 = 0;
    for (; c0 + 16 <= columns; c0 += 16) {
      Transpose16x16(source + r0 * source_stride + c0, source_stride,
                     target + c0 * target_stride + r0, target_stride);
    }
    if (c0 < columns) {
      TransposePortable(source + c0, source_stride, r0, r0 + 16, columns - c0,
                        target + c0 * target_stride, target_stride);
    }
  }
  if (r0 < row_end) {
    TransposePortable(source, source_stride, r0, row_end, columns, target, target_stride);
  }
}

bool CsrSpmmAvx512(const CsrView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end) {
  if (io.columns == 1 && w.depth * io.b_stride <= std::numeric_limits<int32_t>::max()) {
    return CsrSpmvAvx512(w, io, row_begin, row_end);
  }
  return ForEachColumnTile(CsrRunner{w, io, row_begin, row_end}, io.columns);
}

bool BsrSpmmAvx512(const BsrView& w, const DenseOperands& io, int64_t block_row_begin,
                   int64_t block_row_end) {
  return ForEachColumnTile(BsrRunner{w, io, block_row_begin, block_row_end}, io.columns);
}

bool NmSpmmAvx512(const NmView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end) {
  return ForEachColumnTile(NmRunner{w, io, row_begin, row_end}, io.columns);
}

bool CsrConvDirectAvx512(const CsrView& w, const ConvGeometry& geometry, const float* image,
                         const float* bias, float* output, int64_t row_begin, int64_t row_end) {
  return CsrConvDirectImpl(w, geometry, image, bias, output, row_begin, row_end);
}

}  // namespace polaris::sparse::internal
