// Sparse storage formats for weight matrices, converted from a dense tensor and an optional
// mask, with exact round trips back to dense.
//
//   CSR  compressed sparse rows: one entry per kept element. Best for unstructured sparsity.
//   BSR  block compressed sparse rows: one dense block_rows x block_columns tile per block that
//        has at least one kept element. Fewer indices and better register reuse in kernels.
//   N:M  at most n kept elements in every group of m consecutive input columns (2:4 and
//        general N:M), packed as n values and n in-group positions per group.
//
// A weight of a Linear layer is [out_features, in_features]; a Conv2d weight
// [out_channels, in_channels / groups, kh, kw] is read as the matrix
// [out_channels, in_channels / groups * kh * kw], which is how the kernels use it.
//
//   POLARIS_ASSIGN_OR_RETURN(CsrMatrix csr, ToCsr(weight, mask));
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor back, ToDense(csr));  // == weight * (mask != 0)
//
// All tensors are contiguous CPU tensors: indices int32 (uint8 for N:M positions), values
// float32. Every function here catches LibTorch's exceptions and returns absl::Status.
#ifndef POLARIS_SPARSE_FORMATS_H_
#define POLARIS_SPARSE_FORMATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace polaris::sparse {

// Compressed sparse rows. Row r keeps the entries [row_offsets[r], row_offsets[r + 1]) of
// column_indices and values; column indices rise within a row.
struct CsrMatrix {
  at::Tensor row_offsets;     // int32 [rows + 1], row_offsets[0] == 0
  at::Tensor column_indices;  // int32 [nnz]
  at::Tensor values;          // float32 [nnz]
  int64_t rows = 0;
  int64_t columns = 0;

  int64_t nnz() const { return values.defined() ? values.numel() : 0; }
};

// Block compressed sparse rows with block_rows x block_columns blocks. Block row i covers the
// matrix rows [i * block_rows, (i + 1) * block_rows) and keeps the blocks
// [row_offsets[i], row_offsets[i + 1]) of column_indices and values. Column indices count
// blocks and rise within a block row.
struct BsrMatrix {
  at::Tensor row_offsets;     // int32 [rows / block_rows + 1]
  at::Tensor column_indices;  // int32 [blocks]
  at::Tensor values;          // float32 [blocks, block_rows, block_columns], row-major blocks
  int64_t rows = 0;
  int64_t columns = 0;
  int64_t block_rows = 1;
  int64_t block_columns = 1;

  int64_t blocks() const { return values.defined() ? values.size(0) : 0; }
};

// N:M structured sparsity along the input (column) dimension. Row r, group g (columns
// [g * m, (g + 1) * m)) keeps n slots: slot j holds values[r][g * n + j] at column
// g * m + indices[r][g * n + j]. Groups with fewer than n kept elements are padded with zero
// values, and the positions of the slots of one group rise and are distinct.
struct NmMatrix {
  at::Tensor values;   // float32 [rows, columns / m * n]
  at::Tensor indices;  // uint8 [rows, columns / m * n], each in [0, m)
  int64_t rows = 0;
  int64_t columns = 0;
  int n = 2;
  int m = 4;
};

// A weight of any shape stored as one bit per element (set: stored) and the stored values in
// row-major order. Layers that stay dense in an exported model keep their weight so, and
// expand it once on first use. It is smaller than float32 storage at any sparsity above 1/32.
struct BitmapMatrix {
  at::Tensor bitmap;           // uint8 [ceil(numel / 8)], element i is bit i % 8 of byte i / 8
  at::Tensor values;           // float32 [number of set bits]
  std::vector<int64_t> shape;  // shape of the dense weight
};

// Converts `dense` (floating point, at least 2-D; dimensions after the first are flattened
// into columns) to CSR. With a `mask` of the same shape, the entries where the mask is nonzero
// are kept, even when their weight is zero. Without a mask, the nonzero weights are kept.
// Errors: kInvalidArgument when `dense` is undefined, not floating point, has fewer than 2
// dimensions, or the mask's shape differs; kOutOfRange when the matrix has 2^31 or more
// elements, which int32 indices cannot address.
absl::StatusOr<CsrMatrix> ToCsr(const at::Tensor& dense, const at::Tensor& mask = {});

// Converts `dense` to BSR; a block is stored when any of its elements is kept (see ToCsr for
// the mask). Errors: those of ToCsr, and kInvalidArgument when a block size is below 1 or does
// not divide the matrix's rows or columns.
absl::StatusOr<BsrMatrix> ToBsr(const at::Tensor& dense, int64_t block_rows, int64_t block_columns,
                                const at::Tensor& mask = {});

// Packs `dense`, which must already be N:M sparse (at most n kept elements in every group of m
// columns), into NmMatrix. Errors: those of ToCsr; kInvalidArgument when n < 1, n > m, m > 255,
// the columns are not a multiple of m, or a group keeps more than n elements (naming the row,
// the group and the count: prune the weight to N:M first).
absl::StatusOr<NmMatrix> ToNm(const at::Tensor& dense, int n, int m, const at::Tensor& mask = {});

// Stores `dense` (floating point, any shape) as a bitmap of the kept elements and their values
// (see ToCsr for the mask). Errors: kInvalidArgument for an undefined or non-floating tensor
// or a mask of another shape.
absl::StatusOr<BitmapMatrix> ToBitmap(const at::Tensor& dense, const at::Tensor& mask = {});

// Expands each format back to a float32 [rows, columns] tensor (the original shape for
// BitmapMatrix). Errors: kInvalidArgument when
// the matrix is inconsistent (the Validate* check below fails).
absl::StatusOr<at::Tensor> ToDense(const CsrMatrix& matrix);
absl::StatusOr<at::Tensor> ToDense(const BsrMatrix& matrix);
absl::StatusOr<at::Tensor> ToDense(const NmMatrix& matrix);
absl::StatusOr<at::Tensor> ToDense(const BitmapMatrix& matrix);

// Checks every invariant stated above (dtypes, shapes, contiguity, offsets that start at 0,
// never fall and end at the entry count, indices in range), so that a kernel can run on the
// matrix without reading out of bounds. Matrices loaded from a file must pass these first.
// Errors: kInvalidArgument naming the first violation.
absl::Status ValidateCsr(const CsrMatrix& matrix);
absl::Status ValidateBsr(const BsrMatrix& matrix);
absl::Status ValidateNm(const NmMatrix& matrix);
absl::Status ValidateBitmap(const BitmapMatrix& matrix);

// Fraction of zero elements in `dense` (or of mask zeros when `mask` is given), in [0, 1].
// Returns 0 for an empty or undefined tensor, or one whose elements cannot be compared to 0.
double Sparsity(const at::Tensor& dense, const at::Tensor& mask = {});

// Bytes of the tensor storages a format uses (what a file stores for it).
int64_t StorageBytes(const CsrMatrix& matrix);
int64_t StorageBytes(const BsrMatrix& matrix);
int64_t StorageBytes(const NmMatrix& matrix);
int64_t StorageBytes(const BitmapMatrix& matrix);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_FORMATS_H_
