// Latency of a pruned model against its baseline, timed alternately: one run of each per
// round, so that load from other processes on a shared machine slows both alike and their
// ratio stays meaningful even when absolute times move.
//
//   POLARIS_ASSIGN_OR_RETURN(LatencyComparison comparison,
//                            CompareLatency(dense_optimized, pruned_optimized, input, {}));
//   comparison.speedup;  // baseline median / candidate median
#ifndef POLARIS_PRUNING_LATENCY_COMPARISON_H_
#define POLARIS_PRUNING_LATENCY_COMPARISON_H_

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "core/latency.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

struct LatencyComparison {
  LatencyStats baseline;
  LatencyStats candidate;
  // baseline.median_ms / candidate.median_ms.
  double speedup = 0;
};

// Runs each model options.warmup_runs times, then options.timed_runs rounds of one baseline run
// and one candidate run (stopping after options.max_seconds, but not before min_timed_runs
// rounds), in eval mode under c10::InferenceMode. The models' training flags are restored.
// Errors: kInvalidArgument for run counts below 1 (warm-up below 0) or a model that fails on
// `input` (LibTorch's message included).
absl::StatusOr<LatencyComparison> CompareLatency(torch::jit::Module& baseline,
                                                 torch::jit::Module& candidate,
                                                 const at::Tensor& input,
                                                 const LatencyOptions& options);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_LATENCY_COMPARISON_H_
