// Folding of inference-mode BatchNorm into the convolution or Linear layer before it, the first
// step of every int8 conversion: a folded layer is one quantized operator with one set of
// per-channel weight scales instead of an int8 convolution followed by a float normalization.
//
// For a layer y = W x + b followed by BatchNorm with running mean m, running variance v, scale
// gamma, shift beta and epsilon e, folding computes, per output channel c (in float64, stored
// as float32):
//   s_c  = gamma_c / sqrt(v_c + e)
//   W'_c = W_c * s_c
//   b'_c = beta_c + (b_c - m_c) * s_c
// so that W' x + b' equals BatchNorm(W x + b) up to float32 rounding.
//
//   POLARIS_ASSIGN_OR_RETURN(BatchNormFoldingResult folded,
//                            FoldBatchNorm(model, at::zeros({1, 1, 28, 28})));
//   folded.model;        // a new module; `model` is unchanged
//   folded.not_folded;   // BatchNorm layers left in float, with the reason
#ifndef POLARIS_QUANTIZATION_MODEL_BATCHNORM_FOLDING_H_
#define POLARIS_QUANTIZATION_MODEL_BATCHNORM_FOLDING_H_

#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {

struct FoldedBatchNorm {
  // Module paths in the caller's model, e.g. "layer1.bn1" folded into "layer1.conv1".
  std::string batch_norm;
  std::string layer;
};

struct UnfoldedBatchNorm {
  std::string batch_norm;
  std::string reason;
};

struct BatchNormFoldingResult {
  // A new module with one flat forward graph (see FoldBatchNorm) in eval mode.
  torch::jit::Module model;
  std::vector<FoldedBatchNorm> folded;
  std::vector<UnfoldedBatchNorm> not_folded;
};

// Returns a copy of `model` in inference mode in which every aten::batch_norm that directly
// follows a non-transposed convolution (conv1d/2d/3d or a traced _convolution) or a Linear
// layer, and is that layer's only consumer, is folded into the layer's weight and bias.
// BatchNorm after a Linear layer is folded only when the Linear output is 2-D ([batch,
// features]) on `example_input`, because BatchNorm1d normalizes dimension 1, which is the
// feature dimension only then; with an undefined `example_input` such pairs stay unfolded.
// Other BatchNorm layers stay in float and are listed in `not_folded`.
// The result's forward is the model's inlined forward graph over flat attribute names
// ("layer1.conv1.weight" becomes "layer1_conv1_weight"); it saves and loads as TorchScript.
// `model` is not changed.
// Errors: those of flattening (kUnimplemented for forward methods with side effects on the
// module); kInvalidArgument when a folded layer's weights or BatchNorm statistics contain NaN
// or Inf, or the running variance plus epsilon is not positive, naming the layer; and the
// model's own error when it cannot run on `example_input`.
absl::StatusOr<BatchNormFoldingResult> FoldBatchNorm(const torch::jit::Module& model,
                                                     const at::Tensor& example_input);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_MODEL_BATCHNORM_FOLDING_H_
