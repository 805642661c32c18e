#include "pipeline/optimizer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/evaluate.h"
#include "core/latency.h"
#include "core/model_io.h"
#include "core/proto_conversion.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "core/trainer.h"
#include "pipeline/config.h"
#include "pipeline/measure.h"
#include "pipeline/model_analysis.h"

namespace polaris::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void Log(const OptimizeOptions& options, const std::string& line) {
  if (!options.verbose) return;
  std::fprintf(stderr, "[optimize] %s\n", line.c_str());
  std::fflush(stderr);
}

LatencySettings ToLatencySettings(const proto::LatencyConfig& config) {
  LatencySettings settings;
  settings.batch_sizes.assign(config.batch_sizes().begin(), config.batch_sizes().end());
  settings.warmup_runs = config.warmup_runs();
  settings.timed_runs = config.timed_runs();
  settings.max_seconds = config.max_seconds();
  return settings;
}

DataOptions ToDataOptions(const proto::PipelineConfig& config) {
  DataOptions options;
  options.validation_examples = config.data().validation_examples();
  options.calibration_examples = config.data().calibration_examples();
  options.seed = config.seed();
  return options;
}

proto::ModelAnalysisReport ToAnalysisProto(const ModelReport& report) {
  proto::ModelAnalysisReport message;
  message.set_architecture(ArchitectureKindName(report.kind));
  message.set_architecture_reason(report.kind_reason);
  message.set_parameters(report.parameters);
  message.set_total_macs(report.layers.total_macs);
  for (const auto& [kind, count] : report.layers_by_kind) {
    (*message.mutable_layers_by_kind())[kind] = count;
  }
  for (const LayerInfo& layer : report.layers.layers) {
    proto::LayerReport* row = message.add_layers();
    row->set_name(layer.name);
    row->set_kind(LayerKindName(layer.kind));
    for (int64_t d : layer.input_shape) row->add_input_shape(d);
    for (int64_t d : layer.output_shape) row->add_output_shape(d);
    row->set_macs(layer.macs);
    row->set_parameters(layer.parameters);
  }
  for (const StageCoverage& coverage : report.coverage) {
    proto::StageCoverageReport* row = message.add_coverage();
    row->set_stage(coverage.stage);
    for (const std::string& layer : coverage.supported_layers) row->add_supported_layers(layer);
    for (const auto& [layer, reason] : coverage.unsupported_layers) {
      (*row->mutable_unsupported_layers())[layer] = reason;
    }
  }
  return message;
}

void AddLatencies(const ModelMeasurement& measurement,
                  google::protobuf::RepeatedPtrField<proto::Latency>* latencies) {
  for (const auto& [batch, stats] : measurement.latency) {
    *latencies->Add() = ToLatencyProto(stats, batch);
  }
}

// Checks that the model maps the data's examples to logits covering its labels.
absl::Status CheckModelFitsData(torch::jit::Module& model, const PipelineData& data) {
  absl::StatusOr<int64_t> classes = CountClasses(model, data.test);
  if (!classes.ok()) {
    // LibTorch's message ends with the reason after a TorchScript traceback; keep the reason.
    absl::string_view reason = absl::StripTrailingAsciiWhitespace(classes.status().message());
    if (const size_t newline = reason.rfind('\n'); newline != absl::string_view::npos) {
      reason.remove_prefix(newline + 1);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the model cannot run on the data (", data.description, "), whose examples have shape [",
        absl::StrJoin(data.test.inputs.sizes().slice(1), ", "), "]: ", reason));
  }
  if (*classes < data.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data has labels up to ", data.num_classes - 1, " but the model predicts only ",
        *classes, " classes; labels must lie in [0, ", *classes, ")"));
  }
  return absl::OkStatus();
}

struct GuardState {
  torch::jit::Module model;
  bool trainable = true;
  double original_validation_accuracy = 0;
  double budget_points = 0;
};

// Runs one stage under the accuracy guard and returns its result; updates `state` when a
// setting is accepted.
proto::StageResult RunGuardedStage(Stage& stage, const std::string& label,
                                   const StageContext& context, GuardState& state,
                                   const OptimizeOptions& options) {
  proto::StageResult result;
  result.set_name(label);
  const Clock::time_point start = Clock::now();

  if (stage.needs_training_data() && !context.data->train.has_value()) {
    result.set_status(proto::StageResult::SKIPPED);
    result.set_message("the data has no training part, which this stage needs");
    return result;
  }
  if (stage.trains_model() && !state.trainable) {
    result.set_status(proto::StageResult::SKIPPED);
    result.set_message("the model can no longer be trained (an earlier stage quantized it)");
    return result;
  }

  // A setting that fails, for example a size budget no assignment meets, is recorded, and the
  // next, weaker setting is tried. The stage fails only when every setting fails.
  std::vector<std::string> failures;
  for (int setting = 0; setting < stage.num_settings(); ++setting) {
    const std::string description = stage.DescribeSetting(setting);
    Log(options, absl::StrCat(label, ": trying ", description));
    absl::StatusOr<StageOutput> output = stage.Run(state.model, setting, context);
    absl::StatusOr<EvalResult> validation =
        output.ok() ? Evaluate(output->model, context.data->validation)
                    : absl::StatusOr<EvalResult>(output.status());
    if (!validation.ok()) {
      const std::string failure =
          absl::StrCat(description, " failed: ", validation.status().ToString());
      Log(options, absl::StrCat(label, ": ", failure));
      proto::StageAttempt* attempt = result.add_attempts();
      attempt->set_setting(description);
      attempt->set_accepted(false);
      attempt->set_note(failure);
      failures.push_back(failure);
      continue;
    }
    const double drop = 100.0 * (state.original_validation_accuracy - validation->accuracy);
    proto::StageAttempt* attempt = result.add_attempts();
    attempt->set_setting(description);
    attempt->set_validation_accuracy(validation->accuracy);
    attempt->set_validation_drop_points(drop);
    attempt->set_note(output->summary);
    const bool accepted = drop <= state.budget_points;
    attempt->set_accepted(accepted);
    Log(options, absl::StrFormat("%s: %s gives validation accuracy %.2f%% (drop %.2f points, "
                                 "budget %.2f): %s",
                                 label, description, 100 * validation->accuracy, drop,
                                 state.budget_points, accepted ? "accepted" : "rejected"));
    if (accepted) {
      state.model = output->model;
      state.trainable = output->trainable;
      result.set_status(setting == 0 ? proto::StageResult::APPLIED
                                     : proto::StageResult::RELAXED);
      result.set_summary(output->summary);
      result.set_message(setting == 0
                             ? absl::StrCat("applied ", description)
                             : absl::StrCat("relaxed to ", description,
                                            failures.empty()
                                                ? " because stronger settings exceeded the budget"
                                                : " because stronger settings failed or exceeded "
                                                  "the budget"));
      result.set_wall_seconds(SecondsSince(start));
      return result;
    }
  }
  if (static_cast<int>(failures.size()) == stage.num_settings()) {
    result.set_status(proto::StageResult::FAILED);
    result.set_message(
        absl::StrCat(absl::StrJoin(failures, "; "), "; the previous model was kept"));
  } else if (!failures.empty()) {
    result.set_status(proto::StageResult::ROLLED_BACK);
    result.set_message(absl::StrFormat(
        "no setting fit: %s; the others dropped validation accuracy by more than the "
        "%.2f-point budget; the previous model was kept",
        absl::StrJoin(failures, "; "), state.budget_points));
  } else {
    result.set_status(proto::StageResult::ROLLED_BACK);
    result.set_message(absl::StrFormat(
        "every setting dropped validation accuracy by more than the %.2f-point budget; the "
        "previous model was kept",
        state.budget_points));
  }
  result.set_wall_seconds(SecondsSince(start));
  return result;
}

absl::Status FillFinalMetrics(const ModelMeasurement& original,
                              const ModelMeasurement& final_measurement,
                              const std::map<int64_t, double>& speedups_vs_optimized,
                              const std::map<int64_t, double>& speedups_vs_original,
                              double budget_points, proto::FinalMetrics& metrics) {
  metrics.set_compression_ratio(static_cast<double>(original.size.file_bytes) /
                                std::max<int64_t>(1, final_measurement.size.file_bytes));
  for (const auto& [batch, speedup] : speedups_vs_optimized) {
    (*metrics.mutable_speedup_vs_optimized())[batch] = speedup;
  }
  for (const auto& [batch, speedup] : speedups_vs_original) {
    (*metrics.mutable_speedup_vs_original())[batch] = speedup;
  }
  metrics.set_original_weight_bytes(original.weight_bytes);
  metrics.set_optimized_weight_bytes(final_measurement.weight_bytes);
  metrics.set_accuracy_drop_points(
      100.0 * (original.accuracy.accuracy - final_measurement.accuracy.accuracy));
  metrics.set_within_budget(metrics.accuracy_drop_points() <= budget_points + 1e-9);
  return absl::OkStatus();
}

// Saves both models and runs the memory probe on each at the largest batch size.
absl::Status MeasureMemory(const torch::jit::Module& original, const torch::jit::Module& final_model,
                           const std::vector<int64_t>& example_shape, int64_t batch, int threads,
                           const OptimizeOptions& options, proto::FinalMetrics& metrics) {
  std::string dir = options.scratch_dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = tmp != nullptr ? tmp : "/tmp";
  }
  const std::string stem = absl::StrCat(dir, "/polaris-memory-", getpid());
  const std::string original_path = stem + "-original.pt";
  const std::string final_path = stem + "-optimized.pt";
  POLARIS_RETURN_IF_ERROR(SaveModel(original, original_path));
  absl::Status status = SaveModel(final_model, final_path);
  absl::StatusOr<MemoryMeasurement> before, after;
  if (status.ok()) {
    before = MeasurePeakMemory(options.memory_probe, original_path, example_shape, batch, threads);
    after = MeasurePeakMemory(options.memory_probe, final_path, example_shape, batch, threads);
  }
  std::remove(original_path.c_str());
  std::remove(final_path.c_str());
  POLARIS_RETURN_IF_ERROR(status);
  POLARIS_RETURN_IF_ERROR(before.status());
  POLARIS_RETURN_IF_ERROR(after.status());
  metrics.set_original_peak_resident_bytes(before->peak_bytes);
  metrics.set_optimized_peak_resident_bytes(after->peak_bytes);
  metrics.set_probe_baseline_resident_bytes(std::min(before->baseline_bytes, after->baseline_bytes));
  return absl::OkStatus();
}

std::string StatusName(proto::StageResult::Status status) {
  return proto::StageResult::Status_Name(status);
}

// Returns a warning that names the noisiest timing whose median exceeds twice its fastest run,
// or "" when no timing does.
std::string TimingWarning(const proto::PipelineResult& result) {
  double worst_ratio = 2.0;
  std::string warning;
  auto check = [&](const std::string& model,
                   const google::protobuf::RepeatedPtrField<proto::Latency>& latencies) {
    for (const proto::Latency& latency : latencies) {
      if (latency.min_ms() <= 0) continue;
      const double ratio = latency.median_ms() / latency.min_ms();
      if (ratio <= worst_ratio) continue;
      worst_ratio = ratio;
      warning = absl::StrFormat(
          "timings were noisy: %s at batch %d had a median of %.3f ms but a fastest run of "
          "%.3f ms, so other processes were probably taking the cores; treat the speedups as "
          "rough and measure again on a quiet machine",
          model, latency.batch_size(), latency.median_ms(), latency.min_ms());
    }
  };
  check("the original", result.original_latency());
  check("the optimize_for_inference baseline", result.original_optimized_latency());
  for (const proto::StageResult& stage : result.stages()) {
    check(absl::StrCat("the model after ", stage.name()), stage.latency());
  }
  check("the final model", result.final_latency());
  return warning;
}

std::string Summarize(const proto::PipelineResult& result) {
  std::vector<std::string> stages;
  for (const proto::StageResult& stage : result.stages()) {
    stages.push_back(absl::StrCat(stage.name(), " ", StatusName(stage.status())));
  }
  const proto::FinalMetrics& metrics = result.metrics();
  std::string summary = absl::StrFormat(
      "%s target: stages %s; accuracy drop %.2f points on the full evaluation set (budget "
      "%.2f): %s",
      TargetName(result.config().target()), absl::StrJoin(stages, ", "),
      metrics.accuracy_drop_points(), result.config().max_accuracy_drop(),
      metrics.within_budget() ? "within budget" : "OVER BUDGET");
  if (!metrics.within_budget()) {
    absl::StrAppend(&summary,
                    " (the guard decides on validation data, which the test set can disagree "
                    "with by a few tenths of a point)");
  }
  if (result.had_failures()) absl::StrAppend(&summary, "; some stages FAILED, see their messages");
  return summary;
}

}  // namespace

absl::StatusOr<OptimizeOutput> Optimize(const torch::jit::Module& model,
                                        const proto::PipelineConfig& config,
                                        const PipelineData& data,
                                        const OptimizeOptions& options) {
  POLARIS_ASSIGN_OR_RETURN(proto::PipelineConfig resolved, ResolveConfig(config));
  POLARIS_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Stage>> stages, MakeStages(resolved));
  return RunStages(model, resolved, stages, data, options);
}

absl::StatusOr<OptimizeOutput> RunStages(const torch::jit::Module& model,
                                         const proto::PipelineConfig& resolved,
                                         const std::vector<std::unique_ptr<Stage>>& stages,
                                         const PipelineData& data,
                                         const OptimizeOptions& options) {
  const Clock::time_point start = Clock::now();
  if (static_cast<int>(stages.size()) != resolved.stages_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the config lists ", resolved.stages_size(),
                                                   " stages but ", stages.size(), " were given"));
  }
  POLARIS_RETURN_IF_ERROR(SetThreads(resolved.threads()));
  POLARIS_RETURN_IF_ERROR(UseOnednnQuantizedEngine());
  POLARIS_RETURN_IF_ERROR(CheckClassifierSignature(model));

  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module original, CloneModel(model));
  original.eval();
  POLARIS_RETURN_IF_ERROR(CheckModelFitsData(original, data));

  OptimizeOutput output;
  proto::PipelineResult& result = output.result;
  *result.mutable_config() = resolved;
  result.set_config_hash(ConfigHash(resolved));
  *result.mutable_environment() = ToEnvironmentProto(CurrentRuntimeInfo(), DescribeGitCommit());
  result.set_data_description(data.notes.empty()
                                  ? data.description
                                  : absl::StrCat(data.description, " (", data.notes, ")"));

  const std::vector<int64_t> example_shape = data.test.inputs.sizes().slice(1).vec();
  std::vector<int64_t> probe_shape = example_shape;
  probe_shape.insert(probe_shape.begin(), 1);
  POLARIS_ASSIGN_OR_RETURN(at::Tensor example, CallTorch("slicing an example", [&] {
    return data.test.inputs.slice(0, 0, 1).contiguous();
  }));
  POLARIS_ASSIGN_OR_RETURN(ModelReport report, AnalyzeForPipeline(original, example));
  *result.mutable_analysis() = ToAnalysisProto(report);
  Log(options, FormatModelReport(report));

  const LatencySettings latency = ToLatencySettings(resolved.latency());
  Log(options, "measuring the original model and its optimize_for_inference baseline");
  POLARIS_ASSIGN_OR_RETURN(ModelMeasurement original_measurement,
                           MeasureModel(original, data.test, &latency));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module baseline, OptimizeForInference(original));
  POLARIS_ASSIGN_OR_RETURN(ModelMeasurement baseline_measurement,
                           MeasureModel(baseline, data.test, &latency));
  *result.mutable_original_accuracy() =
      ToAccuracyProto(original_measurement.accuracy, data.description);
  *result.mutable_original_size() =
      ToModelSizeProto(original_measurement.size, original_measurement.parameters);
  AddLatencies(original_measurement, result.mutable_original_latency());
  AddLatencies(baseline_measurement, result.mutable_original_optimized_latency());

  POLARIS_ASSIGN_OR_RETURN(EvalResult original_validation, Evaluate(original, data.validation));
  GuardState state{original, /*trainable=*/true, original_validation.accuracy,
                   resolved.max_accuracy_drop()};

  for (size_t i = 0; i < stages.size(); ++i) {
    const std::string label = StageLabel(resolved.stages(static_cast<int>(i)));
    StageContext context{&data, resolved.seed() + i, resolved.threads(), example_shape,
                         options.verbose};
    proto::StageResult stage_result = RunGuardedStage(*stages[i], label, context, state, options);
    if (stage_result.status() == proto::StageResult::FAILED) result.set_had_failures(true);
    POLARIS_ASSIGN_OR_RETURN(ModelMeasurement after,
                             MeasureModel(state.model, data.test, &latency));
    *stage_result.mutable_accuracy() = ToAccuracyProto(after.accuracy, data.description);
    *stage_result.mutable_size() = ToModelSizeProto(after.size, after.parameters);
    AddLatencies(after, stage_result.mutable_latency());
    Log(options, absl::StrFormat("%s: %s; test accuracy %.2f%%, %d bytes", label,
                                 StatusName(stage_result.status()), 100 * after.accuracy.accuracy,
                                 after.size.file_bytes));
    *result.add_stages() = std::move(stage_result);
  }

  POLARIS_ASSIGN_OR_RETURN(ModelMeasurement final_measurement,
                           MeasureModel(state.model, data.test, &latency));
  *result.mutable_final_accuracy() = ToAccuracyProto(final_measurement.accuracy, data.description);
  *result.mutable_final_size() =
      ToModelSizeProto(final_measurement.size, final_measurement.parameters);
  AddLatencies(final_measurement, result.mutable_final_latency());
  // The speedups time each baseline and the final model alternately, so that a machine whose
  // speed drifts during the run does not skew them. The tables keep the separate timings.
  Log(options, "timing the final model against both baselines, alternating calls");
  POLARIS_ASSIGN_OR_RETURN(const auto speedups_vs_optimized,
                           MeasureSpeedups(baseline, state.model, data.test, latency));
  POLARIS_ASSIGN_OR_RETURN(const auto speedups_vs_original,
                           MeasureSpeedups(original, state.model, data.test, latency));
  POLARIS_RETURN_IF_ERROR(FillFinalMetrics(original_measurement, final_measurement,
                                           speedups_vs_optimized, speedups_vs_original,
                                           resolved.max_accuracy_drop(),
                                           *result.mutable_metrics()));
  if (!options.memory_probe.empty()) {
    const int64_t batch = latency.batch_sizes.empty() ? 1 : latency.batch_sizes.back();
    absl::Status memory = MeasureMemory(original, state.model, example_shape, batch,
                                        resolved.threads(), options, *result.mutable_metrics());
    if (!memory.ok()) Log(options, absl::StrCat("peak memory not measured: ", memory.message()));
  }

  result.set_total_wall_seconds(SecondsSince(start));
  result.mutable_metrics()->set_timing_warning(TimingWarning(result));
  result.set_summary(Summarize(result));
  output.model = state.model;
  return output;
}

absl::StatusOr<OptimizeOutput> QuickOptimize(const torch::jit::Module& model,
                                             proto::Target target) {
  proto::PipelineConfig config;
  config.set_target(target);
  POLARIS_ASSIGN_OR_RETURN(proto::PipelineConfig resolved, ResolveConfig(config));
  POLARIS_ASSIGN_OR_RETURN(PipelineData data,
                           LoadPipelineData(resolved.data().source(), ToDataOptions(resolved)));
  return Optimize(model, resolved, data);
}

}  // namespace polaris::pipeline
