// Runs all five optimization targets on the Fashion-MNIST reference CNN and prints one
// comparison table, every figure measured in this process:
//
//   bazel run //pipeline:demo
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/metrics.h"
#include "core/model_zoo.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "pipeline/config.h"
#include "pipeline/data_source.h"
#include "pipeline/measure.h"
#include "pipeline/optimizer.h"
#include "pipeline/report.h"

ABSL_FLAG(int, threads, 0, "Threads for every measurement; 0 means all hardware threads.");
ABSL_FLAG(bool, verbose, false, "Print each run's stage logs and summary table too.");

namespace polaris::pipeline {
namespace {

std::string Speedup(const proto::FinalMetrics& metrics, int64_t batch) {
  const auto it = metrics.speedup_vs_optimized().find(batch);
  return it == metrics.speedup_vs_optimized().end() ? "-" : absl::StrFormat("%.2fx", it->second);
}

absl::Status Run(const char* argv0) {
  const int threads = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads)
                                                       : HardwareThreads();
  POLARIS_RETURN_IF_ERROR(SetThreads(threads));
  POLARIS_ASSIGN_OR_RETURN(TrainedModel cnn, GetTrainedModel(ReferenceModel::kResidualCnn));
  std::printf("reference CNN: %s, test accuracy %.2f%%\n", cnn.path.c_str(),
              100 * cnn.test_accuracy);
  POLARIS_ASSIGN_OR_RETURN(PipelineData data, LoadPipelineData("fashion-mnist", DataOptions()));

  OptimizeOptions options;
  options.verbose = absl::GetFlag(FLAGS_verbose);
  absl::StatusOr<std::string> probe = FindRunfile(argv0, "pipeline/memory_probe");
  if (probe.ok()) options.memory_probe = *probe;

  std::vector<std::string> rows;
  for (proto::Target target :
       {proto::ACCURACY, proto::BALANCED, proto::SPEED, proto::MEMORY, proto::EXTREME}) {
    proto::PipelineConfig config;
    config.set_target(target);
    config.set_threads(threads);
    std::fprintf(stderr, "running the %s target...\n", TargetName(target).c_str());
    POLARIS_ASSIGN_OR_RETURN(OptimizeOutput output, Optimize(cnn.model, config, data, options));
    const proto::PipelineResult& result = output.result;
    if (options.verbose) std::printf("%s\n", FormatSummaryTable(result).c_str());
    std::vector<std::string> statuses;
    for (const proto::StageResult& stage : result.stages()) {
      statuses.push_back(absl::StrFormat("%s:%s", stage.name(),
                                         proto::StageResult::Status_Name(stage.status())));
    }
    rows.push_back(absl::StrFormat(
        "%-9s %6.2f %8.2f%% %+7.2f %10s %7.2fx %8s %8s %7.0fs  %s", TargetName(target),
        result.config().max_accuracy_drop(), 100 * result.final_accuracy().accuracy(),
        -result.metrics().accuracy_drop_points(), FormatBytes(result.final_size().file_bytes()),
        result.metrics().compression_ratio(), Speedup(result.metrics(), 1),
        Speedup(result.metrics(), 64), result.total_wall_seconds(),
        absl::StrJoin(statuses, " ")));
  }

  std::printf("\nAll targets on the reference CNN (fp32: %.2f%%, %s); speedups are against the "
              "fp32 model after optimize_for_inference, %d threads\n",
              100 * cnn.test_accuracy, FormatBytes(MeasureModelSize(cnn.model)->file_bytes).c_str(),
              threads);
  std::printf("%-9s %6s %9s %7s %10s %8s %8s %8s %8s  %s\n", "target", "budget", "accuracy",
              "change", "file", "smaller", "b1", "b64", "time", "stages");
  for (const std::string& row : rows) std::printf("%s\n", row.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace polaris::pipeline

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = polaris::pipeline::Run(argv[0]);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
