// Latency measurement: warm-up runs, then repeated timed runs, reported as median and 90th
// percentile with the thread count they ran on. Speed comparisons in polaris time both variants
// with this harness in one process.
//
//   LatencyOptions options;  // 10 warm-up runs, 50 timed runs
//   POLARIS_ASSIGN_OR_RETURN(LatencyStats stats, MeasureModelLatency(model, input, options));
//   stats.median_ms;
#ifndef POLARIS_CORE_LATENCY_H_
#define POLARIS_CORE_LATENCY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris {

struct LatencyOptions {
  int warmup_runs = 10;
  int timed_runs = 50;
  // Stop timing early once this much time has been spent on timed runs (0: no limit), but
  // never before min_timed_runs runs.
  double max_seconds = 0;
  int min_timed_runs = 5;
};

struct LatencyStats {
  double median_ms = 0;
  double p90_ms = 0;
  double min_ms = 0;
  double mean_ms = 0;
  int runs = 0;
  // LibTorch intra-op threads during the measurement.
  int threads = 0;
};

// Times `run` with `options`. Errors: kInvalidArgument for non-positive run counts; the first
// error `run` returns.
absl::StatusOr<LatencyStats> MeasureLatency(const std::function<absl::Status()>& run,
                                            const LatencyOptions& options);

// Times model.forward(input) in eval mode under c10::InferenceMode (no autograd bookkeeping),
// as deployed inference runs. The model's training flag is restored afterwards.
absl::StatusOr<LatencyStats> MeasureModelLatency(torch::jit::Module& model,
                                                 const at::Tensor& input,
                                                 const LatencyOptions& options);

// Returns the baseline a careful user deploys: a copy of `model` in eval mode after
// torch::jit::optimize_for_inference (freezing, Conv-BatchNorm folding, oneDNN layouts).
// `model` is not changed.
absl::StatusOr<torch::jit::Module> OptimizeForInference(const torch::jit::Module& model);

// Returns the median of `values` (which it reorders); 0 for an empty vector.
double Median(std::vector<double>& values);

}  // namespace polaris

#endif  // POLARIS_CORE_LATENCY_H_
