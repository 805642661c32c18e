// The optimize command: optimizes a TorchScript model for a target and writes the optimized
// model and a measured report.
//
//   bazel run //pipeline:optimize                        the main job: trains (or reuses) the
//                                                        Fashion-MNIST reference CNN, runs the
//                                                        BALANCED target, writes both files
//   bazel run //pipeline:optimize -- --model=net.pt --target=speed --out=net.fast.pt
//
// Exit status: 0 when every stage ran (applied, relaxed, rolled back or skipped), 3 when a
// stage failed (the run still finishes with the previous model), 1 for bad input or bad flags
// (nothing is written).
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "pipeline/config.h"
#include "pipeline/data_source.h"
#include "pipeline/measure.h"
#include "pipeline/optimizer.h"
#include "pipeline/report.h"

ABSL_FLAG(std::string, model, "",
          "TorchScript file to optimize (torch.jit.save of a scripted or traced model whose "
          "forward maps one tensor to logits). Empty: the Fashion-MNIST reference CNN, trained "
          "on first use and cached under ~/.cache/polaris/models.");
ABSL_FLAG(std::string, data, "",
          "Data: 'fashion-mnist' (default), a folder of IDX files named like Fashion-MNIST's, "
          "or a torch.save file of (inputs, labels), (train_x, train_y, test_x, test_y) or "
          "{'train': (x, y), 'test': (x, y)}. Fashion-MNIST images are scaled to [0, 1] and "
          "normalized with mean 0.2860 and std 0.3530; saved tensors are used as they are. "
          "Without a training part, stages that train are skipped.");
ABSL_FLAG(std::string, target, "",
          "Optimization target: accuracy, balanced, speed, memory or extreme. Overrides the "
          "config's target; default balanced.");
ABSL_FLAG(std::string, config, "",
          "Text-format PipelineConfig (pipeline/pipeline.proto; examples in pipeline/configs/). "
          "Flags given explicitly override its fields.");
ABSL_FLAG(std::string, out, "",
          "Where to write the optimized TorchScript model. Default: next to the input as "
          "NAME.optimized.pt, or optimized_cnn.pt for the reference CNN.");
ABSL_FLAG(std::string, report, "",
          "Where to write the report: JSON when the name ends in .json, protobuf text format "
          "otherwise. Default: the output model's name with .report.json.");
ABSL_FLAG(int, threads, 0,
          "Threads for LibTorch, OpenBLAS and polaris kernels, used for every measurement; 0 "
          "means the config's value or all hardware threads.");
ABSL_FLAG(uint64_t, seed, 0,
          "Seed for data splits, training and searches; 0 means the config's value or 1. The "
          "same config and seed reproduce the same model and non-timing numbers.");
ABSL_FLAG(double, max_accuracy_drop, -1,
          "Largest accepted accuracy drop in percentage points (1.0 = one point); negative "
          "means the config's value or the target's default.");
ABSL_FLAG(bool, quiet, false, "Print only the summary table, not progress and stage logs.");

namespace polaris::pipeline {
namespace {

constexpr int kExitBadInput = 1;
constexpr int kExitStageFailed = 3;

bool IsDirectoryPath(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::string DefaultOutputFor(const std::string& model_path) {
  if (model_path.empty()) return ResolveUserPath("optimized_cnn.pt");
  std::string stem = model_path;
  if (absl::EndsWith(stem, ".pt")) stem.resize(stem.size() - 3);
  return stem + ".optimized.pt";
}

std::string DefaultReportFor(const std::string& out_path) {
  std::string stem = out_path;
  if (absl::EndsWith(stem, ".pt")) stem.resize(stem.size() - 3);
  return stem + ".report.json";
}

absl::Status CheckWritableDirectory(const std::string& path) {
  if (IsDirectoryPath(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot write '", path, "': it is a directory; give a file name such as ", path,
        "/model.pt"));
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
  if (!PathExists(dir)) {
    return absl::NotFoundError(absl::StrCat("cannot write '", path, "': directory '", dir,
                                            "' does not exist; create it or choose another path"));
  }
  return absl::OkStatus();
}

absl::StatusOr<proto::PipelineConfig> BuildConfig() {
  proto::PipelineConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    POLARIS_ASSIGN_OR_RETURN(config, LoadConfigFile(ResolveUserPath(path)));
  }
  if (const std::string target = absl::GetFlag(FLAGS_target); !target.empty()) {
    POLARIS_ASSIGN_OR_RETURN(proto::Target parsed, ParseTarget(target));
    config.set_target(parsed);
  }
  if (absl::GetFlag(FLAGS_threads) != 0) config.set_threads(absl::GetFlag(FLAGS_threads));
  if (absl::GetFlag(FLAGS_seed) != 0) config.set_seed(absl::GetFlag(FLAGS_seed));
  if (absl::GetFlag(FLAGS_max_accuracy_drop) >= 0) {
    config.set_max_accuracy_drop(absl::GetFlag(FLAGS_max_accuracy_drop));
  }
  if (const std::string data = absl::GetFlag(FLAGS_data); !data.empty()) {
    config.mutable_data()->set_source(data == "fashion-mnist" ? data : ResolveUserPath(data));
  }
  return ResolveConfig(config);
}

absl::StatusOr<torch::jit::Module> LoadOrTrainModel(const std::string& model_path,
                                                    const proto::PipelineConfig& config) {
  if (!model_path.empty()) return LoadModel(model_path);
  std::fprintf(stderr, "no --model given: using the Fashion-MNIST reference CNN\n");
  ZooOptions zoo;
  zoo.seed = 1;
  zoo.show_progress = !absl::GetFlag(FLAGS_quiet);
  POLARIS_ASSIGN_OR_RETURN(TrainedModel trained, GetTrainedModel(ReferenceModel::kResidualCnn, zoo));
  std::fprintf(stderr, "%s reference CNN %s (test accuracy %.2f%%)\n",
               trained.loaded_from_cache ? "reused cached" : "trained and cached",
               trained.path.c_str(), 100 * trained.test_accuracy);
  return trained.model;
}

absl::StatusOr<int> Run(const char* argv0) {
  POLARIS_ASSIGN_OR_RETURN(proto::PipelineConfig config, BuildConfig());
  POLARIS_RETURN_IF_ERROR(SetThreads(config.threads()));

  const std::string model_path = ResolveUserPath(absl::GetFlag(FLAGS_model));
  const std::string out = absl::GetFlag(FLAGS_out).empty()
                              ? DefaultOutputFor(model_path)
                              : ResolveUserPath(absl::GetFlag(FLAGS_out));
  const std::string report = absl::GetFlag(FLAGS_report).empty()
                                 ? DefaultReportFor(out)
                                 : ResolveUserPath(absl::GetFlag(FLAGS_report));
  POLARIS_RETURN_IF_ERROR(CheckWritableDirectory(out));
  POLARIS_RETURN_IF_ERROR(CheckWritableDirectory(report));

  // Load the data before a possibly long training of the reference model, so a bad --data
  // fails at once.
  DataOptions data_options;
  data_options.validation_examples = config.data().validation_examples();
  data_options.calibration_examples = config.data().calibration_examples();
  data_options.seed = config.seed();
  POLARIS_ASSIGN_OR_RETURN(PipelineData data,
                           LoadPipelineData(config.data().source(), data_options));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model, LoadOrTrainModel(model_path, config));

  OptimizeOptions options;
  options.verbose = !absl::GetFlag(FLAGS_quiet);
  absl::StatusOr<std::string> probe = FindRunfile(argv0, "pipeline/memory_probe");
  if (probe.ok()) {
    options.memory_probe = *probe;
  } else {
    std::fprintf(stderr, "peak memory will not be measured: %s\n",
                 std::string(probe.status().message()).c_str());
  }
  POLARIS_ASSIGN_OR_RETURN(OptimizeOutput output, Optimize(model, config, data, options));

  POLARIS_RETURN_IF_ERROR(SaveModel(output.model, out));
  POLARIS_RETURN_IF_ERROR(WriteResult(output.result, report));
  std::printf("\n%s", FormatSummaryTable(output.result).c_str());
  std::printf("wrote %s and %s\n", out.c_str(), report.c_str());
  return output.result.had_failures() ? kExitStageFailed : 0;
}

}  // namespace
}  // namespace polaris::pipeline

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Optimizes a TorchScript model (pruning, fine-tuning, quantization) for a target and "
      "writes the optimized model and a measured report.\n"
      "  bazel run //pipeline:optimize                 main job on the reference CNN\n"
      "  bazel run //pipeline:optimize -- --model=net.pt --target=speed");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr,
                 "error: unexpected argument '%s'; flags take the form --name=value, e.g. "
                 "--model=%s\n",
                 positional[1], positional[1]);
    return polaris::pipeline::kExitBadInput;
  }
  absl::StatusOr<int> exit_code = polaris::pipeline::Run(argv[0]);
  if (!exit_code.ok()) {
    std::string message(exit_code.status().message());
    absl::StrReplaceAll({{"\n", " "}}, &message);
    std::fprintf(stderr, "error: %s\n", message.c_str());
    return polaris::pipeline::kExitBadInput;
  }
  return *exit_code;
}
