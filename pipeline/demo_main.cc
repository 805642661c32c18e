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
#include "core/latency.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "pipeline/config.h"
#include "pipeline/data_source.h"
#include "pipeline/measure.h"
#include "pipeline/optimizer.h"
#include "pipeline/report.h"
#include "quantization/fx_baseline.h"

ABSL_FLAG(int, threads, 0, "Threads for every measurement; 0 means all hardware threads.");
ABSL_FLAG(bool, fx, true,
          "Also quantize the CNN with PyTorch's FX workflow (needs /usr/bin/python3 with "
          "python3-torch) and add it as a reference row.");
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

  // The reference the ACCURACY target is held to: PyTorch's own int8 FX quantization of the same
  // model, calibrated on the same images, measured like the targets.
  if (absl::GetFlag(FLAGS_fx)) {
    absl::StatusOr<torch::jit::Module> fx =
        quantization::QuantizeWithPytorchFx(cnn.path, data.calibration.inputs, "pipeline_demo");
    if (!fx.ok()) {
      std::fprintf(stderr, "PyTorch FX row left out: %s\n",
                   std::string(fx.status().message()).c_str());
    } else {
      LatencySettings latency;
      latency.batch_sizes = {1, 64};
      POLARIS_ASSIGN_OR_RETURN(ModelMeasurement original,
                               MeasureModel(cnn.model, data.test, nullptr));
      POLARIS_ASSIGN_OR_RETURN(ModelMeasurement measured, MeasureModel(*fx, data.test, nullptr));
      // Timed like the targets' final speedups: alternating with the optimized fp32 model.
      POLARIS_ASSIGN_OR_RETURN(torch::jit::Module optimized, OptimizeForInference(cnn.model));
      POLARIS_ASSIGN_OR_RETURN(const auto speedups,
                               MeasureSpeedups(optimized, *fx, data.test, latency));
      auto ratio = [&](int64_t batch) { return absl::StrFormat("%.2fx", speedups.at(batch)); };
      rows.push_back(absl::StrFormat(
          "%-9s %6s %8.2f%% %+7.2f %10s %7.2fx %8s %8s %8s  %s", "FX int8", "-",
          100 * measured.accuracy.accuracy,
          100 * (measured.accuracy.accuracy - original.accuracy.accuracy),
          FormatBytes(measured.size.file_bytes),
          static_cast<double>(original.size.file_bytes) / measured.size.file_bytes, ratio(1),
          ratio(64), "-", "PyTorch 1.13 FX, ONEDNN engine, the same calibration images"));
    }
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
