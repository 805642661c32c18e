#include "core/layer_analysis.h"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ATen/core/grad_mode.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/api/function_impl.h"
#include "torch/csrc/jit/ir/ir.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris {
namespace {

using torch::jit::Node;
using torch::jit::Value;

bool IsConvolution(const Node* node) {
  return node->kind() == c10::aten::conv2d || node->kind() == c10::aten::_convolution;
}

bool IsLinear(const Node* node) { return node->kind() == c10::aten::linear; }

bool IsBatchNorm(const Node* node) { return node->kind() == c10::aten::batch_norm; }

bool InControlFlow(const Node* node) {
  return node->owningBlock() != node->owningGraph()->block();
}

int64_t Product(const std::vector<int64_t>& values, size_t from = 0) {
  int64_t product = 1;
  for (size_t i = from; i < values.size(); ++i) product *= values[i];
  return product;
}

std::string LayerNameFromPath(const std::string& weight_path) {
  const size_t dot = weight_path.rfind('.');
  return dot == std::string::npos ? "" : weight_path.substr(0, dot);
}

// Fills a LayerInfo from a node's constant arguments; shapes come later from the probe.
LayerInfo DescribeNode(const Node* node, LayerKind kind) {
  LayerInfo layer;
  layer.kind = kind;
  layer.in_control_flow = InControlFlow(node);
  const size_t weight_index = 1;
  const size_t bias_index = 2;
  layer.weight_path = GetAttrPath(node->input(weight_index)).value_or("");
  layer.name = LayerNameFromPath(layer.weight_path);
  if (node->inputs().size() > bias_index &&
      !node->input(bias_index)->type()->cast<c10::NoneType>()) {
    layer.bias_path = GetAttrPath(node->input(bias_index)).value_or("");
  }
  if (kind == LayerKind::kConv2d) {
    layer.stride = ConstantIntList(node, 3);
    layer.padding = ConstantIntList(node, 4);
    layer.dilation = ConstantIntList(node, 5);
    // aten::conv2d(input, weight, bias, stride, padding, dilation, groups);
    // aten::_convolution(..., dilation, transposed, output_padding, groups, ...).
    const size_t groups_index = node->kind() == c10::aten::conv2d ? 6 : 8;
    if (auto groups = ConstantInput(node, groups_index); groups && groups->isInt()) {
      layer.groups = groups->toInt();
    }
  }
  return layer;
}

int64_t LayerMacs(const LayerInfo& layer) {
  if (layer.output_shape.empty() || layer.weight_shape.empty()) return -1;
  const int64_t outputs_per_example = Product(layer.output_shape, 1);
  switch (layer.kind) {
    case LayerKind::kConv2d:
      // Each output element sums (in_channels / groups) * kh * kw products.
      return outputs_per_example * Product(layer.weight_shape, 1);
    case LayerKind::kLinear:
      return outputs_per_example * layer.weight_shape[1];
    case LayerKind::kBatchNorm:
      return outputs_per_example;
  }
  return -1;
}

bool ComesFromLayer(const Value* value) {
  // A residual add joins two tensors computed by the network, not a tensor and a constant.
  const Node* producer = value->node();
  return producer->kind() != c10::prim::Constant && producer->kind() != c10::prim::GetAttr &&
         value->type()->cast<c10::TensorType>() != nullptr;
}

}  // namespace

std::string LayerKindName(LayerKind kind) {
  switch (kind) {
    case LayerKind::kLinear: return "Linear";
    case LayerKind::kConv2d: return "Conv2d";
    case LayerKind::kBatchNorm: return "BatchNorm";
  }
  return "unknown";
}

namespace {

// An `if` that computes no tensors, such as the input-dimension checks at the start of a
// scripted BatchNorm's forward (a condition, then a branch that raises): it cannot change which
// layers run on the data.
bool IsInputCheck(const Node* node) {
  for (const Value* output : node->outputs()) {
    if (output->type()->kind() == c10::TypeKind::TensorType) return false;
  }
  for (const torch::jit::Block* block : node->blocks()) {
    for (const Node* inner : block->nodes()) {
      if (!inner->blocks().empty()) return false;
      for (const Value* output : inner->outputs()) {
        if (output->type()->kind() == c10::TypeKind::TensorType) return false;
      }
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<ModelAnalysis> AnalyzeModel(const torch::jit::Module& model,
                                           const at::Tensor& example_input) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  return CallTorch("analyzing the model", [&]() -> absl::StatusOr<ModelAnalysis> {
    copy.eval();
    std::shared_ptr<torch::jit::Graph> graph = InlinedForwardGraph(copy);
    FoldTrainingFlag(graph);

    ModelAnalysis analysis;
    std::vector<Value*> probed_outputs;
    std::vector<size_t> probed_layers;
    torch::jit::DepthFirstGraphNodeIterator it(graph);
    for (Node* node = it.next(); node != nullptr; node = it.next()) {
      const std::string kind = node->kind().toQualString();
      if (node->kind() == c10::prim::Loop ||
          (node->kind() == c10::prim::If && !IsInputCheck(node))) {
        analysis.has_control_flow = true;
      }
      if (!absl::StartsWith(kind, "prim::")) ++analysis.operator_counts[kind];
      if ((node->kind() == c10::aten::add || node->kind() == c10::aten::add_) &&
          ComesFromLayer(node->input(0)) && ComesFromLayer(node->input(1))) {
        analysis.has_residual_add = true;
      }

      std::optional<LayerKind> layer_kind;
      if (IsConvolution(node)) layer_kind = LayerKind::kConv2d;
      if (IsLinear(node)) layer_kind = LayerKind::kLinear;
      if (IsBatchNorm(node)) layer_kind = LayerKind::kBatchNorm;
      if (!layer_kind.has_value()) continue;

      LayerInfo layer = DescribeNode(node, *layer_kind);
      if (layer.weight_path.empty()) ++analysis.unnamed_weights;
      if (!layer.in_control_flow) {
        probed_outputs.push_back(node->input(0));
        probed_outputs.push_back(node->output());
        probed_layers.push_back(analysis.layers.size());
      }
      analysis.layers.push_back(std::move(layer));
    }

    // Return every probed value beside the model's output and run the graph once.
    std::vector<Value*> returned{graph->outputs()[0]};
    returned.insert(returned.end(), probed_outputs.begin(), probed_outputs.end());
    Node* tuple = graph->createTuple(returned);
    graph->appendNode(tuple);
    graph->eraseOutput(0);
    graph->registerOutput(tuple->output());

    torch::jit::GraphFunction probe("polaris_probe", graph, nullptr);
    at::NoGradGuard no_grad;
    torch::jit::Stack stack{copy._ivalue(), example_input};
    absl::Status run = CallTorch("running the model on the example input",
                                 [&] { probe.run(stack); });
    if (!run.ok()) return absl::InvalidArgumentError(run.message());
    const auto& results = stack.back().toTupleRef().elements();

    for (size_t i = 0; i < probed_layers.size(); ++i) {
      LayerInfo& layer = analysis.layers[probed_layers[i]];
      const c10::IValue& input = results[1 + 2 * i];
      const c10::IValue& output = results[2 + 2 * i];
      if (input.isTensor()) layer.input_shape = input.toTensor().sizes().vec();
      if (output.isTensor()) layer.output_shape = output.toTensor().sizes().vec();
    }
    for (LayerInfo& layer : analysis.layers) {
      if (!layer.weight_path.empty()) {
        absl::StatusOr<at::Tensor> weight = FindTensor(copy, layer.weight_path);
        if (weight.ok()) layer.weight_shape = weight->sizes().vec();
        layer.parameters = weight.ok() ? weight->numel() : 0;
      }
      if (!layer.bias_path.empty()) {
        absl::StatusOr<at::Tensor> bias = FindTensor(copy, layer.bias_path);
        if (bias.ok()) layer.parameters += bias->numel();
      }
      layer.macs = LayerMacs(layer);
      if (layer.macs > 0) analysis.total_macs += layer.macs;
      analysis.total_parameters += layer.parameters;
    }
    return analysis;
  });
}

}  // namespace polaris
