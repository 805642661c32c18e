// A stage that fine-tunes the model with core's trainer on the pipeline's training data.
#ifndef POLARIS_PIPELINE_ADAPTERS_FINE_TUNE_STAGE_H_
#define POLARIS_PIPELINE_ADAPTERS_FINE_TUNE_STAGE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/trainer.h"
#include "pipeline/pipeline.pb.h"
#include "pipeline/stage.h"

namespace polaris::pipeline {

// Converts the proto into trainer options; unset fields keep the defaults (1 epoch, SGD with
// Nesterov momentum, learning rate 0.01, batch 128, weight decay 5e-4, cosine schedule).
// Returns kInvalidArgument for an unknown optimizer name or negative values.
absl::StatusOr<TrainOptions> ToTrainOptions(const proto::FineTuneConfig& config);

absl::StatusOr<std::unique_ptr<Stage>> MakeFineTuneStage(const proto::FineTuneConfig& config);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_ADAPTERS_FINE_TUNE_STAGE_H_
