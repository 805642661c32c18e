#include "quantization/model_measurement.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "absl/strings/str_cat.h"
#include "c10/core/InferenceMode.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::quantization {
namespace {

LatencyStats Summarize(std::vector<double> times_ms) {
  LatencyStats stats;
  stats.runs = static_cast<int>(times_ms.size());
  stats.threads = at::get_num_threads();
  stats.mean_ms = std::accumulate(times_ms.begin(), times_ms.end(), 0.0) / stats.runs;
  stats.median_ms = Median(times_ms);  // sorts times_ms
  const size_t p90 = std::min(times_ms.size() - 1,
                              static_cast<size_t>(0.9 * (times_ms.size() - 1) + 0.5));
  stats.p90_ms = times_ms[p90];
  stats.min_ms = times_ms.front();
  return stats;
}

// Returns the first `batch_size` inputs of `data`, repeating examples when it has fewer.
at::Tensor BatchOf(const LabeledData& data, int64_t batch_size) {
  const int64_t available = data.size();
  if (available >= batch_size) return data.inputs.slice(0, 0, batch_size).contiguous();
  const at::Tensor index = at::arange(batch_size, at::kLong).remainder(available);
  return data.inputs.index_select(0, index);
}

}  // namespace

absl::StatusOr<std::vector<LatencyStats>> CompareLatencies(
    const std::vector<torch::jit::Module*>& models, const at::Tensor& input,
    const MeasurementOptions& options) {
  if (models.empty() || options.rounds < 1 || options.runs_per_round < 1 ||
      options.warmup_runs < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latency comparison needs at least one model, rounds >= 1 and runs_per_round >= 1, "
        "got ", models.size(), " models, ", options.rounds, " rounds and ",
        options.runs_per_round, " runs per round"));
  }
  std::vector<bool> was_training;
  for (torch::jit::Module* model : models) {
    was_training.push_back(model->is_training());
    model->eval();
  }
  absl::StatusOr<std::vector<LatencyStats>> result = CallTorch(
      "timing the models", [&]() -> absl::StatusOr<std::vector<LatencyStats>> {
        c10::InferenceMode inference_mode;
        const std::vector<c10::IValue> inputs{input};
        std::vector<std::vector<double>> times(models.size());
        const auto start = std::chrono::steady_clock::now();
        for (int round = 0; round < options.rounds; ++round) {
          for (size_t k = 0; k < models.size(); ++k) {
            const size_t m = (k + round) % models.size();
            for (int i = 0; i < options.warmup_runs; ++i) models[m]->forward(inputs);
            for (int i = 0; i < options.runs_per_round; ++i) {
              const auto before = std::chrono::steady_clock::now();
              models[m]->forward(inputs);
              const auto after = std::chrono::steady_clock::now();
              times[m].push_back(
                  std::chrono::duration<double, std::milli>(after - before).count());
            }
          }
          const double spent =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if (options.max_seconds > 0 && spent > options.max_seconds && round >= 1) break;
        }
        std::vector<LatencyStats> stats;
        for (std::vector<double>& model_times : times) {
          stats.push_back(Summarize(std::move(model_times)));
        }
        return stats;
      });
  for (size_t m = 0; m < models.size(); ++m) models[m]->train(was_training[m]);
  return result;
}

absl::StatusOr<std::vector<ModelMeasurement>> MeasureModels(
    const std::vector<torch::jit::Module*>& models, const LabeledData& data,
    const MeasurementOptions& options) {
  if (data.size() == 0) {
    return absl::InvalidArgumentError("measuring models needs evaluation data with examples");
  }
  std::vector<ModelMeasurement> measurements(models.size());
  for (size_t m = 0; m < models.size(); ++m) {
    POLARIS_ASSIGN_OR_RETURN(measurements[m].evaluation, Evaluate(*models[m], data));
    POLARIS_ASSIGN_OR_RETURN(measurements[m].size, MeasureModelSize(*models[m]));
    measurements[m].parameters = ParameterCount(*models[m]);
  }
  for (int64_t batch_size : options.batch_sizes) {
    if (batch_size < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("latency batch sizes must be positive, got ", batch_size));
    }
    POLARIS_ASSIGN_OR_RETURN(std::vector<LatencyStats> latencies,
                             CompareLatencies(models, BatchOf(data, batch_size), options));
    for (size_t m = 0; m < models.size(); ++m) {
      measurements[m].batch_sizes.push_back(batch_size);
      measurements[m].latencies.push_back(latencies[m]);
    }
  }
  return measurements;
}

}  // namespace polaris::quantization
