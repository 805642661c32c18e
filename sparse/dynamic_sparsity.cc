#include "sparse/dynamic_sparsity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/graph_utils.h"
#include "core/layer_analysis.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "sparse/formats.h"

namespace polaris::sparse {
namespace {

constexpr double kPi = 3.14159265358979323846;

absl::Status ValidateOptions(const DynamicSparsityOptions& options, int64_t total_steps) {
  if (!(options.sparsity >= 0 && options.sparsity < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sparsity must lie in [0, 1), got ", options.sparsity));
  }
  if (options.update_interval < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("update_interval must be at least 1 step, got ", options.update_interval));
  }
  if (!(options.drop_fraction > 0 && options.drop_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("drop_fraction must lie in (0, 1], got ", options.drop_fraction));
  }
  if (options.end_step <= 0 && !(options.end_fraction > 0 && options.end_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("end_fraction must lie in (0, 1], got ", options.end_fraction));
  }
  if (options.example_shape.empty() ||
      *std::min_element(options.example_shape.begin(), options.example_shape.end()) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("example_shape must list the positive sizes of one input example, got [",
                     absl::StrJoin(options.example_shape, ", "), "]"));
  }
  if (total_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("training must run at least 1 step, got ", total_steps));
  }
  return absl::OkStatus();
}

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t product = 1;
  for (int64_t size : shape) product *= size;
  return product;
}

}  // namespace

absl::StatusOr<torch::jit::Module> CopyForTraining(const torch::jit::Module& model) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  POLARIS_RETURN_IF_ERROR(CallTorch("making the copied parameters trainable", [&] {
    for (const auto& parameter : copy.named_parameters(/*recurse=*/true)) {
      const bool requires_grad = parameter.value.requires_grad();
      const absl::Status status =
          SetTensor(copy, parameter.name, parameter.value.detach().requires_grad_(requires_grad));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }));
  return copy;
}

std::string MethodName(DynamicSparsityMethod method) {
  switch (method) {
    case DynamicSparsityMethod::kStatic:
      return "static";
    case DynamicSparsityMethod::kSet:
      return "set";
    case DynamicSparsityMethod::kRigL:
      return "rigl";
  }
  return "unknown";
}

std::string DistributionName(SparsityDistribution distribution) {
  return distribution == SparsityDistribution::kUniform ? "uniform" : "erk";
}

std::string DropScheduleName(DropSchedule schedule) {
  return schedule == DropSchedule::kCosine ? "cosine" : "constant";
}

absl::StatusOr<std::vector<double>> LayerDensities(const std::vector<std::vector<int64_t>>& shapes,
                                                   double sparsity,
                                                   SparsityDistribution distribution) {
  if (!(sparsity >= 0 && sparsity < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("sparsity must lie in [0, 1), got ", sparsity));
  }
  for (const std::vector<int64_t>& shape : shapes) {
    if (shape.empty() || *std::min_element(shape.begin(), shape.end()) < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight shape [", absl::StrJoin(shape, ", "), "] has no elements"));
    }
  }
  std::vector<double> densities(shapes.size(), 1.0 - sparsity);
  if (distribution == SparsityDistribution::kUniform) return densities;

  // Erdos-Renyi-Kernel: density_l = epsilon * raw_l with raw_l = sum(shape) / prod(shape),
  // epsilon chosen so the kept weights add up to the budget. Layers whose density would pass
  // 1 are made dense and epsilon is solved again for the others.
  double total = 0;
  std::vector<double> raw(shapes.size());
  for (size_t l = 0; l < shapes.size(); ++l) {
    const double elements = static_cast<double>(Product(shapes[l]));
    double dimension_sum = 0;
    for (int64_t size : shapes[l]) dimension_sum += static_cast<double>(size);
    raw[l] = dimension_sum / elements;
    total += elements;
  }
  const double budget = (1.0 - sparsity) * total;
  std::vector<bool> dense(shapes.size(), false);
  double epsilon = 0;
  while (true) {
    double dense_elements = 0;
    double weighted_raw = 0;
    for (size_t l = 0; l < shapes.size(); ++l) {
      const double elements = static_cast<double>(Product(shapes[l]));
      if (dense[l]) {
        dense_elements += elements;
      } else {
        weighted_raw += raw[l] * elements;
      }
    }
    if (weighted_raw == 0) break;
    epsilon = (budget - dense_elements) / weighted_raw;
    bool changed = false;
    for (size_t l = 0; l < shapes.size(); ++l) {
      if (!dense[l] && epsilon * raw[l] > 1.0) {
        dense[l] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  for (size_t l = 0; l < shapes.size(); ++l) {
    densities[l] = dense[l] ? 1.0 : std::max(0.0, epsilon * raw[l]);
  }
  return densities;
}

absl::StatusOr<std::unique_ptr<DynamicSparsity>> DynamicSparsity::Create(
    torch::jit::Module& model, const DynamicSparsityOptions& options, int64_t total_steps) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options, total_steps));
  std::vector<int64_t> example_shape = {1};
  example_shape.insert(example_shape.end(), options.example_shape.begin(),
                       options.example_shape.end());
  absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(model, at::zeros(example_shape));
  if (!analysis.ok()) {
    return Annotate(analysis.status(), "dynamic sparsity: finding the layers to sparsify");
  }

  const int64_t end_step = options.end_step > 0
                               ? options.end_step
                               : static_cast<int64_t>(std::floor(options.end_fraction *
                                                                 static_cast<double>(total_steps)));
  std::unique_ptr<DynamicSparsity> sparsity(new DynamicSparsity(options, end_step));
  std::set<std::string> dense_layers(options.dense_layers.begin(), options.dense_layers.end());
  std::set<std::string> seen;
  std::vector<std::vector<int64_t>> shapes;
  for (const LayerInfo& info : analysis->layers) {
    if (info.kind == LayerKind::kBatchNorm || info.weight_path.empty()) continue;
    if (!seen.insert(info.weight_path).second) continue;
    if (dense_layers.erase(info.name) > 0) continue;
    POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, info.weight_path));
    SparseLayerState layer;
    layer.layer = info.name;
    layer.weight_path = info.weight_path;
    layer.weight = weight;
    sparsity->layers_.push_back(layer);
    shapes.emplace_back(weight.sizes().begin(), weight.sizes().end());
  }
  if (!dense_layers.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense_layers names no Linear or Conv2d layer of the model: ",
                     absl::StrJoin(dense_layers, ", ")));
  }
  if (sparsity->layers_.empty()) {
    return absl::InvalidArgumentError(
        "the model has no Linear or Conv2d layer to sparsify (an empty model)");
  }
  POLARIS_ASSIGN_OR_RETURN(std::vector<double> densities,
                           LayerDensities(shapes, options.sparsity, options.distribution));

  POLARIS_RETURN_IF_ERROR(CallTorch("drawing the initial masks", [&] {
    at::Generator generator = at::detail::createCPUGenerator(options.seed);
    at::NoGradGuard no_grad;
    for (size_t l = 0; l < sparsity->layers_.size(); ++l) {
      SparseLayerState& layer = sparsity->layers_[l];
      const int64_t elements = layer.weight.numel();
      layer.active = std::clamp<int64_t>(
          static_cast<int64_t>(std::llround(densities[l] * static_cast<double>(elements))), 1,
          elements);
      layer.target_sparsity = 1.0 - static_cast<double>(layer.active) / elements;
      const at::Tensor chosen = at::randperm(elements, generator).slice(0, 0, layer.active);
      layer.mask = at::zeros({elements}, at::kBool)
                       .index_fill_(0, chosen, true)
                       .reshape(layer.weight.sizes());
      layer.weight.masked_fill_(layer.mask.logical_not(), 0.0);
    }
  }));
  return sparsity;
}

void DynamicSparsity::InstallHooks(TrainOptions& options) {
  auto previous_backward = options.after_backward;
  options.after_backward = [this, previous_backward](int64_t step) -> absl::Status {
    if (previous_backward) POLARIS_RETURN_IF_ERROR(previous_backward(step));
    return AfterBackward(step);
  };
  auto previous_step = options.after_step;
  options.after_step = [this, previous_step](int64_t step) -> absl::Status {
    if (previous_step) POLARIS_RETURN_IF_ERROR(previous_step(step));
    return AfterStep(step);
  };
}

double DynamicSparsity::DropFraction(int64_t step) const {
  if (step >= end_step_) return 0.0;
  if (options_.drop_schedule == DropSchedule::kConstant) return options_.drop_fraction;
  const double progress = static_cast<double>(step) / static_cast<double>(end_step_);
  return options_.drop_fraction / 2.0 * (1.0 + std::cos(kPi * progress));
}

int64_t DynamicSparsity::UpdateLayer(SparseLayerState& layer, int64_t count) {
  const at::Tensor weight = layer.weight.detach().flatten();
  const at::Tensor mask = layer.mask.flatten();
  const float infinity = std::numeric_limits<float>::infinity();

  // Drop: the `count` active weights of smallest magnitude.
  const at::Tensor drop_scores = weight.abs().masked_fill(mask.logical_not(), infinity);
  const at::Tensor dropped = std::get<1>(drop_scores.topk(count, 0, /*largest=*/false));
  const at::Tensor after_drop = mask.clone().index_fill_(0, dropped, false);

  // Grow: the `count` connections inactive after the drop with the largest score.
  at::Tensor grow_scores;
  if (options_.method == DynamicSparsityMethod::kRigL) {
    const at::Tensor gradient = layer.weight.grad();
    grow_scores = gradient.defined() ? gradient.detach().flatten().abs() : at::zeros_like(weight);
  } else {
    at::Generator generator =
        at::detail::createCPUGenerator(options_.seed * 1000003 + ++random_draws_);
    grow_scores = at::rand(weight.sizes(), generator);
  }
  grow_scores = grow_scores.masked_fill(after_drop, -infinity);
  const at::Tensor grown = std::get<1>(grow_scores.topk(count, 0, /*largest=*/true));
  const at::Tensor new_mask = after_drop.index_fill_(0, grown, true);

  // Connections that were inactive before this update start at zero.
  const at::Tensor fresh = new_mask.logical_and(mask.logical_not());
  {
    at::NoGradGuard no_grad;
    layer.weight.masked_fill_(fresh.reshape(layer.weight.sizes()), 0.0);
  }
  layer.mask = new_mask.reshape(layer.weight.sizes());
  return fresh.sum().item<int64_t>();
}

absl::Status DynamicSparsity::AfterBackward(int64_t step) {
  return CallTorch("updating the sparse masks", [&] {
    const bool update = options_.method != DynamicSparsityMethod::kStatic && step > 0 &&
                        step < end_step_ && step % options_.update_interval == 0;
    if (update) {
      const double fraction = DropFraction(step);
      for (SparseLayerState& layer : layers_) {
        if (layer.active == layer.weight.numel()) continue;
        const int64_t count =
            static_cast<int64_t>(std::floor(fraction * static_cast<double>(layer.active)));
        if (count > 0) grown_connections_ += UpdateLayer(layer, count);
      }
      ++updates_;
    }
    at::NoGradGuard no_grad;
    for (SparseLayerState& layer : layers_) {
      at::Tensor gradient = layer.weight.mutable_grad();
      if (gradient.defined()) gradient.masked_fill_(layer.mask.logical_not(), 0.0);
    }
  });
}

absl::Status DynamicSparsity::AfterStep(int64_t step) {
  return CallTorch("applying the sparse masks", [&] {
    at::NoGradGuard no_grad;
    for (SparseLayerState& layer : layers_) {
      layer.weight.masked_fill_(layer.mask.logical_not(), 0.0);
    }
  });
}

absl::StatusOr<DynamicSparseTrainingResult> TrainDynamicSparse(
    const torch::jit::Module& model, const LabeledData& data, const TrainOptions& train_options,
    const DynamicSparsityOptions& options) {
  if (train_options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be at least 1, got ", train_options.batch_size));
  }
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module trained, CopyForTraining(model));
  const int64_t steps_per_epoch =
      (data.size() + train_options.batch_size - 1) / train_options.batch_size;
  int64_t total_steps = std::max(train_options.epochs, 1) * steps_per_epoch;
  if (train_options.max_steps > 0) total_steps = std::min(total_steps, train_options.max_steps);
  POLARIS_ASSIGN_OR_RETURN(std::unique_ptr<DynamicSparsity> sparsity,
                           DynamicSparsity::Create(trained, options, total_steps));

  TrainOptions hooked = train_options;
  sparsity->InstallHooks(hooked);
  DynamicSparseTrainingResult result;
  POLARIS_ASSIGN_OR_RETURN(result.training, Train(trained, data, hooked));

  int64_t zeros = 0;
  int64_t parameters = 0;
  for (const SparseLayerState& layer : sparsity->layers()) {
    SparseLayerReport report;
    report.layer = layer.layer;
    report.parameters = layer.weight.numel();
    report.target_sparsity = layer.target_sparsity;
    report.final_sparsity = Sparsity(layer.weight.detach());
    zeros += static_cast<int64_t>(std::llround(report.final_sparsity * report.parameters));
    parameters += report.parameters;
    result.layers.push_back(report);
  }
  result.overall_sparsity = static_cast<double>(zeros) / static_cast<double>(parameters);
  result.updates = sparsity->updates();
  result.grown_connections = sparsity->grown_connections();
  result.model = trained;
  return result;
}

}  // namespace polaris::sparse
