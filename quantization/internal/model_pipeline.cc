#include "quantization/internal/model_pipeline.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/error_metrics.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris::quantization::internal {
namespace {

// Examples the per-layer error measurement runs on.
constexpr int64_t kErrorMeasurementExamples = 256;

using torch::jit::Node;
using torch::jit::Value;

std::string ModuleOfPath(const std::string& path) {
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(0, dot);
}

// Parameterized nodes other than the weight layers, one entry per module.
std::vector<SkippedLayer> FindOtherLayers(const FlatModel& flat,
                                          const std::vector<WeightLayer>& layers,
                                          const FoldingReport& folding) {
  std::set<const Node*> layer_nodes;
  for (const WeightLayer& layer : layers) layer_nodes.insert(layer.node);
  std::map<std::string, std::string> unfolded_reasons;
  for (const UnfoldedBatchNorm& unfolded : folding.not_folded) {
    unfolded_reasons[unfolded.batch_norm] = unfolded.reason;
  }

  std::vector<SkippedLayer> others;
  std::set<std::string> seen;
  torch::jit::DepthFirstGraphNodeIterator it(const_cast<FlatModel&>(flat).graph);
  for (Node* node = it.next(); node != nullptr; node = it.next()) {
    if (layer_nodes.count(node) > 0 || node->kind() == c10::prim::GetAttr) continue;
    for (const Value* input : node->inputs()) {
      const std::optional<std::string> name = SelfAttributeName(input);
      if (!name.has_value()) continue;
      const AttributeTable::Entry* entry = flat.attributes.Find(*name);
      if (entry == nullptr || !entry->value.isTensor() || !entry->is_parameter) continue;
      const std::string module =
          entry->original_path.empty() ? *name : ModuleOfPath(entry->original_path);
      if (!seen.insert(module).second) break;
      const std::string op = node->kind().toQualString();
      std::string reason = absl::StrCat(op, " has no quantized conversion here; it runs in float32");
      if (node->kind() == c10::aten::batch_norm) {
        const auto unfolded = unfolded_reasons.find(module);
        reason = absl::StrCat(
            "BatchNorm not folded (",
            unfolded != unfolded_reasons.end() ? unfolded->second : "no preceding layer",
            "); it runs in float32");
      }
      others.push_back({module, op, reason});
      break;
    }
  }
  return others;
}

std::string KindName(const WeightLayer& layer) {
  switch (layer.kind) {
    case WeightLayerKind::kLinear: return "Linear";
    case WeightLayerKind::kConv2d: return "Conv2d";
    case WeightLayerKind::kOtherConvolution: break;
  }
  return layer.node->kind().toQualString();
}

// Returns why `layer` cannot be an int8 layer of a static region, or "".
std::string StaticObstacle(const WeightLayer& layer) {
  if (!layer.unsupported_reason.empty()) return layer.unsupported_reason;
  if (!layer.top_level) {
    return "it sits inside an if or a loop of forward, and int8 regions cover the top-level "
           "graph only";
  }
  return "";
}

}  // namespace

absl::StatusOr<PreparedModel> PrepareModel(const torch::jit::Module& model,
                                           const at::Tensor& example_input) {
  PreparedModel prepared;
  POLARIS_ASSIGN_OR_RETURN(prepared.flat, FlattenModel(model));
  POLARIS_ASSIGN_OR_RETURN(prepared.folding, FoldBatchNormInGraph(prepared.flat, example_input));
  prepared.layers = FindWeightLayers(prepared.flat);
  prepared.other_layers = FindOtherLayers(prepared.flat, prepared.layers, prepared.folding);
  return prepared;
}

absl::StatusOr<std::vector<LayerConversion>> ChooseConversions(
    const PreparedModel& prepared, const QuantizationOptions& options,
    std::vector<SkippedLayer>* skipped) {
  const std::vector<WeightLayer>& layers = prepared.layers;
  std::set<std::string> names;
  for (const WeightLayer& layer : layers) names.insert(layer.name);
  std::vector<std::pair<std::string, std::string>> named;
  for (const std::string& name : options.skip_layers) named.push_back({"skip_layers", name});
  for (const auto& [name, group_size] : options.layer_group_sizes) {
    named.push_back({"layer_group_sizes", name});
  }
  for (const auto& [field, name] : named) {
    if (names.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " names '", name, "', which is not a Linear or convolution layer of the "
          "model; its layers are: ", absl::StrJoin(names, ", ")));
    }
  }
  const std::set<std::string> skip(options.skip_layers.begin(), options.skip_layers.end());

  std::vector<LayerConversion> conversions(layers.size(), LayerConversion::kFloat32);
  for (size_t i = 0; i < layers.size(); ++i) {
    const WeightLayer& layer = layers[i];
    const bool is_linear = layer.kind == WeightLayerKind::kLinear;
    std::string obstacle;
    LayerConversion conversion = LayerConversion::kInt8Static;
    switch (options.method) {
      case QuantizationMethod::kStatic:
      case QuantizationMethod::kQat:
      case QuantizationMethod::kMixedPrecision:
        obstacle = StaticObstacle(layer);
        break;
      case QuantizationMethod::kDynamic:
        conversion = LayerConversion::kInt8Dynamic;
        if (!is_linear) obstacle = "dynamic int8 quantization covers Linear layers only";
        break;
      case QuantizationMethod::kWeightOnlyInt4:
        conversion = LayerConversion::kInt4;
        if (!is_linear) obstacle = "INT4 weight-only quantization covers Linear layers only";
        break;
    }
    if (obstacle.empty() && !layer.unsupported_reason.empty()) {
      obstacle = layer.unsupported_reason;
    }
    if (obstacle.empty() && skip.count(layer.name) > 0) obstacle = "listed in skip_layers";
    if (!obstacle.empty()) {
      skipped->push_back({layer.name, KindName(layer), obstacle});
      continue;
    }
    for (size_t input : {1, 2}) {
      const at::Tensor tensor = TensorValue(prepared.flat, layer.node->input(input));
      if (tensor.defined() && !at::isfinite(tensor).all().item<bool>()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the ", input == 1 ? "weight" : "bias", " of layer '", layer.name,
            "' contains NaN or Inf; fix the model's weights (retrain or reload them) before "
            "quantizing, or list the layer in skip_layers"));
      }
    }
    if (conversion == LayerConversion::kInt4) {
      const at::Tensor weight = AttributeTensor(prepared.flat.attributes, layer.node->input(1));
      const int64_t in_features = weight.size(1);
      const int64_t group_size = GroupSizeOf(options, layer.name);
      if (in_features % group_size != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "group size ", group_size, " does not divide the input size ", in_features,
            " of Linear layer '", layer.name,
            "'; choose a group size that divides every Linear layer's input size, or list the "
            "layer in skip_layers"));
      }
    }
    conversions[i] = conversion;
  }

  if (std::all_of(conversions.begin(), conversions.end(),
                  [](LayerConversion c) { return c == LayerConversion::kFloat32; })) {
    std::vector<std::string> reasons;
    for (const SkippedLayer& layer : *skipped) {
      reasons.push_back(absl::StrCat(layer.name, " (", layer.type, "): ", layer.reason));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the model has no layer that ", QuantizationMethodName(options.method),
        " quantization can convert",
        reasons.empty() ? "; it has no Linear or convolution layer"
                        : absl::StrCat("; ", absl::StrJoin(reasons, "; "))));
  }
  return conversions;
}

CalibrationOptions ActivationCalibrationOptions(const QuantizationOptions& options) {
  CalibrationOptions calibration = options.activation_calibration;
  calibration.dtype = QuantDtype::kUInt8;
  calibration.scheme = options.activation_scheme;
  calibration.axis = -1;
  return calibration;
}

ConverterOptions MakeConverterOptions(const QuantizationOptions& options) {
  ConverterOptions converter;
  converter.weight_granularity = options.weight_granularity;
  converter.group_size = options.group_size;
  converter.layer_group_sizes = options.layer_group_sizes;
  converter.use_polaris_ops = options.use_polaris_ops;
  return converter;
}

absl::Status CheckCalibrationInputs(const at::Tensor& inputs) {
  if (!inputs.defined() || inputs.dim() == 0 || inputs.size(0) == 0) {
    return absl::InvalidArgumentError(
        "the calibration data has no examples; quantization needs at least one example");
  }
  if (!inputs.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration inputs must be floating point, got ", inputs.scalar_type()));
  }
  const at::Tensor finite = at::isfinite(inputs).reshape({inputs.size(0), -1}).all(1);
  if (!finite.all().item<bool>()) {
    const int64_t example = finite.logical_not().nonzero()[0][0].item<int64_t>();
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration example ", example, " contains NaN or Inf; remove or repair it"));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> MeasureOutputErrors(const FlatModel& reference, Conversion& conversion,
                                           const at::Tensor& inputs) {
  std::vector<Value*> reference_values;
  std::vector<Value*> converted_values;
  std::vector<size_t> measured;
  for (size_t i = 0; i < conversion.layers.size(); ++i) {
    const ConvertedLayer& layer = conversion.layers[i];
    const bool top_level =
        layer.reference_output->node()->owningBlock() == reference.graph->block() &&
        layer.output->node()->owningBlock() == conversion.model.graph->block();
    if (!top_level) {
      conversion.layers[i].report.output_sqnr_db = std::nan("");
      continue;
    }
    reference_values.push_back(layer.reference_output);
    converted_values.push_back(layer.output);
    measured.push_back(i);
  }
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module reference_probe,
                           BuildProbeModule(reference, reference_values));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module converted_probe,
                           BuildProbeModule(conversion.model, converted_values));
  POLARIS_ASSIGN_OR_RETURN(std::vector<at::Tensor> expected,
                           RunProbeModule(reference_probe, inputs));
  POLARIS_ASSIGN_OR_RETURN(std::vector<at::Tensor> actual, RunProbeModule(converted_probe, inputs));

  for (size_t k = 0; k < measured.size(); ++k) {
    absl::StatusOr<QuantizationError> error =
        MeasureQuantizationError(expected[1 + k], actual[1 + k]);
    conversion.layers[measured[k]].report.output_sqnr_db =
        error.ok() ? error->sqnr_db : std::nan("");
  }
  POLARIS_ASSIGN_OR_RETURN(QuantizationError model_error,
                           MeasureQuantizationError(expected[0], actual[0]));
  return model_error.sqnr_db;
}

QuantizationResult StartResult(const PreparedModel& prepared, const QuantizationOptions& options,
                               std::vector<SkippedLayer> skipped) {
  QuantizationResult result;
  result.method = options.method;
  result.folded_batchnorm = prepared.folding.folded;
  result.unfolded_batchnorm = prepared.folding.not_folded;
  result.skipped = std::move(skipped);
  result.skipped.insert(result.skipped.end(), prepared.other_layers.begin(),
                        prepared.other_layers.end());
  return result;
}

absl::Status FinishConversion(const PreparedModel& prepared, const FlatModel& source,
                              const std::vector<LayerConversion>& conversions,
                              const Int8Plan& plan, const std::vector<QuantParams>& site_params,
                              const LayerOverrides& overrides,
                              const QuantizationOptions& options, const at::Tensor& inputs,
                              QuantizationResult& result) {
  POLARIS_ASSIGN_OR_RETURN(Conversion conversion,
                           ConvertLayers(source, prepared.layers, conversions, plan, site_params,
                                         MakeConverterOptions(options), overrides));
  POLARIS_ASSIGN_OR_RETURN(
      result.output_sqnr_db,
      MeasureOutputErrors(source, conversion, inputs.slice(0, 0, kErrorMeasurementExamples)));

  std::vector<bool> converted(prepared.layers.size(), false);
  for (const ConvertedLayer& layer : conversion.layers) {
    converted[layer.layer] = true;
    result.weight_bytes_after += layer.report.bytes_after;
  }
  std::sort(conversion.layers.begin(), conversion.layers.end(),
            [](const ConvertedLayer& a, const ConvertedLayer& b) { return a.layer < b.layer; });
  result.layers.clear();
  for (const ConvertedLayer& layer : conversion.layers) result.layers.push_back(layer.report);
  for (size_t i = 0; i < prepared.layers.size(); ++i) {
    int64_t bytes = 0;
    for (size_t input : {1, 2}) {
      const at::Tensor tensor = TensorValue(source, prepared.layers[i].node->input(input));
      if (tensor.defined()) bytes += tensor.numel() * tensor.element_size();
    }
    result.weight_bytes_before += bytes;
    if (!converted[i]) result.weight_bytes_after += bytes;
  }
  POLARIS_ASSIGN_OR_RETURN(result.model, BuildModule(conversion.model, "QuantizedModel"));
  return absl::OkStatus();
}

}  // namespace polaris::quantization::internal
