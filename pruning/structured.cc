#include "pruning/structured.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/dataset.h"
#include "core/graph_utils.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::pruning {
namespace {

absl::Status ValidateOptions(const StructuredPruningOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateFraction(options.fraction, "fraction"));
  for (const auto& [layer, fraction] : options.layer_fractions) {
    POLARIS_RETURN_IF_ERROR(
        ValidateFraction(fraction, absl::StrCat("layer_fractions['", layer, "']")));
  }
  for (const auto& [layer, channels] : options.layer_channels) {
    if (channels < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer_channels['", layer, "'] is ", channels,
                       "; a layer must keep at least one channel, so use 1 or more"));
    }
  }
  if (options.min_channels < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_channels must be at least 1, got ", options.min_channels));
  }
  if (options.channel_multiple < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("channel_multiple must be at least 1, got ", options.channel_multiple));
  }
  if (options.importance_examples < 1 || options.importance_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("importance_examples and importance_batch_size must be at least 1, got ",
                     options.importance_examples, " and ", options.importance_batch_size));
  }
  return absl::OkStatus();
}

std::vector<std::string> AllProducers(const ChannelDependencies& dependencies) {
  std::vector<std::string> producers;
  for (const ChannelGroup& group : dependencies.groups) {
    producers.insert(producers.end(), group.producers.begin(), group.producers.end());
  }
  return producers;
}

// Returns `scores` divided by their mean, so that groups and producers of different scale
// can be added and compared.
at::Tensor NormalizeToMeanOne(const at::Tensor& scores) {
  const double mean = scores.mean().item<double>();
  if (!(mean > 0) || !std::isfinite(mean)) return at::ones_like(scores);
  return scores / mean;
}

// Per-channel norm of every producer weight (tensors of rank 2 or more; biases are left out).
absl::StatusOr<at::Tensor> NormScores(const torch::jit::Module& model, const ChannelGroup& group,
                                      ChannelCriterion criterion) {
  at::Tensor total = at::zeros({group.channels});
  for (const ChannelTensorSlice& slice : group.producer_tensors) {
    POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, slice.path));
    if (weight.dim() < 2) continue;
    const at::Tensor rows = weight.detach().reshape({weight.size(0), -1});
    const at::Tensor norms =
        criterion == ChannelCriterion::kL1Norm ? rows.abs().sum(1) : rows.square().sum(1).sqrt();
    total += NormalizeToMeanOne(norms.to(at::kFloat));
  }
  return total;
}

// Accumulates, per group, the square of sum(weight x gradient) over the channel's parameters
// for every batch (Molchanov et al. 2019, equation 8 summed over a group), then averages.
absl::StatusOr<std::vector<at::Tensor>> TaylorScores(const torch::jit::Module& model,
                                                     const ChannelDependencies& dependencies,
                                                     const LabeledData& data,
                                                     const StructuredPruningOptions& options) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  const LabeledData subset = RandomSubset(data, options.importance_examples, options.seed);
  return CallTorch(
      "measuring Taylor channel importance", [&]() -> absl::StatusOr<std::vector<at::Tensor>> {
        // Eval mode: BatchNorm uses its running statistics (as the deployed model does) and
        // does not update them.
        copy.eval();
        for (at::Tensor parameter : copy.parameters()) parameter.set_requires_grad(true);

        std::vector<std::vector<at::Tensor>> group_parameters(dependencies.groups.size());
        std::vector<at::Tensor> scores(dependencies.groups.size());
        for (size_t g = 0; g < dependencies.groups.size(); ++g) {
          const ChannelGroup& group = dependencies.groups[g];
          if (!group.prunable) continue;
          scores[g] = at::zeros({group.channels});
          std::vector<ChannelTensorSlice> slices = group.producer_tensors;
          slices.insert(slices.end(), group.normalization_tensors.begin(),
                        group.normalization_tensors.end());
          for (const ChannelTensorSlice& slice : slices) {
            POLARIS_ASSIGN_OR_RETURN(at::Tensor tensor, FindTensor(copy, slice.path));
            if (tensor.requires_grad()) group_parameters[g].push_back(tensor);
          }
        }

        Batcher batcher(subset, options.importance_batch_size);
        for (int64_t b = 0; b < batcher.num_batches(); ++b) {
          const LabeledData batch = batcher.Batch(b);
          for (at::Tensor parameter : copy.parameters()) {
            if (parameter.grad().defined()) parameter.mutable_grad().zero_();
          }
          const at::Tensor logits = copy.forward({batch.inputs}).toTensor();
          if (logits.dim() != 2 || logits.size(0) != batch.size()) {
            return absl::InvalidArgumentError(
                "Taylor importance needs a classifier that returns [batch, classes] logits");
          }
          POLARIS_RETURN_IF_ERROR(ValidateLabeledData(batch, logits.size(1), "importance data"));
          at::cross_entropy_loss(logits, batch.labels).backward();

          at::NoGradGuard no_grad;
          for (size_t g = 0; g < scores.size(); ++g) {
            if (!scores[g].defined()) continue;
            at::Tensor contribution = at::zeros({dependencies.groups[g].channels});
            for (const at::Tensor& parameter : group_parameters[g]) {
              if (!parameter.grad().defined()) continue;
              contribution +=
                  (parameter * parameter.grad()).reshape({parameter.size(0), -1}).sum(1);
            }
            scores[g] += contribution.square();
          }
        }
        for (at::Tensor& score : scores) {
          if (score.defined()) score = NormalizeToMeanOne(score / batcher.num_batches());
        }
        return scores;
      });
}

// Rounds `keep` up to a multiple of `multiple`, without exceeding `channels`.
int64_t RoundChannels(int64_t keep, int64_t multiple, int64_t channels) {
  const int64_t rounded = (keep + multiple - 1) / multiple * multiple;
  return std::min(rounded, channels);
}

int64_t KeepForFraction(int64_t channels, double fraction,
                        const StructuredPruningOptions& options) {
  const int64_t removed = std::llround(fraction * static_cast<double>(channels));
  const int64_t keep = std::max(channels - removed, options.min_channels);
  return RoundChannels(keep, options.channel_multiple, channels);
}

// Resolves the per-layer options to one entry per group; errors on conflicts and on layers
// whose channels are fixed.
template <typename T>
absl::StatusOr<std::map<size_t, T>> ByGroup(const ChannelDependencies& dependencies,
                                            const std::map<std::string, T>& by_layer,
                                            const std::string& option) {
  std::map<size_t, T> result;
  std::map<size_t, std::string> named_by;
  for (const auto& [layer, value] : by_layer) {
    for (size_t g = 0; g < dependencies.groups.size(); ++g) {
      const ChannelGroup& group = dependencies.groups[g];
      if (std::find(group.producers.begin(), group.producers.end(), layer) ==
          group.producers.end()) {
        continue;
      }
      if (!group.prunable) {
        return absl::InvalidArgumentError(
            absl::StrCat(option, " names '", layer, "', whose channels cannot be pruned because ",
                         absl::StrJoin(group.reasons, "; "), "; remove it from ", option));
      }
      auto [it, inserted] = result.emplace(g, value);
      if (!inserted && it->second != value) {
        return absl::InvalidArgumentError(
            absl::StrCat(option, " gives different values for '", named_by[g], "' and '", layer,
                         "', whose channels are tied (", absl::StrJoin(group.producers, ", "),
                         "); give one value"));
      }
      named_by.emplace(g, layer);
    }
  }
  return result;
}

void SliceTensor(torch::jit::Module& model, const ChannelTensorSlice& slice, const at::Tensor& kept,
                 std::map<std::string, TensorShapeChange>& changes) {
  at::Tensor tensor = FindTensor(model, slice.path).value();
  at::Tensor indices = kept;
  if (slice.block > 1) {
    indices = (kept.unsqueeze(1) * slice.block + at::arange(slice.block).unsqueeze(0)).flatten();
  }
  at::Tensor sliced;
  {
    at::NoGradGuard no_grad;
    sliced = tensor.index_select(slice.dim, indices).contiguous();
  }
  sliced.set_requires_grad(tensor.requires_grad());
  auto [it, inserted] = changes.emplace(slice.path, TensorShapeChange{slice.path, {}, {}});
  if (inserted) it->second.shape_before = tensor.sizes().vec();
  it->second.shape_after = sliced.sizes().vec();
  SetTensor(model, slice.path, sliced).IgnoreError();
}

}  // namespace

std::string ChannelCriterionName(ChannelCriterion criterion) {
  switch (criterion) {
    case ChannelCriterion::kL1Norm: return "l1";
    case ChannelCriterion::kL2Norm: return "l2";
    case ChannelCriterion::kTaylor: return "taylor";
  }
  return "unknown";
}

absl::StatusOr<ChannelImportance> ComputeChannelImportance(const torch::jit::Module& model,
                                                           const StructuredPruningOptions& options,
                                                           const LabeledData* importance_data) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.criterion == ChannelCriterion::kTaylor && importance_data == nullptr) {
    return absl::InvalidArgumentError(
        "Taylor channel importance needs labeled importance data; pass training examples or "
        "use the l1 or l2 criterion");
  }

  ChannelImportance importance;
  importance.criterion = options.criterion;
  std::vector<int64_t> example_shape = options.example_shape;
  if (importance_data != nullptr && importance_data->size() > 0) {
    example_shape = importance_data->inputs.sizes().slice(1).vec();
  }
  example_shape.insert(example_shape.begin(), 1);
  POLARIS_ASSIGN_OR_RETURN(importance.example_input, CallTorch("making the example input", [&] {
                             return at::zeros(example_shape);
                           }));
  POLARIS_ASSIGN_OR_RETURN(importance.dependencies,
                           AnalyzeChannelDependencies(model, importance.example_input));
  const ChannelDependencies& dependencies = importance.dependencies;
  if (dependencies.groups.empty()) {
    return absl::InvalidArgumentError(
        "the model has no Conv2d or Linear layer whose weight is a module attribute, so there "
        "is nothing to prune");
  }

  if (options.criterion == ChannelCriterion::kTaylor) {
    POLARIS_ASSIGN_OR_RETURN(importance.scores,
                             TaylorScores(model, dependencies, *importance_data, options));
    return importance;
  }
  importance.scores.resize(dependencies.groups.size());
  for (size_t g = 0; g < dependencies.groups.size(); ++g) {
    if (!dependencies.groups[g].prunable) continue;
    POLARIS_ASSIGN_OR_RETURN(at::Tensor scores, CallTorch("measuring channel norms", [&] {
                               return NormScores(model, dependencies.groups[g], options.criterion);
                             }));
    importance.scores[g] = NormalizeToMeanOne(scores);
  }
  return importance;
}

absl::StatusOr<std::map<std::string, int64_t>> ChooseChannelCounts(
    const ChannelImportance& importance, const StructuredPruningOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  const ChannelDependencies& dependencies = importance.dependencies;
  const std::vector<std::string> producers = AllProducers(dependencies);
  POLARIS_RETURN_IF_ERROR(
      ValidateLayerNames(KeysOf(options.layer_fractions), producers, "layer_fractions"));
  POLARIS_RETURN_IF_ERROR(
      ValidateLayerNames(KeysOf(options.layer_channels), producers, "layer_channels"));
  POLARIS_RETURN_IF_ERROR(
      ValidateLayerNames(options.excluded_layers, producers, "excluded_layers"));
  POLARIS_ASSIGN_OR_RETURN(auto fractions,
                           ByGroup(dependencies, options.layer_fractions, "layer_fractions"));
  POLARIS_ASSIGN_OR_RETURN(auto channels,
                           ByGroup(dependencies, options.layer_channels, "layer_channels"));

  std::set<size_t> excluded;
  for (const std::string& layer : options.excluded_layers) {
    for (size_t g = 0; g < dependencies.groups.size(); ++g) {
      const auto& group_producers = dependencies.groups[g].producers;
      if (std::find(group_producers.begin(), group_producers.end(), layer) !=
          group_producers.end()) {
        excluded.insert(g);
      }
    }
  }

  std::map<std::string, int64_t> counts;
  std::vector<size_t> shared;  // Groups pruned by the common `fraction`.
  bool any_prunable = false;
  for (size_t g = 0; g < dependencies.groups.size(); ++g) {
    const ChannelGroup& group = dependencies.groups[g];
    counts[group.name] = group.channels;
    if (!group.prunable) continue;
    any_prunable = true;
    if (excluded.count(g) > 0) continue;
    if (auto it = channels.find(g); it != channels.end()) {
      if (it->second > group.channels) {
        return absl::InvalidArgumentError(absl::StrCat("layer_channels for group '", group.name,
                                                       "' is ", it->second, " but it has only ",
                                                       group.channels, " channels"));
      }
      counts[group.name] = it->second;
    } else if (auto it = fractions.find(g); it != fractions.end()) {
      counts[group.name] = KeepForFraction(group.channels, it->second, options);
    } else {
      shared.push_back(g);
    }
  }
  if (!any_prunable) {
    std::vector<std::string> reasons;
    for (const ChannelGroup& group : dependencies.groups) {
      reasons.push_back(absl::StrCat(group.name, ": ", absl::StrJoin(group.reasons, "; ")));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "no layer of the model can be pruned structurally (", absl::StrJoin(reasons, " | "), ")"));
  }

  if (options.scope == PruningScope::kPerLayer) {
    for (size_t g : shared) {
      const ChannelGroup& group = dependencies.groups[g];
      counts[group.name] = KeepForFraction(group.channels, options.fraction, options);
    }
    return counts;
  }

  // Global: remove the least important channels of all shared groups together; scores are
  // normalized per group, so this compares channels relative to their own layer.
  std::vector<std::tuple<float, size_t, int64_t>> ranked;
  int64_t total = 0;
  for (size_t g : shared) {
    const at::Tensor scores = importance.scores[g].contiguous();
    const float* data = scores.data_ptr<float>();
    for (int64_t c = 0; c < scores.numel(); ++c) ranked.emplace_back(data[c], g, c);
    total += dependencies.groups[g].channels;
  }
  std::sort(ranked.begin(), ranked.end());
  std::map<size_t, int64_t> keep;
  for (size_t g : shared) keep[g] = dependencies.groups[g].channels;
  int64_t to_remove = std::llround(options.fraction * static_cast<double>(total));
  for (const auto& [score, g, channel] : ranked) {
    if (to_remove == 0) break;
    if (keep[g] <= options.min_channels) continue;
    --keep[g];
    --to_remove;
  }
  for (size_t g : shared) {
    const ChannelGroup& group = dependencies.groups[g];
    counts[group.name] = RoundChannels(keep[g], options.channel_multiple, group.channels);
  }
  return counts;
}

absl::Status PruneChannelsInPlace(torch::jit::Module& model, const ChannelImportance& importance,
                                  const std::map<std::string, int64_t>& channels,
                                  StructuredPruningResult* report) {
  const ChannelDependencies& dependencies = importance.dependencies;
  std::vector<std::string> group_names;
  for (const ChannelGroup& group : dependencies.groups) group_names.push_back(group.name);
  POLARIS_RETURN_IF_ERROR(ValidateLayerNames(KeysOf(channels), group_names, "channel counts"));

  std::vector<std::optional<int64_t>> wanted(dependencies.groups.size());
  for (size_t g = 0; g < dependencies.groups.size(); ++g) {
    const ChannelGroup& group = dependencies.groups[g];
    auto it = channels.find(group.name);
    if (it == channels.end() || it->second == group.channels) continue;
    if (it->second < 1 || it->second > group.channels) {
      return absl::InvalidArgumentError(
          absl::StrCat("group '", group.name, "' has ", group.channels,
                       " channels, so it can keep 1 to ", group.channels, ", not ", it->second));
    }
    if (!group.prunable) {
      return absl::InvalidArgumentError(absl::StrCat("group '", group.name,
                                                     "' cannot be pruned because ",
                                                     absl::StrJoin(group.reasons, "; ")));
    }
    wanted[g] = it->second;
  }

  torch::jit::Module& pruned = model;
  StructuredPruningResult& result = *report;
  result = StructuredPruningResult();
  result.parameters_before = ParameterCount(model);
  const bool was_training = model.is_training();
  std::map<std::string, TensorShapeChange> changes;
  absl::Status sliced = CallTorch("removing channels", [&]() -> absl::Status {
    for (size_t g = 0; g < dependencies.groups.size(); ++g) {
      const ChannelGroup& group = dependencies.groups[g];
      ChannelGroupReport report;
      report.name = group.name;
      report.producers = group.producers;
      report.normalizations = group.normalizations;
      report.consumers = group.consumers;
      report.channels_before = group.channels;
      report.channels_after = group.channels;
      if (!wanted[g].has_value()) {
        report.note = group.prunable ? "kept whole" : absl::StrJoin(group.reasons, "; ");
        result.groups.push_back(std::move(report));
        continue;
      }
      const at::Tensor kept =
          std::get<0>(std::get<1>(importance.scores[g].topk(*wanted[g])).sort());
      for (const auto* slices :
           {&group.producer_tensors, &group.normalization_tensors, &group.consumer_tensors}) {
        for (const ChannelTensorSlice& slice : *slices) SliceTensor(pruned, slice, kept, changes);
      }
      report.pruned = true;
      report.channels_after = *wanted[g];
      const int64_t* data = kept.data_ptr<int64_t>();
      report.kept_channels.assign(data, data + kept.numel());
      result.groups.push_back(std::move(report));
    }
    return absl::OkStatus();
  });
  POLARIS_RETURN_IF_ERROR(sliced);
  for (auto& [path, change] : changes) result.tensors.push_back(std::move(change));

  absl::Status runs = CallTorch("running the pruned model", [&] {
    at::NoGradGuard no_grad;
    pruned.eval();
    pruned.forward({importance.example_input});
  });
  if (!runs.ok()) {
    return absl::InternalError(absl::StrCat(
        "the pruned model fails to run, which means the channel analysis missed a dependency; "
        "exclude the layers involved and report the model: ",
        runs.message()));
  }
  pruned.train(was_training);
  result.parameters_after = ParameterCount(pruned);
  return absl::OkStatus();
}

absl::StatusOr<StructuredPruningResult> PruneChannelsToCounts(
    const torch::jit::Module& model, const ChannelImportance& importance,
    const std::map<std::string, int64_t>& channels) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module pruned, CloneModel(model));
  StructuredPruningResult result;
  POLARIS_RETURN_IF_ERROR(PruneChannelsInPlace(pruned, importance, channels, &result));
  result.model = std::move(pruned);
  return result;
}

absl::StatusOr<StructuredPruningResult> PruneChannels(const torch::jit::Module& model,
                                                      const StructuredPruningOptions& options,
                                                      const LabeledData* importance_data) {
  POLARIS_ASSIGN_OR_RETURN(ChannelImportance importance,
                           ComputeChannelImportance(model, options, importance_data));
  POLARIS_ASSIGN_OR_RETURN(auto counts, ChooseChannelCounts(importance, options));
  POLARIS_ASSIGN_OR_RETURN(StructuredPruningResult result,
                           PruneChannelsToCounts(model, importance, counts));
  for (ChannelGroupReport& group : result.groups) {
    for (const std::string& layer : options.excluded_layers) {
      if (std::find(group.producers.begin(), group.producers.end(), layer) !=
          group.producers.end()) {
        group.note = absl::StrCat("kept whole because excluded_layers names '", layer, "'");
      }
    }
  }
  return result;
}

std::string FormatStructuredPruningReport(const StructuredPruningResult& result) {
  std::string table = absl::StrFormat("%-24s %9s %9s  %s\n", "group", "channels", "kept", "note");
  for (const ChannelGroupReport& group : result.groups) {
    absl::StrAppendFormat(
        &table, "%-24s %9d %9d  %s\n", group.name, group.channels_before, group.channels_after,
        group.pruned ? absl::StrCat("pruned; also shrinks ",
                                    group.consumers.empty() ? std::string("nothing")
                                                            : absl::StrJoin(group.consumers, ", "))
                     : group.note);
  }
  const double ratio = result.parameters_after > 0
                           ? static_cast<double>(result.parameters_before) /
                                 static_cast<double>(result.parameters_after)
                           : 0.0;
  absl::StrAppendFormat(&table, "parameters: %d -> %d (%.2fx fewer)\n", result.parameters_before,
                        result.parameters_after, ratio);
  return table;
}

}  // namespace polaris::pruning
