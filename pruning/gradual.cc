#include "pruning/gradual.h"

#include <algorithm>
#include <string>
#include <utility>

#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::pruning {
namespace {

absl::Status CheckNoHooks(const TrainOptions& options) {
  if (options.after_backward || options.after_step) {
    return absl::InvalidArgumentError(
        "the training options already have after_backward or after_step hooks; masked "
        "training sets its own, so pass options without hooks");
  }
  return absl::OkStatus();
}

int64_t TotalSteps(const LabeledData& data, const TrainOptions& options) {
  const int64_t per_epoch = (data.size() + options.batch_size - 1) / options.batch_size;
  int64_t total = std::max(options.epochs, 1) * per_epoch;
  if (options.max_steps > 0) total = std::min(total, options.max_steps);
  return total;
}

// The pruning options in effect at `step`: every sparsity on its own cubic curve.
UnstructuredPruningOptions OptionsAtStep(const GradualPruningOptions& options,
                                         const GradualSchedule& schedule, int64_t step) {
  UnstructuredPruningOptions at_step = options.pruning;
  at_step.sparsity = ScheduledSparsity(schedule, step);
  for (auto& [layer, sparsity] : at_step.layer_sparsity) {
    GradualSchedule layer_schedule = schedule;
    layer_schedule.final_sparsity = sparsity;
    layer_schedule.initial_sparsity = std::min(schedule.initial_sparsity, sparsity);
    sparsity = ScheduledSparsity(layer_schedule, step);
  }
  return at_step;
}

}  // namespace

absl::Status ZeroMaskedGradients(torch::jit::Module& model, const PruningMasks& masks) {
  return CallTorch("masking gradients", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    for (const auto& [path, mask] : masks.masks) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, path));
      if (weight.grad().defined()) weight.mutable_grad().mul_(mask);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<GradualPruningResult> GradualPrune(const torch::jit::Module& model,
                                                  const LabeledData& train,
                                                  const GradualPruningOptions& options) {
  POLARIS_RETURN_IF_ERROR(CheckNoHooks(options.train));
  if (options.pruning.nm.has_value()) {
    return absl::InvalidArgumentError(
        "gradual pruning schedules a sparsity, not an N:M pattern; use PruneMagnitude with "
        "the pattern and then FineTuneWithMasks");
  }
  if (options.train.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be at least 1, got ", options.train.batch_size));
  }
  const int64_t total_steps = TotalSteps(train, options.train);
  GradualSchedule schedule;
  schedule.initial_sparsity = options.initial_sparsity;
  schedule.final_sparsity = options.pruning.sparsity;
  schedule.begin_step = options.begin_step;
  schedule.end_step = options.end_step >= 0 ? options.end_step : total_steps * 3 / 4;
  schedule.frequency = options.frequency;
  POLARIS_RETURN_IF_ERROR(ValidateSchedule(schedule));
  if (schedule.end_step >= total_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("end_step ", schedule.end_step, " is not before the last of the ", total_steps,
                     " training steps; train longer or lower end_step"));
  }

  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  // Validates the final options (names, ranges) before any training.
  POLARIS_ASSIGN_OR_RETURN(PruningMasks masks, ComputeMagnitudeMasks(copy, options.pruning));
  masks = {};
  GradualPruningResult result;

  TrainOptions train_options = options.train;
  train_options.after_backward = [&](int64_t step) -> absl::Status {
    return ZeroMaskedGradients(copy, masks);
  };
  train_options.after_step = [&](int64_t step) -> absl::Status {
    if (IsPruningStep(schedule, step)) {
      const UnstructuredPruningOptions at_step = OptionsAtStep(options, schedule, step);
      POLARIS_ASSIGN_OR_RETURN(masks, ComputeMagnitudeMasks(copy, at_step));
      POLARIS_RETURN_IF_ERROR(ApplyMasks(copy, masks));
      result.schedule.push_back({step, at_step.sparsity, masks.sparsity});
      return absl::OkStatus();
    }
    return ReapplyMasks(copy, masks);
  };
  POLARIS_ASSIGN_OR_RETURN(result.train, Train(copy, train, train_options));
  POLARIS_RETURN_IF_ERROR(ApplyMasks(copy, masks));
  result.masks = std::move(masks);
  result.model = std::move(copy);
  return result;
}

absl::StatusOr<MaskedTrainingResult> FineTuneWithMasks(const torch::jit::Module& model,
                                                       const PruningMasks& masks,
                                                       const LabeledData& train,
                                                       const TrainOptions& options) {
  POLARIS_RETURN_IF_ERROR(CheckNoHooks(options));
  MaskedTrainingResult result;
  POLARIS_ASSIGN_OR_RETURN(result.model, CloneModel(model));
  result.masks = masks;
  POLARIS_RETURN_IF_ERROR(ApplyMasks(result.model, result.masks));

  TrainOptions train_options = options;
  train_options.after_backward = [&](int64_t step) {
    return ZeroMaskedGradients(result.model, result.masks);
  };
  train_options.after_step = [&](int64_t step) { return ReapplyMasks(result.model, result.masks); };
  POLARIS_ASSIGN_OR_RETURN(result.train, Train(result.model, train, train_options));
  POLARIS_RETURN_IF_ERROR(ApplyMasks(result.model, result.masks));
  return result;
}

}  // namespace polaris::pruning
