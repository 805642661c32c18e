#include "sparse/kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "c10/util/Exception.h"
#include "core/cpu_features.h"
#include "core/torch_status.h"
#include "sparse/internal/spmm.h"

namespace polaris::sparse {
namespace internal {
namespace {

// Cost of a row in units of stored weights: loading the bias, storing the outputs and the loop
// overhead, an estimate used only to balance threads.
constexpr int64_t kRowCost = 4;

void CheckFloatTensor(const at::Tensor& tensor, const char* name) {
  TORCH_CHECK_VALUE(tensor.defined(), "polaris sparse layer: ", name, " is undefined");
  TORCH_CHECK_VALUE(tensor.scalar_type() == at::kFloat, "polaris sparse layer: ", name,
                    " must be float32, got ", tensor.scalar_type(), "; convert it with .float()");
  TORCH_CHECK_VALUE(tensor.device().is_cpu(), "polaris sparse layer: ", name,
                    " must be on the CPU, got ", tensor.device());
}

void CheckIndexTensor(const at::Tensor& tensor, const char* name, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(tensor.defined() && tensor.scalar_type() == dtype && tensor.is_contiguous() &&
                        tensor.device().is_cpu(),
                    "polaris sparse layer: ", name, " must be a contiguous CPU tensor of ", dtype);
}

// Returns bias as a float pointer after checking its shape, or null when it is undefined.
const float* BiasPointer(const at::Tensor& bias, int64_t rows) {
  if (!bias.defined()) return nullptr;
  CheckFloatTensor(bias, "bias");
  TORCH_CHECK_VALUE(bias.dim() == 1 && bias.size(0) == rows && bias.is_contiguous(),
                    "polaris sparse layer: bias has shape ", bias.sizes(), " but the weight has ",
                    rows, " output rows; pass a contiguous bias of shape [", rows, "]");
  return bias.data_ptr<float>();
}

void CheckCsr(const CsrMatrix& w) {
  TORCH_CHECK_VALUE(w.rows >= 0 && w.columns >= 0, "polaris sparse layer: invalid CSR dimensions ",
                    w.rows, " x ", w.columns);
  CheckIndexTensor(w.row_offsets, "CSR row_offsets", at::kInt);
  CheckIndexTensor(w.column_indices, "CSR column_indices", at::kInt);
  CheckFloatTensor(w.values, "CSR values");
  TORCH_CHECK_VALUE(w.values.is_contiguous() && w.values.dim() == 1 && w.row_offsets.dim() == 1 &&
                        w.row_offsets.numel() == w.rows + 1 &&
                        w.column_indices.numel() == w.values.numel(),
                    "polaris sparse layer: inconsistent CSR matrix: ", w.rows,
                    " rows with row_offsets of shape ", w.row_offsets.sizes(),
                    ", column_indices of "
                    "shape ",
                    w.column_indices.sizes(), " and values of shape ", w.values.sizes());
  TORCH_CHECK_VALUE(CheckRowOffsets(w.row_offsets.data_ptr<int32_t>(), w.rows, w.values.numel()),
                    "polaris sparse layer: CSR row_offsets must start at 0, never fall and end at ",
                    w.values.numel(), "; the file may be damaged");
}

void CheckBsr(const BsrMatrix& w) {
  TORCH_CHECK_VALUE(w.block_rows >= 1 && w.block_columns >= 1 && w.rows >= 0 && w.columns >= 0 &&
                        w.rows % w.block_rows == 0 && w.columns % w.block_columns == 0,
                    "polaris sparse layer: block size ", w.block_rows, " x ", w.block_columns,
                    " does not divide the ", w.rows, " x ", w.columns, " matrix");
  CheckIndexTensor(w.row_offsets, "BSR row_offsets", at::kInt);
  CheckIndexTensor(w.column_indices, "BSR column_indices", at::kInt);
  CheckFloatTensor(w.values, "BSR values");
  const int64_t block_row_count = w.rows / w.block_rows;
  TORCH_CHECK_VALUE(w.values.is_contiguous() && w.values.dim() == 3 &&
                        w.values.size(1) == w.block_rows && w.values.size(2) == w.block_columns &&
                        w.row_offsets.numel() == block_row_count + 1 &&
                        w.column_indices.numel() == w.values.size(0),
                    "polaris sparse layer: inconsistent BSR matrix: values of shape ",
                    w.values.sizes(), ", row_offsets of shape ", w.row_offsets.sizes(),
                    ", column_indices of shape ", w.column_indices.sizes());
  TORCH_CHECK_VALUE(
      CheckRowOffsets(w.row_offsets.data_ptr<int32_t>(), block_row_count, w.values.size(0)),
      "polaris sparse layer: BSR row_offsets must start at 0, never fall and end at ",
      w.values.size(0), "; the file may be damaged");
}

void CheckNm(const NmMatrix& w) {
  TORCH_CHECK_VALUE(
      w.n >= 1 && w.n <= w.m && w.m <= 255 && w.rows >= 0 && w.columns >= 0 && w.columns % w.m == 0,
      "polaris sparse layer: invalid N:M matrix: N = ", w.n, ", M = ", w.m, ", ", w.columns,
      " columns; need 1 <= N <= M <= 255 and M dividing the columns");
  CheckIndexTensor(w.indices, "N:M indices", at::kByte);
  CheckFloatTensor(w.values, "N:M values");
  const int64_t slots = w.columns / w.m * w.n;
  TORCH_CHECK_VALUE(w.values.is_contiguous() && w.values.dim() == 2 && w.values.size(0) == w.rows &&
                        w.values.size(1) == slots && w.indices.sizes().equals(w.values.sizes()),
                    "polaris sparse layer: N:M values and indices must both be [", w.rows, ", ",
                    slots, "], got ", w.values.sizes(), " and ", w.indices.sizes());
}

void CheckIsa(KernelIsa isa) {
  TORCH_CHECK_VALUE(isa == KernelIsa::kPortable || CpuFeatures().avx512,
                    "polaris sparse layer: AVX-512 kernels requested on a CPU without AVX-512");
}

// Splits [0, count) into at most `parts` ranges of about equal cost, where unit u costs
// cost_before(u + 1) - cost_before(u). Returns the part boundaries.
std::vector<int64_t> BalancedSplit(int64_t count, int parts,
                                   const std::function<int64_t(int64_t)>& cost_before) {
  parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(parts, count)));
  std::vector<int64_t> bounds = {0};
  const int64_t total = cost_before(count);
  for (int p = 1; p < parts; ++p) {
    const int64_t target = total * p / parts;
    int64_t low = bounds.back();
    int64_t high = count;
    while (low < high) {
      const int64_t middle = low + (high - low) / 2;
      if (cost_before(middle) < target) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }
    bounds.push_back(low);
  }
  bounds.push_back(count);
  return bounds;
}

void Transpose(KernelIsa isa, const float* source, int64_t source_stride, int64_t row_begin,
               int64_t row_end, int64_t columns, float* target, int64_t target_stride) {
  if (isa == KernelIsa::kAvx512) {
    TransposeAvx512(source, source_stride, row_begin, row_end, columns, target, target_stride);
  } else {
    TransposePortable(source, source_stride, row_begin, row_end, columns, target, target_stride);
  }
}

// Runs `body(begin, end)` over the balanced ranges on LibTorch's intra-op threads. A single
// range runs on the calling thread.
void ParallelRanges(const std::vector<int64_t>& bounds,
                    const std::function<void(int64_t, int64_t)>& body) {
  const int64_t parts = static_cast<int64_t>(bounds.size()) - 1;
  if (parts <= 1) {
    if (parts == 1) body(bounds[0], bounds[1]);
    return;
  }
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) body(bounds[p], bounds[p + 1]);
  });
}

// y = x W^T + b for any format: `kernel(io, begin, end)` computes Y^T = W x^T for row units
// [begin, end) (rows, or block rows of `unit` rows each). The batch becomes the column
// dimension of the products, so x is transposed first and the result transposed back.
at::Tensor LinearWithKernel(
    KernelIsa isa, const at::Tensor& input, int64_t rows, int64_t columns, int64_t unit,
    const at::Tensor& bias, const std::function<int64_t(int64_t)>& cost_before,
    const std::function<bool(const DenseOperands&, int64_t, int64_t)>& kernel) {
  CheckFloatTensor(input, "input");
  TORCH_CHECK_VALUE(input.dim() >= 1 && input.size(-1) == columns,
                    "polaris sparse linear: input of "
                    "shape ",
                    input.sizes(), " does not match the weight's ", columns,
                    " input features; the last dimension must be ", columns);
  const float* bias_data = BiasPointer(bias, rows);
  std::vector<int64_t> output_shape(input.sizes().begin(), input.sizes().end());
  output_shape.back() = rows;
  const at::Tensor x = input.reshape({-1, columns}).contiguous();
  const int64_t batch = x.size(0);
  at::Tensor y = at::empty({batch, rows}, at::kFloat);
  if (batch == 0 || rows == 0) return y.reshape(output_shape);

  // With a batch of 1, x^T and y^T have the same memory layout as x and y.
  const bool transpose = batch > 1;
  at::Tensor x_transposed = x;
  at::Tensor y_transposed = y;
  if (transpose) {
    x_transposed = at::empty({columns, batch}, at::kFloat);
    y_transposed = at::empty({rows, batch}, at::kFloat);
    const std::vector<int64_t> input_bounds =
        BalancedSplit(batch, at::get_num_threads(), [](int64_t b) { return b; });
    ParallelRanges(input_bounds, [&](int64_t begin, int64_t end) {
      Transpose(isa, x.data_ptr<float>(), columns, begin, end, columns,
                x_transposed.data_ptr<float>(), batch);
    });
  }
  const DenseOperands io{x_transposed.data_ptr<float>(), batch, batch, bias_data,
                         y_transposed.data_ptr<float>(), batch};

  std::atomic<bool> corrupt{false};
  const std::vector<int64_t> bounds =
      BalancedSplit(rows / unit, at::get_num_threads(), cost_before);
  ParallelRanges(bounds, [&](int64_t begin, int64_t end) {
    if (!kernel(io, begin, end)) {
      corrupt = true;
      return;
    }
    if (transpose) {
      Transpose(isa, y_transposed.data_ptr<float>(), batch, begin * unit, end * unit, batch,
                y.data_ptr<float>(), rows);
    }
  });
  TORCH_CHECK_VALUE(!corrupt,
                    "polaris sparse linear: a column index of the sparse weight lies "
                    "outside [0, ",
                    columns, "); the weight data is damaged");
  return y.reshape(output_shape);
}

}  // namespace

KernelIsa BestKernelIsa() {
  return CpuFeatures().avx512 ? KernelIsa::kAvx512 : KernelIsa::kPortable;
}

at::Tensor CsrLinear(const at::Tensor& input, const CsrMatrix& weight, const at::Tensor& bias,
                     KernelIsa isa) {
  CheckIsa(isa);
  CheckCsr(weight);
  const CsrView view{weight.row_offsets.data_ptr<int32_t>(),
                     weight.column_indices.data_ptr<int32_t>(), weight.values.data_ptr<float>(),
                     weight.rows, weight.columns};
  const int32_t* offsets = view.row_offsets;
  return LinearWithKernel(
      isa, input, weight.rows, weight.columns, /*unit=*/1, bias,
      [offsets](int64_t row) { return offsets[row] + kRowCost * row; },
      [&view, isa](const DenseOperands& io, int64_t begin, int64_t end) {
        return isa == KernelIsa::kAvx512 ? CsrSpmmAvx512(view, io, begin, end)
                                         : CsrSpmmPortable(view, io, begin, end);
      });
}

at::Tensor BsrLinear(const at::Tensor& input, const BsrMatrix& weight, const at::Tensor& bias,
                     KernelIsa isa) {
  CheckIsa(isa);
  CheckBsr(weight);
  const BsrView view{weight.row_offsets.data_ptr<int32_t>(),
                     weight.column_indices.data_ptr<int32_t>(),
                     weight.values.data_ptr<float>(),
                     weight.rows,
                     weight.columns,
                     weight.block_rows,
                     weight.block_columns};
  const int32_t* offsets = view.row_offsets;
  const int64_t block_size = weight.block_rows * weight.block_columns;
  return LinearWithKernel(
      isa, input, weight.rows, weight.columns, weight.block_rows, bias,
      [offsets, block_size, &weight](int64_t block_row) {
        return offsets[block_row] * block_size + kRowCost * weight.block_rows * block_row;
      },
      [&view, isa](const DenseOperands& io, int64_t begin, int64_t end) {
        return isa == KernelIsa::kAvx512 ? BsrSpmmAvx512(view, io, begin, end)
                                         : BsrSpmmPortable(view, io, begin, end);
      });
}

at::Tensor NmLinear(const at::Tensor& input, const NmMatrix& weight, const at::Tensor& bias,
                    KernelIsa isa) {
  CheckIsa(isa);
  CheckNm(weight);
  const NmView view{weight.values.data_ptr<float>(),
                    weight.indices.data_ptr<uint8_t>(),
                    weight.rows,
                    weight.columns,
                    weight.n,
                    weight.m};
  return LinearWithKernel(
      isa, input, weight.rows, weight.columns, /*unit=*/1, bias, [](int64_t row) { return row; },
      [&view, isa](const DenseOperands& io, int64_t begin, int64_t end) {
        return isa == KernelIsa::kAvx512 ? NmSpmmAvx512(view, io, begin, end)
                                         : NmSpmmPortable(view, io, begin, end);
      });
}

at::Tensor CsrConv2d(const at::Tensor& input, const CsrMatrix& weight, const Conv2dParams& params,
                     const at::Tensor& bias, KernelIsa isa, ConvMethod method) {
  CheckIsa(isa);
  CheckCsr(weight);
  CheckFloatTensor(input, "input");
  const int64_t kernel_area = params.kernel_height * params.kernel_width;
  TORCH_CHECK_VALUE(
      params.kernel_height >= 1 && params.kernel_width >= 1 && params.stride_height >= 1 &&
          params.stride_width >= 1 && params.dilation_height >= 1 && params.dilation_width >= 1 &&
          params.padding_height >= 0 && params.padding_width >= 0,
      "polaris sparse conv2d: kernel sizes, strides and dilations must be positive and "
      "padding non-negative");
  TORCH_CHECK_VALUE(input.dim() == 4 && input.size(1) * kernel_area == weight.columns,
                    "polaris sparse conv2d: input of shape ", input.sizes(),
                    " does not match the "
                    "weight's ",
                    weight.columns / kernel_area, " input channels of ", params.kernel_height, "x",
                    params.kernel_width, " kernels; pass [batch, ", weight.columns / kernel_area,
                    ", height, width]");
  const float* bias_data = BiasPointer(bias, weight.rows);
  const int64_t batch = input.size(0);
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  const int64_t out_height = (height + 2 * params.padding_height -
                              params.dilation_height * (params.kernel_height - 1) - 1) /
                                 params.stride_height +
                             1;
  const int64_t out_width =
      (width + 2 * params.padding_width - params.dilation_width * (params.kernel_width - 1) - 1) /
          params.stride_width +
      1;
  TORCH_CHECK_VALUE(out_height >= 1 && out_width >= 1, "polaris sparse conv2d: input of shape ",
                    input.sizes(), " is smaller than the ", params.kernel_height, "x",
                    params.kernel_width, " kernel after padding");
  const int64_t pixels = out_height * out_width;
  const at::Tensor x = input.contiguous();
  at::Tensor output = at::empty({batch, weight.rows, out_height, out_width}, at::kFloat);
  if (batch == 0 || weight.rows == 0) return output;

  const CsrView view{weight.row_offsets.data_ptr<int32_t>(),
                     weight.column_indices.data_ptr<int32_t>(), weight.values.data_ptr<float>(),
                     weight.rows, weight.columns};
  const bool pointwise = kernel_area == 1 && params.stride_height == 1 &&
                         params.stride_width == 1 && params.padding_height == 0 &&
                         params.padding_width == 0;
  // The unfolded image [in_channels * kh * kw, pixels]; a 1x1 convolution with stride 1 and no
  // padding reads the image itself.
  auto unfold = [&](int64_t image) {
    const at::Tensor one = x.select(0, image);
    if (pointwise) return one.reshape({weight.columns, pixels});
    return at::im2col(one.unsqueeze(0), {params.kernel_height, params.kernel_width},
                      {params.dilation_height, params.dilation_width},
                      {params.padding_height, params.padding_width},
                      {params.stride_height, params.stride_width})
        .reshape({weight.columns, pixels})
        .contiguous();
  };
  auto run = [&](const at::Tensor& columns, int64_t image, int64_t begin, int64_t end) {
    const DenseOperands io{columns.data_ptr<float>(),
                           pixels,
                           pixels,
                           bias_data,
                           output.data_ptr<float>() + image * weight.rows * pixels,
                           pixels};
    return isa == KernelIsa::kAvx512 ? CsrSpmmAvx512(view, io, begin, end)
                                     : CsrSpmmPortable(view, io, begin, end);
  };
  const ConvGeometry geometry{input.size(1),
                              height,
                              width,
                              out_height,
                              out_width,
                              params.kernel_height,
                              params.kernel_width,
                              params.stride_height,
                              params.stride_width,
                              params.padding_height,
                              params.padding_width,
                              params.dilation_height,
                              params.dilation_width};
  const bool direct = method == ConvMethod::kDirect;
  auto run_direct = [&](int64_t image, int64_t begin, int64_t end) {
    const float* image_data = x.data_ptr<float>() + image * input.size(1) * height * width;
    float* output_data = output.data_ptr<float>() + image * weight.rows * pixels;
    return isa == KernelIsa::kAvx512
               ? CsrConvDirectAvx512(view, geometry, image_data, bias_data, output_data, begin, end)
               : CsrConvDirectPortable(view, geometry, image_data, bias_data, output_data, begin,
                                       end);
  };

  std::atomic<bool> corrupt{false};
  const int threads = at::get_num_threads();
  if (batch >= threads) {
    // Enough images for every thread: each thread unfolds and multiplies whole images.
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t image = begin; image < end; ++image) {
        const bool ok =
            direct ? run_direct(image, 0, weight.rows) : run(unfold(image), image, 0, weight.rows);
        if (!ok) corrupt = true;
      }
    });
  } else {
    const int32_t* offsets = view.row_offsets;
    const std::vector<int64_t> bounds = BalancedSplit(
        weight.rows, threads, [offsets](int64_t row) { return offsets[row] + kRowCost * row; });
    for (int64_t image = 0; image < batch; ++image) {
      const at::Tensor columns = direct ? at::Tensor() : unfold(image);
      ParallelRanges(bounds, [&](int64_t begin, int64_t end) {
        const bool ok = direct ? run_direct(image, begin, end) : run(columns, image, begin, end);
        if (!ok) corrupt = true;
      });
    }
  }
  TORCH_CHECK_VALUE(!corrupt,
                    "polaris sparse conv2d: a column index of the sparse weight lies "
                    "outside [0, ",
                    weight.columns, "); the weight data is damaged");
  return output;
}

}  // namespace internal

absl::StatusOr<at::Tensor> SparseLinear(const at::Tensor& input, const CsrMatrix& weight,
                                        const at::Tensor& bias) {
  return CallTorch("sparse linear (CSR)", [&] {
    return internal::CsrLinear(input, weight, bias, internal::BestKernelIsa());
  });
}

absl::StatusOr<at::Tensor> SparseLinear(const at::Tensor& input, const BsrMatrix& weight,
                                        const at::Tensor& bias) {
  return CallTorch("sparse linear (BSR)", [&] {
    return internal::BsrLinear(input, weight, bias, internal::BestKernelIsa());
  });
}

absl::StatusOr<at::Tensor> SparseLinear(const at::Tensor& input, const NmMatrix& weight,
                                        const at::Tensor& bias) {
  return CallTorch("sparse linear (N:M)", [&] {
    return internal::NmLinear(input, weight, bias, internal::BestKernelIsa());
  });
}

absl::StatusOr<at::Tensor> SparseConv2d(const at::Tensor& input, const CsrMatrix& weight,
                                        const Conv2dParams& params, const at::Tensor& bias,
                                        ConvMethod method) {
  return CallTorch("sparse conv2d (CSR)", [&] {
    return internal::CsrConv2d(input, weight, params, bias, internal::BestKernelIsa(), method);
  });
}

}  // namespace polaris::sparse
