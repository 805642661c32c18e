// Reading, validating and completing pipeline configs, and turning them into stages.
//
//   POLARIS_ASSIGN_OR_RETURN(proto::PipelineConfig config, LoadConfigFile("balanced.textproto"));
//   POLARIS_ASSIGN_OR_RETURN(config, ResolveConfig(config));     // target defaults filled in
//   POLARIS_ASSIGN_OR_RETURN(auto stages, MakeStages(config));
#ifndef POLARIS_PIPELINE_CONFIG_H_
#define POLARIS_PIPELINE_CONFIG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pipeline/pipeline.pb.h"
#include "pipeline/stage.h"

namespace polaris::pipeline {

// Parses a text-format PipelineConfig. Returns kInvalidArgument with the line and column of the
// first syntax error or unknown field; `name` (the file) goes into the message.
absl::StatusOr<proto::PipelineConfig> ParseConfigText(const std::string& text,
                                                      const std::string& name);

// Reads and parses a text-format config file (kNotFound when it does not exist).
absl::StatusOr<proto::PipelineConfig> LoadConfigFile(const std::string& path);

// Parses a target name, case-insensitively: accuracy, balanced, speed, memory or extreme.
absl::StatusOr<proto::Target> ParseTarget(absl::string_view name);

// Returns the lowercase name of a target ("balanced").
std::string TargetName(proto::Target target);

// Returns the config with every default filled in: the target (BALANCED when unset), its
// accuracy budget and stage plan when not given, seed 1, all hardware threads, the default data
// and latency settings. Returns kInvalidArgument, naming the field and value, for a negative
// budget, an unknown target, a stage without a kind, a stage that trains after one that makes
// the model untrainable (quantization), non-positive batch sizes, and the like.
absl::StatusOr<proto::PipelineConfig> ResolveConfig(const proto::PipelineConfig& config);

// Builds the stages of a resolved config, in order.
absl::StatusOr<std::vector<std::unique_ptr<Stage>>> MakeStages(
    const proto::PipelineConfig& config);

// FNV-1a 64-bit hash, in hex, of the config in text format.
std::string ConfigHash(const proto::PipelineConfig& config);

// Returns the stage's label: its name, or its kind when the name is empty.
std::string StageLabel(const proto::StageConfig& stage);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_CONFIG_H_
