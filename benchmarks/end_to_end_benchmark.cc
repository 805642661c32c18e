// End-to-end latency of the reference residual CNN after each combination of polaris's stages,
// against the baseline a careful user deploys (the float model after
// torch::jit::optimize_for_inference), timed in one process with the same threads:
//
//   bazel run --config=opt //benchmarks:end_to_end_benchmark -- --threads=2
//
// Weights are random (latency does not depend on their values) and fine-tuning is left out for
// the same reason; `bazel run //pipeline:demo` measures trained models with accuracy. Each
// benchmark times the baseline in one phase and the variant in the next, because spinning
// thread pools make call-by-call interleaving measure the hand-over between them. Counters:
//   baseline_ms, polaris_ms      median latency of one forward call
//   speedup                      baseline_ms / polaris_ms
//   unoptimized_speedup          the model as loaded (no optimize_for_inference) / polaris_ms
#include <map>
#include <string>
#include <utility>

#include "ATen/Functions.h"
#include "benchmark/benchmark.h"
#include "core/dataset.h"
#include "core/graph_utils.h"
#include "core/latency.h"
#include "core/models.h"
#include "pruning/structured.h"
#include "quantization/model_quantization.h"

namespace polaris {
namespace {

struct Variants {
  torch::jit::Module original;
  torch::jit::Module optimized_fp32;
  std::map<std::string, torch::jit::Module> ours;
};

LabeledData RandomImages(int64_t count) {
  at::manual_seed(3);
  LabeledData data;
  data.inputs = at::randn({count, 1, 28, 28});
  data.labels = at::randint(0, 10, {count}, at::TensorOptions().dtype(at::kLong));
  return data;
}

torch::jit::Module Pruned(const torch::jit::Module& model, double fraction) {
  pruning::StructuredPruningOptions options;
  options.fraction = fraction;
  options.example_shape = {1, 28, 28};
  return pruning::PruneChannels(model, options, nullptr).value().model;
}

torch::jit::Module Int8(const torch::jit::Module& model, const LabeledData& calibration) {
  quantization::QuantizationOptions options;
  options.calibration_examples = calibration.size();
  options.show_progress = false;
  return quantization::QuantizeModel(model, options, calibration).value().model;
}

const Variants& GetVariants() {
  static const Variants* variants = [] {
    auto* built = new Variants;
    torch::jit::Module model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1).value();
    model.eval();
    const LabeledData calibration = RandomImages(512);
    built->original = model;
    built->optimized_fp32 = OptimizeForInference(model).value();
    // int8 alone is the ACCURACY plan (pipeline/plan.cc). The BALANCED plan removes 62.5% of
    // the channels before int8, and falls back to 50%.
    const torch::jit::Module half = Pruned(model, 0.5);
    const torch::jit::Module balanced = Pruned(model, 0.625);
    built->ours["int8"] = Int8(model, calibration);
    built->ours["pruned50_fp32"] = OptimizeForInference(half).value();
    built->ours["pruned50_int8"] = Int8(half, calibration);
    built->ours["pruned62_int8"] = Int8(balanced, calibration);
    return built;
  }();
  return *variants;
}

double MedianMs(torch::jit::Module model, const at::Tensor& input) {
  LatencyOptions options;
  options.warmup_runs = 5;
  options.timed_runs = 200;
  options.max_seconds = 0.3;
  return MeasureModelLatency(model, input, options).value().median_ms;
}

void BM_ResidualCnn(benchmark::State& state, const std::string& variant) {
  const Variants& variants = GetVariants();
  const at::Tensor input = RandomImages(state.range(0)).inputs;
  double baseline = 0, original = 0, ours = 0;
  for (auto _ : state) {
    original = MedianMs(variants.original, input);
    baseline = MedianMs(variants.optimized_fp32, input);
    ours = MedianMs(variants.ours.at(variant), input);
    state.SetIterationTime(ours / 1e3);
  }
  state.counters["baseline_ms"] = baseline;
  state.counters["polaris_ms"] = ours;
  state.counters["speedup"] = baseline / ours;
  state.counters["unoptimized_speedup"] = original / ours;
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void Register() {
  for (const char* variant : {"int8", "pruned50_fp32", "pruned50_int8", "pruned62_int8"}) {
    benchmark::RegisterBenchmark((std::string("BM_ResidualCnn/") + variant).c_str(),
                                 BM_ResidualCnn, std::string(variant))
        ->ArgName("batch")
        ->Arg(1)
        ->Arg(64)
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

const bool registered = (Register(), true);

}  // namespace
}  // namespace polaris
