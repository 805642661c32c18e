// Re-estimation of BatchNorm running statistics after pruning ("adaptive BatchNorm", Li et al.
// 2020, "EagleEye: Fast Sub-net Evaluation for Efficient Neural Network Pruning"). Removing
// channels or weights shifts the statistics of the layers after them. Running a few batches in
// training mode without gradients refreshes the running means and variances, so the accuracy
// of a pruned model before fine-tuning becomes a much better guide to its accuracy after.
#ifndef POLARIS_PRUNING_BATCH_NORM_H_
#define POLARIS_PRUNING_BATCH_NORM_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/dataset.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

// True when `model` has a buffer named running_mean (a BatchNorm layer) anywhere.
bool HasBatchNorm(const torch::jit::Module& model);

// Runs `model` in training mode without gradients over `data.inputs` in batches of
// `batch_size`, in order, then leaves it in eval mode. The layers' own momentum applies
// (torch.nn's default 0.1 weighs the old statistics by 0.9 per batch, so 32 batches leave
// 3% of them). Labels are not read. Does nothing for a model without BatchNorm.
// Errors: kInvalidArgument for batch_size < 1 or a model that fails on the data.
absl::Status RecalibrateBatchNorm(torch::jit::Module& model, const LabeledData& data,
                                  int64_t batch_size);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_BATCH_NORM_H_
