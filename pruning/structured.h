// Structured pruning: removes whole Conv2d filters and Linear output features, so that the
// pruned model has smaller tensors, fewer parameters and runs faster with ordinary dense
// kernels. The layers that read the removed channels shrink with them: the next Conv2d's input
// channels, the next Linear's input features (also after a flatten) and the BatchNorm layers
// between them. Channels tied by a residual add are removed from all their producers together.
// The analysis behind it is channel_dependency.h; groups it cannot follow are left
// alone and reported.
//
// The result is a plain TorchScript module of the same classes with smaller weight, bias and
// BatchNorm tensors, which loads in PyTorch and which other polaris passes (quantization,
// optimize_for_inference) rewrite like any other model.
//
//   StructuredPruningOptions options;
//   options.fraction = 0.5;                        // remove half of each layer's filters
//   POLARIS_ASSIGN_OR_RETURN(StructuredPruningResult pruned,
//                            PruneChannels(model, options, /*importance_data=*/nullptr));
//   std::cout << FormatStructuredPruningReport(pruned);
//
// NOTE: integer attributes of scripted torch.nn layers (in_channels, out_features, ...) keep
// their old values. Forward does not read them, but Python code that inspects them would see
// the unpruned sizes.
#ifndef POLARIS_PRUNING_STRUCTURED_H_
#define POLARIS_PRUNING_STRUCTURED_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "pruning/channel_dependency.h"
#include "pruning/common.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

// Measure of a channel's importance. Channels of a group with several producers (a residual
// connection) sum the scores of all producers, each normalized to mean 1 so that every layer
// counts equally.
enum class ChannelCriterion {
  // Sum of absolute filter weights (Li et al. 2017, "Pruning Filters for Efficient ConvNets").
  kL1Norm,
  // Euclidean norm of the filter weights.
  kL2Norm,
  // First-order Taylor estimate of the loss change when the channel is removed (Molchanov et
  // al. 2019, "Importance Estimation for Neural Network Pruning"): per batch, the square of the
  // sum of weight x gradient over the channel's producer weights, biases and BatchNorm scale
  // and shift, averaged over batches. Needs labeled data.
  kTaylor,
};

// Returns "l1", "l2" or "taylor".
std::string ChannelCriterionName(ChannelCriterion criterion);

struct StructuredPruningOptions {
  ChannelCriterion criterion = ChannelCriterion::kL1Norm;
  // Fraction of channels removed, in [0, 1): from every prunable group (kPerLayer), or from
  // all groups together, least important first (kGlobal).
  double fraction = 0.5;
  PruningScope scope = PruningScope::kPerLayer;
  // Per-layer fraction, keyed by the name of any producer layer of a group ("layer1.conv1");
  // overrides `fraction` for that group.
  std::map<std::string, double> layer_fractions;
  // Exact number of channels to keep, keyed like layer_fractions; overrides both fractions.
  std::map<std::string, int64_t> layer_channels;
  // Layers whose output channels are kept whole (their inputs may still shrink).
  std::vector<std::string> excluded_layers;
  // Minimum channels a group keeps when a fraction is applied (at least 1).
  int64_t min_channels = 1;
  // Channel counts kept after a fraction is applied are rounded up to a multiple of this
  // (capped at the original count). Multiples of 8 or 16 suit oneDNN's blocked layouts.
  int64_t channel_multiple = 1;
  // Shape of one input example, without the batch dimension, for the dependency analysis.
  std::vector<int64_t> example_shape = {1, 28, 28};
  // kTaylor: examples drawn (seeded) from the importance data, and the batch size.
  int64_t importance_examples = 512;
  int64_t importance_batch_size = 64;
  uint64_t seed = 1;
};

// The dependency analysis of a model and the importance of every channel of every group, so
// that one model can be pruned to many channel counts (as the evolutionary search does)
// without measuring importance again.
struct ChannelImportance {
  ChannelDependencies dependencies;
  // One float tensor [channels] per group of `dependencies` (undefined for fixed groups),
  // normalized to mean 1 within the group; higher means more important.
  std::vector<at::Tensor> scores;
  ChannelCriterion criterion = ChannelCriterion::kL1Norm;
  // Input used to check that pruned models still run: zeros of [1] + example_shape.
  at::Tensor example_input;
};

struct ChannelGroupReport {
  std::string name;
  std::vector<std::string> producers;
  std::vector<std::string> normalizations;
  std::vector<std::string> consumers;
  int64_t channels_before = 0;
  int64_t channels_after = 0;
  bool pruned = false;
  // Reason the group was left whole (fixed by the analysis, excluded by the options); empty
  // when it was pruned.
  std::string note;
  // Indices of the kept channels in the original layer, ascending.
  std::vector<int64_t> kept_channels;
};

// One tensor whose shape changed.
struct TensorShapeChange {
  std::string path;
  std::vector<int64_t> shape_before;
  std::vector<int64_t> shape_after;
};

struct StructuredPruningResult {
  // A new module; the caller's model is unchanged.
  torch::jit::Module model;
  std::vector<ChannelGroupReport> groups;
  std::vector<TensorShapeChange> tensors;
  int64_t parameters_before = 0;
  int64_t parameters_after = 0;
};

// Removes the least important channels of every prunable group of `model` as `options`
// describe, and returns a pruned copy with a report per group. `importance_data` is required
// for kTaylor and ignored otherwise (it may be nullptr). The pruned model is run once on an
// example input before it is returned.
// Errors: kInvalidArgument for fractions outside [0, 1), channel counts below 1 or above a
// layer's channels, min_channels or channel_multiple below 1, conflicting settings for layers
// of one group, a layer option naming a layer whose channels cannot be pruned (the message
// gives the reason), kTaylor without data, or a model that has no prunable channel group (the
// message lists the reasons); kNotFound for layer names that are not producers of a group (the
// message lists them); kInvalidArgument when the model does not run on the example shape.
absl::StatusOr<StructuredPruningResult> PruneChannels(const torch::jit::Module& model,
                                                      const StructuredPruningOptions& options,
                                                      const LabeledData* importance_data);

// Analyzes `model` and scores its channels with `options.criterion` (only criterion,
// example_shape, importance_examples, importance_batch_size and seed are read). Errors as
// PruneChannels.
absl::StatusOr<ChannelImportance> ComputeChannelImportance(const torch::jit::Module& model,
                                                           const StructuredPruningOptions& options,
                                                           const LabeledData* importance_data);

// Returns the channels each group keeps under `options`, keyed by group name; fixed and
// excluded groups keep all channels. Errors as PruneChannels for the options.
absl::StatusOr<std::map<std::string, int64_t>> ChooseChannelCounts(
    const ChannelImportance& importance, const StructuredPruningOptions& options);

// Keeps the `channels[group name]` most important channels of each listed group of
// `importance` (which must come from `model`), and every channel of unlisted groups.
// Errors: kInvalidArgument when a count is below 1 or above the group's channels, or names a
// fixed group; kNotFound for an unknown group name; kInternal if the pruned model fails to run.
absl::StatusOr<StructuredPruningResult> PruneChannelsToCounts(
    const torch::jit::Module& model, const ChannelImportance& importance,
    const std::map<std::string, int64_t>& channels);

// The same on `model` itself, for code that owns the model (the evolutionary search prunes
// fresh copies this way). Fills `report` except report->model. On error `model` may be
// partly pruned and must be discarded.
absl::Status PruneChannelsInPlace(torch::jit::Module& model, const ChannelImportance& importance,
                                  const std::map<std::string, int64_t>& channels,
                                  StructuredPruningResult* report);

// Formats the per-group report as an aligned text table with the parameter counts.
std::string FormatStructuredPruningReport(const StructuredPruningResult& result);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_STRUCTURED_H_
