// Finds the Linear, Conv2d and BatchNorm layers of any TorchScript model (scripted, traced or
// built by polaris), with their parameters, the shapes they see and their multiply-accumulate
// counts, by reading the inlined forward graph and running it once on an example input.
//
//   POLARIS_ASSIGN_OR_RETURN(ModelAnalysis analysis,
//                            AnalyzeModel(model, at::zeros({1, 1, 28, 28})));
//   for (const LayerInfo& layer : analysis.layers) std::cout << layer.name << layer.macs;
#ifndef POLARIS_CORE_LAYER_ANALYSIS_H_
#define POLARIS_CORE_LAYER_ANALYSIS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris {

enum class LayerKind { kLinear, kConv2d, kBatchNorm };

std::string LayerKindName(LayerKind kind);

struct LayerInfo {
  // Module path of the layer, e.g. "layer1.conv1"; the weight is "<name>.weight".
  std::string name;
  LayerKind kind = LayerKind::kLinear;
  // Dotted paths of the weight and bias tensors; bias_path is empty when there is none.
  std::string weight_path;
  std::string bias_path;
  std::vector<int64_t> weight_shape;
  // Convolution arguments (empty for other kinds).
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;
  std::vector<int64_t> dilation;
  int64_t groups = 1;
  // Shapes seen when running the example input (batch dimension included); empty when the
  // layer sits inside control flow and was not reached by the probe.
  std::vector<int64_t> input_shape;
  std::vector<int64_t> output_shape;
  // Multiply-accumulates per example; -1 when the shapes are unknown.
  int64_t macs = -1;
  // Elements in weight and bias.
  int64_t parameters = 0;
  // True when the node sits inside an if or a loop of the forward graph.
  bool in_control_flow = false;
};

struct ModelAnalysis {
  std::vector<LayerInfo> layers;
  // Sum of the known per-example multiply-accumulates.
  int64_t total_macs = 0;
  int64_t total_parameters = 0;
  // Count of each operator in the inlined forward graph ("aten::conv2d": 5, ...), nested
  // blocks included, leaving out prim:: bookkeeping nodes.
  std::map<std::string, int64_t> operator_counts;
  // The forward graph has prim::If or prim::Loop.
  bool has_control_flow = false;
  // The forward graph adds two tensors that both come from layers (a residual connection).
  bool has_residual_add = false;
  // Weights the graph uses that are not reached through a module attribute (for example
  // computed on the fly); such layers are listed with an empty weight_path.
  int64_t unnamed_weights = 0;
};

// Analyzes `model` by running `example_input` (usually batch 1) through a copy of its inlined
// forward graph. `model` is not changed.
// Errors: kInvalidArgument when the model cannot run on the example (the message has LibTorch's
// reason, such as a shape mismatch).
absl::StatusOr<ModelAnalysis> AnalyzeModel(const torch::jit::Module& model,
                                           const at::Tensor& example_input);

}  // namespace polaris

#endif  // POLARIS_CORE_LAYER_ANALYSIS_H_
