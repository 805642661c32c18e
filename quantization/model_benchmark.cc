// Latency of quantized reference models against the fp32 baseline a careful user deploys (the
// model after torch::jit::optimize_for_inference), measured in one process with the same
// threads:
//
//   bazel run --config=opt //quantization:model_benchmark -- --threads=2
//
// The models have random weights (with BatchNorm statistics away from the identity), because
// latency does not depend on the values; the demo measures trained models and accuracy. Each
// benchmark reports the medians as <variant>_us and speedup_vs_<variant> counters
// (internal/benchmark_util.h). PyTorch's FX int8 model needs Python to build, so the demo,
// not this benchmark, compares with it.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "benchmark/benchmark.h"
#include "c10/core/InferenceMode.h"
#include "core/dataset.h"
#include "core/graph_utils.h"
#include "core/latency.h"
#include "core/models.h"
#include "quantization/internal/benchmark_util.h"
#include "quantization/model_quantization.h"

namespace polaris::quantization {
namespace {

struct Variants {
  torch::jit::Module optimized_fp32;
  std::map<std::string, torch::jit::Module> quantized;
};

torch::jit::Module RandomModel(ReferenceModel kind) {
  torch::jit::Module model = MakeReferenceModel(kind, /*seed=*/1).value();
  if (kind == ReferenceModel::kResidualCnn) {
    at::manual_seed(2);
    for (const std::string bn : {"bn1", "layer1.bn1", "layer1.bn2", "layer2.bn1", "layer2.bn2",
                                 "layer2.shortcut_bn"}) {
      const int64_t channels = FindTensor(model, bn + ".running_mean")->numel();
      (void)SetTensor(model, bn + ".running_mean", at::randn({channels}) * 0.2);
      (void)SetTensor(model, bn + ".running_var", at::rand({channels}) + 0.5);
    }
  }
  model.eval();
  return model;
}

LabeledData RandomImages(int64_t count) {
  at::manual_seed(3);
  LabeledData data;
  data.inputs = at::randn({count, 1, 28, 28});
  data.labels = at::randint(0, 10, {count}, at::TensorOptions().dtype(at::kLong));
  return data;
}

// Builds the variants of one model once per process.
const Variants& VariantsOf(ReferenceModel kind) {
  static std::map<ReferenceModel, Variants>* cache = new std::map<ReferenceModel, Variants>;
  auto it = cache->find(kind);
  if (it != cache->end()) return it->second;

  const torch::jit::Module model = RandomModel(kind);
  const LabeledData calibration = RandomImages(512);
  Variants variants;
  variants.optimized_fp32 = OptimizeForInference(model).value();
  QuantizationOptions options;
  options.calibration_examples = 512;
  options.show_progress = false;
  if (kind == ReferenceModel::kResidualCnn) {
    variants.quantized["static_int8"] = QuantizeModel(model, options, calibration).value().model;
    options.use_polaris_ops = false;
    variants.quantized["static_int8_libtorch_ops"] =
        QuantizeModel(model, options, calibration).value().model;
  } else {
    variants.quantized["static_int8"] = QuantizeModel(model, options, calibration).value().model;
    options.method = QuantizationMethod::kDynamic;
    variants.quantized["dynamic_int8"] = QuantizeModel(model, options, calibration).value().model;
    options.method = QuantizationMethod::kWeightOnlyInt4;
    options.weight_bits = 4;
    options.group_size = 112;
    options.layer_group_sizes["fc2"] = 128;
    variants.quantized["int4"] = QuantizeModel(model, options, calibration).value().model;
  }
  return cache->emplace(kind, std::move(variants)).first->second;
}

std::function<void()> Runner(torch::jit::Module module, const at::Tensor& input) {
  return [module, input]() mutable {
    c10::InferenceMode inference_mode;
    benchmark::DoNotOptimize(module.forward({input}));
  };
}

// Compares `ours` with the optimized fp32 model and the other quantized variants listed.
void CompareModel(benchmark::State& state, ReferenceModel kind, const std::string& ours,
                  const std::vector<std::string>& other_variants) {
  const int64_t batch = state.range(0);
  const Variants& variants = VariantsOf(kind);
  const at::Tensor input = RandomImages(batch).inputs;
  std::vector<internal::TimedVariant> baselines{
      {"fp32_optimized", Runner(variants.optimized_fp32, input)}};
  for (const std::string& name : other_variants) {
    baselines.push_back({name, Runner(variants.quantized.at(name), input)});
  }
  internal::CompareVariants(state, baselines, Runner(variants.quantized.at(ours), input));
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_ResidualCnnStaticInt8(benchmark::State& state) {
  CompareModel(state, ReferenceModel::kResidualCnn, "static_int8", {"static_int8_libtorch_ops"});
}
BENCHMARK(BM_ResidualCnnStaticInt8)->ArgName("batch")->Arg(1)->Arg(64)->Iterations(1)
    ->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_MlpStaticInt8(benchmark::State& state) {
  CompareModel(state, ReferenceModel::kMlp, "static_int8", {});
}
BENCHMARK(BM_MlpStaticInt8)->ArgName("batch")->Arg(1)->Arg(64)->Iterations(1)
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_MlpDynamicInt8(benchmark::State& state) {
  CompareModel(state, ReferenceModel::kMlp, "dynamic_int8", {});
}
BENCHMARK(BM_MlpDynamicInt8)->ArgName("batch")->Arg(1)->Arg(64)->Iterations(1)
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_MlpInt4Weights(benchmark::State& state) {
  CompareModel(state, ReferenceModel::kMlp, "int4", {});
}
BENCHMARK(BM_MlpInt4Weights)->ArgName("batch")->Arg(1)->Arg(64)->Iterations(1)
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace polaris::quantization
