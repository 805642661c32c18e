#include "sparse/formats.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::sparse {
namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

std::string ShapeString(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

// A weight as a contiguous float32 matrix and the matching keep flags.
struct PreparedMatrix {
  at::Tensor values;  // float32 [rows, columns], contiguous
  at::Tensor keep;    // bool [rows, columns], contiguous
  int64_t rows = 0;
  int64_t columns = 0;
};

absl::StatusOr<PreparedMatrix> Prepare(const at::Tensor& dense, const at::Tensor& mask) {
  if (!dense.defined()) {
    return absl::InvalidArgumentError("the dense weight is an undefined tensor; pass a weight");
  }
  if (!at::isFloatingType(dense.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat("the dense weight must be floating point, got ",
                                                   c10::toString(dense.scalar_type()),
                                                   "; convert it with .to(torch.float32)"));
  }
  if (dense.dim() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the dense weight must have at least 2 dimensions, got shape ", ShapeString(dense)));
  }
  if (mask.defined() && !mask.sizes().equals(dense.sizes())) {
    return absl::InvalidArgumentError(absl::StrCat("the mask has shape ", ShapeString(mask),
                                                   " but the weight has shape ", ShapeString(dense),
                                                   "; pass a mask of the weight's shape"));
  }
  if (dense.numel() > kMaxInt32) {
    return absl::OutOfRangeError(absl::StrCat(
        "the weight of shape ", ShapeString(dense), " has ", dense.numel(),
        " elements; sparse formats here use int32 indices and hold at most ", kMaxInt32));
  }
  return CallTorch("preparing the weight", [&] {
    PreparedMatrix prepared;
    prepared.rows = dense.size(0);
    prepared.columns = dense.size(0) == 0 ? 0 : dense.numel() / dense.size(0);
    prepared.values = dense.detach()
                          .to(at::kCPU, at::kFloat)
                          .reshape({prepared.rows, prepared.columns})
                          .contiguous();
    const at::Tensor source = mask.defined() ? mask.detach().to(at::kCPU) : prepared.values;
    prepared.keep = source.ne(0).reshape({prepared.rows, prepared.columns}).contiguous();
    return prepared;
  });
}

at::Tensor Int32Tensor(const std::vector<int32_t>& values) {
  at::Tensor tensor = at::empty({static_cast<int64_t>(values.size())}, at::kInt);
  std::copy(values.begin(), values.end(), tensor.data_ptr<int32_t>());
  return tensor;
}

at::Tensor FloatTensor(const std::vector<float>& values) {
  at::Tensor tensor = at::empty({static_cast<int64_t>(values.size())}, at::kFloat);
  std::copy(values.begin(), values.end(), tensor.data_ptr<float>());
  return tensor;
}

absl::Status CheckTensor(const at::Tensor& tensor, const char* name, at::ScalarType dtype,
                         std::vector<int64_t> shape) {
  if (!tensor.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is an undefined tensor"));
  }
  if (tensor.scalar_type() != dtype) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be ", c10::toString(dtype),
                                                   ", got ", c10::toString(tensor.scalar_type())));
  }
  if (!tensor.device().is_cpu() || !tensor.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a contiguous CPU tensor"));
  }
  if (!tensor.sizes().equals(shape)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has shape ", ShapeString(tensor), ", expected [", absl::StrJoin(shape, ", "), "]"));
  }
  return absl::OkStatus();
}

// Checks offsets [count + 1] that start at 0, never fall and end at `entries`, and indices
// [entries] in [0, limit) that rise within each row.
absl::Status CheckCompressedRows(const at::Tensor& row_offsets, const at::Tensor& column_indices,
                                 int64_t count, int64_t entries, int64_t limit) {
  POLARIS_RETURN_IF_ERROR(CheckTensor(row_offsets, "row_offsets", at::kInt, {count + 1}));
  POLARIS_RETURN_IF_ERROR(CheckTensor(column_indices, "column_indices", at::kInt, {entries}));
  const int32_t* offsets = row_offsets.data_ptr<int32_t>();
  const int32_t* indices = column_indices.data_ptr<int32_t>();
  if (offsets[0] != 0 || offsets[count] != entries) {
    return absl::InvalidArgumentError(absl::StrCat("row_offsets must start at 0 and end at ",
                                                   entries, ", got ", offsets[0], " and ",
                                                   offsets[count]));
  }
  for (int64_t row = 0; row < count; ++row) {
    if (offsets[row + 1] < offsets[row]) {
      return absl::InvalidArgumentError(absl::StrCat("row_offsets fall at row ", row, ": ",
                                                     offsets[row], " then ", offsets[row + 1]));
    }
    for (int32_t k = offsets[row]; k < offsets[row + 1]; ++k) {
      if (indices[k] < 0 || indices[k] >= limit) {
        return absl::InvalidArgumentError(absl::StrCat("column index ", indices[k], " of row ", row,
                                                       " is outside [0, ", limit, ")"));
      }
      if (k > offsets[row] && indices[k] <= indices[k - 1]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "column indices of row ", row, " do not rise: ", indices[k - 1], " then ", indices[k]));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDimensions(int64_t rows, int64_t columns) {
  if (rows < 0 || columns < 0 || rows * columns > kMaxInt32) {
    return absl::InvalidArgumentError(absl::StrCat("matrix dimensions ", rows, " x ", columns,
                                                   " are negative or exceed int32 indices"));
  }
  return absl::OkStatus();
}

int64_t TensorBytes(const at::Tensor& tensor) {
  return tensor.defined() ? static_cast<int64_t>(tensor.nbytes()) : 0;
}

}  // namespace

absl::StatusOr<CsrMatrix> ToCsr(const at::Tensor& dense, const at::Tensor& mask) {
  POLARIS_ASSIGN_OR_RETURN(PreparedMatrix prepared, Prepare(dense, mask));
  return CallTorch("converting the weight to CSR", [&] {
    const float* values = prepared.values.data_ptr<float>();
    const bool* keep = prepared.keep.data_ptr<bool>();
    std::vector<int32_t> row_offsets = {0};
    std::vector<int32_t> column_indices;
    std::vector<float> kept_values;
    for (int64_t row = 0; row < prepared.rows; ++row) {
      for (int64_t column = 0; column < prepared.columns; ++column) {
        const int64_t index = row * prepared.columns + column;
        if (!keep[index]) continue;
        column_indices.push_back(static_cast<int32_t>(column));
        kept_values.push_back(values[index]);
      }
      row_offsets.push_back(static_cast<int32_t>(column_indices.size()));
    }
    CsrMatrix csr;
    csr.row_offsets = Int32Tensor(row_offsets);
    csr.column_indices = Int32Tensor(column_indices);
    csr.values = FloatTensor(kept_values);
    csr.rows = prepared.rows;
    csr.columns = prepared.columns;
    return csr;
  });
}

absl::StatusOr<BsrMatrix> ToBsr(const at::Tensor& dense, int64_t block_rows, int64_t block_columns,
                                const at::Tensor& mask) {
  POLARIS_ASSIGN_OR_RETURN(PreparedMatrix prepared, Prepare(dense, mask));
  if (block_rows < 1 || block_columns < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block size ", block_rows, " x ", block_columns, " must be at least 1 x 1"));
  }
  if (prepared.rows % block_rows != 0 || prepared.columns % block_columns != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block size ", block_rows, " x ", block_columns, " does not divide the ", prepared.rows,
        " x ", prepared.columns, " weight matrix; choose block sizes that divide both dimensions"));
  }
  return CallTorch("converting the weight to BSR", [&] {
    const float* values = prepared.values.data_ptr<float>();
    const bool* keep = prepared.keep.data_ptr<bool>();
    const int64_t block_size = block_rows * block_columns;
    std::vector<int32_t> row_offsets = {0};
    std::vector<int32_t> column_indices;
    std::vector<float> block_values;
    for (int64_t block_row = 0; block_row < prepared.rows / block_rows; ++block_row) {
      for (int64_t block_column = 0; block_column < prepared.columns / block_columns;
           ++block_column) {
        bool any_kept = false;
        for (int64_t i = 0; i < block_rows && !any_kept; ++i) {
          const int64_t start =
              (block_row * block_rows + i) * prepared.columns + block_column * block_columns;
          for (int64_t j = 0; j < block_columns; ++j) any_kept = any_kept || keep[start + j];
        }
        if (!any_kept) continue;
        column_indices.push_back(static_cast<int32_t>(block_column));
        block_values.resize(block_values.size() + block_size);
        float* block = block_values.data() + block_values.size() - block_size;
        for (int64_t i = 0; i < block_rows; ++i) {
          const int64_t start =
              (block_row * block_rows + i) * prepared.columns + block_column * block_columns;
          for (int64_t j = 0; j < block_columns; ++j) {
            block[i * block_columns + j] = keep[start + j] ? values[start + j] : 0.0f;
          }
        }
      }
      row_offsets.push_back(static_cast<int32_t>(column_indices.size()));
    }
    BsrMatrix bsr;
    bsr.row_offsets = Int32Tensor(row_offsets);
    bsr.column_indices = Int32Tensor(column_indices);
    bsr.values =
        FloatTensor(block_values)
            .reshape({static_cast<int64_t>(column_indices.size()), block_rows, block_columns});
    bsr.rows = prepared.rows;
    bsr.columns = prepared.columns;
    bsr.block_rows = block_rows;
    bsr.block_columns = block_columns;
    return bsr;
  });
}

absl::StatusOr<NmMatrix> ToNm(const at::Tensor& dense, int n, int m, const at::Tensor& mask) {
  if (n < 1 || n > m || m > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("N:M sparsity needs 1 <= N <= M <= 255, got N = ", n, ", M = ", m,
                     (n > m ? "; N must not exceed M" : "")));
  }
  POLARIS_ASSIGN_OR_RETURN(PreparedMatrix prepared, Prepare(dense, mask));
  if (prepared.columns % m != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the weight has ", prepared.columns,
                                                   " input columns, not a multiple of M = ", m,
                                                   "; N:M groups must tile the input dimension"));
  }
  const int64_t groups = prepared.columns / m;
  return CallTorch("packing the weight as N:M", [&]() -> absl::StatusOr<NmMatrix> {
    NmMatrix packed;
    packed.rows = prepared.rows;
    packed.columns = prepared.columns;
    packed.n = n;
    packed.m = m;
    packed.values = at::zeros({prepared.rows, groups * n}, at::kFloat);
    packed.indices = at::zeros({prepared.rows, groups * n}, at::kByte);
    const float* values = prepared.values.data_ptr<float>();
    const bool* keep = prepared.keep.data_ptr<bool>();
    float* packed_values = packed.values.data_ptr<float>();
    uint8_t* packed_indices = packed.indices.data_ptr<uint8_t>();
    for (int64_t row = 0; row < prepared.rows; ++row) {
      for (int64_t group = 0; group < groups; ++group) {
        const int64_t start = row * prepared.columns + group * m;
        const int64_t slots = row * groups * n + group * n;
        int kept = 0;
        for (int position = 0; position < m; ++position) {
          if (!keep[start + position]) continue;
          if (kept < n) {
            packed_values[slots + kept] = values[start + position];
            packed_indices[slots + kept] = static_cast<uint8_t>(position);
          }
          ++kept;
        }
        if (kept > n) {
          return absl::InvalidArgumentError(
              absl::StrCat("the weight is not ", n, ":", m, " sparse: row ", row, ", group ", group,
                           " (columns ", group * m, "-", group * m + m - 1, ") keeps ", kept,
                           " elements; prune it to ", n, ":", m, " first"));
        }
        // Pad short groups with zero values at unused positions, then sort the slots by
        // position, so that the positions of a group are distinct and rise.
        int next_free = 0;
        for (int slot = kept; slot < n; ++slot) {
          while (keep[start + next_free]) ++next_free;
          packed_indices[slots + slot] = static_cast<uint8_t>(next_free++);
        }
        std::vector<std::pair<uint8_t, float>> entries;
        for (int slot = 0; slot < n; ++slot) {
          entries.emplace_back(packed_indices[slots + slot], packed_values[slots + slot]);
        }
        std::sort(entries.begin(), entries.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (int slot = 0; slot < n; ++slot) {
          packed_indices[slots + slot] = entries[slot].first;
          packed_values[slots + slot] = entries[slot].second;
        }
      }
    }
    return packed;
  });
}

absl::StatusOr<BitmapMatrix> ToBitmap(const at::Tensor& dense, const at::Tensor& mask) {
  if (dense.defined() && dense.dim() < 2) {
    // Any shape is allowed here; Prepare wants a matrix, so view vectors and scalars as one row.
    POLARIS_ASSIGN_OR_RETURN(
        BitmapMatrix matrix,
        ToBitmap(dense.reshape({1, -1}), mask.defined() ? mask.reshape({1, -1}) : mask));
    matrix.shape.assign(dense.sizes().begin(), dense.sizes().end());
    return matrix;
  }
  POLARIS_ASSIGN_OR_RETURN(PreparedMatrix prepared, Prepare(dense, mask));
  return CallTorch("storing the weight as a bitmap", [&] {
    const int64_t elements = prepared.rows * prepared.columns;
    const float* values = prepared.values.data_ptr<float>();
    const bool* keep = prepared.keep.data_ptr<bool>();
    BitmapMatrix matrix;
    matrix.shape.assign(dense.sizes().begin(), dense.sizes().end());
    matrix.bitmap = at::zeros({(elements + 7) / 8}, at::kByte);
    uint8_t* bits = matrix.bitmap.data_ptr<uint8_t>();
    std::vector<float> kept_values;
    for (int64_t i = 0; i < elements; ++i) {
      if (!keep[i]) continue;
      bits[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      kept_values.push_back(values[i]);
    }
    matrix.values = FloatTensor(kept_values);
    return matrix;
  });
}

absl::Status ValidateBitmap(const BitmapMatrix& matrix) {
  int64_t elements = 1;
  for (int64_t size : matrix.shape) {
    if (size < 0 || (size > 0 && elements > kMaxInt32 / size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid bitmap matrix: shape [", absl::StrJoin(matrix.shape, ", "),
                       "] is negative or has more than ", kMaxInt32, " elements"));
    }
    elements *= size;
  }
  POLARIS_RETURN_IF_ERROR(CheckTensor(matrix.bitmap, "bitmap", at::kByte, {(elements + 7) / 8}));
  if (!matrix.values.defined() || matrix.values.dim() != 1) {
    return absl::InvalidArgumentError("bitmap values must be a defined 1-D tensor");
  }
  POLARIS_RETURN_IF_ERROR(
      CheckTensor(matrix.values, "values", at::kFloat, {matrix.values.numel()}));
  const uint8_t* bits = matrix.bitmap.data_ptr<uint8_t>();
  int64_t set_bits = 0;
  for (int64_t i = 0; i < matrix.bitmap.numel(); ++i) set_bits += __builtin_popcount(bits[i]);
  const int64_t padding_bits = matrix.bitmap.numel() * 8 - elements;
  if (padding_bits > 0 && (bits[matrix.bitmap.numel() - 1] >> (8 - padding_bits)) != 0) {
    return absl::InvalidArgumentError("invalid bitmap matrix: bits past the last element are set");
  }
  if (set_bits != matrix.values.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid bitmap matrix: ", set_bits,
                                                   " bits are set but there are ",
                                                   matrix.values.numel(), " values"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCsr(const CsrMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(CheckDimensions(matrix.rows, matrix.columns));
  if (!matrix.values.defined() || matrix.values.dim() != 1) {
    return absl::InvalidArgumentError("CSR values must be a defined 1-D tensor");
  }
  const int64_t entries = matrix.values.numel();
  POLARIS_RETURN_IF_ERROR(CheckTensor(matrix.values, "values", at::kFloat, {entries}));
  return Annotate(CheckCompressedRows(matrix.row_offsets, matrix.column_indices, matrix.rows,
                                      entries, matrix.columns),
                  "invalid CSR matrix");
}

absl::Status ValidateBsr(const BsrMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(CheckDimensions(matrix.rows, matrix.columns));
  if (matrix.block_rows < 1 || matrix.block_columns < 1 || matrix.rows % matrix.block_rows != 0 ||
      matrix.columns % matrix.block_columns != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid BSR matrix: block size ", matrix.block_rows, " x ", matrix.block_columns,
        " does not divide the ", matrix.rows, " x ", matrix.columns, " matrix"));
  }
  if (!matrix.values.defined() || matrix.values.dim() != 3) {
    return absl::InvalidArgumentError("BSR values must be a defined 3-D tensor");
  }
  const int64_t blocks = matrix.values.size(0);
  POLARIS_RETURN_IF_ERROR(CheckTensor(matrix.values, "values", at::kFloat,
                                      {blocks, matrix.block_rows, matrix.block_columns}));
  return Annotate(CheckCompressedRows(matrix.row_offsets, matrix.column_indices,
                                      matrix.rows / matrix.block_rows, blocks,
                                      matrix.columns / matrix.block_columns),
                  "invalid BSR matrix");
}

absl::Status ValidateNm(const NmMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(CheckDimensions(matrix.rows, matrix.columns));
  if (matrix.n < 1 || matrix.n > matrix.m || matrix.m > 255 || matrix.columns % matrix.m != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid N:M matrix: N = ", matrix.n, ", M = ", matrix.m, " with ", matrix.columns,
        " columns; need 1 <= N <= M <= 255 and M dividing the columns"));
  }
  const int64_t slots = matrix.columns / matrix.m * matrix.n;
  POLARIS_RETURN_IF_ERROR(CheckTensor(matrix.values, "values", at::kFloat, {matrix.rows, slots}));
  POLARIS_RETURN_IF_ERROR(CheckTensor(matrix.indices, "indices", at::kByte, {matrix.rows, slots}));
  const uint8_t* indices = matrix.indices.data_ptr<uint8_t>();
  for (int64_t group_start = 0; group_start < matrix.rows * slots; group_start += matrix.n) {
    for (int slot = 0; slot < matrix.n; ++slot) {
      const uint8_t position = indices[group_start + slot];
      if (position >= matrix.m || (slot > 0 && position <= indices[group_start + slot - 1])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid N:M matrix: in-group positions must rise and lie in [0, ", matrix.m, "), row ",
            group_start / slots, " has ", static_cast<int>(position), " at slot ", slot));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ToDense(const CsrMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(ValidateCsr(matrix));
  return CallTorch("expanding CSR to dense", [&] {
    at::Tensor dense = at::zeros({matrix.rows, matrix.columns}, at::kFloat);
    float* out = dense.data_ptr<float>();
    const int32_t* offsets = matrix.row_offsets.data_ptr<int32_t>();
    const int32_t* indices = matrix.column_indices.data_ptr<int32_t>();
    const float* values = matrix.values.data_ptr<float>();
    for (int64_t row = 0; row < matrix.rows; ++row) {
      for (int32_t k = offsets[row]; k < offsets[row + 1]; ++k) {
        out[row * matrix.columns + indices[k]] = values[k];
      }
    }
    return dense;
  });
}

absl::StatusOr<at::Tensor> ToDense(const BsrMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(ValidateBsr(matrix));
  return CallTorch("expanding BSR to dense", [&] {
    at::Tensor dense = at::zeros({matrix.rows, matrix.columns}, at::kFloat);
    float* out = dense.data_ptr<float>();
    const int32_t* offsets = matrix.row_offsets.data_ptr<int32_t>();
    const int32_t* indices = matrix.column_indices.data_ptr<int32_t>();
    const float* values = matrix.values.data_ptr<float>();
    const int64_t block_size = matrix.block_rows * matrix.block_columns;
    for (int64_t block_row = 0; block_row < matrix.rows / matrix.block_rows; ++block_row) {
      for (int32_t k = offsets[block_row]; k < offsets[block_row + 1]; ++k) {
        for (int64_t i = 0; i < matrix.block_rows; ++i) {
          for (int64_t j = 0; j < matrix.block_columns; ++j) {
            const int64_t row = block_row * matrix.block_rows + i;
            const int64_t column = indices[k] * matrix.block_columns + j;
            out[row * matrix.columns + column] =
                values[k * block_size + i * matrix.block_columns + j];
          }
        }
      }
    }
    return dense;
  });
}

absl::StatusOr<at::Tensor> ToDense(const NmMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(ValidateNm(matrix));
  return CallTorch("expanding N:M to dense", [&] {
    at::Tensor dense = at::zeros({matrix.rows, matrix.columns}, at::kFloat);
    float* out = dense.data_ptr<float>();
    const float* values = matrix.values.data_ptr<float>();
    const uint8_t* indices = matrix.indices.data_ptr<uint8_t>();
    const int64_t slots = matrix.columns / matrix.m * matrix.n;
    for (int64_t row = 0; row < matrix.rows; ++row) {
      for (int64_t slot = 0; slot < slots; ++slot) {
        const int64_t column = slot / matrix.n * matrix.m + indices[row * slots + slot];
        out[row * matrix.columns + column] = values[row * slots + slot];
      }
    }
    return dense;
  });
}

absl::StatusOr<at::Tensor> ToDense(const BitmapMatrix& matrix) {
  POLARIS_RETURN_IF_ERROR(ValidateBitmap(matrix));
  return CallTorch("expanding the bitmap to dense", [&] {
    at::Tensor dense = at::zeros(matrix.shape, at::kFloat);
    float* out = dense.data_ptr<float>();
    const uint8_t* bits = matrix.bitmap.data_ptr<uint8_t>();
    const float* values = matrix.values.data_ptr<float>();
    int64_t next = 0;
    for (int64_t i = 0; i < dense.numel(); ++i) {
      if ((bits[i / 8] >> (i % 8)) & 1u) out[i] = values[next++];
    }
    return dense;
  });
}

double Sparsity(const at::Tensor& dense, const at::Tensor& mask) {
  const at::Tensor& source = mask.defined() ? mask : dense;
  if (!source.defined() || source.numel() == 0) return 0.0;
  absl::StatusOr<int64_t> nonzeros =
      CallTorch("counting nonzeros", [&] { return source.ne(0).sum().item<int64_t>(); });
  if (!nonzeros.ok()) return 0.0;
  return static_cast<double>(source.numel() - *nonzeros) / static_cast<double>(source.numel());
}

int64_t StorageBytes(const CsrMatrix& matrix) {
  return TensorBytes(matrix.row_offsets) + TensorBytes(matrix.column_indices) +
         TensorBytes(matrix.values);
}

int64_t StorageBytes(const BsrMatrix& matrix) {
  return TensorBytes(matrix.row_offsets) + TensorBytes(matrix.column_indices) +
         TensorBytes(matrix.values);
}

int64_t StorageBytes(const BitmapMatrix& matrix) {
  return TensorBytes(matrix.bitmap) + TensorBytes(matrix.values);
}

int64_t StorageBytes(const NmMatrix& matrix) {
  return TensorBytes(matrix.values) + TensorBytes(matrix.indices);
}

}  // namespace polaris::sparse
