// Benchmarks of the quantization kernels against LibTorch (OpenBLAS for fp32, its quantized
// operators on the ONEDNN engine) in one binary, with the same threads (--threads=N).
//
//   bazel run --config=opt //quantization:kernels_benchmark -- --threads=2
//
// Each comparison times the baselines and ours one after another in one benchmark and
// reports their medians and the speedup as counters (internal/benchmark_util.h).
#include <cstdint>
#include <memory>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "benchmark/benchmark.h"
#include "quantization/conv_int8.h"
#include "quantization/fast_kernels.h"
#include "quantization/internal/benchmark_util.h"
#include "quantization/linear_int4.h"
#include "quantization/linear_int8.h"

namespace polaris::quantization {
namespace {

using internal::BoxedOperator;
using internal::CompareVariants;
using internal::TimedVariant;

// ---- Quantize and dequantize throughput -------------------------------------------------

void BM_QuantizeF32ToU8(benchmark::State& state) {
  const int64_t n = state.range(0);
  const at::Tensor x = at::randn({n});
  at::Tensor q = at::empty({n}, at::kByte);
  at::Tensor libtorch_q;
  CompareVariants(
      state,
      {{"libtorch", [&] { libtorch_q = at::quantize_per_tensor(x, 0.02, 128, at::kQUInt8); }}},
      [&] {
        QuantizeFast(x.data_ptr<float>(), n, 0.02f, 128, 0, 255, q.data_ptr<uint8_t>());
        benchmark::DoNotOptimize(q.data_ptr());
      });
  // Bytes read plus bytes written.
  state.counters["polaris_GB_per_s"] = n * 5 / state.counters["polaris_us"] / 1e3;
}
BENCHMARK(BM_QuantizeF32ToU8)->ArgName("elements")->Arg(50176)->Arg(1 << 20)->Arg(1 << 24)
    ->Iterations(1)->UseManualTime();

void BM_DequantizeU8ToF32(benchmark::State& state) {
  const int64_t n = state.range(0);
  const at::Tensor libtorch_q = at::quantize_per_tensor(at::randn({n}), 0.02, 128, at::kQUInt8);
  const at::Tensor q = libtorch_q.int_repr();
  at::Tensor x = at::empty({n});
  at::Tensor libtorch_x;
  CompareVariants(state, {{"libtorch", [&] { libtorch_x = at::dequantize(libtorch_q); }}}, [&] {
    DequantizeFast(q.data_ptr<uint8_t>(), n, 0.02f, 128, x.data_ptr<float>());
    benchmark::DoNotOptimize(x.data_ptr());
  });
  state.counters["polaris_GB_per_s"] = n * 5 / state.counters["polaris_us"] / 1e3;
}
BENCHMARK(BM_DequantizeU8ToF32)->ArgName("elements")->Arg(50176)->Arg(1 << 20)->Arg(1 << 24)
    ->Iterations(1)->UseManualTime();

void BM_RequantizeS32ToU8(benchmark::State& state) {
  const int64_t n = state.range(0);
  const at::Tensor acc = at::randint(-100000, 100000, {n}, at::kInt);
  at::Tensor q = at::empty({n}, at::kByte);
  for (auto _ : state) {
    RequantizeFast(acc.data_ptr<int32_t>(), n, 0.001f, 128, 0, 255, q.data_ptr<uint8_t>());
    benchmark::DoNotOptimize(q.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * n * 5);
}
BENCHMARK(BM_RequantizeS32ToU8)->ArgName("elements")->Arg(50176)->Arg(1 << 20);

// ---- int8 Linear, float in and float out -----------------------------------------------

struct LinearCase {
  at::Tensor x;            // float [batch, in]
  at::Tensor weight;       // float [out, in]
  at::Tensor bias;         // float [out]
  at::Tensor weight_int8;  // int8 [out, in], symmetric per output channel
  at::Tensor weight_scale; // float [out]
};

LinearCase MakeLinearCase(int64_t batch, int64_t in, int64_t out) {
  LinearCase c;
  c.x = at::randn({batch, in});
  c.weight = at::randn({out, in}) / std::sqrt(static_cast<double>(in));
  c.bias = at::randn({out}) * 0.1;
  c.weight_scale = std::get<0>(c.weight.abs().max(1)) / 127.0;
  c.weight_int8 = (c.weight / c.weight_scale.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar);
  return c;
}

// fp32 torch::linear (OpenBLAS), LibTorch's quantized::linear with its own quantize and
// dequantize around it (ONEDNN engine), and ours.
void RunLinearComparison(benchmark::State& state, bool dynamic) {
  const LinearCase c = MakeLinearCase(state.range(0), state.range(1), state.range(2));
  const float input_scale = (c.x.max().item<float>() - c.x.min().item<float>()) / 255.0f;
  const int64_t input_zero_point = std::lround(-c.x.min().item<float>() / input_scale);
  const at::Tensor reference_output = at::linear(c.x, c.weight, c.bias);
  const double output_scale =
      (reference_output.max().item<double>() - reference_output.min().item<double>()) / 255.0;
  const int64_t output_zero_point =
      std::lround(-reference_output.min().item<double>() / output_scale);

  static const BoxedOperator prepack("quantized::linear_prepack", "");
  static const BoxedOperator quantized_linear("quantized::linear", "");
  const at::Tensor q_weight = at::quantize_per_channel(
      c.weight, c.weight_scale.to(at::kDouble), at::zeros({c.weight.size(0)}, at::kLong), 0,
      at::kQInt8);
  const c10::IValue packed = prepack({q_weight, c.bias});

  std::shared_ptr<Int8Linear> layer =
      Int8Linear::Create(c.weight_int8, c.weight_scale, c.bias).value();
  at::Tensor sink;
  CompareVariants(
      state,
      {{"fp32", [&] { sink = at::linear(c.x, c.weight, c.bias); }},
       {"libtorch_int8",
        [&] {
          const at::Tensor qx =
              at::quantize_per_tensor(c.x, input_scale, input_zero_point, at::kQUInt8);
          sink = at::dequantize(
              quantized_linear({qx, packed, output_scale, output_zero_point}).toTensor());
        }}},
      [&] {
        sink = dynamic ? layer->ForwardDynamic(c.x).value()
                       : layer->Forward(c.x, input_scale, static_cast<int32_t>(input_zero_point))
                             .value();
      });
  state.counters["polaris_GOP_per_s"] =
      2.0 * c.x.size(0) * c.weight.numel() / state.counters["polaris_us"] / 1e3;
  state.SetLabel(layer->ImplementationName(c.x.size(0)).value());
}

void BM_Int8LinearStatic(benchmark::State& state) { RunLinearComparison(state, false); }
void BM_Int8LinearDynamic(benchmark::State& state) { RunLinearComparison(state, true); }

BENCHMARK(BM_Int8LinearStatic)->ArgNames({"batch", "in", "out"})->Args({64, 784, 256})
    ->Args({64, 1024, 1024})->Args({1, 784, 256})->Iterations(1)->UseManualTime();
BENCHMARK(BM_Int8LinearDynamic)->ArgNames({"batch", "in", "out"})->Args({64, 784, 256})
    ->Args({64, 1024, 1024})->Args({1, 784, 256})->Iterations(1)->UseManualTime();

// ---- INT4 weight-only Linear --------------------------------------------------------------

// fp32 torch::linear (OpenBLAS) against our INT4 Linear that unpacks weights on the fly. At
// batch 1 the layer is bound by weight memory traffic, which INT4 cuts 8x; at batch 64 both
// are bound by float arithmetic.
void BM_Int4Linear(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int64_t in = state.range(1);
  const int64_t out = state.range(2);
  const int64_t group_size = state.range(3);
  const at::Tensor x = at::randn({batch, in});
  const at::Tensor weight = at::randn({out, in}) / std::sqrt(static_cast<double>(in));
  const at::Tensor bias = at::randn({out});
  std::shared_ptr<Int4Linear> layer =
      Int4Linear::Create(QuantizeWeightInt4(weight, group_size).value(), bias).value();
  at::Tensor sink;
  CompareVariants(state, {{"fp32", [&] { sink = at::linear(x, weight, bias); }}},
                  [&] { sink = layer->Forward(x).value(); });
  state.counters["weight_bytes_ratio"] =
      static_cast<double>(weight.numel() * 4) / static_cast<double>(layer->weight_bytes());
}
BENCHMARK(BM_Int4Linear)->ArgNames({"batch", "in", "out", "group"})
    ->Args({64, 784, 256, 112})->Args({64, 1024, 1024, 128})->Args({1, 1024, 1024, 128})
    ->Args({1, 4096, 4096, 128})->Iterations(1)->UseManualTime();

// ---- int8 Conv2d ------------------------------------------------------------------------

// One convolution of the residual Fashion-MNIST CNN: fp32 at::conv2d (LibTorch's oneDNN
// path), LibTorch's quantized::conv2d_relu on the ONEDNN engine, and oneDNN's int8
// convolution called directly. Both int8 variants get channels-last quint8 input, the layout
// that LibTorch's quantized convolutions on this engine return, so it is what a chain of int8
// layers passes along.
void BM_Int8Conv2d(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int64_t channels = state.range(1);
  const int64_t size = state.range(2);
  const int64_t out_channels = state.range(3);
  const int64_t kernel = state.range(4);
  const int64_t stride = state.range(5);
  const int64_t padding = kernel / 2;

  const at::Tensor x = at::rand({batch, channels, size, size});
  const at::Tensor weight = at::randn({out_channels, channels, kernel, kernel}) * 0.1;
  const at::Tensor bias = at::randn({out_channels}) * 0.1;
  const at::Tensor weight_scale = std::get<0>(weight.abs().reshape({out_channels, -1}).max(1)) / 127.0;
  const at::Tensor q_weight = at::quantize_per_channel(
      weight, weight_scale.to(at::kDouble), at::zeros({out_channels}, at::kLong), 0, at::kQInt8);
  Conv2dGeometry geometry;
  geometry.stride = {stride, stride};
  geometry.padding = {padding, padding};
  Conv2dQuantization quantization;
  quantization.input_scale = 1.0f / 255.0f;
  quantization.input_zero_point = 0;
  quantization.output_scale = 0.05f;
  quantization.output_zero_point = 0;
  quantization.relu = true;
  const at::Tensor q_input =
      at::quantize_per_tensor(x, quantization.input_scale, 0, at::kQUInt8)
          .contiguous(at::MemoryFormat::ChannelsLast);

  std::shared_ptr<LibTorchInt8Conv2d> libtorch =
      LibTorchInt8Conv2d::Create(q_weight, bias, geometry).value();
  std::shared_ptr<Int8Conv2d> ours =
      Int8Conv2d::Create(q_weight.int_repr(), weight_scale, bias, geometry, quantization).value();
  at::Tensor sink;
  CompareVariants(
      state,
      {{"fp32", [&] { sink = at::conv2d(x, weight, bias, {stride, stride}, {padding, padding}).relu(); }},
       {"libtorch_int8", [&] { sink = libtorch->Forward(q_input, 0.05f, 0, true).value(); }}},
      [&] { sink = ours->Forward(q_input).value(); });
  state.SetLabel(ours->ImplementationName(q_input).value());
}
BENCHMARK(BM_Int8Conv2d)->ArgNames({"batch", "in", "size", "out", "kernel", "stride"})
    ->Args({64, 1, 28, 32, 3, 1})->Args({64, 32, 28, 32, 3, 1})->Args({64, 32, 28, 64, 3, 2})
    ->Args({64, 64, 14, 64, 3, 1})->Args({64, 32, 28, 64, 1, 2})
    ->Args({1, 32, 28, 32, 3, 1})->Args({1, 64, 14, 64, 3, 1})
    ->Iterations(1)->UseManualTime();

}  // namespace
}  // namespace polaris::quantization
