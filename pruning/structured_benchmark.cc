// Latency of the residual CNN after structured pruning, against the dense model, both after
// core's OptimizeForInference (torch::jit::optimize_for_inference) and on the same threads.
// Latency does not depend on the weights' values, so freshly initialized models are used.
//
//   bazel run --config=opt //pruning:structured_benchmark
//
// Counters: speedup = dense median / pruned median, timed alternately right after the
// benchmark loop (pruning/latency_comparison.h), and parameters_ratio = dense / pruned
// parameter count.
#include "ATen/Functions.h"
#include "benchmark/benchmark.h"
#include "c10/core/InferenceMode.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/models.h"
#include "pruning/latency_comparison.h"
#include "pruning/structured.h"

namespace polaris::pruning {
namespace {

torch::jit::Module DenseCnn() {
  torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  model.eval();
  return model;
}

void BM_ResidualCnnStructured(benchmark::State& state) {
  const double fraction = state.range(0) / 100.0;
  const int64_t batch = state.range(1);
  torch::jit::Module dense = DenseCnn();
  StructuredPruningOptions options;
  options.fraction = fraction;
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(dense, options, nullptr);
  if (!pruned.ok()) {
    state.SkipWithError(std::string(pruned.status().message()).c_str());
    return;
  }
  absl::StatusOr<torch::jit::Module> dense_optimized = OptimizeForInference(dense);
  absl::StatusOr<torch::jit::Module> pruned_optimized = OptimizeForInference(pruned->model);
  if (!dense_optimized.ok() || !pruned_optimized.ok()) {
    state.SkipWithError("OptimizeForInference failed");
    return;
  }
  const at::Tensor input = at::randn({batch, 1, 28, 28});

  {
    c10::InferenceMode inference_mode;
    for (auto _ : state) benchmark::DoNotOptimize(pruned_optimized->forward({input}));
  }

  state.SetItemsProcessed(state.iterations() * batch);
  LatencyOptions options_timing;
  options_timing.warmup_runs = 3;
  options_timing.timed_runs = 20;
  options_timing.max_seconds = 2;
  absl::StatusOr<LatencyComparison> comparison =
      CompareLatency(*dense_optimized, *pruned_optimized, input, options_timing);
  if (!comparison.ok()) {
    state.SkipWithError(std::string(comparison.status().message()).c_str());
    return;
  }
  state.counters["dense_ms"] = comparison->baseline.median_ms;
  state.counters["pruned_ms"] = comparison->candidate.median_ms;
  state.counters["speedup"] = comparison->speedup;
  state.counters["parameters_ratio"] =
      static_cast<double>(pruned->parameters_before) / pruned->parameters_after;
}
BENCHMARK(BM_ResidualCnnStructured)
    ->ArgNames({"removed_percent", "batch"})
    ->ArgsProduct({{25, 50, 75}, {1, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace polaris::pruning
