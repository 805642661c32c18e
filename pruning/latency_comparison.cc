#include "pruning/latency_comparison.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include "ATen/Parallel.h"
#include "absl/strings/str_cat.h"
#include "c10/core/InferenceMode.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris::pruning {
namespace {

LatencyStats Summarize(std::vector<double> times_ms) {
  LatencyStats stats;
  stats.runs = static_cast<int>(times_ms.size());
  stats.threads = at::get_num_threads();
  stats.mean_ms = std::accumulate(times_ms.begin(), times_ms.end(), 0.0) / stats.runs;
  stats.median_ms = Median(times_ms);  // Sorts times_ms.
  stats.min_ms = times_ms.front();
  const size_t p90 =
      std::min(times_ms.size() - 1, static_cast<size_t>(0.9 * (times_ms.size() - 1) + 0.5));
  stats.p90_ms = times_ms[p90];
  return stats;
}

}  // namespace

absl::StatusOr<LatencyComparison> CompareLatency(torch::jit::Module& baseline,
                                                 torch::jit::Module& candidate,
                                                 const at::Tensor& input,
                                                 const LatencyOptions& options) {
  if (options.warmup_runs < 0 || options.timed_runs < 1 || options.min_timed_runs < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latency comparison needs warmup_runs >= 0 and timed_runs, min_timed_runs >= 1, got ",
        options.warmup_runs, ", ", options.timed_runs, " and ", options.min_timed_runs));
  }
  const bool baseline_training = baseline.is_training();
  const bool candidate_training = candidate.is_training();
  baseline.eval();
  candidate.eval();
  std::vector<double> baseline_ms;
  std::vector<double> candidate_ms;
  absl::Status timed = CallTorch("timing the models", [&] {
    c10::InferenceMode inference_mode;
    const std::vector<c10::IValue> inputs{input};
    for (int i = 0; i < options.warmup_runs; ++i) {
      baseline.forward(inputs);
      candidate.forward(inputs);
    }
    auto time_once = [&](torch::jit::Module& model) {
      const auto before = std::chrono::steady_clock::now();
      model.forward(inputs);
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - before)
          .count();
    };
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < options.timed_runs; ++round) {
      baseline_ms.push_back(time_once(baseline));
      candidate_ms.push_back(time_once(candidate));
      const double spent =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (options.max_seconds > 0 && spent > options.max_seconds &&
          round + 1 >= options.min_timed_runs) {
        break;
      }
    }
  });
  baseline.train(baseline_training);
  candidate.train(candidate_training);
  if (!timed.ok()) return absl::InvalidArgumentError(timed.message());

  LatencyComparison comparison;
  comparison.baseline = Summarize(std::move(baseline_ms));
  comparison.candidate = Summarize(std::move(candidate_ms));
  comparison.speedup = comparison.baseline.median_ms / comparison.candidate.median_ms;
  return comparison;
}

}  // namespace polaris::pruning
