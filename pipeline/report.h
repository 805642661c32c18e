// Human-readable and machine-readable forms of a pipeline result.
#ifndef POLARIS_PIPELINE_REPORT_H_
#define POLARIS_PIPELINE_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pipeline/pipeline.pb.h"

namespace polaris::pipeline {

// Formats the summary table: one row for the original model, its optimize_for_inference
// baseline and each stage (status, test accuracy, file size, latency per batch size), followed
// by the final ratios and the outcome statement.
std::string FormatSummaryTable(const proto::PipelineResult& result);

// Serializes the result as JSON when `path` ends in ".json", otherwise in protobuf text format.
absl::StatusOr<std::string> SerializeResult(const proto::PipelineResult& result,
                                            const std::string& path);

// Writes SerializeResult's output to `path` atomically.
absl::Status WriteResult(const proto::PipelineResult& result, const std::string& path);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_REPORT_H_
