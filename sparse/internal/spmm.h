// Sparse x dense matrix products on raw pointers, the inner loops behind sparse/kernels.h.
//
// Every kernel computes, for the rows r in [row_begin, row_end) of a sparse matrix W
// ([rows, depth]) and a dense row-major matrix B ([depth, columns], row stride b_stride):
//
//   Y[r, c] = bias[r] + sum_k W[r, k] * B[k, c]        for c in [0, columns)
//
// into Y (row stride y_stride); bias may be null (zero). A Linear layer y = x W^T + b runs it
// with B = x^T (so the batch lies along the columns: each stored weight is broadcast and
// multiplied into a whole row of B), a convolution with B = im2col(x) of one image.
//
// For BSR the row range counts block rows. Kernels read only inside W's arrays and the
// [depth, columns] window of B. They return false (leaving Y partly written) when a column
// index lies outside [0, depth) or an N:M position outside [0, m), so a corrupt matrix cannot
// make them read out of bounds. Callers must have checked the row offsets (CheckRowOffsets).
//
// The *Avx512 variants are in an AVX-512 library: call them only when
// polaris::CpuFeatures().avx512 is true.
#ifndef POLARIS_SPARSE_INTERNAL_SPMM_H_
#define POLARIS_SPARSE_INTERNAL_SPMM_H_

#include <cstdint>

namespace polaris::sparse::internal {

struct CsrView {
  const int32_t* row_offsets = nullptr;
  const int32_t* column_indices = nullptr;
  const float* values = nullptr;
  int64_t rows = 0;
  int64_t depth = 0;  // columns of W
};

struct BsrView {
  const int32_t* row_offsets = nullptr;     // per block row
  const int32_t* column_indices = nullptr;  // in blocks
  const float* values = nullptr;            // [blocks, block_rows, block_columns]
  int64_t rows = 0;
  int64_t depth = 0;
  int64_t block_rows = 1;
  int64_t block_columns = 1;
};

struct NmView {
  const float* values = nullptr;     // [rows, depth / m * n]
  const uint8_t* indices = nullptr;  // [rows, depth / m * n]
  int64_t rows = 0;
  int64_t depth = 0;
  int n = 2;
  int m = 4;
};

// The dense operand and the output of one product.
struct DenseOperands {
  const float* b = nullptr;
  int64_t b_stride = 0;
  int64_t columns = 0;
  const float* bias = nullptr;  // [rows] or null
  float* y = nullptr;
  int64_t y_stride = 0;
};

// Shape of one image's convolution: input [channels, height, width], output
// [rows of W, out_height, out_width], W's columns ordered (channel, kernel row, kernel column).
struct ConvGeometry {
  int64_t channels = 0, height = 0, width = 0;
  int64_t out_height = 0, out_width = 0;
  int64_t kernel_height = 1, kernel_width = 1;
  int64_t stride_height = 1, stride_width = 1;
  int64_t padding_height = 0, padding_width = 0;
  int64_t dilation_height = 1, dilation_width = 1;
};

// Direct sparse convolution of one image (no im2col) for the output channels
// [row_begin, row_end): output[r] = bias[r] + sum of W[r, k] times the shifted input planes.
// Returns false for a column index outside [0, depth), like the products above.
bool CsrConvDirectPortable(const CsrView& w, const ConvGeometry& geometry, const float* image,
                           const float* bias, float* output, int64_t row_begin, int64_t row_end);
bool CsrConvDirectAvx512(const CsrView& w, const ConvGeometry& geometry, const float* image,
                         const float* bias, float* output, int64_t row_begin, int64_t row_end);

// Returns true when `row_offsets` ([count + 1]) starts at 0, never falls and ends at `entries`.
bool CheckRowOffsets(const int32_t* row_offsets, int64_t count, int64_t entries);

bool CsrSpmmPortable(const CsrView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end);
bool CsrSpmmAvx512(const CsrView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end);

bool BsrSpmmPortable(const BsrView& w, const DenseOperands& io, int64_t block_row_begin,
                     int64_t block_row_end);
bool BsrSpmmAvx512(const BsrView& w, const DenseOperands& io, int64_t block_row_begin,
                   int64_t block_row_end);

bool NmSpmmPortable(const NmView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end);
bool NmSpmmAvx512(const NmView& w, const DenseOperands& io, int64_t row_begin, int64_t row_end);

// target[c * target_stride + r] = source[r * source_stride + c] for r in [row_begin, row_end)
// and c in [0, columns): the transposes around the Linear products.
void TransposePortable(const float* source, int64_t source_stride, int64_t row_begin,
                       int64_t row_end, int64_t columns, float* target, int64_t target_stride);
void TransposeAvx512(const float* source, int64_t source_stride, int64_t row_begin, int64_t row_end,
                     int64_t columns, float* target, int64_t target_stride);

}  // namespace polaris::sparse::internal

#endif  // POLARIS_SPARSE_INTERNAL_SPMM_H_
