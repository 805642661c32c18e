#include "core/proto_conversion.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace polaris {

proto::Environment ToEnvironmentProto(const RuntimeInfo& info, const std::string& git_commit) {
  proto::Environment environment;
  environment.set_cpu_model(info.cpu_model);
  environment.set_cpu_features(info.cpu_features);
  environment.set_hardware_threads(info.hardware_threads);
  environment.set_threads(info.intra_op_threads);
  environment.set_openblas_threads(info.openblas_threads);
  environment.set_libtorch_version(info.libtorch_version);
  environment.set_onednn_version(info.onednn_version);
  environment.set_openblas_config(info.openblas_config);
  environment.set_blas_library(info.blas_library);
  environment.set_protobuf_version(info.protobuf_version);
  environment.set_quantized_engine(info.quantized_engine);
  environment.set_git_commit(git_commit);
  environment.set_timestamp(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  return environment;
}

proto::Latency ToLatencyProto(const LatencyStats& stats, int64_t batch_size) {
  proto::Latency latency;
  latency.set_batch_size(batch_size);
  latency.set_median_ms(stats.median_ms);
  latency.set_p90_ms(stats.p90_ms);
  latency.set_min_ms(stats.min_ms);
  latency.set_mean_ms(stats.mean_ms);
  latency.set_runs(stats.runs);
  latency.set_threads(stats.threads);
  return latency;
}

proto::ModelSize ToModelSizeProto(const ModelSize& size, int64_t parameters) {
  proto::ModelSize message;
  message.set_file_bytes(size.file_bytes);
  message.set_tensor_data_bytes(size.tensor_data_bytes);
  message.set_other_bytes(size.other_bytes);
  message.set_parameters(parameters);
  return message;
}

proto::Accuracy ToAccuracyProto(const EvalResult& eval, const std::string& data_name) {
  proto::Accuracy message;
  message.set_accuracy(eval.accuracy);
  message.set_loss(eval.loss);
  message.set_examples(eval.examples);
  message.set_data(data_name);
  return message;
}

std::string DescribeGitCommit(const std::string& directory) {
  std::string dir = directory;
  if (dir.empty()) {
    const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
    dir = workspace != nullptr ? workspace : ".";
  }
  const std::string command =
      absl::StrCat("git -C '", dir, "' describe --always --dirty 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "unknown";
  std::string output;
  std::array<char, 256> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  output = std::string(absl::StripAsciiWhitespace(output));
  if (status != 0 || output.empty()) return "unknown";
  return output;
}

absl::StatusOr<TrainOptions> ToTrainOptions(const proto::TrainingSchedule& schedule,
                                            const TrainOptions& defaults) {
  TrainOptions options = defaults;
  if (schedule.has_epochs()) options.epochs = schedule.epochs();
  if (schedule.has_max_steps()) options.max_steps = schedule.max_steps();
  if (schedule.has_batch_size()) options.batch_size = schedule.batch_size();
  if (schedule.has_optimizer()) {
    if (schedule.optimizer() == "sgd") {
      options.optimizer = OptimizerKind::kSgd;
    } else if (schedule.optimizer() == "adam") {
      options.optimizer = OptimizerKind::kAdam;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown optimizer '", schedule.optimizer(), "'; use sgd or adam"));
    }
  }
  if (schedule.has_learning_rate()) options.learning_rate = schedule.learning_rate();
  if (schedule.has_momentum()) options.momentum = schedule.momentum();
  if (schedule.has_weight_decay()) options.weight_decay = schedule.weight_decay();
  if (schedule.has_learning_rate_schedule()) {
    if (schedule.learning_rate_schedule() == "cosine") {
      options.schedule = LearningRateSchedule::kCosine;
    } else if (schedule.learning_rate_schedule() == "constant") {
      options.schedule = LearningRateSchedule::kConstant;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown learning_rate_schedule '",
                                                     schedule.learning_rate_schedule(),
                                                     "'; use cosine or constant"));
    }
  }
  if (schedule.has_warmup_steps()) options.warmup_steps = schedule.warmup_steps();
  if (schedule.has_label_smoothing()) options.label_smoothing = schedule.label_smoothing();
  if (schedule.has_seed()) options.seed = schedule.seed();
  return options;
}

}  // namespace polaris
