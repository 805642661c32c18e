// Benchmarks of the latency harness itself: its overhead on an empty run, and one reference
// model through MeasureModelLatency versus a bare loop, so the harness is known not to distort
// the figures it reports.
//
//   bazel run -c opt //core:latency_benchmark
#include "ATen/Functions.h"
#include "benchmark/benchmark.h"
#include "c10/core/InferenceMode.h"
#include "core/latency.h"
#include "core/models.h"

namespace polaris {
namespace {

void BM_HarnessOverheadEmptyRun(benchmark::State& state) {
  LatencyOptions options;
  options.warmup_runs = 0;
  options.timed_runs = 100;
  for (auto _ : state) {
    absl::StatusOr<LatencyStats> stats = MeasureLatency([] { return absl::OkStatus(); }, options);
    benchmark::DoNotOptimize(stats);
  }
  state.SetItemsProcessed(state.iterations() * options.timed_runs);
}
BENCHMARK(BM_HarnessOverheadEmptyRun);

void BM_LeNetBareLoop(benchmark::State& state) {
  torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kLeNet, 1);
  model.eval();
  const at::Tensor input = at::randn({state.range(0), 1, 28, 28});
  c10::InferenceMode inference_mode;
  for (auto _ : state) benchmark::DoNotOptimize(model.forward({input}));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_LeNetBareLoop)->ArgName("batch")->Arg(1)->Arg(64);

void BM_LeNetThroughHarness(benchmark::State& state) {
  torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kLeNet, 1);
  const at::Tensor input = at::randn({state.range(0), 1, 28, 28});
  LatencyOptions options;
  options.warmup_runs = 0;
  options.timed_runs = 10;
  double median_ms = 0;
  for (auto _ : state) {
    absl::StatusOr<LatencyStats> stats = MeasureModelLatency(model, input, options);
    median_ms = stats.ok() ? stats->median_ms : -1;
  }
  state.SetItemsProcessed(state.iterations() * options.timed_runs * state.range(0));
  state.counters["median_ms"] = median_ms;
}
BENCHMARK(BM_LeNetThroughHarness)->ArgName("batch")->Arg(1)->Arg(64);

}  // namespace
}  // namespace polaris
