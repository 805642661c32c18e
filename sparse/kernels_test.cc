// Compares every sparse kernel, portable and AVX-512, with its plain reference in
// sparse/reference.h over many shapes and sparsities.
//
// Error model: the reference sums in double and rounds once. A float kernel sums the n stored
// products of a row (n <= depth) with fused multiply-adds in up to four partial sums, so its
// rounding error is bounded by about n * eps * S in the worst case and behaves like
// sqrt(n) * eps * S for random data, where S = |bias| + sum |w| |x| (the same reference run on
// absolute values). The tolerance eps * (4 sqrt(depth) + 2) * S keeps a margin above the
// random-data behaviour. The mean signed error must stay far below it, because rounding does
// not bias it. NaN fails every comparison.
#include "sparse/kernels.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "ATen/TensorOperators.h"
#include "core/cpu_features.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "sparse/formats.h"
#include "sparse/reference.h"

namespace polaris::sparse {
namespace {

using internal::KernelIsa;

constexpr double kEpsilon = std::numeric_limits<float>::epsilon();

std::vector<KernelIsa> AvailableIsas() {
  std::vector<KernelIsa> isas = {KernelIsa::kPortable};
  if (CpuFeatures().avx512) isas.push_back(KernelIsa::kAvx512);
  return isas;
}

std::string IsaName(KernelIsa isa) { return isa == KernelIsa::kAvx512 ? "avx512" : "portable"; }

at::Generator Generator(uint64_t salt) {
  return at::detail::createCPUGenerator(testing::TestSeed() * 7919 + salt);
}

at::Tensor RandomSparseWeight(int64_t rows, int64_t columns, double sparsity, uint64_t salt) {
  at::Generator generator = Generator(salt);
  const at::Tensor weight = at::randn({rows, columns}, generator);
  return weight * at::rand({rows, columns}, generator).ge(sparsity);
}

// Checks `actual` against `expected` with the tolerance eps * (4 sqrt(depth) + 2) * scale per
// element, and the mean signed error against the mean scale.
void ExpectWithinErrorModel(const at::Tensor& expected, const at::Tensor& actual,
                            const at::Tensor& scale, int64_t depth) {
  ASSERT_TRUE(expected.sizes().equals(actual.sizes()))
      << "expected shape " << expected.sizes() << ", got " << actual.sizes();
  const at::Tensor error = (actual.to(at::kDouble) - expected.to(at::kDouble)).flatten();
  const at::Tensor tolerance =
      (scale.to(at::kDouble) * kEpsilon * (4 * std::sqrt(static_cast<double>(depth)) + 2) +
       std::numeric_limits<float>::min())
          .flatten();
  // A NaN error compares false, so it counts as a violation.
  const at::Tensor violations = error.abs().le(tolerance).logical_not();
  if (violations.any().item<bool>()) {
    const int64_t index = violations.nonzero()[0].item<int64_t>();
    std::vector<int64_t> position(expected.dim());
    int64_t rest = index;
    for (int64_t d = expected.dim() - 1; d >= 0; --d) {
      position[d] = rest % expected.size(d);
      rest /= expected.size(d);
    }
    FAIL() << violations.sum().item<int64_t>() << " elements outside tolerance; first at "
           << at::IntArrayRef(position) << " of shape " << expected.sizes() << ": expected "
           << expected.flatten()[index].item<float>() << ", got "
           << actual.flatten()[index].item<float>() << ", tolerance "
           << tolerance[index].item<double>();
  }
  const double count = static_cast<double>(error.numel());
  const double mean_error = std::abs(error.mean().item<double>());
  const double mean_scale = scale.to(at::kDouble).mean().item<double>();
  EXPECT_LE(mean_error, kEpsilon * mean_scale * (2 + 4 * std::sqrt(depth / count)))
      << "mean signed error is biased, shape " << expected.sizes();
}

CsrMatrix AbsoluteValues(CsrMatrix matrix) {
  matrix.values = matrix.values.abs();
  return matrix;
}
BsrMatrix AbsoluteValues(BsrMatrix matrix) {
  matrix.values = matrix.values.abs();
  return matrix;
}
NmMatrix AbsoluteValues(NmMatrix matrix) {
  matrix.values = matrix.values.abs();
  return matrix;
}

// Runs `kernel` and the reference on a random input and compares them.
template <typename Matrix, typename Kernel>
void CheckLinear(const Matrix& weight, int64_t batch, bool with_bias, KernelIsa isa, Kernel kernel,
                 uint64_t salt) {
  at::Generator generator = Generator(salt);
  const at::Tensor input = at::randn({batch, weight.columns}, generator);
  const at::Tensor bias = with_bias ? at::randn({weight.rows}, generator) : at::Tensor();
  const at::Tensor actual = kernel(input, weight, bias, isa);
  const at::Tensor expected = LinearReference(input, weight, bias);
  const at::Tensor scale =
      LinearReference(input.abs(), AbsoluteValues(weight), with_bias ? bias.abs() : at::Tensor());
  ExpectWithinErrorModel(expected, actual, scale, weight.columns);
}

const std::vector<int64_t> kBatches = {1, 2, 15, 16, 17, 64, 65, 130};
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{1, 1},   {3, 7},    {31, 97},
                                                          {64, 64}, {65, 127}, {128, 33}};
const std::vector<double> kSparsities = {0.0, 0.5, 0.9, 0.99, 1.0};

TEST(CsrLinear, MatchesReferenceOverShapesAndSparsities) {
  for (KernelIsa isa : AvailableIsas()) {
    for (const auto& [rows, columns] : kShapes) {
      for (double sparsity : kSparsities) {
        const at::Tensor dense = RandomSparseWeight(rows, columns, sparsity, rows + columns);
        const CsrMatrix weight = *ToCsr(dense);
        for (int64_t batch : kBatches) {
          SCOPED_TRACE(::testing::Message() << IsaName(isa) << " weight " << rows << "x" << columns
                                            << " sparsity " << sparsity << " batch " << batch);
          CheckLinear(weight, batch, /*with_bias=*/batch % 2 == 1, isa, internal::CsrLinear, batch);
        }
      }
    }
  }
}

TEST(CsrLinear, EmptyAndFullRows) {
  at::Tensor dense = RandomSparseWeight(48, 211, 0.9, 3);
  for (int64_t row = 0; row < 48; row += 3) dense[row].zero_();
  for (int64_t row = 1; row < 48; row += 3) dense[row] = at::randn({211}, Generator(row)) + 0.5;
  const CsrMatrix weight = *ToCsr(dense);
  for (KernelIsa isa : AvailableIsas()) {
    for (int64_t batch : {1, 64, 67}) {
      SCOPED_TRACE(::testing::Message() << IsaName(isa) << " batch " << batch);
      CheckLinear(weight, batch, /*with_bias=*/true, isa, internal::CsrLinear, 11);
    }
  }
}

TEST(CsrLinear, AcceptsLeadingDimensions) {
  const CsrMatrix weight = *ToCsr(RandomSparseWeight(5, 12, 0.5, 4));
  const at::Tensor input = at::randn({2, 3, 12}, Generator(5));
  absl::StatusOr<at::Tensor> output = SparseLinear(input, weight);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->sizes(), at::IntArrayRef({2, 3, 5}));
  const at::Tensor expected = LinearReference(input.reshape({6, 12}), weight, {});
  EXPECT_TRUE(at::allclose(output->reshape({6, 5}), expected, 1e-5, 1e-5));
}

TEST(BsrLinear, MatchesReferenceOverBlockSizes) {
  const std::vector<std::pair<int64_t, int64_t>> block_sizes = {{1, 1}, {4, 4}, {2, 8},
                                                                {8, 1}, {3, 5}, {16, 4}};
  for (KernelIsa isa : AvailableIsas()) {
    for (const auto& [block_rows, block_columns] : block_sizes) {
      for (double sparsity : kSparsities) {
        const int64_t rows = block_rows * 7;
        const int64_t columns = block_columns * 11;
        // Sparsity by whole blocks, as block pruning leaves it.
        const at::Tensor block_keep = at::rand({7, 1, 11, 1}, Generator(block_rows)).ge(sparsity);
        const at::Tensor dense =
            (at::randn({7, block_rows, 11, block_columns}, Generator(block_columns)) * block_keep)
                .reshape({rows, columns});
        const BsrMatrix weight = *ToBsr(dense, block_rows, block_columns);
        for (int64_t batch : {1, 16, 17, 64, 100}) {
          SCOPED_TRACE(::testing::Message()
                       << IsaName(isa) << " block " << block_rows << "x" << block_columns
                       << " sparsity " << sparsity << " batch " << batch);
          CheckLinear(weight, batch, /*with_bias=*/true, isa, internal::BsrLinear, batch);
        }
      }
    }
  }
}

at::Tensor NmSparseWeight(int64_t rows, int64_t columns, int n, int m, uint64_t salt) {
  const at::Tensor weight = at::randn({rows, columns / m, m}, Generator(salt));
  const at::Tensor top = std::get<1>(weight.abs().topk(n, /*dim=*/2));
  return (weight * at::zeros_like(weight).scatter_(2, top, 1.0)).reshape({rows, columns});
}

TEST(NmLinear, MatchesReferenceOverPatterns) {
  const std::vector<std::pair<int, int>> patterns = {{2, 4}, {1, 4}, {4, 8}, {3, 7}, {8, 8}};
  for (KernelIsa isa : AvailableIsas()) {
    for (const auto& [n, m] : patterns) {
      for (int64_t rows : {1, 13, 64}) {
        const NmMatrix weight = *ToNm(NmSparseWeight(rows, m * 9, n, m, n + m), n, m);
        for (int64_t batch : {1, 16, 17, 64, 65}) {
          SCOPED_TRACE(::testing::Message() << IsaName(isa) << " " << n << ":" << m << " rows "
                                            << rows << " batch " << batch);
          CheckLinear(weight, batch, /*with_bias=*/batch > 16, isa, internal::NmLinear, batch);
        }
      }
    }
  }
}

struct ConvCase {
  int64_t batch, in_channels, out_channels, height, width;
  Conv2dParams params;
  double sparsity;
};

TEST(CsrConv2d, MatchesReferenceOverGeometries) {
  const std::vector<ConvCase> cases = {
      {1, 1, 1, 5, 5, {1, 1}, 0.0},
      {2, 3, 5, 7, 9, {3, 3, 1, 1, 1, 1}, 0.5},
      {3, 8, 16, 11, 7, {3, 3, 2, 2, 1, 1}, 0.9},
      {1, 4, 6, 9, 9, {5, 3, 1, 2, 2, 1, 2, 1}, 0.7},
      {2, 16, 32, 8, 8, {1, 1}, 0.9},
      {2, 6, 4, 10, 10, {1, 1, 2, 2}, 0.5},
      {1, 5, 17, 13, 13, {3, 3, 1, 1, 2, 2, 2, 2}, 0.99},
      {4, 2, 3, 6, 6, {3, 3, 1, 1, 1, 1}, 1.0},
  };
  for (KernelIsa isa : AvailableIsas()) {
    for (ConvMethod method : {ConvMethod::kIm2col, ConvMethod::kDirect}) {
      for (size_t i = 0; i < cases.size(); ++i) {
        const ConvCase& c = cases[i];
        SCOPED_TRACE(::testing::Message()
                     << IsaName(isa) << (method == ConvMethod::kDirect ? " direct" : " im2col")
                     << " case " << i);
        const int64_t depth = c.in_channels * c.params.kernel_height * c.params.kernel_width;
        const at::Tensor dense = RandomSparseWeight(c.out_channels, depth, c.sparsity, i);
        const CsrMatrix weight = *ToCsr(dense);
        const at::Tensor input =
            at::randn({c.batch, c.in_channels, c.height, c.width}, Generator(100 + i));
        const at::Tensor bias = at::randn({c.out_channels}, Generator(200 + i));
        const at::Tensor actual = internal::CsrConv2d(input, weight, c.params, bias, isa, method);
        const at::Tensor expected = Conv2dReference(input, weight, c.params, bias);
        const at::Tensor scale =
            Conv2dReference(input.abs(), AbsoluteValues(weight), c.params, bias.abs());
        ExpectWithinErrorModel(expected, actual, scale, depth);

        // The reference itself agrees with LibTorch's dense convolution.
        const at::Tensor torch_output =
            at::conv2d(input,
                       dense.reshape({c.out_channels, c.in_channels, c.params.kernel_height,
                                      c.params.kernel_width}),
                       bias, {c.params.stride_height, c.params.stride_width},
                       {c.params.padding_height, c.params.padding_width},
                       {c.params.dilation_height, c.params.dilation_width});
        EXPECT_TRUE(at::allclose(torch_output, expected, 1e-4, 1e-4));
      }
    }
  }
}

// Restores LibTorch's thread count when a test ends.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : previous_(at::get_num_threads()) {
    at::set_num_threads(threads);
  }
  ~ThreadCount() { at::set_num_threads(previous_); }

 private:
  int previous_;
};

TEST(SparseKernels, ThreadsGiveBitwiseEqualResults) {
  const CsrMatrix csr = *ToCsr(RandomSparseWeight(257, 300, 0.8, 21));
  const BsrMatrix bsr = *ToBsr(RandomSparseWeight(256, 300, 0.5, 22), 4, 4);
  const CsrMatrix conv = *ToCsr(RandomSparseWeight(24, 16 * 9, 0.8, 23));
  const Conv2dParams params{3, 3, 1, 1, 1, 1};
  for (KernelIsa isa : AvailableIsas()) {
    SCOPED_TRACE(IsaName(isa));
    for (int64_t batch : {1, 3, 64}) {
      const at::Tensor x = at::randn({batch, 300}, Generator(batch));
      const at::Tensor image = at::randn({batch, 16, 12, 12}, Generator(batch + 1));
      at::Tensor one_thread[4];
      {
        ThreadCount threads(1);
        one_thread[0] = internal::CsrLinear(x, csr, {}, isa);
        one_thread[1] = internal::BsrLinear(x, bsr, {}, isa);
        one_thread[2] = internal::CsrConv2d(image, conv, params, {}, isa, ConvMethod::kIm2col);
        one_thread[3] = internal::CsrConv2d(image, conv, params, {}, isa, ConvMethod::kDirect);
      }
      ThreadCount threads(2);
      EXPECT_TRUE(at::equal(one_thread[0], internal::CsrLinear(x, csr, {}, isa))) << batch;
      EXPECT_TRUE(at::equal(one_thread[1], internal::BsrLinear(x, bsr, {}, isa))) << batch;
      EXPECT_TRUE(at::equal(one_thread[2],
                            internal::CsrConv2d(image, conv, params, {}, isa, ConvMethod::kIm2col)))
          << batch;
      EXPECT_TRUE(at::equal(one_thread[3],
                            internal::CsrConv2d(image, conv, params, {}, isa, ConvMethod::kDirect)))
          << batch;
    }
  }
}

TEST(SparseKernels, NanInputGivesNanOutput) {
  const CsrMatrix weight = *ToCsr(at::ones({4, 8}));
  at::Tensor input = at::ones({2, 8});
  input[1][3] = std::numeric_limits<float>::quiet_NaN();
  for (KernelIsa isa : AvailableIsas()) {
    const at::Tensor output = internal::CsrLinear(input, weight, {}, isa);
    EXPECT_FALSE(output[0].isnan().any().item<bool>()) << IsaName(isa);
    EXPECT_TRUE(output[1].isnan().all().item<bool>()) << IsaName(isa);
  }
}

TEST(SparseLinear, RejectsMismatchedInput) {
  const CsrMatrix weight = *ToCsr(RandomSparseWeight(5, 12, 0.5, 4));
  const absl::Status features = SparseLinear(at::ones({2, 13}), weight).status();
  EXPECT_EQ(features.code(), absl::StatusCode::kInvalidArgument) << features;
  EXPECT_NE(features.message().find("12"), absl::string_view::npos) << features;
  EXPECT_EQ(SparseLinear(at::ones({2, 12}, at::kDouble), weight).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SparseLinear(at::ones({2, 12}), weight, at::ones({4})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SparseLinear, RejectsCorruptWeightWithoutReadingOutside) {
  CsrMatrix weight = *ToCsr(RandomSparseWeight(5, 12, 0.0, 4));
  weight.column_indices = weight.column_indices.clone();
  weight.column_indices[7] = 1 << 30;
  for (KernelIsa isa : AvailableIsas()) {
    for (int64_t batch : {1, 64}) {
      EXPECT_THROW(internal::CsrLinear(at::ones({batch, 12}), weight, {}, isa), c10::Error)
          << IsaName(isa) << " batch " << batch;
    }
  }
  EXPECT_EQ(SparseLinear(at::ones({3, 12}), weight).status().code(),
            absl::StatusCode::kInvalidArgument);

  CsrMatrix falling = *ToCsr(RandomSparseWeight(5, 12, 0.0, 4));
  falling.row_offsets = falling.row_offsets.clone();
  falling.row_offsets[2] = 100;
  EXPECT_EQ(SparseLinear(at::ones({3, 12}), falling).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SparseConv2d, RejectsBadGeometry) {
  const CsrMatrix weight = *ToCsr(RandomSparseWeight(4, 2 * 9, 0.5, 6));
  EXPECT_EQ(SparseConv2d(at::ones({1, 3, 8, 8}), weight, {3, 3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SparseConv2d(at::ones({1, 2, 2, 2}), weight, {3, 3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SparseConv2d(at::ones({1, 2, 8, 8}), weight, {3, 3, 0, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);

  CsrMatrix corrupt = weight;
  corrupt.column_indices = weight.column_indices.clone();
  corrupt.column_indices[0] = 1000;
  for (ConvMethod method : {ConvMethod::kIm2col, ConvMethod::kDirect}) {
    EXPECT_EQ(SparseConv2d(at::ones({2, 2, 8, 8}), corrupt, {3, 3}, {}, method).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace polaris::sparse
