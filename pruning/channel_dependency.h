// Channel dependency analysis for structured pruning: which tensors must shrink together when
// output channels of a Conv2d or Linear layer are removed.
//
// The analysis follows every channel dimension through the inlined forward graph. It starts
// at the layer that produces the channels (a Conv2d's filters, a Linear's output features) and
// passes through BatchNorm, element-wise activations, pooling, dropout and flatten to the
// layers that consume them: the next Conv2d's input channels, or the next Linear's input
// features, in blocks of H x W features after a flatten. Channels joined by an element-wise
// add, sub, mul or div (a residual connection) form one group, because their producers must
// keep the same channel indices.
//
// A group is left unprunable, with the reason recorded, when any of its channels
//   - reach the model's output or come from its input,
//   - pass through an operator the analysis cannot follow (concatenation, reshapes other than
//     a flatten, transposes, unknown operators),
//   - are used inside control flow (prim::If, prim::Loop) that stays after folding the
//     `training` flag to false, or
//   - belong to a grouped convolution (groups != 1) or a weight that is not a module attribute.
// Nothing is ever pruned on a guess.
//
//   POLARIS_ASSIGN_OR_RETURN(ChannelDependencies dependencies,
//                            AnalyzeChannelDependencies(model, at::zeros({1, 1, 28, 28})));
//   for (const ChannelGroup& group : dependencies.groups) {
//     std::cout << group.name << ": " << group.channels << (group.prunable ? "" : " fixed");
//   }
#ifndef POLARIS_PRUNING_CHANNEL_DEPENDENCY_H_
#define POLARIS_PRUNING_CHANNEL_DEPENDENCY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

// One tensor that loses entries along `dim` when channels of its group are removed. Channel c
// owns the `block` consecutive entries [c * block, (c + 1) * block) of that dimension; block is
// 1 except for a Linear that reads a flattened [C, H, W] feature map (block = H * W).
struct ChannelTensorSlice {
  // Dotted attribute path, e.g. "layer1.conv1.weight".
  std::string path;
  int64_t dim = 0;
  int64_t block = 1;
};

inline bool operator==(const ChannelTensorSlice& a, const ChannelTensorSlice& b) {
  return a.path == b.path && a.dim == b.dim && a.block == b.block;
}

// A set of channels that must be pruned together: the output channels of one or more
// producer layers (several when they are joined by a residual add), with the BatchNorm layers
// that normalize them and the layers that read them.
struct ChannelGroup {
  // Name of the first producer layer in graph order, e.g. "layer1.conv1".
  std::string name;
  int64_t channels = 0;
  // Module paths of the Conv2d / Linear layers whose output channels form the group.
  std::vector<std::string> producers;
  // Module paths of BatchNorm layers applied to the group's channels.
  std::vector<std::string> normalizations;
  // Module paths of the Conv2d / Linear layers whose input channels are the group's channels.
  std::vector<std::string> consumers;
  // Producer weights and biases (dim 0), BatchNorm parameters and statistics (dim 0), and
  // consumer weights (dim 1).
  std::vector<ChannelTensorSlice> producer_tensors;
  std::vector<ChannelTensorSlice> normalization_tensors;
  std::vector<ChannelTensorSlice> consumer_tensors;
  bool prunable = true;
  // Reasons the group is not prunable, one entry per cause; empty when prunable.
  std::vector<std::string> reasons;
};

struct ChannelDependencies {
  // Every group that has at least one producer layer, in graph order of its first producer.
  std::vector<ChannelGroup> groups;
};

// Analyzes `model` (scripted, traced or built by polaris) by reading its inlined forward graph
// with the `training` flag folded to false, and running it once on `example_input` to learn
// the shapes of intermediate tensors. `model` is not changed.
// Errors: kInvalidArgument when the model cannot run on `example_input` (LibTorch's reason is
// in the message); kInternal for LibTorch failures while reading the graph.
absl::StatusOr<ChannelDependencies> AnalyzeChannelDependencies(const torch::jit::Module& model,
                                                               const at::Tensor& example_input);

// Returns the group whose producers include the layer `layer`, or nullptr.
const ChannelGroup* FindGroupByProducer(const ChannelDependencies& dependencies,
                                        const std::string& layer);

// Formats the groups as an aligned text table: name, channels, layers, and why a group is
// fixed.
std::string FormatChannelDependencies(const ChannelDependencies& dependencies);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_CHANNEL_DEPENDENCY_H_
