#include "pipeline/model_analysis.h"

#include <algorithm>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/dataset.h"
#include "core/metrics.h"
#include "core/status_macros.h"
#include "pruning/channel_dependency.h"
#include "quantization/model_quantization.h"

namespace polaris::pipeline {
namespace {

int64_t CountOperator(const ModelAnalysis& analysis, const std::string& name) {
  const auto it = analysis.operator_counts.find(name);
  return it == analysis.operator_counts.end() ? 0 : it->second;
}

void ClassifyArchitecture(ModelReport& report) {
  const ModelAnalysis& analysis = report.layers;
  const int64_t convolutions = report.layers_by_kind["Conv2d"];
  const int64_t linears = report.layers_by_kind["Linear"];
  const int64_t adds = CountOperator(analysis, "aten::add") + CountOperator(analysis, "aten::add_");
  if (analysis.has_control_flow) {
    report.kind = ArchitectureKind::kOther;
    report.kind_reason = "the forward graph has data-dependent control flow (if or loop)";
  } else if (convolutions > 0 && analysis.has_residual_add) {
    report.kind = ArchitectureKind::kResidualCnn;
    report.kind_reason = absl::StrCat(convolutions, " convolutions joined by residual adds (",
                                      adds, " tensor additions)");
  } else if (convolutions > 0) {
    report.kind = ArchitectureKind::kCnn;
    report.kind_reason = absl::StrCat(convolutions, " convolutions, ", linears,
                                      " linear layers, no residual adds");
  } else if (linears > 0) {
    report.kind = ArchitectureKind::kMlp;
    report.kind_reason = absl::StrCat(linears, " linear layers and no convolutions");
  } else {
    report.kind = ArchitectureKind::kOther;
    report.kind_reason = "no Linear or Conv2d layer was found";
  }
}

// Structured pruning works on channel groups; a layer is covered when its group can shrink.
StageCoverage PruningCoverage(const torch::jit::Module& model, const at::Tensor& example_input) {
  StageCoverage coverage;
  coverage.stage = "structured_pruning";
  absl::StatusOr<pruning::ChannelDependencies> dependencies =
      pruning::AnalyzeChannelDependencies(model, example_input);
  if (!dependencies.ok()) {
    coverage.unsupported_layers["(model)"] =
        absl::StrCat("channel analysis failed: ", dependencies.status().message());
    return coverage;
  }
  for (const pruning::ChannelGroup& group : dependencies->groups) {
    for (const std::string& producer : group.producers) {
      if (group.prunable) {
        coverage.supported_layers.push_back(producer);
      } else {
        coverage.unsupported_layers[producer] = absl::StrJoin(group.reasons, "; ");
      }
    }
  }
  return coverage;
}

// Int8 quantization's own decision, from a dry run of static quantization calibrated on copies
// of the example. The dry run converts a copy, and its accuracy does not matter here.
StageCoverage QuantizationCoverage(const torch::jit::Module& model,
                                   const at::Tensor& example_input) {
  StageCoverage coverage;
  coverage.stage = "quantization";
  quantization::QuantizationOptions options;
  options.calibration_examples = 8;
  options.calibration_batch_size = 8;
  options.bias_correction = false;
  options.show_progress = false;
  std::vector<int64_t> repeats(example_input.dim(), 1);
  repeats[0] = 8 / std::max<int64_t>(example_input.size(0), 1) + 1;
  LabeledData examples;
  examples.inputs = example_input.repeat(repeats);
  examples.labels = at::zeros({examples.inputs.size(0)}, at::kLong);
  absl::StatusOr<quantization::QuantizationResult> result =
      quantization::QuantizeModel(model, options, examples);
  if (!result.ok()) {
    coverage.unsupported_layers["(model)"] =
        absl::StrCat("int8 conversion failed: ", result.status().message());
    return coverage;
  }
  for (const quantization::LayerReport& layer : result->layers) {
    coverage.supported_layers.push_back(layer.name);
  }
  for (const quantization::SkippedLayer& layer : result->skipped) {
    coverage.unsupported_layers[layer.name] = layer.reason;
  }
  return coverage;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "?";
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

}  // namespace

std::string ArchitectureKindName(ArchitectureKind kind) {
  switch (kind) {
    case ArchitectureKind::kMlp: return "MLP";
    case ArchitectureKind::kCnn: return "CNN";
    case ArchitectureKind::kResidualCnn: return "residual CNN";
    case ArchitectureKind::kOther: return "other";
  }
  return "other";
}

absl::StatusOr<ModelReport> AnalyzeForPipeline(const torch::jit::Module& model,
                                               const at::Tensor& example_input) {
  ModelReport report;
  POLARIS_ASSIGN_OR_RETURN(report.layers, AnalyzeModel(model, example_input));
  report.parameters = ParameterCount(model);
  for (const LayerInfo& layer : report.layers.layers) {
    const std::string kind = LayerKindName(layer.kind);
    ++report.layers_by_kind[kind];
    report.parameters_by_kind[kind] += layer.parameters;
  }
  ClassifyArchitecture(report);
  report.coverage.push_back(PruningCoverage(model, example_input));
  report.coverage.push_back(QuantizationCoverage(model, example_input));
  return report;
}

std::string FormatModelReport(const ModelReport& report) {
  const ModelAnalysis& analysis = report.layers;
  std::string text = absl::StrFormat(
      "Model: %s (%s); %d parameters; %.2f M multiply-accumulates per example\n",
      ArchitectureKindName(report.kind), report.kind_reason, report.parameters,
      analysis.total_macs / 1e6);
  std::vector<std::string> kinds;
  for (const auto& [kind, count] : report.layers_by_kind) {
    kinds.push_back(absl::StrCat(count, " ", kind));
  }
  absl::StrAppend(&text, "Layers: ", absl::StrJoin(kinds, ", "), "\n");
  absl::StrAppend(&text, absl::StrFormat("  %-28s %-9s %-18s %-18s %10s %8s\n", "layer", "kind",
                                         "input", "output", "MACs", "params"));
  for (const LayerInfo& layer : analysis.layers) {
    absl::StrAppend(&text, absl::StrFormat("  %-28s %-9s %-18s %-18s %10d %8d\n",
                                           layer.name.empty() ? "(unnamed)" : layer.name,
                                           LayerKindName(layer.kind),
                                           ShapeString(layer.input_shape),
                                           ShapeString(layer.output_shape), layer.macs,
                                           layer.parameters));
  }
  for (const StageCoverage& coverage : report.coverage) {
    absl::StrAppend(&text, coverage.stage, ": ", coverage.supported_layers.size(),
                    " layers supported");
    if (!coverage.unsupported_layers.empty()) {
      std::vector<std::string> reasons;
      for (const auto& [layer, reason] : coverage.unsupported_layers) {
        reasons.push_back(absl::StrCat(layer, " (", reason, ")"));
      }
      absl::StrAppend(&text, "; left alone: ", absl::StrJoin(reasons, "; "));
    }
    absl::StrAppend(&text, "\n");
  }
  return text;
}

}  // namespace polaris::pipeline
