#include "quantization/internal/model_layers.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/graph_utils.h"
#include "torch/csrc/jit/ir/constants.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris::quantization::internal {
namespace {

using torch::jit::Node;

// Fills stride, padding, dilation and groups from the constant arguments of a convolution node
// whose stride argument is at `stride_index` (padding and dilation follow it).
void ReadConvolutionArguments(const Node* node, size_t stride_index, size_t groups_index,
                              WeightLayer& layer) {
  layer.stride = ConstantIntList(node, stride_index);
  layer.padding = ConstantIntList(node, stride_index + 1);
  layer.dilation = ConstantIntList(node, stride_index + 2);
  const std::optional<c10::IValue> groups = ConstantInput(node, groups_index);
  if (groups.has_value() && groups->isInt()) layer.groups = groups->toInt();

  if (layer.stride.size() != 2 || layer.padding.size() != 2 || layer.dilation.size() != 2 ||
      !groups.has_value() || !groups->isInt()) {
    layer.kind = WeightLayerKind::kOtherConvolution;
    layer.unsupported_reason =
        "its stride, padding, dilation or groups are not constant 2-element lists and an "
        "integer (padding='same' or values computed at run time)";
  }
}

std::string OtherConvolutionReason(const std::string& op) {
  return absl::StrCat(op, " has no int8 kernel here (quantized::conv2d covers non-transposed "
                          "2-D convolutions only)");
}

}  // namespace

at::Tensor TensorValue(const FlatModel& flat, const torch::jit::Value* value) {
  at::Tensor tensor = AttributeTensor(flat.attributes, value);
  if (tensor.defined()) return tensor;
  if (value->node()->kind() == c10::prim::Constant) {
    const c10::optional<c10::IValue> constant = torch::jit::toIValue(value);
    if (constant.has_value() && constant->isTensor()) return constant->toTensor();
  }
  return at::Tensor();
}

std::string LayerNameOfWeight(const FlatModel& flat, const std::string& weight_attribute) {
  const AttributeTable::Entry* entry = flat.attributes.Find(weight_attribute);
  if (entry == nullptr || entry->original_path.empty()) return weight_attribute;
  const std::string& path = entry->original_path;
  if (absl::EndsWith(path, ".weight")) return path.substr(0, path.size() - 7);
  return path;
}

bool IsShapeQuery(const Node* node) {
  static const c10::Symbol kNumel = c10::Symbol::fromQualString("aten::numel");
  const c10::Symbol kind = node->kind();
  return kind == c10::aten::dim || kind == c10::aten::size || kind == kNumel ||
         kind == c10::aten::len;
}

std::vector<torch::jit::Use> ValueUses(const torch::jit::Value* value) {
  std::vector<torch::jit::Use> uses;
  for (const torch::jit::Use& use : value->uses()) {
    if (!IsShapeQuery(use.user)) uses.push_back(use);
  }
  return uses;
}

int CountAttributeUses(const FlatModel& flat, const std::string& name) {
  int uses = 0;
  torch::jit::DepthFirstGraphNodeIterator it(const_cast<FlatModel&>(flat).graph);
  for (Node* node = it.next(); node != nullptr; node = it.next()) {
    if (node->kind() == c10::prim::GetAttr && SelfAttributeName(node->output()) == name) {
      uses += static_cast<int>(node->output()->uses().size());
    }
  }
  return uses;
}

std::vector<WeightLayer> FindWeightLayers(const FlatModel& flat) {
  std::vector<WeightLayer> layers;
  torch::jit::DepthFirstGraphNodeIterator it(const_cast<FlatModel&>(flat).graph);
  for (Node* node = it.next(); node != nullptr; node = it.next()) {
    const c10::Symbol kind = node->kind();
    const std::string op = kind.toQualString();
    const bool is_linear = kind == c10::aten::linear;
    const bool is_convolution =
        absl::StartsWith(op, "aten::conv") || kind == c10::aten::_convolution;
    if (!is_linear && !is_convolution) continue;
    if (node->inputs().size() < 3) continue;
    const std::optional<std::string> weight = SelfAttributeName(node->input(1));
    const at::Tensor weight_tensor = AttributeTensor(flat.attributes, node->input(1));
    if (!weight.has_value() || !weight_tensor.defined()) continue;

    WeightLayer layer;
    layer.node = node;
    layer.weight_attribute = *weight;
    layer.bias_attribute = SelfAttributeName(node->input(2)).value_or("");
    layer.name = LayerNameOfWeight(flat, *weight);
    layer.top_level = node->owningBlock() == flat.graph->block();
    if (is_linear) {
      layer.kind = WeightLayerKind::kLinear;
      if (weight_tensor.dim() != 2) {
        layer.unsupported_reason = "its weight is not 2-D";
      }
    } else if (kind == c10::aten::conv2d && weight_tensor.dim() == 4) {
      layer.kind = WeightLayerKind::kConv2d;
      ReadConvolutionArguments(node, 3, 6, layer);
    } else if (kind == c10::aten::_convolution && weight_tensor.dim() == 4) {
      // aten::_convolution(input, weight, bias, stride, padding, dilation, transposed,
      // output_padding, groups, ...), the form traced models record.
      const std::optional<c10::IValue> transposed = ConstantInput(node, 6);
      layer.kind = WeightLayerKind::kConv2d;
      if (!transposed.has_value() || !transposed->isBool() || transposed->toBool()) {
        layer.kind = WeightLayerKind::kOtherConvolution;
        layer.unsupported_reason = OtherConvolutionReason("a transposed convolution");
      } else {
        ReadConvolutionArguments(node, 3, 8, layer);
      }
    } else {
      layer.kind = WeightLayerKind::kOtherConvolution;
      layer.unsupported_reason = OtherConvolutionReason(op);
    }
    layers.push_back(std::move(layer));
  }
  return layers;
}

}  // namespace polaris::quantization::internal
