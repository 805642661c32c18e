// Plain-loop reference implementations of the sparse layers in kernels.h. They are the exact
// specification the optimized kernels are tested against: each output element is
//
//   y[b, r] = bias[r] + sum over stored entries (r, k) of W[r, k] * x[b, k]
//
// accumulated in double precision and rounded to float once, so they are at least as
// accurate as any float kernel. They are slow on purpose and meant for tests only.
//
// Preconditions, unchecked: all tensors are float32, contiguous and on the CPU. `input` is
// [batch, columns], or [batch, in_channels, height, width] for Conv2dReference. The matrix
// passes its Validate* check, and `bias` is undefined or [rows].
#ifndef POLARIS_SPARSE_REFERENCE_H_
#define POLARIS_SPARSE_REFERENCE_H_

#include "ATen/core/Tensor.h"
#include "sparse/formats.h"
#include "sparse/kernels.h"

namespace polaris::sparse {

// y = x W^T + b: float32 [batch, rows].
at::Tensor LinearReference(const at::Tensor& input, const CsrMatrix& weight,
                           const at::Tensor& bias);
at::Tensor LinearReference(const at::Tensor& input, const BsrMatrix& weight,
                           const at::Tensor& bias);
at::Tensor LinearReference(const at::Tensor& input, const NmMatrix& weight, const at::Tensor& bias);

// Direct 2-D convolution (cross-correlation, as torch.conv2d) with a weight stored as the CSR
// matrix [out_channels, in_channels * kernel_height * kernel_width], groups = 1.
at::Tensor Conv2dReference(const at::Tensor& input, const CsrMatrix& weight,
                           const Conv2dParams& params, const at::Tensor& bias);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_REFERENCE_H_
