#include "pruning/sensitivity.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/evaluate.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "pruning/common.h"
#include "pruning/internal/parallel.h"
#include "pruning/magnitude.h"

namespace polaris::pruning {
namespace {

absl::Status ValidateOptions(const SensitivityOptions& options) {
  if (options.sparsities.empty()) {
    return absl::InvalidArgumentError("the sensitivity scan needs at least one sparsity");
  }
  for (double sparsity : options.sparsities) {
    POLARIS_RETURN_IF_ERROR(ValidateFraction(sparsity, "a scanned sparsity"));
  }
  if (options.batch_size < 1 || options.workers < 1 || options.threads_per_worker < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size, workers and threads_per_worker must be at least 1, got ", options.batch_size,
        ", ", options.workers, " and ", options.threads_per_worker));
  }
  return absl::OkStatus();
}

// One model to evaluate: a layer (by index into the analysis) at one sparsity.
struct Task {
  size_t layer = 0;
  size_t point = 0;
};

absl::StatusOr<SensitivityAnalysis> ScanMagnitude(const torch::jit::Module& model,
                                                  const LabeledData& validation,
                                                  const SensitivityOptions& options,
                                                  SensitivityAnalysis analysis) {
  UnstructuredPruningOptions pruning;
  pruning.sparsity = 0;
  pruning.example_shape = options.example_shape;
  POLARIS_ASSIGN_OR_RETURN(PruningMasks masks, ComputeMagnitudeMasks(model, pruning));
  std::vector<Task> tasks;
  for (const LayerSparsity& layer : masks.layers) {
    LayerSensitivity entry;
    entry.layer = layer.layer;
    entry.size = layer.weights;
    for (double sparsity : options.sparsities) entry.points.push_back({sparsity});
    for (size_t p = 0; p < options.sparsities.size(); ++p) {
      tasks.push_back({analysis.layers.size(), p});
    }
    analysis.layers.push_back(entry);
  }

  // Each worker prunes its own copy in place and restores the original weight afterwards.
  std::vector<torch::jit::Module> copies;
  for (int worker = 0; worker < options.workers; ++worker) {
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
    copies.push_back(copy);
  }
  POLARIS_RETURN_IF_ERROR(internal::ParallelFor(
      options.workers, options.threads_per_worker, static_cast<int64_t>(tasks.size()),
      [&](int worker, int64_t index) -> absl::Status {
        const Task& task = tasks[index];
        SensitivityPoint& point = analysis.layers[task.layer].points[task.point];
        const std::string& path = masks.layers[task.layer].weight_path;
        torch::jit::Module& copy = copies[worker];
        POLARIS_ASSIGN_OR_RETURN(at::Tensor original, FindTensor(model, path));
        POLARIS_ASSIGN_OR_RETURN(at::Tensor mask, MagnitudeMask(original, point.sparsity));
        {
          at::NoGradGuard no_grad;
          POLARIS_RETURN_IF_ERROR(SetTensor(copy, path, original.detach() * mask));
        }
        absl::StatusOr<EvalResult> eval = Evaluate(copy, validation, options.batch_size);
        POLARIS_RETURN_IF_ERROR(SetTensor(copy, path, original.detach().clone()));
        if (!eval.ok()) return eval.status();
        point.accuracy = eval->accuracy;
        point.loss = eval->loss;
        return absl::OkStatus();
      }));
  return analysis;
}

absl::StatusOr<SensitivityAnalysis> ScanChannels(const torch::jit::Module& model,
                                                 const LabeledData& validation,
                                                 const SensitivityOptions& options,
                                                 SensitivityAnalysis analysis) {
  StructuredPruningOptions structured;
  structured.criterion = options.criterion;
  structured.example_shape = options.example_shape;
  POLARIS_ASSIGN_OR_RETURN(ChannelImportance importance,
                           ComputeChannelImportance(model, structured, &validation));
  std::vector<Task> tasks;
  for (const ChannelGroup& group : importance.dependencies.groups) {
    if (!group.prunable) continue;
    LayerSensitivity entry;
    entry.layer = group.name;
    entry.size = group.channels;
    for (double fraction : options.sparsities) entry.points.push_back({fraction});
    for (size_t p = 0; p < options.sparsities.size(); ++p) {
      tasks.push_back({analysis.layers.size(), p});
    }
    analysis.layers.push_back(entry);
  }
  if (analysis.layers.empty()) {
    return absl::InvalidArgumentError("no channel group of the model can be pruned");
  }

  POLARIS_RETURN_IF_ERROR(internal::ParallelFor(
      options.workers, options.threads_per_worker, static_cast<int64_t>(tasks.size()),
      [&](int worker, int64_t index) -> absl::Status {
        const Task& task = tasks[index];
        LayerSensitivity& layer = analysis.layers[task.layer];
        SensitivityPoint& point = layer.points[task.point];
        const int64_t removed = std::llround(point.sparsity * static_cast<double>(layer.size));
        const int64_t keep = std::max<int64_t>(1, layer.size - removed);
        POLARIS_ASSIGN_OR_RETURN(StructuredPruningResult pruned,
                                 PruneChannelsToCounts(model, importance, {{layer.layer, keep}}));
        POLARIS_ASSIGN_OR_RETURN(EvalResult eval,
                                 Evaluate(pruned.model, validation, options.batch_size));
        point.accuracy = eval.accuracy;
        point.loss = eval.loss;
        return absl::OkStatus();
      }));
  return analysis;
}

}  // namespace

std::string SensitivityMethodName(SensitivityMethod method) {
  return method == SensitivityMethod::kChannels ? "channels" : "magnitude";
}

absl::StatusOr<SensitivityAnalysis> ScanSensitivity(const torch::jit::Module& model,
                                                    const LabeledData& validation,
                                                    const SensitivityOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  if (validation.size() == 0) {
    return absl::InvalidArgumentError("the sensitivity scan needs validation examples");
  }
  SensitivityOptions resolved = options;
  if (resolved.example_shape.empty()) {
    resolved.example_shape = validation.inputs.sizes().slice(1).vec();
  }

  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module baseline_copy, CloneModel(model));
  POLARIS_ASSIGN_OR_RETURN(EvalResult baseline,
                           Evaluate(baseline_copy, validation, options.batch_size));
  SensitivityAnalysis analysis;
  analysis.method = options.method;
  analysis.baseline_accuracy = baseline.accuracy;
  analysis.baseline_loss = baseline.loss;
  analysis.examples = validation.size();
  if (options.method == SensitivityMethod::kChannels) {
    return ScanChannels(model, validation, resolved, std::move(analysis));
  }
  return ScanMagnitude(model, validation, resolved, std::move(analysis));
}

double MaxSparsityWithinDrop(const LayerSensitivity& layer, double baseline_accuracy,
                             double max_drop) {
  double best = 0;
  for (const SensitivityPoint& point : layer.points) {
    if (point.accuracy >= baseline_accuracy - max_drop) best = std::max(best, point.sparsity);
  }
  return best;
}

std::string FormatSensitivityTable(const SensitivityAnalysis& analysis) {
  const bool channels = analysis.method == SensitivityMethod::kChannels;
  std::string table = absl::StrFormat(
      "accuracy (%%) with one %s pruned; baseline %.2f%% on %d examples\n",
      channels ? "channel group" : "layer", 100 * analysis.baseline_accuracy, analysis.examples);
  absl::StrAppendFormat(&table, "%-24s %9s", channels ? "group" : "layer",
                        channels ? "channels" : "weights");
  if (!analysis.layers.empty()) {
    for (const SensitivityPoint& point : analysis.layers.front().points) {
      absl::StrAppendFormat(&table, " %6.0f%%", 100 * point.sparsity);
    }
  }
  table += "\n";
  for (const LayerSensitivity& layer : analysis.layers) {
    absl::StrAppendFormat(&table, "%-24s %9d", layer.layer, layer.size);
    for (const SensitivityPoint& point : layer.points) {
      absl::StrAppendFormat(&table, " %7.2f", 100 * point.accuracy);
    }
    table += "\n";
  }
  return table;
}

}  // namespace polaris::pruning
