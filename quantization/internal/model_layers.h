// The weight layers (convolutions and Linear) of a flat forward graph: which node computes
// them, which attributes hold their weight and bias, and the names the caller knows them by.
#ifndef POLARIS_QUANTIZATION_INTERNAL_MODEL_LAYERS_H_
#define POLARIS_QUANTIZATION_INTERNAL_MODEL_LAYERS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "quantization/internal/model_graph.h"
#include "torch/csrc/jit/ir/ir.h"

namespace polaris::quantization::internal {

enum class WeightLayerKind {
  kLinear,
  kConv2d,
  // Other convolutions (1-D, 3-D, transposed): found so that reports can list them, never
  // quantized.
  kOtherConvolution,
};

struct WeightLayer {
  torch::jit::Node* node = nullptr;
  WeightLayerKind kind = WeightLayerKind::kLinear;
  // Module path in the caller's model ("layer1.conv1"); for weights a pass created, the flat
  // attribute name.
  std::string name;
  // Attribute names in the flat model; bias_attribute is empty when the bias is None.
  std::string weight_attribute;
  std::string bias_attribute;
  // Convolution arguments; empty for Linear.
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;
  std::vector<int64_t> dilation;
  int64_t groups = 1;
  // False when the node sits in a block of an if or a loop.
  bool top_level = true;
  // The reason a kOtherConvolution layer, or a layer whose arguments are not constants, cannot
  // be quantized; empty otherwise.
  std::string unsupported_reason;
};

// Returns the weight layers of `flat` in graph order: aten::linear, aten::conv1d/2d/3d,
// aten::conv_transpose*d and aten::_convolution nodes whose weight is a tensor attribute.
// Layers whose weight is computed in the graph are not listed.
std::vector<WeightLayer> FindWeightLayers(const FlatModel& flat);

// Returns the tensor `value` holds when it is a tensor attribute or a constant; undefined
// otherwise.
at::Tensor TensorValue(const FlatModel& flat, const torch::jit::Value* value);

// Returns the layer name for a weight attribute: its original path without ".weight", or the
// attribute name for attributes a pass created.
std::string LayerNameOfWeight(const FlatModel& flat, const std::string& weight_attribute);

// Returns true for nodes that read only a tensor's shape (aten::dim, aten::size, ...). Scripted
// modules use them for input checks, and they see the same shape after a rewrite.
bool IsShapeQuery(const torch::jit::Node* node);

// Returns the uses of `value` that read its elements, leaving out shape queries.
std::vector<torch::jit::Use> ValueUses(const torch::jit::Value* value);

// Returns how many uses all prim::GetAttr reads of attribute `name` have together.
int CountAttributeUses(const FlatModel& flat, const std::string& name);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MODEL_LAYERS_H_
