// Unstructured pruning: masks that zero individual weights of Conv2d and Linear layers. The
// weights are chosen by magnitude, per layer or over all layers together, or by an N:M pattern
// (N kept weights in every M consecutive weights along the input dimension, such as 2:4).
//
// Masks alone leave every tensor its full size; the zeros pay off only when the model is
// exported with a sparse format (sparse/export.h) or run by sparse kernels.
//
//   UnstructuredPruningOptions options;
//   options.sparsity = 0.9;
//   options.scope = PruningScope::kGlobal;
//   POLARIS_ASSIGN_OR_RETURN(UnstructuredPruningResult pruned, PruneMagnitude(model, options));
//   pruned.masks.masks["fc1.weight"];  // bool, true where the weight is kept
//
// Tensor-level functions (MagnitudeMask, NmMask) work on any at::Tensor, for code written with
// the LibTorch C++ frontend.
#ifndef POLARIS_PRUNING_MAGNITUDE_H_
#define POLARIS_PRUNING_MAGNITUDE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pruning/common.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

// An N:M pattern: in every group of M consecutive weights along the input dimension, the N of
// largest magnitude are kept.
struct NmPattern {
  int64_t n = 2;
  int64_t m = 4;
};

// Returns a bool mask of `weight`'s shape that is false for the round(sparsity * numel)
// weights of smallest magnitude (ties broken by position, so the count is exact).
// Errors: kInvalidArgument when sparsity is outside [0, 1) or `weight` is empty.
absl::StatusOr<at::Tensor> MagnitudeMask(const at::Tensor& weight, double sparsity);

// Returns a bool mask that keeps the `pattern.n` weights of largest magnitude in every group of
// `pattern.m` consecutive weights along the input dimension. The input dimension is dimension
// 1 of a Linear weight [out, in], and of a Conv2d weight [out, in, kh, kw] flattened to
// [out, in * kh * kw] (the reduction dimension of its im2col matrix product).
// Errors: kInvalidArgument when n < 1, m < 1, n > m, the weight has rank below 2, or the
// input dimension is not a multiple of m.
absl::StatusOr<at::Tensor> NmMask(const at::Tensor& weight, const NmPattern& pattern);

// Returns kInvalidArgument unless 1 <= n <= m, naming the values.
absl::Status ValidateNmPattern(const NmPattern& pattern);

struct UnstructuredPruningOptions {
  // Fraction of weights set to zero, in [0, 1), over all pruned layers (kGlobal) or in each
  // layer (kPerLayer). Ignored when `nm` is set.
  double sparsity = 0.5;
  PruningScope scope = PruningScope::kPerLayer;
  // kGlobal: every layer keeps at least this fraction of its weights (its largest ones), so
  // that no layer is wiped out. In [0, 1].
  double min_density = 0.01;
  // Per-layer sparsity by layer name ("fc1"), overriding `sparsity`. Layers named here are
  // pruned to exactly their value, also with kGlobal; the global threshold covers the rest.
  std::map<std::string, double> layer_sparsity;
  // Layers left dense.
  std::vector<std::string> excluded_layers;
  // When set, masks follow this N:M pattern instead of a sparsity. Layers whose input
  // dimension is not a multiple of M are left dense and reported.
  std::optional<NmPattern> nm;
  // Shape of one input example, without the batch dimension, used to find the layers.
  std::vector<int64_t> example_shape = {1, 28, 28};
};

struct LayerSparsity {
  // Module path of the layer, e.g. "fc1".
  std::string layer;
  std::string weight_path;
  int64_t weights = 0;
  int64_t zeros = 0;
  double sparsity = 0;
  // Why a layer was left dense (excluded, N:M does not fit); empty otherwise.
  std::string note;
};

// Masks keyed by weight path, true where a weight is kept.
struct PruningMasks {
  std::map<std::string, at::Tensor> masks;
  // Every Conv2d and Linear layer of the model, including dense ones.
  std::vector<LayerSparsity> layers;
  // Zeros over weights of all masked layers, as a fraction.
  double sparsity = 0;
};

struct UnstructuredPruningResult {
  // A new module with the masked weights set to zero; the caller's model is unchanged.
  torch::jit::Module model;
  PruningMasks masks;
};

// Computes masks for the Conv2d and Linear weights of `model` (found with core's
// AnalyzeModel on an example of `options.example_shape`) without changing it.
// Errors: kInvalidArgument for a sparsity outside [0, 1), min_density outside [0, 1], an
// invalid N:M pattern, a model with no Conv2d or Linear weight to prune (all excluded, or
// none that is a module attribute), or a model that does not run on the example shape;
// kNotFound for layer names in layer_sparsity or excluded_layers that are not Conv2d or Linear
// layers of the model (the message lists them).
absl::StatusOr<PruningMasks> ComputeMagnitudeMasks(const torch::jit::Module& model,
                                                   const UnstructuredPruningOptions& options);

// Multiplies every masked weight of `model` by its mask, in place, and recounts the zeros in
// `masks.layers`. For training code that keeps its own model; others use PruneMagnitude.
// Errors: kNotFound when a mask's weight is missing; kInvalidArgument on a shape mismatch.
absl::Status ApplyMasks(torch::jit::Module& model, PruningMasks& masks);

// Multiplies every masked weight of `model` by its mask in place, without recounting zeros:
// the cheap form of ApplyMasks for hooks that run after every training step.
// Errors: kNotFound when a mask's weight is missing.
absl::Status ReapplyMasks(torch::jit::Module& model, const PruningMasks& masks);

// Returns a copy of `model` with its smallest weights set to zero, and the masks. Errors as
// ComputeMagnitudeMasks.
absl::StatusOr<UnstructuredPruningResult> PruneMagnitude(const torch::jit::Module& model,
                                                         const UnstructuredPruningOptions& options);

// Counts the zeros of every Conv2d and Linear weight of `model` now, for reports after
// training.
absl::StatusOr<std::vector<LayerSparsity>> MeasureLayerSparsity(
    const torch::jit::Module& model, const std::vector<int64_t>& example_shape);

// Formats per-layer sparsity as an aligned text table.
std::string FormatLayerSparsity(const std::vector<LayerSparsity>& layers);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_MAGNITUDE_H_
