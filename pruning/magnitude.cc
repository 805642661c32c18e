#include "pruning/magnitude.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/graph_utils.h"
#include "core/layer_analysis.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::pruning {
namespace {

struct PrunableLayer {
  std::string name;
  std::string weight_path;
};

// Lists the Conv2d and Linear layers whose weight is a module attribute, each weight once
// (a layer called twice appears once).
absl::StatusOr<std::vector<PrunableLayer>> FindLayers(const torch::jit::Module& model,
                                                      const std::vector<int64_t>& example_shape) {
  std::vector<int64_t> shape = example_shape;
  shape.insert(shape.begin(), 1);
  POLARIS_ASSIGN_OR_RETURN(at::Tensor example,
                           CallTorch("making the example input", [&] { return at::zeros(shape); }));
  POLARIS_ASSIGN_OR_RETURN(ModelAnalysis analysis, AnalyzeModel(model, example));
  std::vector<PrunableLayer> layers;
  std::set<std::string> seen;
  for (const LayerInfo& layer : analysis.layers) {
    if (layer.kind == LayerKind::kBatchNorm || layer.weight_path.empty()) continue;
    if (!seen.insert(layer.weight_path).second) continue;
    layers.push_back({layer.name, layer.weight_path});
  }
  return layers;
}

std::vector<std::string> NamesOf(const std::vector<PrunableLayer>& layers) {
  std::vector<std::string> names;
  for (const PrunableLayer& layer : layers) names.push_back(layer.name);
  return names;
}

absl::Status ValidateOptions(const UnstructuredPruningOptions& options) {
  if (options.nm.has_value()) {
    POLARIS_RETURN_IF_ERROR(ValidateNmPattern(*options.nm));
  } else {
    POLARIS_RETURN_IF_ERROR(ValidateFraction(options.sparsity, "sparsity"));
  }
  for (const auto& [layer, sparsity] : options.layer_sparsity) {
    POLARIS_RETURN_IF_ERROR(
        ValidateFraction(sparsity, absl::StrCat("layer_sparsity['", layer, "']")));
  }
  if (!(options.min_density >= 0 && options.min_density <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_density must lie in [0, 1], got ", options.min_density));
  }
  return absl::OkStatus();
}

int64_t CountZeros(const at::Tensor& weight, const at::Tensor& mask) {
  return (weight.detach().eq(0) | mask.logical_not()).sum().item<int64_t>();
}

// Masks the layers in `global` together: each keeps its ceil(min_density * size) largest
// weights, and the round(sparsity * total) smallest of the others are removed.
absl::Status GlobalMasks(const std::vector<PrunableLayer>& global,
                         const std::vector<at::Tensor>& weights,
                         const UnstructuredPruningOptions& options,
                         std::map<std::string, at::Tensor>& masks) {
  int64_t total = 0;
  int64_t protected_count = 0;
  std::vector<at::Tensor> scores;
  for (const at::Tensor& weight : weights) {
    at::Tensor score = weight.detach().abs().flatten().to(at::kFloat).clone();
    const int64_t keep = static_cast<int64_t>(std::ceil(options.min_density * score.numel()));
    if (keep > 0) {
      const at::Tensor largest = std::get<1>(score.topk(std::min(keep, score.numel())));
      score.index_fill_(0, largest, std::numeric_limits<float>::infinity());
    }
    protected_count += std::min(keep, score.numel());
    total += score.numel();
    scores.push_back(score);
  }
  const int64_t to_remove = std::llround(options.sparsity * static_cast<double>(total));
  if (to_remove > total - protected_count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "global sparsity %g cannot be reached while every layer keeps min_density %g of its "
        "weights (at most %.4f is possible); lower sparsity or min_density",
        options.sparsity, options.min_density,
        static_cast<double>(total - protected_count) / static_cast<double>(total)));
  }
  const at::Tensor all = at::cat(scores);
  const at::Tensor order = std::get<1>(
      at::sort(all, /*stable=*/c10::optional<bool>(true), /*dim=*/0, /*descending=*/false));
  at::Tensor keep = at::ones({total}, at::kBool);
  keep.index_fill_(0, order.slice(0, 0, to_remove), false);
  int64_t offset = 0;
  for (size_t i = 0; i < global.size(); ++i) {
    const int64_t size = weights[i].numel();
    masks[global[i].weight_path] = keep.slice(0, offset, offset + size).reshape(weights[i].sizes());
    offset += size;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateNmPattern(const NmPattern& pattern) {
  if (pattern.n >= 1 && pattern.m >= 1 && pattern.n <= pattern.m) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("an N:M pattern needs 1 <= N <= M, got N = ", pattern.n, " and M = ", pattern.m,
                   "; for example 2:4 keeps 2 of every 4 weights"));
}

absl::StatusOr<at::Tensor> MagnitudeMask(const at::Tensor& weight, double sparsity) {
  POLARIS_RETURN_IF_ERROR(ValidateFraction(sparsity, "sparsity"));
  if (!weight.defined() || weight.numel() == 0) {
    return absl::InvalidArgumentError("cannot compute a magnitude mask of an empty tensor");
  }
  return CallTorch("computing a magnitude mask", [&] {
    const at::Tensor scores = weight.detach().abs().flatten().to(at::kFloat);
    const int64_t to_remove = std::llround(sparsity * static_cast<double>(scores.numel()));
    at::Tensor keep = at::ones({scores.numel()}, at::kBool);
    if (to_remove > 0) {
      const at::Tensor order = std::get<1>(
          at::sort(scores, /*stable=*/c10::optional<bool>(true), /*dim=*/0, /*descending=*/false));
      keep.index_fill_(0, order.slice(0, 0, to_remove), false);
    }
    return keep.reshape(weight.sizes());
  });
}

absl::StatusOr<at::Tensor> NmMask(const at::Tensor& weight, const NmPattern& pattern) {
  POLARIS_RETURN_IF_ERROR(ValidateNmPattern(pattern));
  if (!weight.defined() || weight.dim() < 2 || weight.numel() == 0) {
    return absl::InvalidArgumentError(
        "an N:M mask needs a non-empty weight of rank 2 (Linear) or 4 (Conv2d)");
  }
  const int64_t inputs = weight.numel() / weight.size(0);
  if (inputs % pattern.m != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the input dimension of the weight (", inputs,
                                                   ") is not a multiple of M = ", pattern.m));
  }
  return CallTorch("computing an N:M mask", [&] {
    const at::Tensor groups = weight.detach()
                                  .abs()
                                  .to(at::kFloat)
                                  .reshape({weight.size(0), inputs / pattern.m, pattern.m});
    const at::Tensor largest = std::get<1>(groups.topk(pattern.n, /*dim=*/2));
    at::Tensor keep = at::zeros(groups.sizes(), at::kBool);
    keep.scatter_(2, largest, true);
    return keep.reshape(weight.sizes());
  });
}

absl::StatusOr<PruningMasks> ComputeMagnitudeMasks(const torch::jit::Module& model,
                                                   const UnstructuredPruningOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  POLARIS_ASSIGN_OR_RETURN(std::vector<PrunableLayer> layers,
                           FindLayers(model, options.example_shape));
  const std::vector<std::string> names = NamesOf(layers);
  POLARIS_RETURN_IF_ERROR(
      ValidateLayerNames(KeysOf(options.layer_sparsity), names, "layer_sparsity"));
  POLARIS_RETURN_IF_ERROR(ValidateLayerNames(options.excluded_layers, names, "excluded_layers"));
  const std::set<std::string> excluded(options.excluded_layers.begin(),
                                       options.excluded_layers.end());
  if (layers.size() <= excluded.size()) {
    return absl::InvalidArgumentError(
        layers.empty() ? "the model has no Conv2d or Linear layer whose weight is a module "
                         "attribute, so there is nothing to prune"
                       : "every Conv2d and Linear layer is excluded, so there is nothing to "
                         "prune; remove some from excluded_layers");
  }

  PruningMasks result;
  absl::Status computed = CallTorch("computing pruning masks", [&]() -> absl::Status {
    std::vector<PrunableLayer> global;
    std::vector<at::Tensor> global_weights;
    std::map<std::string, std::string> notes;
    for (const PrunableLayer& layer : layers) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, layer.weight_path));
      if (excluded.count(layer.name) > 0) {
        notes[layer.name] = "excluded";
        continue;
      }
      if (options.nm.has_value()) {
        absl::StatusOr<at::Tensor> mask = NmMask(weight, *options.nm);
        if (mask.ok()) {
          result.masks[layer.weight_path] = *mask;
        } else {
          notes[layer.name] = absl::StrCat("left dense: ", mask.status().message());
        }
        continue;
      }
      auto override_it = options.layer_sparsity.find(layer.name);
      if (override_it == options.layer_sparsity.end() && options.scope == PruningScope::kGlobal) {
        global.push_back(layer);
        global_weights.push_back(weight);
        continue;
      }
      const double sparsity =
          override_it != options.layer_sparsity.end() ? override_it->second : options.sparsity;
      POLARIS_ASSIGN_OR_RETURN(result.masks[layer.weight_path], MagnitudeMask(weight, sparsity));
    }
    if (!global.empty()) {
      POLARIS_RETURN_IF_ERROR(GlobalMasks(global, global_weights, options, result.masks));
    }

    int64_t total = 0;
    int64_t zeros = 0;
    for (const PrunableLayer& layer : layers) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, layer.weight_path));
      LayerSparsity entry;
      entry.layer = layer.name;
      entry.weight_path = layer.weight_path;
      entry.weights = weight.numel();
      auto mask = result.masks.find(layer.weight_path);
      entry.zeros = mask != result.masks.end() ? CountZeros(weight, mask->second)
                                               : weight.detach().eq(0).sum().item<int64_t>();
      entry.sparsity = static_cast<double>(entry.zeros) / entry.weights;
      if (auto note = notes.find(layer.name); note != notes.end()) entry.note = note->second;
      if (mask != result.masks.end()) {
        total += entry.weights;
        zeros += entry.zeros;
      }
      result.layers.push_back(entry);
    }
    result.sparsity = total > 0 ? static_cast<double>(zeros) / total : 0.0;
    return absl::OkStatus();
  });
  POLARIS_RETURN_IF_ERROR(computed);
  return result;
}

absl::Status ApplyMasks(torch::jit::Module& model, PruningMasks& masks) {
  return CallTorch("applying pruning masks", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    for (const auto& [path, mask] : masks.masks) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, path));
      if (weight.sizes() != mask.sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the mask for '", path, "' has shape [", absl::StrJoin(mask.sizes(), ", "),
                         "] but the weight has [", absl::StrJoin(weight.sizes(), ", "), "]"));
      }
      // In place, so that an optimizer holding the parameter keeps seeing the same tensor.
      weight.mul_(mask);
    }
    int64_t total = 0;
    int64_t zeros = 0;
    for (LayerSparsity& layer : masks.layers) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, layer.weight_path));
      layer.zeros = weight.eq(0).sum().item<int64_t>();
      layer.sparsity = static_cast<double>(layer.zeros) / layer.weights;
      if (masks.masks.count(layer.weight_path) > 0) {
        total += layer.weights;
        zeros += layer.zeros;
      }
    }
    masks.sparsity = total > 0 ? static_cast<double>(zeros) / total : 0.0;
    return absl::OkStatus();
  });
}

absl::Status ReapplyMasks(torch::jit::Module& model, const PruningMasks& masks) {
  return CallTorch("applying pruning masks", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    for (const auto& [path, mask] : masks.masks) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, path));
      weight.mul_(mask);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<UnstructuredPruningResult> PruneMagnitude(
    const torch::jit::Module& model, const UnstructuredPruningOptions& options) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  POLARIS_ASSIGN_OR_RETURN(PruningMasks masks, ComputeMagnitudeMasks(copy, options));
  POLARIS_RETURN_IF_ERROR(ApplyMasks(copy, masks));
  return UnstructuredPruningResult{std::move(copy), std::move(masks)};
}

absl::StatusOr<std::vector<LayerSparsity>> MeasureLayerSparsity(
    const torch::jit::Module& model, const std::vector<int64_t>& example_shape) {
  POLARIS_ASSIGN_OR_RETURN(std::vector<PrunableLayer> layers, FindLayers(model, example_shape));
  std::vector<LayerSparsity> result;
  for (const PrunableLayer& layer : layers) {
    POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, layer.weight_path));
    LayerSparsity entry;
    entry.layer = layer.name;
    entry.weight_path = layer.weight_path;
    entry.weights = weight.numel();
    POLARIS_ASSIGN_OR_RETURN(entry.zeros, CallTorch("counting zeros", [&] {
                               return weight.detach().eq(0).sum().item<int64_t>();
                             }));
    entry.sparsity = static_cast<double>(entry.zeros) / entry.weights;
    result.push_back(entry);
  }
  return result;
}

std::string FormatLayerSparsity(const std::vector<LayerSparsity>& layers) {
  std::string table =
      absl::StrFormat("%-24s %10s %10s %9s  %s\n", "layer", "weights", "zeros", "sparsity", "note");
  for (const LayerSparsity& layer : layers) {
    absl::StrAppendFormat(&table, "%-24s %10d %10d %8.2f%%  %s\n", layer.layer, layer.weights,
                          layer.zeros, 100.0 * layer.sparsity, layer.note);
  }
  return table;
}

}  // namespace polaris::pruning
