// Gradual magnitude pruning during training (Zhu and Gupta 2017, schedule.h) and fine-tuning
// with fixed masks. Pruned weights stay zero: their gradients are zeroed after every backward
// pass (core Train's after_backward hook) and the masks are applied again after every
// optimizer step (after_step), because momentum and weight decay would otherwise move them.
//
//   GradualPruningOptions options;
//   options.pruning.sparsity = 0.9;                 // final sparsity
//   options.pruning.scope = PruningScope::kGlobal;
//   options.train = DefaultTrainOptions(ReferenceModel::kMlp);
//   options.train.epochs = 4;
//   POLARIS_ASSIGN_OR_RETURN(GradualPruningResult result, GradualPrune(model, train, options));
#ifndef POLARIS_PRUNING_GRADUAL_H_
#define POLARIS_PRUNING_GRADUAL_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/trainer.h"
#include "pruning/magnitude.h"
#include "pruning/schedule.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

struct GradualPruningOptions {
  // The final masks: `sparsity` is the final sparsity, and every layer_sparsity entry is that
  // layer's final sparsity, reached on its own cubic curve. N:M patterns are not scheduled.
  UnstructuredPruningOptions pruning;
  double initial_sparsity = 0.0;
  // Optimizer steps (0-based) of the first and last mask update. end_step -1 places the last
  // update at 3/4 of the training steps, leaving the last quarter to fine-tune at the final
  // sparsity.
  int64_t begin_step = 0;
  int64_t end_step = -1;
  // Steps between mask updates.
  int64_t frequency = 100;
  // Training of the copy that is pruned; its hooks must be empty (they are used here).
  TrainOptions train;
};

// Sparsity after one mask update.
struct SparsityPoint {
  int64_t step = 0;
  double target = 0;
  double achieved = 0;
};

struct GradualPruningResult {
  // A trained, pruned copy; the caller's model is unchanged.
  torch::jit::Module model;
  // The final masks, with zeros counted in the final weights.
  PruningMasks masks;
  TrainResult train;
  std::vector<SparsityPoint> schedule;
};

// Trains a copy of `model` on `train` while pruning it to `options.pruning` on the cubic
// schedule. Errors: kInvalidArgument for invalid pruning options or schedule, an N:M pattern,
// hooks already set in options.train, or an end_step not before the last training step (the
// message gives the step count); errors of Train and of ComputeMagnitudeMasks.
absl::StatusOr<GradualPruningResult> GradualPrune(const torch::jit::Module& model,
                                                  const LabeledData& train,
                                                  const GradualPruningOptions& options);

struct MaskedTrainingResult {
  torch::jit::Module model;
  PruningMasks masks;
  TrainResult train;
};

// Fine-tunes a copy of `model` on `train` with `masks` fixed: masked weights start and stay
// at zero. Errors: kInvalidArgument when options.train has hooks set or a mask does not fit
// its weight; errors of Train.
absl::StatusOr<MaskedTrainingResult> FineTuneWithMasks(const torch::jit::Module& model,
                                                       const PruningMasks& masks,
                                                       const LabeledData& train,
                                                       const TrainOptions& options);

// Multiplies the gradient of every masked weight of `model` by its mask, so that the
// optimizer step does not move pruned weights. Weights without a gradient are skipped.
// Errors: kNotFound when a mask's weight is missing.
absl::Status ZeroMaskedGradients(torch::jit::Module& model, const PruningMasks& masks);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_GRADUAL_H_
