// Sparse Linear layers against dense fp32 torch::linear on OpenBLAS, in the same binary and on
// the same threads (--threads=N, default all cores). Each sparse case times the dense layer of
// the same shape right before itself and reports `speedup` = dense time / sparse time, so the
// ratio compares two measurements taken moments apart on a shared machine.
//
//   bazel run --config=opt //sparse:kernels_benchmark
//
// The dense baseline needs OpenBLAS's OpenMP build, which ./bazelw selects. With the pthread
// build, the OpenMP workers of LibTorch's element-wise operators spin after each parallel region
// and take the cores from OpenBLAS's own threads: dense torch::linear on 2 threads measured
// 11 ms that way and 2.3 ms with OMP_WAIT_POLICY=PASSIVE on the same busy machine, which would
// inflate every speedup below.
//
// Cases: 1024 -> 1024 at batch 64 (the layer the sparse targets are set for), CSR at several
// sparsities, BSR 4x4 and 16x1 at 80% block sparsity, 2:4, and LibTorch's own CSR matmul.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "benchmark/benchmark.h"
#include "sparse/formats.h"
#include "sparse/kernels.h"

namespace polaris::sparse {
namespace {

constexpr int64_t kFeatures = 1024;

// Median seconds per call of `run` over `calls` calls after two warm-up calls.
template <typename Run>
double MedianSeconds(Run&& run, int calls) {
  for (int i = 0; i < 2; ++i) run();
  std::vector<double> seconds;
  for (int i = 0; i < calls; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + calls / 2, seconds.end());
  return seconds[calls / 2];
}

// A [1024, 1024] weight with the given fraction of zeros, by element or by whole blocks.
at::Tensor SparseWeight(double sparsity, int64_t block_rows, int64_t block_columns) {
  at::manual_seed(7);
  const at::Tensor keep = at::rand({kFeatures / block_rows, 1, kFeatures / block_columns, 1})
                              .ge(sparsity)
                              .expand({-1, block_rows, -1, block_columns})
                              .reshape({kFeatures, kFeatures});
  return at::randn({kFeatures, kFeatures}) * keep;
}

// Times `sparse(input)` with the benchmark loop and the dense layer with the same input, and
// reports the speedup and the sparse layer's effective GFLOP/s (counting stored weights).
template <typename Sparse>
void RunAgainstDense(benchmark::State& state, const at::Tensor& dense_weight, Sparse&& sparse,
                     int64_t stored_weights) {
  const int64_t batch = state.range(1);
  const at::Tensor input = at::randn({batch, kFeatures});
  const at::Tensor bias = at::randn({kFeatures});
  const double dense_seconds =
      MedianSeconds([&] { benchmark::DoNotOptimize(at::linear(input, dense_weight, bias)); }, 11);

  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(sparse(input, bias));
  const double sparse_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
      static_cast<double>(state.iterations());

  state.counters["dense_us"] = dense_seconds * 1e6;
  state.counters["speedup"] = dense_seconds / sparse_seconds;
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * batch * stored_weights,
                                                benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  state.SetItemsProcessed(state.iterations() * batch);
}

// Arguments: sparsity in percent, batch.
void BM_DenseLinear(benchmark::State& state) {
  const at::Tensor weight = SparseWeight(state.range(0) / 100.0, 1, 1);
  const at::Tensor input = at::randn({state.range(1), kFeatures});
  const at::Tensor bias = at::randn({kFeatures});
  for (auto _ : state) benchmark::DoNotOptimize(at::linear(input, weight, bias));
  state.SetItemsProcessed(state.iterations() * state.range(1));
}
BENCHMARK(BM_DenseLinear)
    ->ArgNames({"sparsity", "batch"})
    ->Args({0, 64})
    ->Args({0, 1})
    ->UseRealTime();

void BM_CsrLinear(benchmark::State& state) {
  const at::Tensor weight = SparseWeight(state.range(0) / 100.0, 1, 1);
  const CsrMatrix csr = *ToCsr(weight);
  RunAgainstDense(
      state, weight,
      [&](const at::Tensor& x, const at::Tensor& b) { return *SparseLinear(x, csr, b); },
      csr.nnz());
}
BENCHMARK(BM_CsrLinear)
    ->ArgNames({"sparsity", "batch"})
    ->ArgsProduct({{50, 70, 80, 90, 95, 99}, {64}})
    ->Args({90, 1})
    ->Args({90, 256})
    ->UseRealTime();

// Arguments: sparsity in percent, batch, block rows, block columns.
void BM_BsrLinear(benchmark::State& state) {
  const at::Tensor weight = SparseWeight(state.range(0) / 100.0, state.range(2), state.range(3));
  const BsrMatrix bsr = *ToBsr(weight, state.range(2), state.range(3));
  RunAgainstDense(
      state, weight,
      [&](const at::Tensor& x, const at::Tensor& b) { return *SparseLinear(x, bsr, b); },
      bsr.blocks() * bsr.block_rows * bsr.block_columns);
}
BENCHMARK(BM_BsrLinear)
    ->ArgNames({"sparsity", "batch", "block_rows", "block_columns"})
    ->Args({80, 64, 4, 4})
    ->Args({80, 64, 16, 1})
    ->Args({80, 64, 8, 8})
    ->Args({90, 64, 4, 4})
    ->UseRealTime();

void BM_NmLinear(benchmark::State& state) {
  at::manual_seed(9);
  const at::Tensor dense = at::randn({kFeatures, kFeatures / 4, 4});
  const at::Tensor top = std::get<1>(dense.abs().topk(2, /*dim=*/2));
  const at::Tensor weight =
      (dense * at::zeros_like(dense).scatter_(2, top, 1.0)).reshape({kFeatures, kFeatures});
  const NmMatrix packed = *ToNm(weight, 2, 4);
  RunAgainstDense(
      state, weight,
      [&](const at::Tensor& x, const at::Tensor& b) { return *SparseLinear(x, packed, b); },
      packed.values.numel());
}
BENCHMARK(BM_NmLinear)->ArgNames({"sparsity", "batch"})->Args({50, 64})->UseRealTime();

// A 3x3 convolution of the residual CNN's first block (32 -> 32 channels, 28x28) against
// at::conv2d. Arguments: sparsity in percent, batch, method (0 im2col, 1 direct).
void BM_CsrConv2d(benchmark::State& state) {
  at::manual_seed(11);
  const int64_t batch = state.range(1);
  const at::Tensor weight =
      at::randn({32, 32, 3, 3}) * at::rand({32, 32, 3, 3}).ge(state.range(0) / 100.0);
  const CsrMatrix csr = *ToCsr(weight);
  const at::Tensor input = at::randn({batch, 32, 28, 28});
  const Conv2dParams params{3, 3, 1, 1, 1, 1};
  const ConvMethod method = state.range(2) == 1 ? ConvMethod::kDirect : ConvMethod::kIm2col;
  const double dense_seconds =
      MedianSeconds([&] { benchmark::DoNotOptimize(at::conv2d(input, weight, {}, 1, 1)); }, 11);

  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(*SparseConv2d(input, csr, params, {}, method));
  const double sparse_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
      static_cast<double>(state.iterations());
  state.counters["dense_us"] = dense_seconds * 1e6;
  state.counters["speedup"] = dense_seconds / sparse_seconds;
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_CsrConv2d)
    ->ArgNames({"sparsity", "batch", "direct"})
    ->ArgsProduct({{80, 95}, {64}, {0, 1}})
    ->UseRealTime();

// LibTorch's own sparse CSR matmul, the path a user of torch.sparse would take.
void BM_TorchCsrLinear(benchmark::State& state) {
  const at::Tensor weight = SparseWeight(state.range(0) / 100.0, 1, 1);
  const at::Tensor torch_csr = weight.to_sparse_csr();
  const int64_t nnz = weight.ne(0).sum().item<int64_t>();
  RunAgainstDense(
      state, weight,
      [&](const at::Tensor& x, const at::Tensor& b) {
        return at::addmm(b.unsqueeze(1), torch_csr, x.t()).t();
      },
      nnz);
}
BENCHMARK(BM_TorchCsrLinear)->ArgNames({"sparsity", "batch"})->Args({90, 64})->UseRealTime();

}  // namespace
}  // namespace polaris::sparse
