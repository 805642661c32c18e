// Supervised training of a TorchScript classifier with SGD or Adam, a learning-rate schedule,
// seeded shuffling and a progress line, plus hooks through which pruning, sparse training and
// quantization-aware training keep their constraints during training.
//
//   TrainOptions options;
//   options.epochs = 2;
//   POLARIS_ASSIGN_OR_RETURN(TrainResult result, Train(model, train_data, options));
#ifndef POLARIS_CORE_TRAINER_H_
#define POLARIS_CORE_TRAINER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris {

enum class OptimizerKind { kSgd, kAdam };

enum class LearningRateSchedule {
  kConstant,
  // Cosine decay from learning_rate to 0 over all steps (Loshchilov and Hutter 2017, no
  // restarts), after a linear warm-up of warmup_steps.
  kCosine,
};

struct TrainOptions {
  int epochs = 1;
  // Stops after this many optimizer steps when positive, even inside an epoch.
  int64_t max_steps = 0;
  int64_t batch_size = 128;
  OptimizerKind optimizer = OptimizerKind::kSgd;
  double learning_rate = 0.05;
  // SGD only: Nesterov momentum.
  double momentum = 0.9;
  double weight_decay = 5e-4;
  LearningRateSchedule schedule = LearningRateSchedule::kCosine;
  int64_t warmup_steps = 0;
  double label_smoothing = 0.0;
  // Seeds the shuffling of each epoch (seed + epoch) and LibTorch's global generator.
  uint64_t seed = 1;
  // Label on the progress line.
  std::string name = "train";
  bool show_progress = true;

  // Called after loss.backward() and before the optimizer step, with the 0-based step; may
  // edit gradients (pruning masks them so pruned weights get no update).
  std::function<absl::Status(int64_t step)> after_backward;
  // Called after each optimizer step; may edit weights (re-applying masks, RigL updates).
  std::function<absl::Status(int64_t step)> after_step;
};

struct TrainResult {
  int64_t steps = 0;
  int64_t examples = 0;
  double seconds = 0;
  // Mean loss and accuracy over the last epoch's batches, in training mode.
  double last_epoch_loss = 0;
  double last_epoch_accuracy = 0;
};

// Trains every parameter of `model` in place (callers who must keep the original train a
// clone) with softmax cross-entropy on `data`. The model is left in eval mode.
// Errors: kInvalidArgument when the data is invalid (ValidateLabeledData with the model's
// class count taken from its output), the options are out of range, or the model's output is
// not [batch, classes] logits; kInternal when the loss becomes NaN or infinite (lower the
// learning rate); a hook's error is returned as is.
absl::StatusOr<TrainResult> Train(torch::jit::Module& model, const LabeledData& data,
                                  const TrainOptions& options);

// Runs one example through `model` in eval mode and returns the number of classes it predicts.
// Returns kInvalidArgument when the output is not [1, classes] with classes >= 2.
absl::StatusOr<int64_t> CountClasses(torch::jit::Module& model, const LabeledData& data);

// Returns the learning rate `schedule` gives at `step` of `total_steps`.
double ScheduledLearningRate(const TrainOptions& options, int64_t step, int64_t total_steps);

}  // namespace polaris

#endif  // POLARIS_CORE_TRAINER_H_
