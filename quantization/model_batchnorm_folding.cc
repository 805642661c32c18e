#include "quantization/model_batchnorm_folding.h"

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/graph_utils.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/internal/model_batchnorm_folding.h"
#include "quantization/internal/model_layers.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris::quantization {
namespace internal {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps,
// cudnn_enabled)
constexpr size_t kBatchNormWeight = 1;
constexpr size_t kBatchNormBias = 2;
constexpr size_t kBatchNormMean = 3;
constexpr size_t kBatchNormVariance = 4;
constexpr size_t kBatchNormTraining = 5;
constexpr size_t kBatchNormEps = 7;

std::string BatchNormName(const FlatModel& flat, const Node* node) {
  const std::optional<std::string> mean = SelfAttributeName(node->input(kBatchNormMean));
  if (!mean.has_value()) return absl::StrCat("batch_norm %", node->output()->debugName());
  const AttributeTable::Entry* entry = flat.attributes.Find(*mean);
  std::string path = entry != nullptr && !entry->original_path.empty() ? entry->original_path
                                                                        : *mean;
  if (absl::EndsWith(path, ".running_mean")) path.resize(path.size() - 13);
  return path;
}

bool IsTransposedConvolution(const WeightLayer& layer) {
  const std::string op = layer.node->kind().toQualString();
  if (absl::StartsWith(op, "aten::conv_transpose")) return true;
  if (layer.node->kind() != c10::aten::_convolution) return false;
  const std::optional<c10::IValue> transposed = ConstantInput(layer.node, 6);
  return !transposed.has_value() || !transposed->isBool() || transposed->toBool();
}

// Ranks of the top-level Linear outputs when the model runs on `example_input`.
absl::StatusOr<std::map<const Node*, int64_t>> LinearOutputRanks(
    const FlatModel& flat, const std::vector<WeightLayer>& layers,
    const at::Tensor& example_input) {
  std::map<const Node*, int64_t> ranks;
  std::vector<Value*> probes;
  std::vector<const Node*> nodes;
  for (const WeightLayer& layer : layers) {
    if (layer.kind != WeightLayerKind::kLinear || !layer.top_level) continue;
    probes.push_back(layer.node->output());
    nodes.push_back(layer.node);
  }
  if (probes.empty() || !example_input.defined()) return ranks;
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module probe, BuildProbeModule(flat, probes));
  POLARIS_ASSIGN_OR_RETURN(std::vector<at::Tensor> values, RunProbeModule(probe, example_input));
  for (size_t i = 0; i < nodes.size(); ++i) ranks[nodes[i]] = values[1 + i].dim();
  return ranks;
}

// Returns why the BatchNorm `node` cannot be folded into `layer` (nullptr: no layer feeds it),
// or an empty string when it can.
std::string FoldingObstacle(const Node* node, const WeightLayer* layer,
                            const std::map<const Node*, int64_t>& linear_ranks,
                            bool have_example) {
  const std::optional<c10::IValue> training = ConstantInput(node, kBatchNormTraining);
  if (!training.has_value() || !training->isBool() || training->toBool()) {
    return "it normalizes with batch statistics (training=True in the graph)";
  }
  const std::optional<c10::IValue> eps = ConstantInput(node, kBatchNormEps);
  if (!eps.has_value() || !eps->isDouble()) return "its epsilon is not a constant";
  if (layer == nullptr) return "its input is not the output of a convolution or Linear layer";
  if (IsTransposedConvolution(*layer)) {
    return absl::StrCat("it follows transposed convolution '", layer->name,
                        "', whose weight has output channels in dimension 1");
  }
  if (ValueUses(layer->node->output()).size() != 1) {
    return absl::StrCat("the output of '", layer->name, "' is also used elsewhere");
  }
  if (layer->kind == WeightLayerKind::kLinear) {
    const auto rank = linear_ranks.find(layer->node);
    if (rank == linear_ranks.end()) {
      return have_example ? absl::StrCat("Linear layer '", layer->name, "' is inside control flow")
                          : "folding into a Linear layer needs an example input to check that "
                            "its output is 2-D";
    }
    if (rank->second != 2) {
      return absl::StrCat("Linear layer '", layer->name, "' returns a ", rank->second,
                          "-D tensor, and BatchNorm would normalize dimension 1, not its features");
    }
  }
  return "";
}

absl::Status CheckFinite(const at::Tensor& tensor, const std::string& what) {
  if (!tensor.defined() || at::isfinite(tensor).all().item<bool>()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, " contains NaN or Inf; fix the model's weights (retrain or reload them) before "
            "quantizing"));
}

// Stores `value` for the tensor `node` reads at `input_index`: in place when only this node
// reads that attribute, else under a new attribute `base_name`.
void StoreLayerTensor(FlatModel& flat, Node* node, size_t input_index,
                      const std::string& attribute, const std::string& base_name,
                      const std::string& original_path, const at::Tensor& value) {
  if (!attribute.empty() && CountAttributeUses(flat, attribute) == 1) {
    flat.attributes.FindMutable(attribute)->value = value;
    return;
  }
  const std::string name =
      flat.attributes.AddUnique(base_name, value, /*is_parameter=*/true, original_path);
  torch::jit::WithInsertPoint insert_point(node);
  node->replaceInput(input_index,
                     InsertSelfGetAttr(*flat.graph, name, c10::TensorType::get()));
}

absl::Status Fold(FlatModel& flat, Node* batch_norm, const WeightLayer& layer,
                  const std::string& name) {
  const at::Tensor weight = TensorValue(flat, layer.node->input(1));
  const at::Tensor bias = TensorValue(flat, layer.node->input(2));
  const at::Tensor mean = TensorValue(flat, batch_norm->input(kBatchNormMean));
  const at::Tensor variance = TensorValue(flat, batch_norm->input(kBatchNormVariance));
  const at::Tensor gamma = TensorValue(flat, batch_norm->input(kBatchNormWeight));
  const at::Tensor beta = TensorValue(flat, batch_norm->input(kBatchNormBias));
  const double eps = ConstantInput(batch_norm, kBatchNormEps)->toDouble();
  if (!mean.defined() || !variance.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BatchNorm '", name, "' has no running statistics to fold"));
  }
  const int64_t channels = weight.size(0);
  for (const auto& [tensor, what] :
       {std::pair{mean, "running mean"}, std::pair{variance, "running variance"},
        std::pair{gamma, "weight"}, std::pair{beta, "bias"}}) {
    if (tensor.defined() && tensor.numel() != channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", what, " of BatchNorm '", name, "' has ", tensor.numel(),
          " elements, but layer '", layer.name, "' has ", channels, " output channels"));
    }
  }
  POLARIS_RETURN_IF_ERROR(CheckFinite(weight, absl::StrCat("the weight of '", layer.name, "'")));
  POLARIS_RETURN_IF_ERROR(CheckFinite(bias, absl::StrCat("the bias of '", layer.name, "'")));
  for (const auto& [tensor, what] : {std::pair{mean, "running mean"},
                                     std::pair{variance, "running variance"},
                                     std::pair{gamma, "weight"}, std::pair{beta, "bias"}}) {
    POLARIS_RETURN_IF_ERROR(
        CheckFinite(tensor, absl::StrCat("the ", what, " of BatchNorm '", name, "'")));
  }

  const at::Tensor denominator = variance.to(at::kDouble) + eps;
  if (!(denominator.min().item<double>() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BatchNorm '", name, "' has running variance + epsilon <= 0 (minimum ",
        denominator.min().item<double>(), "); its statistics are invalid"));
  }
  const at::Tensor ones = at::ones({channels}, at::kDouble);
  const at::Tensor scale = (gamma.defined() ? gamma.to(at::kDouble) : ones) / denominator.sqrt();
  std::vector<int64_t> channel_shape(weight.dim(), 1);
  channel_shape[0] = channels;
  const at::Tensor folded_weight =
      (weight.to(at::kDouble) * scale.view(channel_shape)).to(weight.scalar_type());
  const at::Tensor old_bias = bias.defined() ? bias.to(at::kDouble) : at::zeros_like(ones);
  const at::Tensor shift = beta.defined() ? beta.to(at::kDouble) : at::zeros_like(ones);
  const at::Tensor folded_bias = (shift + (old_bias - mean.to(at::kDouble)) * scale)
                                     .to(weight.scalar_type());

  const std::string base = FlatName(layer.name);
  StoreLayerTensor(flat, layer.node, 1, layer.weight_attribute, base + "_weight",
                   layer.name + ".weight", folded_weight);
  StoreLayerTensor(flat, layer.node, 2, layer.bias_attribute, base + "_bias",
                   layer.name + ".bias", folded_bias);
  batch_norm->output()->replaceAllUsesWith(layer.node->output());
  batch_norm->destroy();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FoldingReport> FoldBatchNormInGraph(FlatModel& flat,
                                                   const at::Tensor& example_input) {
  const std::vector<WeightLayer> layers = FindWeightLayers(flat);
  std::map<const Node*, const WeightLayer*> layer_of_node;
  for (const WeightLayer& layer : layers) layer_of_node[layer.node] = &layer;

  std::vector<Node*> batch_norms;
  torch::jit::DepthFirstGraphNodeIterator it(flat.graph);
  for (Node* node = it.next(); node != nullptr; node = it.next()) {
    if (node->kind() == c10::aten::batch_norm) batch_norms.push_back(node);
  }
  if (batch_norms.empty()) return FoldingReport{};
  POLARIS_ASSIGN_OR_RETURN(const auto linear_ranks,
                           LinearOutputRanks(flat, layers, example_input));

  return CallTorch("folding BatchNorm", [&]() -> absl::StatusOr<FoldingReport> {
    FoldingReport report;
    for (Node* node : batch_norms) {
      const std::string name = BatchNormName(flat, node);
      const auto producer = layer_of_node.find(node->input(0)->node());
      const WeightLayer* layer = producer == layer_of_node.end() ? nullptr : producer->second;
      const std::string obstacle =
          FoldingObstacle(node, layer, linear_ranks, example_input.defined());
      if (!obstacle.empty()) {
        report.not_folded.push_back({name, obstacle});
        continue;
      }
      POLARIS_RETURN_IF_ERROR(Fold(flat, node, *layer, name));
      report.folded.push_back({name, layer->name});
    }
    torch::jit::EliminateDeadCode(flat.graph);
    flat.attributes.RetainOnly(ReadAttributeNames(flat.graph));
    return report;
  });
}

}  // namespace internal

absl::StatusOr<BatchNormFoldingResult> FoldBatchNorm(const torch::jit::Module& model,
                                                     const at::Tensor& example_input) {
  POLARIS_ASSIGN_OR_RETURN(internal::FlatModel flat, internal::FlattenModel(model));
  POLARIS_ASSIGN_OR_RETURN(internal::FoldingReport report,
                           internal::FoldBatchNormInGraph(flat, example_input));
  BatchNormFoldingResult result;
  POLARIS_ASSIGN_OR_RETURN(result.model, internal::BuildModule(flat, "BatchNormFolded"));
  result.folded = std::move(report.folded);
  result.not_folded = std::move(report.not_folded);
  return result;
}

}  // namespace polaris::quantization
