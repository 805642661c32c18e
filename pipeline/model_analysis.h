// The auto-configurator's view of a model: parameter count, layers by type, multiply-accumulates
// per layer, the architecture kind, and which layers each optimization stage can handle.
//
//   POLARIS_ASSIGN_OR_RETURN(ModelReport report, AnalyzeForPipeline(model, example));
//   std::cout << FormatModelReport(report);
#ifndef POLARIS_PIPELINE_MODEL_ANALYSIS_H_
#define POLARIS_PIPELINE_MODEL_ANALYSIS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "core/layer_analysis.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pipeline {

enum class ArchitectureKind { kMlp, kCnn, kResidualCnn, kOther };

std::string ArchitectureKindName(ArchitectureKind kind);

// Which layers a stage can work on, and why the others are left alone.
struct StageCoverage {
  std::string stage;
  std::vector<std::string> supported_layers;
  // Layer name -> reason it is left alone.
  std::map<std::string, std::string> unsupported_layers;
};

struct ModelReport {
  ModelAnalysis layers;
  ArchitectureKind kind = ArchitectureKind::kOther;
  // Why the kind was chosen, e.g. "convolutions joined by 2 residual adds".
  std::string kind_reason;
  int64_t parameters = 0;
  // Parameter elements held by each layer kind ("Conv2d": 96,000, ...).
  std::map<std::string, int64_t> parameters_by_kind;
  std::map<std::string, int64_t> layers_by_kind;
  std::vector<StageCoverage> coverage;
};

// Analyzes `model` on `example_input` (one example with its batch dimension).
absl::StatusOr<ModelReport> AnalyzeForPipeline(const torch::jit::Module& model,
                                               const at::Tensor& example_input);

// Formats the report as aligned text: a summary line and one row per layer.
std::string FormatModelReport(const ModelReport& report);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_MODEL_ANALYSIS_H_
