#include "core/trainer.h"

#include <cmath>
#include <memory>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/progress.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/optim/adam.h"
#include "torch/optim/sgd.h"

namespace polaris {
namespace {

constexpr double kPi = 3.14159265358979323846;

absl::Status ValidateOptions(const TrainOptions& options) {
  if (options.epochs < 1 && options.max_steps <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("epochs must be at least 1, got ", options.epochs));
  }
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be at least 1, got ", options.batch_size));
  }
  if (!(options.learning_rate > 0) || !std::isfinite(options.learning_rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning rate must be positive and finite, got ", options.learning_rate));
  }
  if (options.momentum < 0 || options.momentum >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum must lie in [0, 1), got ", options.momentum));
  }
  if (options.weight_decay < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight decay must not be negative, got ", options.weight_decay));
  }
  if (options.label_smoothing < 0 || options.label_smoothing >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("label smoothing must lie in [0, 1), got ", options.label_smoothing));
  }
  return absl::OkStatus();
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const std::vector<at::Tensor>& params,
                                                       const TrainOptions& options) {
  if (options.optimizer == OptimizerKind::kAdam) {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(options.learning_rate)
                    .weight_decay(options.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(options.learning_rate)
                  .momentum(options.momentum)
                  .nesterov(options.momentum > 0)
                  .weight_decay(options.weight_decay));
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double learning_rate) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(learning_rate);
}

}  // namespace

absl::StatusOr<int64_t> CountClasses(torch::jit::Module& model, const LabeledData& data) {
  return CallTorch("running the model on one example", [&]() -> absl::StatusOr<int64_t> {
    const bool was_training = model.is_training();
    model.eval();
    at::Tensor logits;
    {
      at::NoGradGuard no_grad;
      logits = model.forward({data.inputs.slice(0, 0, 1)}).toTensor();
    }
    model.train(was_training);
    if (logits.dim() != 2 || logits.size(0) != 1 || logits.size(1) < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model must return logits of shape [batch, classes] with at least 2 classes; for "
          "one example it returned shape [",
          absl::StrJoin(logits.sizes(), ", "), "]"));
    }
    return logits.size(1);
  });
}

double ScheduledLearningRate(const TrainOptions& options, int64_t step, int64_t total_steps) {
  if (options.warmup_steps > 0 && step < options.warmup_steps) {
    return options.learning_rate * (step + 1) / options.warmup_steps;
  }
  if (options.schedule == LearningRateSchedule::kConstant) return options.learning_rate;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - options.warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - options.warmup_steps) / decay_steps);
  return 0.5 * options.learning_rate * (1.0 + std::cos(kPi * progress));
}

absl::StatusOr<TrainResult> Train(torch::jit::Module& model, const LabeledData& data,
                                  const TrainOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  if (data.size() == 0) return absl::InvalidArgumentError("training data has no examples");

  return CallTorch(absl::StrCat(options.name, ": training"), [&]() -> absl::StatusOr<TrainResult> {
    at::manual_seed(options.seed);
    std::vector<at::Tensor> params;
    for (const at::Tensor& param : model.parameters()) {
      param.set_requires_grad(true);
      params.push_back(param);
    }
    if (params.empty()) {
      return absl::InvalidArgumentError("the model has no parameters to train");
    }
    POLARIS_ASSIGN_OR_RETURN(const int64_t classes, CountClasses(model, data));
    POLARIS_RETURN_IF_ERROR(ValidateLabeledData(data, classes, "training data"));
    std::unique_ptr<torch::optim::Optimizer> optimizer = MakeOptimizer(params, options);

    Batcher batcher(data, options.batch_size);
    const int64_t steps_per_epoch = batcher.num_batches();
    const int epochs = std::max(options.epochs, 1);
    int64_t total_steps = epochs * steps_per_epoch;
    if (options.max_steps > 0) total_steps = std::min(total_steps, options.max_steps);

    Progress progress(options.name, total_steps * options.batch_size, "image",
                      options.show_progress);
    TrainResult result;
    model.train(true);
    int64_t step = 0;
    for (int epoch = 0; epoch < epochs && step < total_steps; ++epoch) {
      batcher.Shuffle(options.seed + epoch);
      double epoch_loss = 0;
      int64_t epoch_correct = 0;
      int64_t epoch_examples = 0;
      for (int64_t b = 0; b < steps_per_epoch && step < total_steps; ++b, ++step) {
        const LabeledData batch = batcher.Batch(b);
        SetLearningRate(*optimizer, ScheduledLearningRate(options, step, total_steps));
        optimizer->zero_grad();

        const at::Tensor logits = model.forward({batch.inputs}).toTensor();
        if (logits.dim() != 2 || logits.size(0) != batch.size()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the model must return logits of shape [batch, classes]; for a batch of ",
              batch.size(), " it returned rank ", logits.dim()));
        }
        const at::Tensor loss = at::cross_entropy_loss(
            logits, batch.labels, /*weight=*/{}, at::Reduction::Mean, /*ignore_index=*/-100,
            options.label_smoothing);
        const double loss_value = loss.item<double>();
        if (!std::isfinite(loss_value)) {
          return absl::InternalError(absl::StrCat(
              "training loss became ", loss_value, " at step ", step,
              "; lower the learning rate (now ", options.learning_rate, ")"));
        }
        loss.backward();
        if (options.after_backward) POLARIS_RETURN_IF_ERROR(options.after_backward(step));
        optimizer->step();
        if (options.after_step) POLARIS_RETURN_IF_ERROR(options.after_step(step));

        epoch_loss += loss_value * batch.size();
        epoch_correct += logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
        epoch_examples += batch.size();
        result.examples += batch.size();
        progress.Update(result.examples,
                        absl::StrFormat("epoch %d/%d  loss %.4f  accuracy %.2f%%", epoch + 1,
                                        epochs, epoch_loss / epoch_examples,
                                        100.0 * epoch_correct / epoch_examples));
      }
      result.last_epoch_loss = epoch_loss / std::max<int64_t>(1, epoch_examples);
      result.last_epoch_accuracy =
          static_cast<double>(epoch_correct) / std::max<int64_t>(1, epoch_examples);
    }
    model.eval();
    result.steps = step;
    result.seconds = progress.ElapsedSeconds();
    progress.Finish(absl::StrFormat("last epoch: loss %.4f, accuracy %.2f%%",
                                    result.last_epoch_loss, 100 * result.last_epoch_accuracy));
    return result;
  });
}

}  // namespace polaris
