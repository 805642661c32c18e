#include "pipeline/report.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/metrics.h"
#include "core/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace polaris::pipeline {
namespace {

std::string LatencyCell(const google::protobuf::RepeatedPtrField<proto::Latency>& latencies,
                        int64_t batch) {
  for (const proto::Latency& latency : latencies) {
    if (latency.batch_size() == batch) return absl::StrFormat("%.3f", latency.median_ms());
  }
  return "-";
}

std::string Row(const std::string& name, const std::string& status, double accuracy,
                int64_t bytes,
                const google::protobuf::RepeatedPtrField<proto::Latency>& latencies,
                const std::vector<int64_t>& batches) {
  std::string row = absl::StrFormat("%-28s %-11s %8.2f%% %11s", name, status, 100 * accuracy,
                                    FormatBytes(bytes));
  for (int64_t batch : batches) absl::StrAppend(&row, absl::StrFormat(" %10s", LatencyCell(latencies, batch)));
  return row + "\n";
}

// "2.10x faster than" for a speedup of 2.1, "1.25x slower than" for 0.8.
std::string CompareSpeed(double speedup) {
  if (speedup >= 1.0) return absl::StrFormat("%.2fx faster than", speedup);
  return absl::StrFormat("%.2fx slower than", 1.0 / speedup);
}

}  // namespace

std::string FormatSummaryTable(const proto::PipelineResult& result) {
  const std::vector<int64_t> batches(result.config().latency().batch_sizes().begin(),
                                     result.config().latency().batch_sizes().end());
  std::string table = absl::StrFormat("%-28s %-11s %9s %11s", "model", "status", "accuracy",
                                      "file");
  for (int64_t batch : batches) absl::StrAppend(&table, absl::StrFormat(" %10s", absl::StrCat("b", batch, " ms")));
  absl::StrAppend(&table, "\n");

  table += Row("original", "", result.original_accuracy().accuracy(),
               result.original_size().file_bytes(), result.original_latency(), batches);
  table += Row("original, optimize_for_inf.", "baseline", result.original_accuracy().accuracy(),
               result.original_size().file_bytes(), result.original_optimized_latency(), batches);
  for (const proto::StageResult& stage : result.stages()) {
    std::string status = proto::StageResult::Status_Name(stage.status());
    table += Row(absl::StrCat("after ", stage.name()), status, stage.accuracy().accuracy(),
                 stage.size().file_bytes(), stage.latency(), batches);
  }

  const proto::FinalMetrics& metrics = result.metrics();
  absl::StrAppend(&table, "\n");
  for (const proto::StageResult& stage : result.stages()) {
    absl::StrAppend(&table, stage.name(), ": ", stage.message());
    if (!stage.summary().empty()) absl::StrAppend(&table, " (", stage.summary(), ")");
    absl::StrAppend(&table, "\n");
  }
  absl::StrAppend(&table, absl::StrFormat(
                              "file: %s -> %s, %.2fx smaller (serialized TorchScript bytes)\n",
                              FormatBytes(result.original_size().file_bytes()),
                              FormatBytes(result.final_size().file_bytes()),
                              metrics.compression_ratio()));
  for (int64_t batch : batches) {
    const auto optimized = metrics.speedup_vs_optimized().find(batch);
    const auto original = metrics.speedup_vs_original().find(batch);
    if (optimized == metrics.speedup_vs_optimized().end()) continue;
    absl::StrAppend(&table, absl::StrFormat(
                                "batch %d: %s the optimize_for_inference fp32 baseline (%s the "
                                "model as loaded), %d threads\n",
                                batch, CompareSpeed(optimized->second),
                                CompareSpeed(original->second), result.config().threads()));
  }
  if (!metrics.timing_warning().empty()) {
    absl::StrAppend(&table, "warning: ", metrics.timing_warning(), "\n");
  }
  absl::StrAppend(&table, absl::StrFormat("weights in memory: %s -> %s\n",
                                          FormatBytes(metrics.original_weight_bytes()),
                                          FormatBytes(metrics.optimized_weight_bytes())));
  if (metrics.original_peak_resident_bytes() > 0) {
    absl::StrAppend(&table,
                    absl::StrFormat("peak resident memory running the model: %s -> %s (the "
                                    "process alone, before loading a model: %s)\n",
                                    FormatBytes(metrics.original_peak_resident_bytes()),
                                    FormatBytes(metrics.optimized_peak_resident_bytes()),
                                    FormatBytes(metrics.probe_baseline_resident_bytes())));
  }
  absl::StrAppend(&table, absl::StrFormat("accuracy: %.2f%% -> %.2f%% (%+.2f points) on %s\n",
                                          100 * result.original_accuracy().accuracy(),
                                          100 * result.final_accuracy().accuracy(),
                                          -metrics.accuracy_drop_points(),
                                          result.data_description()));
  absl::StrAppend(&table, result.summary(), "\n");
  return table;
}

absl::StatusOr<std::string> SerializeResult(const proto::PipelineResult& result,
                                            const std::string& path) {
  std::string text;
  if (absl::EndsWith(path, ".json")) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    const auto status = google::protobuf::util::MessageToJsonString(result, &text, options);
    if (!status.ok()) {
      return absl::InternalError(absl::StrCat("cannot write the result as JSON: ",
                                              status.ToString()));
    }
    return text;
  }
  if (!google::protobuf::TextFormat::PrintToString(result, &text)) {
    return absl::InternalError("cannot write the result in text format");
  }
  return text;
}

absl::Status WriteResult(const proto::PipelineResult& result, const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(std::string text, SerializeResult(result, path));
  return WriteFileAtomically(path, text);
}

}  // namespace polaris::pipeline
