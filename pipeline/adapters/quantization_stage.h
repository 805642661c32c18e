// A stage that converts the model with //quantization (static or dynamic int8, INT4 weights,
// QAT or mixed precision). Its output is no longer trainable, so it comes after every stage
// that trains.
#ifndef POLARIS_PIPELINE_ADAPTERS_QUANTIZATION_STAGE_H_
#define POLARIS_PIPELINE_ADAPTERS_QUANTIZATION_STAGE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "pipeline/pipeline.pb.h"
#include "pipeline/stage.h"

namespace polaris::pipeline {

// Settings, strongest first: config.quantization, then each of config.fallbacks. kQat
// settings train on PipelineData::train; the others calibrate on PipelineData::calibration.
// Errors: kInvalidArgument naming the setting whose quantization options are invalid.
absl::StatusOr<std::unique_ptr<Stage>> MakeQuantizationStage(
    const proto::QuantizationStage& config);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_ADAPTERS_QUANTIZATION_STAGE_H_
