// A stage that removes channels with //pruning's structured pruning and then fine-tunes the
// smaller model, so the accuracy guard judges the pruned model after it has recovered.
#ifndef POLARIS_PIPELINE_ADAPTERS_STRUCTURED_PRUNING_STAGE_H_
#define POLARIS_PIPELINE_ADAPTERS_STRUCTURED_PRUNING_STAGE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "pipeline/pipeline.pb.h"
#include "pipeline/stage.h"

namespace polaris::pipeline {

// Settings, strongest first: config.pruning.fraction (default 0.5), then each of
// config.fallback_fractions. Errors: kInvalidArgument for fractions outside [0, 1), fallbacks
// that do not decrease, or invalid pruning or fine-tuning settings.
absl::StatusOr<std::unique_ptr<Stage>> MakeStructuredPruningStage(
    const proto::StructuredPruningStage& config);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_ADAPTERS_STRUCTURED_PRUNING_STAGE_H_
