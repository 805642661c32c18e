#include "quantization/linear_int8.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "ATen/TensorOperators.h"
#include "core/cpu_features.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "quantization/quantize.h"

namespace polaris::quantization {
namespace {

struct Layer {
  at::Tensor weight;  // int8 [N, K]
  at::Tensor scale;   // float [N]
  at::Tensor bias;    // float [N]
};

Layer RandomLayer(int64_t n, int64_t k, at::Generator& generator) {
  return {at::randint(-127, 128, {n, k}, generator, at::kChar),
          at::rand({n}, generator) * 0.01f + 0.001f, at::randn({n}, generator)};
}

// Bound on |fast - reference|: both compute the same integers, and they differ only in float
// rounding of scale * accumulator (the fast path also subtracts the folded zero-point term in
// float). Each step errs by at most an epsilon of the largest intermediate, so 8 epsilons of
// input_scale * weight_scale * (|sum q_x q_w| + |z * sum q_w|) + |b| covers them.
at::Tensor RoundingBound(const at::Tensor& input, const Layer& layer, float input_scale,
                         int32_t zero_point) {
  QuantParams params;
  params.scale = at::full({1}, input_scale);
  params.zero_point = at::full({1}, int64_t{zero_point}, at::kLong);
  params.dtype = QuantDtype::kUInt8;
  const at::Tensor q = Quantize(input, params).value().to(at::kDouble);
  const at::Tensor w = layer.weight.to(at::kDouble);
  const at::Tensor raw = q.mm(w.t()).abs();
  const at::Tensor zero_term = (w.sum(1) * zero_point).abs();
  const at::Tensor magnitude =
      (raw + zero_term) * (layer.scale.to(at::kDouble) * input_scale) + layer.bias.abs();
  return magnitude * (8.0 * std::numeric_limits<float>::epsilon()) + 1e-30;
}

void ExpectWithin(const at::Tensor& actual, const at::Tensor& expected, const at::Tensor& bound,
                  const std::string& context) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << context;
  const at::Tensor error = (actual.to(at::kDouble) - expected.to(at::kDouble)).abs();
  ASSERT_FALSE(at::isnan(actual).any().item<bool>()) << context;
  const at::Tensor excess = (error - bound).reshape({-1});
  const int64_t worst = excess.argmax().item<int64_t>();
  EXPECT_LE(excess[worst].item<double>(), 0.0)
      << context << ": at flat index " << worst << " (row " << worst / actual.size(1)
      << ", column " << worst % actual.size(1) << ") expected "
      << expected.reshape({-1})[worst].item<float>() << ", got "
      << actual.reshape({-1})[worst].item<float>() << ", bound "
      << bound.reshape({-1})[worst].item<double>();
}

class Int8LinearTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CpuFeatures().avx512_vnni) GTEST_SKIP() << "the numerics are specified for VNNI CPUs";
    at::set_num_threads(2);
  }
  void TearDown() override { at::set_num_threads(1); }

  at::Generator generator_ = at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed());
};

// Batch, in_features, out_features: 1, primes, powers of two and their neighbours, the target
// shapes.
const std::tuple<int64_t, int64_t, int64_t> kShapes[] = {
    {1, 1, 1},     {1, 7, 5},      {3, 16, 16},    {2, 17, 31},    {5, 63, 64},
    {64, 64, 65},  {1, 127, 129},  {13, 128, 1},   {64, 784, 256}, {65, 255, 17},
    {1, 1024, 33}, {64, 1023, 97}, {7, 1025, 128},
};

TEST_F(Int8LinearTest, StaticMatchesReference) {
  for (const auto& [m, k, n] : kShapes) {
    const Layer layer = RandomLayer(n, k, generator_);
    absl::StatusOr<std::shared_ptr<Int8Linear>> linear =
        Int8Linear::Create(layer.weight, layer.scale, layer.bias);
    ASSERT_TRUE(linear.ok()) << linear.status();
    const at::Tensor x = at::randn({m, k}, generator_) * 2.0f;
    const float input_scale = 8.0f / 255.0f;
    const int32_t zero_point = 131;
    absl::StatusOr<at::Tensor> y = (*linear)->Forward(x, input_scale, zero_point);
    ASSERT_TRUE(y.ok()) << y.status();
    const at::Tensor expected =
        Int8LinearReference(x, layer.weight, layer.scale, layer.bias, input_scale, zero_point);
    ExpectWithin(*y, expected, RoundingBound(x, layer, input_scale, zero_point),
                 "static m=" + std::to_string(m) + " k=" + std::to_string(k) +
                     " n=" + std::to_string(n));
  }
}

TEST_F(Int8LinearTest, DynamicMatchesReference) {
  for (const auto& [m, k, n] : kShapes) {
    const Layer layer = RandomLayer(n, k, generator_);
    absl::StatusOr<std::shared_ptr<Int8Linear>> linear =
        Int8Linear::Create(layer.weight, layer.scale, layer.bias);
    ASSERT_TRUE(linear.ok()) << linear.status();
    // Shifted so that the range is asymmetric and the zero point is not 0.
    const at::Tensor x = at::randn({m, k}, generator_) + 0.7f;
    absl::StatusOr<at::Tensor> y = (*linear)->ForwardDynamic(x);
    ASSERT_TRUE(y.ok()) << y.status();
    const at::Tensor expected = Int8LinearDynamicReference(x, layer.weight, layer.scale, layer.bias);
    const InputQuantization input = ChooseDynamicInputQuantization(
        x.min().item<float>(), x.max().item<float>());
    ExpectWithin(*y, expected, RoundingBound(x, layer, input.scale, input.zero_point),
                 "dynamic m=" + std::to_string(m) + " k=" + std::to_string(k) +
                     " n=" + std::to_string(n));
  }
}

TEST_F(Int8LinearTest, DynamicErrorFollowsInputRounding) {
  // Against float math on the dequantized weights, the only error left is the rounding of the
  // input to its grid: at most input_scale / 2 per element, so |error| <= input_scale / 2 *
  // sum_k |w_deq[n, k]| (plus float rounding).
  const Layer layer = RandomLayer(256, 784, generator_);
  const at::Tensor x = at::randn({64, 784}, generator_);
  std::shared_ptr<Int8Linear> linear = Int8Linear::Create(layer.weight, layer.scale, layer.bias).value();
  const at::Tensor y = linear->ForwardDynamic(x).value();
  const at::Tensor w = layer.weight.to(at::kFloat) * layer.scale.unsqueeze(1);
  const at::Tensor expected = x.mm(w.t()) + layer.bias;
  const InputQuantization input =
      ChooseDynamicInputQuantization(x.min().item<float>(), x.max().item<float>());
  const at::Tensor bound = (w.abs().sum(1) * (input.scale / 2.0f) * 1.001f).expand({64, 256});
  ExpectWithin(y, expected, bound, "against float");
  // Rounding errors are unbiased, so the mean error is far below the bound.
  EXPECT_LT((y - expected).mean().abs().item<float>(), bound.mean().item<float>() / 20.0f);
}

TEST_F(Int8LinearTest, HandlesBatchShapesAndEmptyInput) {
  const Layer layer = RandomLayer(9, 12, generator_);
  std::shared_ptr<Int8Linear> linear = Int8Linear::Create(layer.weight, layer.scale, at::Tensor()).value();
  const at::Tensor x = at::randn({2, 3, 12}, generator_);
  const at::Tensor y = linear->ForwardDynamic(x).value();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({2, 3, 9}));
  const at::Tensor flat = linear->ForwardDynamic(x.reshape({6, 12})).value();
  EXPECT_TRUE(at::equal(y.reshape({6, 9}), flat));
  EXPECT_EQ(linear->ForwardDynamic(at::zeros({0, 12})).value().sizes(), at::IntArrayRef({0, 9}));
  absl::StatusOr<std::string> implementation = linear->ImplementationName(64);
  ASSERT_TRUE(implementation.ok()) << implementation.status();
  std::printf("oneDNN int8 matmul for batch 64: %s\n", implementation->c_str());
}

TEST_F(Int8LinearTest, RejectsBadInput) {
  const Layer layer = RandomLayer(4, 8, generator_);
  std::shared_ptr<Int8Linear> linear = Int8Linear::Create(layer.weight, layer.scale, layer.bias).value();
  at::Tensor x = at::randn({2, 8}, generator_);
  EXPECT_FALSE(linear->Forward(at::randn({2, 9}), 0.1f, 0).ok());
  EXPECT_FALSE(linear->Forward(x, 0.0f, 0).ok());
  EXPECT_FALSE(linear->Forward(x, 0.1f, 256).ok());
  x[1][3] = std::numeric_limits<float>::quiet_NaN();
  absl::StatusOr<at::Tensor> with_nan = linear->Forward(x, 0.1f, 128);
  ASSERT_FALSE(with_nan.ok());
  EXPECT_NE(with_nan.status().message().find("NaN"), absl::string_view::npos);
  EXPECT_FALSE(linear->ForwardDynamic(x).ok());
  x[1][3] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(linear->ForwardDynamic(x).ok());

  EXPECT_FALSE(Int8Linear::Create(layer.weight.to(at::kFloat), layer.scale, layer.bias).ok());
  EXPECT_FALSE(Int8Linear::Create(layer.weight, at::zeros({4}), layer.bias).ok());
  EXPECT_FALSE(Int8Linear::Create(layer.weight, at::ones({3}), layer.bias).ok());
  EXPECT_FALSE(Int8Linear::Create(layer.weight, layer.scale, at::ones({5})).ok());
}

}  // namespace
}  // namespace polaris::quantization
