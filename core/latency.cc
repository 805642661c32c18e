#include "core/latency.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include "ATen/Parallel.h"
#include "absl/strings/str_cat.h"
#include "c10/core/InferenceMode.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

double Percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1,
                                static_cast<size_t>(fraction * (sorted.size() - 1) + 0.5));
  return sorted[index];
}

}  // namespace

double Median(std::vector<double>& values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  if (values.size() % 2 == 1) return values[middle];
  return 0.5 * (values[middle - 1] + values[middle]);
}

absl::StatusOr<LatencyStats> MeasureLatency(const std::function<absl::Status()>& run,
                                            const LatencyOptions& options) {
  if (options.warmup_runs < 0 || options.timed_runs < 1 || options.min_timed_runs < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latency measurement needs warmup_runs >= 0 and timed_runs >= 1, got ",
        options.warmup_runs, " and ", options.timed_runs));
  }
  for (int i = 0; i < options.warmup_runs; ++i) POLARIS_RETURN_IF_ERROR(run());

  std::vector<double> times_ms;
  times_ms.reserve(options.timed_runs);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.timed_runs; ++i) {
    const auto before = std::chrono::steady_clock::now();
    POLARIS_RETURN_IF_ERROR(run());
    const auto after = std::chrono::steady_clock::now();
    times_ms.push_back(std::chrono::duration<double, std::milli>(after - before).count());
    const double spent = std::chrono::duration<double>(after - start).count();
    if (options.max_seconds > 0 && spent > options.max_seconds &&
        static_cast<int>(times_ms.size()) >= options.min_timed_runs) {
      break;
    }
  }

  LatencyStats stats;
  stats.runs = static_cast<int>(times_ms.size());
  stats.threads = at::get_num_threads();
  stats.mean_ms = std::accumulate(times_ms.begin(), times_ms.end(), 0.0) / stats.runs;
  stats.median_ms = Median(times_ms);  // sorts times_ms
  stats.p90_ms = Percentile(times_ms, 0.9);
  stats.min_ms = times_ms.front();
  return stats;
}

absl::StatusOr<LatencyStats> MeasureModelLatency(torch::jit::Module& model,
                                                 const at::Tensor& input,
                                                 const LatencyOptions& options) {
  const bool was_training = model.is_training();
  model.eval();
  c10::InferenceMode inference_mode;
  std::vector<c10::IValue> inputs{input};
  absl::StatusOr<LatencyStats> stats = MeasureLatency(
      [&] { return CallTorch("running the model", [&] { model.forward(inputs); }); }, options);
  model.train(was_training);
  return stats;
}

absl::StatusOr<torch::jit::Module> OptimizeForInference(const torch::jit::Module& model) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
  return CallTorch("optimizing the model for inference (torch::jit::optimize_for_inference)",
                   [&] {
                     copy.eval();
                     return torch::jit::optimize_for_inference(copy);
                   });
}

}  // namespace polaris
