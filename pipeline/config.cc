#include "pipeline/config.h"

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "pipeline/adapters/fine_tune_stage.h"
#include "pipeline/adapters/quantization_stage.h"
#include "pipeline/adapters/structured_pruning_stage.h"
#include "pipeline/plan.h"

namespace polaris::pipeline {
namespace {

// Collects the first parse error with its position.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!first_error_.empty()) return;
    // The parser counts lines and columns from 0.
    first_error_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  const std::string& first_error() const { return first_error_; }

 private:
  std::string first_error_;
};

bool TrainsModel(const proto::StageConfig& stage) {
  switch (stage.kind_case()) {
    case proto::StageConfig::kFineTune:
      return true;
    case proto::StageConfig::kStructuredPruning:
      return stage.structured_pruning().has_fine_tune();
    default:
      return false;
  }
}

bool MakesModelUntrainable(const proto::StageConfig& stage) {
  return stage.kind_case() == proto::StageConfig::kQuantization;
}

absl::Status ValidateStages(const proto::PipelineConfig& config) {
  bool trainable = true;
  std::string untrainable_after;
  for (int i = 0; i < config.stages_size(); ++i) {
    const proto::StageConfig& stage = config.stages(i);
    if (stage.kind_case() == proto::StageConfig::KIND_NOT_SET) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stage ", i + 1, " (", stage.name().empty() ? "unnamed" : stage.name(),
          ") has no kind; set one of its stage messages, e.g. fine_tune { epochs: 1 }"));
    }
    if (TrainsModel(stage) && !trainable) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stage ", i + 1, " (", StageLabel(stage), ") trains the model, but stage ",
          untrainable_after, " already made it untrainable; move training stages before "
          "quantization"));
    }
    if (MakesModelUntrainable(stage)) {
      trainable = false;
      untrainable_after = absl::StrCat(i + 1, " (", StageLabel(stage), ")");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLatency(const proto::LatencyConfig& latency) {
  for (int64_t batch : latency.batch_sizes()) {
    if (batch < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("latency batch_sizes must be positive, got ", batch));
    }
  }
  if (latency.warmup_runs() < 0 || latency.timed_runs() < 1 || latency.max_seconds() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latency needs warmup_runs >= 0, timed_runs >= 1 and max_seconds > 0, got ",
        latency.warmup_runs(), ", ", latency.timed_runs(), " and ", latency.max_seconds()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<proto::PipelineConfig> ParseConfigText(const std::string& text,
                                                      const std::string& name) {
  proto::PipelineConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed pipeline config ", name, ": ", errors.first_error(),
        "; see pipeline/pipeline.proto for the fields and pipeline/configs/ for examples"));
  }
  return config;
}

absl::StatusOr<proto::PipelineConfig> LoadConfigFile(const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseConfigText(text, path);
}

absl::StatusOr<proto::Target> ParseTarget(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  proto::Target target;
  if (!proto::Target_Parse(upper, &target) || target == proto::TARGET_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown target '", name, "'; use accuracy, balanced, speed, memory or extreme"));
  }
  return target;
}

std::string TargetName(proto::Target target) {
  return absl::AsciiStrToLower(proto::Target_Name(target));
}

std::string StageLabel(const proto::StageConfig& stage) {
  if (!stage.name().empty()) return stage.name();
  switch (stage.kind_case()) {
    case proto::StageConfig::kFineTune: return "fine_tune";
    case proto::StageConfig::kStructuredPruning: return "structured_pruning";
    case proto::StageConfig::kQuantization: return "quantization";
    case proto::StageConfig::KIND_NOT_SET: break;
  }
  return "unnamed";
}

absl::StatusOr<proto::PipelineConfig> ResolveConfig(const proto::PipelineConfig& config) {
  proto::PipelineConfig resolved = config;
  if (!proto::Target_IsValid(resolved.target())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown target number ", resolved.target()));
  }
  if (resolved.target() == proto::TARGET_UNSPECIFIED) resolved.set_target(proto::BALANCED);
  if (resolved.max_accuracy_drop() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_accuracy_drop must not be negative, got ", resolved.max_accuracy_drop(),
        " (it is in percentage points: 1.0 allows one point of accuracy loss)"));
  }
  if (resolved.max_accuracy_drop() == 0) {
    resolved.set_max_accuracy_drop(DefaultAccuracyBudget(resolved.target()));
  }
  if (resolved.stages().empty()) {
    for (const proto::StageConfig& stage : DefaultPlan(resolved.target())) {
      *resolved.add_stages() = stage;
    }
  }
  if (resolved.seed() == 0) resolved.set_seed(1);
  if (resolved.threads() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must not be negative, got ", resolved.threads()));
  }
  if (resolved.threads() == 0) resolved.set_threads(HardwareThreads());

  proto::DataConfig* data = resolved.mutable_data();
  if (data->source().empty()) data->set_source("fashion-mnist");
  if (data->validation_examples() == 0) data->set_validation_examples(5000);
  if (data->calibration_examples() == 0) data->set_calibration_examples(1024);
  if (data->validation_examples() < 0 || data->calibration_examples() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data validation_examples and calibration_examples must be positive, got ",
        data->validation_examples(), " and ", data->calibration_examples()));
  }

  proto::LatencyConfig* latency = resolved.mutable_latency();
  if (latency->batch_sizes().empty()) {
    latency->add_batch_sizes(1);
    latency->add_batch_sizes(64);
  }
  if (latency->warmup_runs() == 0) latency->set_warmup_runs(10);
  if (latency->timed_runs() == 0) latency->set_timed_runs(100);
  if (latency->max_seconds() == 0) latency->set_max_seconds(3.0);
  POLARIS_RETURN_IF_ERROR(ValidateLatency(*latency));
  POLARIS_RETURN_IF_ERROR(ValidateStages(resolved));
  return resolved;
}

absl::StatusOr<std::vector<std::unique_ptr<Stage>>> MakeStages(
    const proto::PipelineConfig& config) {
  std::vector<std::unique_ptr<Stage>> stages;
  for (const proto::StageConfig& stage : config.stages()) {
    absl::StatusOr<std::unique_ptr<Stage>> made;
    switch (stage.kind_case()) {
      case proto::StageConfig::kFineTune:
        made = MakeFineTuneStage(stage.fine_tune());
        break;
      case proto::StageConfig::kStructuredPruning:
        made = MakeStructuredPruningStage(stage.structured_pruning());
        break;
      case proto::StageConfig::kQuantization:
        made = MakeQuantizationStage(stage.quantization());
        break;
      case proto::StageConfig::KIND_NOT_SET:
        made = absl::InvalidArgumentError("a stage has no kind");
        break;
    }
    if (!made.ok()) return Annotate(made.status(), absl::StrCat("stage ", StageLabel(stage)));
    stages.push_back(std::move(*made));
  }
  return stages;
}

std::string ConfigHash(const proto::PipelineConfig& config) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  // FNV-1a, 64-bit (Fowler, Noll, Vo): a small stable hash, enough to tell configs apart.
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return absl::StrFormat("%016x", hash);
}

}  // namespace polaris::pipeline
