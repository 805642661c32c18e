// Sparse-weight layers: y = x W^T + b (Linear) and 2-D convolution with W stored as CSR, BSR
// or N:M, multithreaded over LibTorch's intra-op threads (at::get_num_threads()), with
// AVX-512 kernels chosen at run time and a portable fallback.
//
// The exact specification of every function here is its plain-loop reference in
// sparse/reference.h; tests compare the two over many shapes and sparsities.
//
//   POLARIS_ASSIGN_OR_RETURN(CsrMatrix w, ToCsr(linear_weight));
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor y, SparseLinear(x, w, bias));  // x: [batch, in]
//
// Speed: the kernels_benchmark target times each format against dense torch::linear in one
// binary, and sparse/BENCHMARKS.md records measured ratios. Results are bitwise independent of
// the thread count, because threads split rows and each row is summed in storage order.
#ifndef POLARIS_SPARSE_KERNELS_H_
#define POLARIS_SPARSE_KERNELS_H_

#include <cstdint>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "sparse/formats.h"

namespace polaris::sparse {

// Geometry of a 2-D convolution (cross-correlation, as torch.conv2d), groups = 1.
struct Conv2dParams {
  int64_t kernel_height = 1;
  int64_t kernel_width = 1;
  int64_t stride_height = 1;
  int64_t stride_width = 1;
  int64_t padding_height = 0;
  int64_t padding_width = 0;
  int64_t dilation_height = 1;
  int64_t dilation_width = 1;
};

// y = x W^T + b for `input` of shape [..., weight.columns] (float32), returning
// [..., weight.rows]. `bias` is undefined or float32 [weight.rows].
// Errors: kInvalidArgument when a dtype or shape does not match (naming both), or the matrix
// is corrupt (offsets that fall or indices out of range).
absl::StatusOr<at::Tensor> SparseLinear(const at::Tensor& input, const CsrMatrix& weight,
                                        const at::Tensor& bias = {});
absl::StatusOr<at::Tensor> SparseLinear(const at::Tensor& input, const BsrMatrix& weight,
                                        const at::Tensor& bias = {});
absl::StatusOr<at::Tensor> SparseLinear(const at::Tensor& input, const NmMatrix& weight,
                                        const at::Tensor& bias = {});

// Algorithm SparseConv2d uses for a convolution.
enum class ConvMethod {
  // Unfold each image (im2col) and multiply it by the sparse weight: good at lower sparsity.
  kIm2col,
  // Add each stored weight times the shifted input plane to its output plane, without
  // unfolding: good at high sparsity, where unfolding costs more than the products.
  kDirect,
};

// 2-D convolution of `input` [batch, in_channels, height, width] (float32) with the weight
// [out_channels, in_channels, kernel_height, kernel_width] stored as the CSR matrix
// [out_channels, in_channels * kernel_height * kernel_width] (ToCsr flattens it so).
// Errors: kInvalidArgument for dtype or shape mismatches, non-positive strides or dilations,
// negative padding, or an output that would be empty.
absl::StatusOr<at::Tensor> SparseConv2d(const at::Tensor& input, const CsrMatrix& weight,
                                        const Conv2dParams& params, const at::Tensor& bias = {},
                                        ConvMethod method = ConvMethod::kDirect);

namespace internal {

// Instruction set of the kernels behind the functions above.
enum class KernelIsa { kPortable, kAvx512 };

// kAvx512 when this CPU has AVX-512 F/BW/DQ/VL (polaris::CpuFeatures), else kPortable.
KernelIsa BestKernelIsa();

// The layers above with an explicit instruction set, reporting errors by throwing c10::Error
// as LibTorch operators do. The polaris operators and the tests call these; `isa` must be
// supported by this CPU.
at::Tensor CsrLinear(const at::Tensor& input, const CsrMatrix& weight, const at::Tensor& bias,
                     KernelIsa isa);
at::Tensor BsrLinear(const at::Tensor& input, const BsrMatrix& weight, const at::Tensor& bias,
                     KernelIsa isa);
at::Tensor NmLinear(const at::Tensor& input, const NmMatrix& weight, const at::Tensor& bias,
                    KernelIsa isa);
at::Tensor CsrConv2d(const at::Tensor& input, const CsrMatrix& weight, const Conv2dParams& params,
                     const at::Tensor& bias, KernelIsa isa, ConvMethod method);

}  // namespace internal
}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_KERNELS_H_
