#include "pruning/channel_dependency.h"

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ATen/core/grad_mode.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/api/function_impl.h"
#include "torch/csrc/jit/ir/ir.h"
#include "torch/csrc/jit/passes/constant_propagation.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris::pruning {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Position of a tensor's tracked channel dimension: dimension `dim` contains the channels of
// `space`, each channel owning `block` consecutive entries.
struct ChannelState {
  int space = -1;
  int64_t dim = 1;
  int64_t block = 1;
};

// A channel space before grouping: created by one producer, merged with others by Union.
struct Space {
  int parent = 0;
  std::vector<std::string> producers;
  std::vector<std::string> normalizations;
  std::vector<std::string> consumers;
  std::vector<ChannelTensorSlice> producer_tensors;
  std::vector<ChannelTensorSlice> normalization_tensors;
  std::vector<ChannelTensorSlice> consumer_tensors;
  std::vector<std::string> reasons;
};

std::string LayerName(const std::string& tensor_path) {
  const size_t dot = tensor_path.rfind('.');
  return dot == std::string::npos ? "" : tensor_path.substr(0, dot);
}

std::string AttributeName(const std::string& tensor_path) {
  const size_t dot = tensor_path.rfind('.');
  return dot == std::string::npos ? tensor_path : tensor_path.substr(dot + 1);
}

std::string KindName(const Node* node) { return node->kind().toQualString(); }

bool IsTensor(const Value* value) { return value->type()->cast<c10::TensorType>() != nullptr; }

bool IsNone(const Value* value) { return value->type()->kind() == c10::TypeKind::NoneType; }

template <typename T>
void AppendUnique(std::vector<T>& to, const std::vector<T>& from) {
  for (const T& item : from) {
    if (std::find(to.begin(), to.end(), item) == to.end()) to.push_back(item);
  }
}

// Operators whose output has the same channels as their first input, element by element.
const absl::flat_hash_set<std::string>& PassThroughOperators() {
  static const auto* operators = new absl::flat_hash_set<std::string>{
      "aten::relu",
      "aten::relu_",
      "aten::relu6",
      "aten::sigmoid",
      "aten::sigmoid_",
      "aten::tanh",
      "aten::tanh_",
      "aten::gelu",
      "aten::silu",
      "aten::silu_",
      "aten::elu",
      "aten::elu_",
      "aten::leaky_relu",
      "aten::leaky_relu_",
      "aten::hardtanh",
      "aten::hardtanh_",
      "aten::hardswish",
      "aten::hardswish_",
      "aten::hardsigmoid",
      "aten::hardsigmoid_",
      "aten::mish",
      "aten::softplus",
      "aten::dropout",
      "aten::dropout_",
      "aten::feature_dropout",
      "aten::alpha_dropout",
      "aten::contiguous",
      "aten::clone",
      "aten::detach",
      "aten::clamp",
      "aten::clamp_",
      "aten::clamp_min",
      "aten::clamp_min_",
      "aten::clamp_max",
      "aten::clamp_max_",
      "aten::neg",
      "aten::abs",
      "aten::exp",
      "aten::square",
      "aten::sqrt",
  };
  return *operators;
}

// Pooling over the spatial dimensions of [N, C, H, W]; channels pass through.
const absl::flat_hash_set<std::string>& PoolingOperators() {
  static const auto* operators = new absl::flat_hash_set<std::string>{
      "aten::max_pool2d",
      "aten::avg_pool2d",
      "aten::adaptive_avg_pool2d",
      "aten::adaptive_max_pool2d",
      "aten::max_pool2d_with_indices",
  };
  return *operators;
}

// Element-wise binary operators: tensors of the same channels combine channel by channel.
const absl::flat_hash_set<std::string>& ElementwiseBinaryOperators() {
  static const auto* operators = new absl::flat_hash_set<std::string>{
      "aten::add", "aten::add_", "aten::sub", "aten::sub_",
      "aten::mul", "aten::mul_", "aten::div", "aten::div_",
  };
  return *operators;
}

// Operators that read only a tensor's rank, dtype or device, which pruning does not change.
const absl::flat_hash_set<std::string>& MetadataOperators() {
  static const auto* operators = new absl::flat_hash_set<std::string>{
      "aten::dim",
      "prim::dtype",
      "prim::device",
      "aten::__is__",
      "aten::__isnot__",
      "prim::is_cuda",
      "aten::is_floating_point",
  };
  return *operators;
}

int64_t NormalizeDim(int64_t dim, int64_t rank) { return dim < 0 ? dim + rank : dim; }

// Follows channels through the graph and collects the groups. Single use: Trace, then Groups.
class ChannelTracer {
 public:
  ChannelTracer(std::shared_ptr<Graph> graph,
                std::unordered_map<const Value*, std::vector<int64_t>> shapes,
                const torch::jit::Module& model)
      : graph_(std::move(graph)), shapes_(std::move(shapes)), model_(model) {}

  void Trace() {
    if (graph_->inputs().size() >= 2 && IsTensor(graph_->inputs()[1])) {
      const int input_space = NewSpace();
      Block(input_space, "its channels are the model's input channels");
      states_[graph_->inputs()[1]] = ChannelState{input_space, 1, 1};
    }
    for (Node* node : graph_->nodes()) HandleNode(node);
    for (const Value* output : graph_->outputs())
      BlockValue(output, "its channels reach the model's output");
    CheckNestedUses();
    UnionSharedTensors();
  }

  ChannelDependencies Groups() {
    std::map<int, ChannelGroup> by_root;
    for (int id = 0; id < static_cast<int>(spaces_.size()); ++id) {
      if (Find(id) != id) continue;
      const Space& space = spaces_[id];
      if (space.producers.empty()) continue;
      ChannelGroup group;
      group.name = space.producers.front();
      group.producers = space.producers;
      group.normalizations = space.normalizations;
      group.consumers = space.consumers;
      group.producer_tensors = space.producer_tensors;
      group.normalization_tensors = space.normalization_tensors;
      group.consumer_tensors = space.consumer_tensors;
      group.reasons = space.reasons;
      CheckChannelCounts(group);
      group.prunable = group.reasons.empty();
      by_root.emplace(id, std::move(group));
    }
    ChannelDependencies dependencies;
    for (auto& [root, group] : by_root) dependencies.groups.push_back(std::move(group));
    return dependencies;
  }

 private:
  int NewSpace() {
    spaces_.emplace_back();
    spaces_.back().parent = static_cast<int>(spaces_.size()) - 1;
    return spaces_.back().parent;
  }

  int Find(int id) {
    while (spaces_[id].parent != id) {
      spaces_[id].parent = spaces_[spaces_[id].parent].parent;
      id = spaces_[id].parent;
    }
    return id;
  }

  // Merges two spaces; the older one (created first, so earlier in graph order) stays root.
  int Union(int a, int b) {
    a = Find(a);
    b = Find(b);
    if (a == b) return a;
    if (b < a) std::swap(a, b);
    Space& into = spaces_[a];
    Space& from = spaces_[b];
    AppendUnique(into.producers, from.producers);
    AppendUnique(into.normalizations, from.normalizations);
    AppendUnique(into.consumers, from.consumers);
    AppendUnique(into.producer_tensors, from.producer_tensors);
    AppendUnique(into.normalization_tensors, from.normalization_tensors);
    AppendUnique(into.consumer_tensors, from.consumer_tensors);
    AppendUnique(into.reasons, from.reasons);
    from.parent = a;
    return a;
  }

  void Block(int space, const std::string& reason) {
    AppendUnique(spaces_[Find(space)].reasons, {reason});
  }

  const ChannelState* StateOf(const Value* value) const {
    auto it = states_.find(value);
    return it == states_.end() ? nullptr : &it->second;
  }

  void BlockValue(const Value* value, const std::string& reason) {
    if (const ChannelState* state = StateOf(value)) Block(state->space, reason);
  }

  void BlockInputs(const Node* node, const std::string& reason) {
    for (const Value* input : node->inputs()) BlockValue(input, reason);
  }

  std::optional<std::vector<int64_t>> ShapeOf(const Value* value) const {
    auto it = shapes_.find(value);
    if (it == shapes_.end()) return std::nullopt;
    return it->second;
  }

  int64_t RankOf(const Value* value) const {
    std::optional<std::vector<int64_t>> shape = ShapeOf(value);
    return shape.has_value() ? static_cast<int64_t>(shape->size()) : -1;
  }

  void SetState(const Value* value, const ChannelState& state) { states_[value] = state; }

  void HandleNode(Node* node) {
    const std::string kind = KindName(node);
    if (!node->blocks().empty()) {
      BlockInputs(node, absl::StrCat("it is used by ", kind, " (control flow)"));
      return;
    }
    if (node->kind() == c10::aten::conv2d || node->kind() == c10::aten::_convolution) {
      HandleConvolution(node);
    } else if (node->kind() == c10::aten::linear) {
      HandleLinear(node);
    } else if (node->kind() == c10::aten::batch_norm) {
      HandleBatchNorm(node);
    } else if (PassThroughOperators().contains(kind)) {
      HandlePassThrough(node);
    } else if (PoolingOperators().contains(kind)) {
      HandlePooling(node);
    } else if (ElementwiseBinaryOperators().contains(kind)) {
      HandleElementwiseBinary(node);
    } else if (node->kind() == c10::aten::flatten) {
      HandleFlatten(node);
    } else if (node->kind() == c10::aten::view || node->kind() == c10::aten::reshape) {
      HandleReshape(node);
    } else if (node->kind() == c10::aten::mean || node->kind() == c10::aten::sum) {
      HandleReduction(node);
    } else if (node->kind() == c10::aten::size) {
      HandleSize(node);
    } else if (MetadataOperators().contains(kind) || node->kind() == c10::prim::Constant ||
               node->kind() == c10::prim::GetAttr) {
      // Reads nothing that pruning changes.
    } else if (node->kind() == c10::prim::ListConstruct) {
      std::vector<std::string> users;
      for (const torch::jit::Use& use : node->output()->uses()) users.push_back(KindName(use.user));
      BlockInputs(node, absl::StrCat("it is collected into a list used by ",
                                     absl::StrJoin(users, ", "), " (for example concatenation)"));
    } else {
      BlockInputs(node,
                  absl::StrCat("it is used by ", kind, ", which channel pruning cannot follow"));
    }
  }

  // Records the weight and bias of a Conv2d or Linear as producer of a new space and returns
  // the space.
  int NewProducerSpace(const Node* node, const std::string& weight_path,
                       const std::string& bias_path) {
    const int space = NewSpace();
    if (weight_path.empty()) {
      Block(space, absl::StrCat("the weight of a ", KindName(node),
                                " is not a module attribute, so it cannot be sliced"));
      return space;
    }
    Space& record = spaces_[space];
    record.producers.push_back(LayerName(weight_path));
    record.producer_tensors.push_back({weight_path, 0, 1});
    if (!bias_path.empty()) record.producer_tensors.push_back({bias_path, 0, 1});
    return space;
  }

  // Returns the attribute path of a weight or bias argument, or "" when the argument is None or
  // an optional attribute holding None (a scripted layer built with bias=False).
  std::string PathOrEmpty(const Value* value) const {
    if (IsNone(value)) return "";
    std::optional<std::string> path = GetAttrPath(value);
    if (!path.has_value()) return "";
    absl::StatusOr<torch::jit::Module> owner = FindSubmodule(model_, LayerName(*path));
    if (owner.ok() && owner->hasattr(AttributeName(*path)) &&
        owner->attr(AttributeName(*path)).isNone()) {
      return "";
    }
    return *path;
  }

  // True when `value` is a tensor argument that is not a module attribute.
  bool IsUnnamedTensor(const Value* value) const {
    return !IsNone(value) && !GetAttrPath(value).has_value();
  }

  void HandleConvolution(const Node* node) {
    const bool transposed_form = node->kind() == c10::aten::_convolution;
    const std::string weight_path = PathOrEmpty(node->input(1));
    const std::string bias_path = PathOrEmpty(node->input(2));
    const bool bias_unnamed = IsUnnamedTensor(node->input(2));

    int64_t groups = 1;
    const size_t groups_index = transposed_form ? 8 : 6;
    if (std::optional<c10::IValue> value = ConstantInput(node, groups_index);
        value && value->isInt()) {
      groups = value->toInt();
    } else {
      groups = -1;
    }
    bool transposed = false;
    if (transposed_form) {
      std::optional<c10::IValue> value = ConstantInput(node, 6);
      transposed = !value.has_value() || !value->isBool() || value->toBool();
    }

    const int output_space = NewProducerSpace(node, weight_path, bias_path);
    SetState(node->output(), ChannelState{output_space, 1, 1});
    std::string fixed_reason;
    if (transposed) {
      fixed_reason = absl::StrCat("'", LayerName(weight_path),
                                  "' is a transposed convolution, which is not supported");
    } else if (groups != 1) {
      fixed_reason = groups < 0 ? absl::StrCat("'", LayerName(weight_path),
                                               "' has a groups argument that is not constant")
                                : absl::StrCat("'", LayerName(weight_path),
                                               "' is a grouped convolution (groups=", groups, ")");
    } else if (bias_unnamed) {
      fixed_reason =
          absl::StrCat("the bias of '", LayerName(weight_path), "' is not a module attribute");
    }
    if (!fixed_reason.empty()) {
      Block(output_space, fixed_reason);
      BlockValue(node->input(0), fixed_reason);
      return;
    }
    AddConsumer(node->input(0), weight_path, /*expected_dim=*/1, /*block_allowed=*/false);
  }

  void HandleLinear(const Node* node) {
    const std::string weight_path = PathOrEmpty(node->input(1));
    const std::string bias_path = node->inputs().size() > 2 ? PathOrEmpty(node->input(2)) : "";
    const bool bias_unnamed = node->inputs().size() > 2 && IsUnnamedTensor(node->input(2));
    const int output_space = NewProducerSpace(node, weight_path, bias_path);
    const int64_t output_rank = RankOf(node->output());
    SetState(node->output(), ChannelState{output_space, std::max<int64_t>(output_rank - 1, 1), 1});
    if (bias_unnamed) {
      const std::string reason =
          absl::StrCat("the bias of '", LayerName(weight_path), "' is not a module attribute");
      Block(output_space, reason);
      BlockValue(node->input(0), reason);
      return;
    }
    AddConsumer(node->input(0), weight_path, RankOf(node->input(0)) - 1, /*block_allowed=*/true);
  }

  // Makes the layer owning `weight_path` a consumer of the channels of `input`, whose channel
  // dimension must be `expected_dim`.
  void AddConsumer(const Value* input, const std::string& weight_path, int64_t expected_dim,
                   bool block_allowed) {
    const ChannelState* state = StateOf(input);
    if (state == nullptr) return;  // Untracked input channels never change.
    if (weight_path.empty()) {
      Block(state->space, "it is read by a layer whose weight is not a module attribute");
      return;
    }
    if (state->dim != expected_dim || (state->block != 1 && !block_allowed)) {
      Block(state->space, absl::StrCat("'", LayerName(weight_path),
                                       "' reads it along a dimension other than its channels"));
      return;
    }
    Space& space = spaces_[Find(state->space)];
    AppendUnique(space.consumers, {LayerName(weight_path)});
    AppendUnique(space.consumer_tensors, {ChannelTensorSlice{weight_path, 1, state->block}});
  }

  void HandleBatchNorm(const Node* node) {
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    const ChannelState copy = *state;
    SetState(node->output(), copy);
    if (copy.dim != 1 || copy.block != 1) {
      Block(copy.space, "BatchNorm normalizes a dimension other than its channels");
      return;
    }
    std::vector<ChannelTensorSlice> tensors;
    std::string layer;
    for (size_t index = 1; index <= 4; ++index) {
      const Value* input = node->input(index);
      if (IsUnnamedTensor(input)) {
        Block(copy.space, "a BatchNorm parameter is not a module attribute");
        return;
      }
      const std::string path = PathOrEmpty(input);
      if (path.empty()) continue;
      if (layer.empty()) layer = LayerName(path);
      tensors.push_back({path, 0, 1});
    }
    Space& space = spaces_[Find(copy.space)];
    if (!layer.empty()) AppendUnique(space.normalizations, {layer});
    AppendUnique(space.normalization_tensors, tensors);
  }

  void HandlePassThrough(const Node* node) {
    for (size_t index = 1; index < node->inputs().size(); ++index) {
      BlockValue(node->input(index),
                 absl::StrCat("it is a secondary argument of ", KindName(node)));
    }
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    const ChannelState copy = *state;
    for (const Value* output : node->outputs()) {
      if (IsTensor(output)) SetState(output, copy);
    }
  }

  void HandlePooling(const Node* node) {
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    const ChannelState copy = *state;
    if (copy.dim != 1 || copy.block != 1 || RankOf(node->input(0)) != 4) {
      Block(copy.space, absl::StrCat(KindName(node), " pools a layout other than [N, C, H, W]"));
    }
    for (const Value* output : node->outputs()) {
      if (IsTensor(output)) SetState(output, copy);
    }
  }

  // True when `other`, broadcast against a tensor of rank `rank` whose channels lie in `dim`,
  // has size 1 (or no dimension) there, so it is the same for every channel.
  bool BroadcastsOverChannels(const Value* other, int64_t rank, int64_t dim) const {
    std::optional<std::vector<int64_t>> shape = ShapeOf(other);
    if (!shape.has_value()) return false;
    const int64_t aligned = dim - (rank - static_cast<int64_t>(shape->size()));
    return aligned < 0 || (*shape)[aligned] == 1;
  }

  void HandleElementwiseBinary(const Node* node) {
    const Value* left = node->input(0);
    const Value* right = node->input(1);
    const ChannelState* left_state = StateOf(left);
    const ChannelState* right_state = IsTensor(right) ? StateOf(right) : nullptr;
    const std::string kind = KindName(node);
    if (left_state == nullptr && right_state == nullptr) return;

    if (left_state != nullptr && right_state != nullptr) {
      ChannelState merged = *left_state;
      if (left_state->dim != right_state->dim || left_state->block != right_state->block ||
          RankOf(left) != RankOf(right)) {
        const std::string reason =
            absl::StrCat(kind, " combines it with a tensor of another channel layout");
        Block(left_state->space, reason);
        Block(right_state->space, reason);
      }
      merged.space = Union(left_state->space, right_state->space);
      SetState(node->output(), merged);
      return;
    }

    const ChannelState tracked = left_state != nullptr ? *left_state : *right_state;
    const Value* tracked_value = left_state != nullptr ? left : right;
    const Value* other = left_state != nullptr ? right : left;
    if ((IsTensor(other) && !BroadcastsOverChannels(other, RankOf(tracked_value), tracked.dim)) ||
        RankOf(node->output()) != RankOf(tracked_value)) {
      Block(tracked.space, absl::StrCat(kind,
                                        " combines it with a tensor whose channels do not "
                                        "come from a prunable layer"));
    }
    SetState(node->output(), tracked);
  }

  void HandleFlatten(const Node* node) {
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    const ChannelState copy = *state;
    std::optional<c10::IValue> start_value = ConstantInput(node, 1);
    std::optional<c10::IValue> end_value = ConstantInput(node, 2);
    std::optional<std::vector<int64_t>> shape = ShapeOf(node->input(0));
    if (!start_value || !start_value->isInt() || !end_value || !end_value->isInt() ||
        !shape.has_value()) {
      Block(copy.space, "aten::flatten has arguments that are not constant");
      return;
    }
    const int64_t rank = static_cast<int64_t>(shape->size());
    const int64_t start = NormalizeDim(start_value->toInt(), rank);
    const int64_t end = NormalizeDim(end_value->toInt(), rank);
    ChannelState flattened = copy;
    if (copy.dim < start) {
      // Channels stay in place.
    } else if (copy.dim > end) {
      flattened.dim = copy.dim - (end - start);
    } else if (copy.dim == start) {
      for (int64_t d = start + 1; d <= end; ++d) flattened.block *= (*shape)[d];
    } else {
      Block(copy.space, "aten::flatten merges it with a dimension in front of the channels");
      return;
    }
    SetState(node->output(), flattened);
  }

  // Follows view/reshape only when it equals flatten(x, channel_dim): the sizes before the
  // channels are kept and the rest is given as -1, so the new shape follows the channel count.
  void HandleReshape(const Node* node) {
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    const ChannelState copy = *state;
    std::optional<std::vector<int64_t>> in_shape = ShapeOf(node->input(0));
    std::optional<std::vector<int64_t>> out_shape = ShapeOf(node->output());
    const std::string reason =
        absl::StrCat(KindName(node),
                     " reshapes it in a way the analysis cannot follow (only flattening "
                     "from the channel dimension with -1 is supported)");

    if (!in_shape || !out_shape || static_cast<int64_t>(out_shape->size()) != copy.dim + 1) {
      Block(copy.space, reason);
      return;
    }
    for (int64_t d = 0; d < copy.dim; ++d) {
      if ((*in_shape)[d] != (*out_shape)[d]) {
        Block(copy.space, reason);
        return;
      }
    }

    const Node* sizes = node->input(1)->node();
    std::optional<c10::IValue> last;
    if (sizes->kind() == c10::prim::ListConstruct &&
        sizes->inputs().size() == static_cast<size_t>(copy.dim + 1)) {
      last = ConstantInput(sizes, copy.dim);
    }
    if (!last || !last->isInt() || last->toInt() != -1) {
      Block(copy.space, reason);
      return;
    }

    ChannelState flattened = copy;
    for (size_t d = copy.dim + 1; d < in_shape->size(); ++d) flattened.block *= (*in_shape)[d];
    SetState(node->output(), flattened);
  }

  void HandleReduction(const Node* node) {
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    const ChannelState copy = *state;
    const std::string reason =
        absl::StrCat(KindName(node), " reduces it in a way the analysis cannot follow");
    const int64_t rank = RankOf(node->input(0));
    std::vector<int64_t> dims =
        node->inputs().size() > 1 ? ConstantIntList(node, 1) : std::vector<int64_t>{};
    std::optional<c10::IValue> keepdim = ConstantInput(node, 2);
    if (dims.empty() || rank < 0 || copy.block != 1 || !keepdim || !keepdim->isBool()) {
      Block(copy.space, reason);
      return;
    }
    int64_t removed_before = 0;
    for (int64_t dim : dims) {
      const int64_t normalized = NormalizeDim(dim, rank);
      if (normalized == copy.dim) {
        Block(copy.space, reason);
        return;
      }
      if (normalized < copy.dim) ++removed_before;
    }
    ChannelState reduced = copy;
    if (!keepdim->toBool()) reduced.dim -= removed_before;
    SetState(node->output(), reduced);
  }

  void HandleSize(const Node* node) {
    const ChannelState* state = StateOf(node->input(0));
    if (state == nullptr) return;
    std::optional<c10::IValue> dim = ConstantInput(node, 1);
    const int64_t rank = RankOf(node->input(0));
    if (node->inputs().size() < 2 || !dim || !dim->isInt() || rank < 0 ||
        NormalizeDim(dim->toInt(), rank) == state->dim) {
      Block(state->space, "aten::size reads its channel count");
    }
  }

  // A use inside an if or a loop is safe only when it reads the rank or a dimension other
  // than the channels (shape checks that raise errors, as torch.nn layers do).
  bool IsMetadataUse(const torch::jit::Use& use, const ChannelState& state) const {
    const Node* user = use.user;
    if (MetadataOperators().contains(KindName(user))) return true;
    if (user->kind() != c10::aten::size || user->inputs().size() < 2) return false;
    std::optional<c10::IValue> dim = ConstantInput(user, 1);
    const int64_t rank = RankOf(user->input(0));
    return dim && dim->isInt() && rank >= 0 && NormalizeDim(dim->toInt(), rank) != state.dim;
  }

  void CheckNestedUses() {
    for (const auto& [value, state] : states_) {
      for (const torch::jit::Use& use : value->uses()) {
        if (use.user->owningBlock() == graph_->block()) continue;
        if (IsMetadataUse(use, state)) continue;
        Block(state.space,
              absl::StrCat("it is used by ", KindName(use.user), " inside control flow"));
      }
    }
  }

  // A layer called more than once slices the same tensor for every call, so all the spaces
  // that slice one tensor along one dimension are one group.
  void UnionSharedTensors() {
    std::map<std::pair<std::string, int64_t>, int> first_space;
    std::map<std::pair<std::string, int64_t>, int64_t> first_block;
    for (int id = 0; id < static_cast<int>(spaces_.size()); ++id) {
      if (Find(id) != id) continue;
      std::vector<ChannelTensorSlice> all = spaces_[id].producer_tensors;
      AppendUnique(all, spaces_[id].normalization_tensors);
      AppendUnique(all, spaces_[id].consumer_tensors);
      for (const ChannelTensorSlice& slice : all) {
        const auto key = std::make_pair(slice.path, slice.dim);
        auto [it, inserted] = first_space.emplace(key, id);
        if (inserted) {
          first_block[key] = slice.block;
          continue;
        }
        const int merged = Union(it->second, id);
        if (first_block[key] != slice.block) {
          Block(merged, absl::StrCat("'", slice.path,
                                     "' reads channels in different layouts in two calls"));
        }
      }
    }
  }

  // Checks that every tensor of a group has the group's channel count along its dimension.
  void CheckChannelCounts(ChannelGroup& group) {
    std::vector<ChannelTensorSlice> all = group.producer_tensors;
    all.insert(all.end(), group.normalization_tensors.begin(), group.normalization_tensors.end());
    all.insert(all.end(), group.consumer_tensors.begin(), group.consumer_tensors.end());
    for (const ChannelTensorSlice& slice : all) {
      absl::StatusOr<at::Tensor> tensor = FindTensor(model_, slice.path);
      if (!tensor.ok() || tensor->dim() <= slice.dim) {
        AppendUnique(group.reasons, {absl::StrCat("'", slice.path, "' is missing or too small")});
        continue;
      }
      const int64_t size = tensor->size(slice.dim);
      if (size % slice.block != 0) {
        AppendUnique(group.reasons,
                     {absl::StrCat("'", slice.path, "' has ", size, " entries along dimension ",
                                   slice.dim, ", not a multiple of ", slice.block)});
        continue;
      }
      const int64_t channels = size / slice.block;
      if (group.channels == 0) group.channels = channels;
      if (channels != group.channels) {
        AppendUnique(group.reasons,
                     {absl::StrCat("'", slice.path, "' has ", channels, " channels where '",
                                   group.producer_tensors.front().path, "' has ", group.channels)});
      }
    }
  }

  std::shared_ptr<Graph> graph_;
  std::unordered_map<const Value*, std::vector<int64_t>> shapes_;
  const torch::jit::Module& model_;
  std::vector<Space> spaces_;
  std::unordered_map<const Value*, ChannelState> states_;
};

// Runs `graph` on `example_input` and returns the shape of every tensor produced in its top
// block.
absl::StatusOr<std::unordered_map<const Value*, std::vector<int64_t>>> ProbeShapes(
    const torch::jit::Module& model, Graph& graph, const at::Tensor& example_input) {
  std::shared_ptr<Graph> probe_graph = graph.copy();
  std::unordered_map<const Value*, const Value*> original_of;
  std::vector<Value*> probed;
  // graph.copy() keeps the node order, so the two node lists can be walked side by side.
  auto original_node = graph.nodes().begin();
  for (Node* node : probe_graph->nodes()) {
    for (size_t i = 0; i < node->outputs().size(); ++i) {
      if (IsTensor(node->output(i))) {
        probed.push_back(node->output(i));
        original_of[node->output(i)] = original_node->output(i);
      }
    }
    ++original_node;
  }
  if (probe_graph->inputs().size() >= 2 && IsTensor(probe_graph->inputs()[1])) {
    probed.push_back(probe_graph->inputs()[1]);
    original_of[probe_graph->inputs()[1]] = graph.inputs()[1];
  }

  std::vector<Value*> returned{probe_graph->outputs()[0]};
  returned.insert(returned.end(), probed.begin(), probed.end());
  Node* tuple = probe_graph->createTuple(returned);
  probe_graph->appendNode(tuple);
  probe_graph->eraseOutput(0);
  probe_graph->registerOutput(tuple->output());

  torch::jit::GraphFunction probe("polaris_channel_probe", probe_graph, nullptr);
  at::NoGradGuard no_grad;
  torch::jit::Stack stack{model._ivalue(), example_input};
  absl::Status run = CallTorch("running the model on the example input", [&] { probe.run(stack); });
  if (!run.ok()) return absl::InvalidArgumentError(run.message());

  std::unordered_map<const Value*, std::vector<int64_t>> shapes;
  const auto& results = stack.back().toTupleRef().elements();
  for (size_t i = 0; i < probed.size(); ++i) {
    const c10::IValue& result = results[1 + i];
    if (result.isTensor()) shapes[original_of[probed[i]]] = result.toTensor().sizes().vec();
  }
  return shapes;
}

}  // namespace

absl::StatusOr<ChannelDependencies> AnalyzeChannelDependencies(const torch::jit::Module& model,
                                                               const at::Tensor& example_input) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  return CallTorch("analyzing channel dependencies", [&]() -> absl::StatusOr<ChannelDependencies> {
    copy.eval();
    std::shared_ptr<Graph> graph = InlinedForwardGraph(copy);
    FoldTrainingFlag(graph);
    POLARIS_ASSIGN_OR_RETURN(auto shapes, ProbeShapes(copy, *graph, example_input));
    ChannelTracer tracer(graph, std::move(shapes), copy);
    tracer.Trace();
    return tracer.Groups();
  });
}

const ChannelGroup* FindGroupByProducer(const ChannelDependencies& dependencies,
                                        const std::string& layer) {
  for (const ChannelGroup& group : dependencies.groups) {
    if (std::find(group.producers.begin(), group.producers.end(), layer) != group.producers.end()) {
      return &group;
    }
  }
  return nullptr;
}

std::string FormatChannelDependencies(const ChannelDependencies& dependencies) {
  std::string table = absl::StrFormat("%-24s %8s  %-9s %s\n", "group", "channels", "status",
                                      "layers (producers; consumers)");
  for (const ChannelGroup& group : dependencies.groups) {
    absl::StrAppendFormat(&table, "%-24s %8d  %-9s %s; %s\n", group.name, group.channels,
                          group.prunable ? "prunable" : "fixed",
                          absl::StrJoin(group.producers, ", "),
                          group.consumers.empty() ? "-" : absl::StrJoin(group.consumers, ", "));
    for (const std::string& reason : group.reasons) {
      absl::StrAppendFormat(&table, "%-24s %8s  %-9s because %s\n", "", "", "", reason);
    }
  }
  return table;
}

}  // namespace polaris::pruning
