// Portable kernels: plain C++ loops over column tiles that the compiler vectorizes for the
// baseline x86-64 instruction set. They are the fallback on CPUs without AVX-512.
#include <algorithm>
#include <cstdint>
#include <utility>

#include "sparse/internal/spmm.h"

namespace polaris::sparse::internal {
#include "sparse/internal/direct_conv.inc"
}  // namespace polaris::sparse::internal

namespace polaris::sparse::internal {
namespace {

// Columns of B processed together; the tile of accumulators stays in L1.
constexpr int64_t kTile = 64;

void InitializeTile(float* accumulators, int64_t width, const float* bias, int64_t row) {
  const float initial = bias != nullptr ? bias[row] : 0.0f;
  for (int64_t c = 0; c < width; ++c) accumulators[c] = initial;
}

void MultiplyAdd(float* accumulators, int64_t width, float weight, const float* b_row) {
  for (int64_t c = 0; c < width; ++c) accumulators[c] += weight * b_row[c];
}

}  // namespace

bool CheckRowOffsets(const int32_t* row_offsets, int64_t count, int64_t entries) {
  if (row_offsets[0] != 0 || row_offsets[count] != entries) return false;
  for (int64_t i = 0; i < count; ++i) {
    if (row_offsets[i + 1] < row_offsets[i]) return false;
  }
  return true;
}

void TransposePortable(const float* source, int64_t source_stride, int64_t row_begin,
                       int64_t row_end, int64_t columns, float* target, int64_t target_stride) {
  // 16 x 16 tiles, so that reads and writes both stay within a few cache lines.
  constexpr int64_t kBlock = 16;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kBlock) {
    const int64_t r1 = std::min(r0 + kBlock, row_end);
    for (int64_t c0 = 0; c0 < columns; c0 += kBlock) {
      const int64_t c1 = std::min(c0 + kBlock, columns);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) {
          target[c * target_stride + r] = source[r * source_stride + c];
        }
      }
    }
  }
}

bool CsrSpmmPortable(const CsrView& w, const DenseOperands& io, int64_t row_begin,
                     int64_t row_end) {
  float accumulators[kTile];
  for (int64_t c0 = 0; c0 < io.columns; c0 += kTile) {
    const int64_t width = std::min(kTile, io.columns - c0);
    for (int64_t row = row_begin; row < row_end; ++row) {
      InitializeTile(accumulators, width, io.bias, row);
      for (int32_t k = w.row_offsets[row]; k < w.row_offsets[row + 1]; ++k) {
        const int32_t column = w.column_indices[k];
        if (column < 0 || column >= w.depth) return false;
        MultiplyAdd(accumulators, width, w.values[k], io.b + column * io.b_stride + c0);
      }
      std::copy(accumulators, accumulators + width, io.y + row * io.y_stride + c0);
    }
  }
  return true;
}

bool BsrSpmmPortable(const BsrView& w, const DenseOperands& io, int64_t block_row_begin,
                     int64_t block_row_end) {
  const int64_t block_size = w.block_rows * w.block_columns;
  const int64_t block_depth = w.depth / w.block_columns;
  float accumulators[kTile];
  for (int64_t c0 = 0; c0 < io.columns; c0 += kTile) {
    const int64_t width = std::min(kTile, io.columns - c0);
    for (int64_t block_row = block_row_begin; block_row < block_row_end; ++block_row) {
      for (int64_t i = 0; i < w.block_rows; ++i) {
        const int64_t row = block_row * w.block_rows + i;
        InitializeTile(accumulators, width, io.bias, row);
        for (int32_t k = w.row_offsets[block_row]; k < w.row_offsets[block_row + 1]; ++k) {
          const int32_t block_column = w.column_indices[k];
          if (block_column < 0 || block_column >= block_depth) return false;
          const float* block_values = w.values + k * block_size + i * w.block_columns;
          const float* b_rows = io.b + block_column * w.block_columns * io.b_stride + c0;
          for (int64_t j = 0; j < w.block_columns; ++j) {
            MultiplyAdd(accumulators, width, block_values[j], b_rows + j * io.b_stride);
          }
        }
        std::copy(accumulators, accumulators + width, io.y + row * io.y_stride + c0);
      }
    }
  }
  return true;
}

bool NmSpmmPortable(const NmView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end) {
  const int64_t groups = w.depth / w.m;
  const int64_t slots = groups * w.n;
  float accumulators[kTile];
  for (int64_t c0 = 0; c0 < io.columns; c0 += kTile) {
    const int64_t width = std::min(kTile, io.columns - c0);
    for (int64_t row = row_begin; row < row_end; ++row) {
      InitializeTile(accumulators, width, io.bias, row);
      const float* values = w.values + row * slots;
      const uint8_t* positions = w.indices + row * slots;
      for (int64_t slot = 0; slot < slots; ++slot) {
        if (positions[slot] >= w.m) return false;
        const int64_t column = slot / w.n * w.m + positions[slot];
        MultiplyAdd(accumulators, width, values[slot], io.b + column * io.b_stride + c0);
      }
      std::copy(accumulators, accumulators + width, io.y + row * io.y_stride + c0);
    }
  }
  return true;
}

bool CsrConvDirectPortable(const CsrView& w, const ConvGeometry& geometry, const float* image,
                           const float* bias, float* output, int64_t row_begin, int64_t row_end) {
  return CsrConvDirectImpl(w, geometry, image, bias, output, row_begin, row_end);
}

}  // namespace polaris::sparse::internal
