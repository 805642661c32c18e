// The polaris::sparse_* operators that exported TorchScript files call. Each takes a sparse
// format's tensors (stored as plain module attributes) plus the layer's arguments, and runs
// the kernels of sparse/kernels.h. Linking this library (alwayslink) or loading
// libpolaris_sparse_ops.so with torch.ops.load_library registers them.
//
//   polaris::sparse_linear_csr(Tensor input, Tensor row_offsets, Tensor column_indices,
//                              Tensor values, Tensor? bias, int columns) -> Tensor
//   polaris::sparse_linear_bsr(Tensor input, Tensor row_offsets, Tensor column_indices,
//                              Tensor values, Tensor? bias, int columns) -> Tensor
//       block size = values.size(1) x values.size(2)
//   polaris::sparse_linear_nm(Tensor input, Tensor values, Tensor indices, Tensor? bias,
//                             int columns, int n, int m) -> Tensor
//   polaris::sparse_conv2d_csr(Tensor input, Tensor row_offsets, Tensor column_indices,
//                              Tensor values, Tensor? bias, int[] kernel_size, int[] stride,
//                              int[] padding, int[] dilation) -> Tensor
//       (im2col, then a sparse product)
//   polaris::sparse_conv2d_csr_direct(same arguments) -> Tensor
//       (each stored weight times the shifted input plane, no im2col)
//   polaris::sparse_densify_bitmap(Tensor values, Tensor bitmap, int[] shape) -> Tensor
//
// Bad arguments (from a damaged file, say) raise a ValueError naming the problem; the kernels
// never read outside the tensors they are given.
#include <cstdint>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "c10/util/Optional.h"
#include "sparse/formats.h"
#include "sparse/kernels.h"
#include "torch/library.h"

namespace polaris::sparse {
namespace {

at::Tensor BiasOrUndefined(const c10::optional<at::Tensor>& bias) {
  return bias.has_value() ? bias->contiguous() : at::Tensor();
}

at::Tensor SparseLinearCsr(const at::Tensor& input, const at::Tensor& row_offsets,
                           const at::Tensor& column_indices, const at::Tensor& values,
                           const c10::optional<at::Tensor>& bias, int64_t columns) {
  TORCH_CHECK_VALUE(row_offsets.dim() == 1 && row_offsets.numel() >= 1,
                    "polaris::sparse_linear_csr: row_offsets must be 1-D with at least one "
                    "element, got shape ",
                    row_offsets.sizes());
  CsrMatrix weight{row_offsets, column_indices, values, row_offsets.numel() - 1, columns};
  return internal::CsrLinear(input, weight, BiasOrUndefined(bias), internal::BestKernelIsa());
}

at::Tensor SparseLinearBsr(const at::Tensor& input, const at::Tensor& row_offsets,
                           const at::Tensor& column_indices, const at::Tensor& values,
                           const c10::optional<at::Tensor>& bias, int64_t columns) {
  TORCH_CHECK_VALUE(row_offsets.dim() == 1 && row_offsets.numel() >= 1 && values.dim() == 3,
                    "polaris::sparse_linear_bsr: expects 1-D row_offsets and 3-D values "
                    "[blocks, block_rows, block_columns], got shapes ",
                    row_offsets.sizes(), " and ", values.sizes());
  BsrMatrix weight{
      row_offsets, column_indices, values,        (row_offsets.numel() - 1) * values.size(1),
      columns,     values.size(1), values.size(2)};
  return internal::BsrLinear(input, weight, BiasOrUndefined(bias), internal::BestKernelIsa());
}

at::Tensor SparseLinearNm(const at::Tensor& input, const at::Tensor& values,
                          const at::Tensor& indices, const c10::optional<at::Tensor>& bias,
                          int64_t columns, int64_t n, int64_t m) {
  TORCH_CHECK_VALUE(values.dim() == 2 && n >= 1 && n <= m && m <= 255,
                    "polaris::sparse_linear_nm: expects 2-D values and 1 <= n <= m <= 255, got "
                    "values of shape ",
                    values.sizes(), ", n = ", n, ", m = ", m);
  NmMatrix weight{
      values, indices, values.size(0), columns, static_cast<int>(n), static_cast<int>(m)};
  return internal::NmLinear(input, weight, BiasOrUndefined(bias), internal::BestKernelIsa());
}

std::pair<int64_t, int64_t> Pair(c10::IntArrayRef values, const char* name) {
  TORCH_CHECK_VALUE(values.size() == 2, "polaris sparse conv2d: ", name,
                    " must have 2 elements, got ", values);
  return {values[0], values[1]};
}

at::Tensor SparseConv2d(const at::Tensor& input, const at::Tensor& row_offsets,
                        const at::Tensor& column_indices, const at::Tensor& values,
                        const c10::optional<at::Tensor>& bias, c10::IntArrayRef kernel_size,
                        c10::IntArrayRef stride, c10::IntArrayRef padding,
                        c10::IntArrayRef dilation, ConvMethod method) {
  TORCH_CHECK_VALUE(row_offsets.dim() == 1 && row_offsets.numel() >= 1,
                    "polaris::sparse_conv2d_csr: row_offsets must be 1-D with at least one "
                    "element, got shape ",
                    row_offsets.sizes());
  Conv2dParams params;
  std::tie(params.kernel_height, params.kernel_width) = Pair(kernel_size, "kernel_size");
  std::tie(params.stride_height, params.stride_width) = Pair(stride, "stride");
  std::tie(params.padding_height, params.padding_width) = Pair(padding, "padding");
  std::tie(params.dilation_height, params.dilation_width) = Pair(dilation, "dilation");
  TORCH_CHECK_VALUE(input.dim() == 4,
                    "polaris::sparse_conv2d_csr: input must be [batch, "
                    "channels, height, width], got shape ",
                    input.sizes());
  const CsrMatrix weight{row_offsets, column_indices, values, row_offsets.numel() - 1,
                         input.size(1) * params.kernel_height * params.kernel_width};
  TORCH_CHECK_VALUE(params.kernel_height >= 1 && params.kernel_width >= 1,
                    "polaris::sparse_conv2d_csr: kernel sizes must be positive, got ", kernel_size);
  return internal::CsrConv2d(input, weight, params, BiasOrUndefined(bias),
                             internal::BestKernelIsa(), method);
}

at::Tensor SparseConv2dCsr(const at::Tensor& input, const at::Tensor& row_offsets,
                           const at::Tensor& column_indices, const at::Tensor& values,
                           const c10::optional<at::Tensor>& bias, c10::IntArrayRef kernel_size,
                           c10::IntArrayRef stride, c10::IntArrayRef padding,
                           c10::IntArrayRef dilation) {
  return SparseConv2d(input, row_offsets, column_indices, values, bias, kernel_size, stride,
                      padding, dilation, ConvMethod::kIm2col);
}

at::Tensor SparseConv2dCsrDirect(const at::Tensor& input, const at::Tensor& row_offsets,
                                 const at::Tensor& column_indices, const at::Tensor& values,
                                 const c10::optional<at::Tensor>& bias,
                                 c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                 c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  return SparseConv2d(input, row_offsets, column_indices, values, bias, kernel_size, stride,
                      padding, dilation, ConvMethod::kDirect);
}

at::Tensor SparseDensifyBitmap(const at::Tensor& values, const at::Tensor& bitmap,
                               c10::IntArrayRef shape) {
  const BitmapMatrix matrix{bitmap, values, std::vector<int64_t>(shape.begin(), shape.end())};
  absl::StatusOr<at::Tensor> dense = ToDense(matrix);
  TORCH_CHECK_VALUE(dense.ok(),
                    "polaris::sparse_densify_bitmap: ", std::string(dense.status().message()));
  return *dense;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(polaris, m) {
  m.def(
      "sparse_linear_csr(Tensor input, Tensor row_offsets, Tensor column_indices, "
      "Tensor values, Tensor? bias, int columns) -> Tensor",
      &SparseLinearCsr);
  m.def(
      "sparse_linear_bsr(Tensor input, Tensor row_offsets, Tensor column_indices, "
      "Tensor values, Tensor? bias, int columns) -> Tensor",
      &SparseLinearBsr);
  m.def(
      "sparse_linear_nm(Tensor input, Tensor values, Tensor indices, Tensor? bias, int columns, "
      "int n, int m) -> Tensor",
      &SparseLinearNm);
  m.def(
      "sparse_conv2d_csr(Tensor input, Tensor row_offsets, Tensor column_indices, "
      "Tensor values, Tensor? bias, int[] kernel_size, int[] stride, int[] padding, "
      "int[] dilation) -> Tensor",
      &SparseConv2dCsr);
  m.def(
      "sparse_conv2d_csr_direct(Tensor input, Tensor row_offsets, Tensor column_indices, "
      "Tensor values, Tensor? bias, int[] kernel_size, int[] stride, int[] padding, "
      "int[] dilation) -> Tensor",
      &SparseConv2dCsrDirect);
  m.def("sparse_densify_bitmap(Tensor values, Tensor bitmap, int[] shape) -> Tensor",
        &SparseDensifyBitmap);
}

}  // namespace polaris::sparse
