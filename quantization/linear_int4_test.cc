#include "quantization/linear_int4.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <tuple>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "ATen/TensorOperators.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "quantization/quantize.h"

namespace polaris::quantization {
namespace {

class Int4LinearTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(2); }
  void TearDown() override { at::set_num_threads(1); }

  at::Generator generator_ = at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed());
};

// The dequantized weights as float [N, K], computed from the packed bytes.
at::Tensor DequantizedWeight(const Int4Weight& weight) {
  const at::Tensor q = UnpackInt4(weight.packed, weight.in_features, false).value();
  const at::Tensor scale = weight.scale.repeat_interleave(weight.group_size, 1);
  const at::Tensor zero = weight.zero_point.to(at::kFloat).repeat_interleave(weight.group_size, 1);
  return (q.to(at::kFloat) - zero) * scale;
}

// Batch, in_features, out_features, group size: 1, primes, powers of two and neighbours,
// group sizes that are and are not multiples of the 16-lane vector.
const std::tuple<int64_t, int64_t, int64_t, int64_t> kShapes[] = {
    {1, 16, 1, 16},     {3, 32, 5, 16},    {2, 7, 3, 7},       {5, 30, 17, 10},
    {4, 64, 16, 1},     {64, 784, 256, 112}, {65, 1024, 33, 128}, {1, 1024, 1023, 64},
    {7, 128, 129, 32},
};

// Compares Int4Linear with Int4LinearReference over kShapes.
void ExpectMatchesReference(at::Generator& generator) {
  for (const auto& [m, k, n, group_size] : kShapes) {
    const std::string context = "m=" + std::to_string(m) + " k=" + std::to_string(k) +
                                " n=" + std::to_string(n) + " group=" + std::to_string(group_size);
    const at::Tensor w = at::randn({n, k}, generator) / std::sqrt(static_cast<double>(k));
    const at::Tensor bias = at::randn({n}, generator);
    absl::StatusOr<Int4Weight> weight = QuantizeWeightInt4(w, group_size);
    ASSERT_TRUE(weight.ok()) << weight.status();
    absl::StatusOr<std::shared_ptr<Int4Linear>> layer = Int4Linear::Create(*weight, bias);
    ASSERT_TRUE(layer.ok()) << layer.status();
    const at::Tensor x = at::randn({m, k}, generator);
    absl::StatusOr<at::Tensor> y = (*layer)->Forward(x);
    ASSERT_TRUE(y.ok()) << y.status();
    const at::Tensor expected = Int4LinearReference(x, *weight, bias);

    // Error model: the fast path sums k float products, in 16-lane partial sums (small
    // batches) or in oneDNN sgemm's blocked order (batches of 8 and more). Any summation
    // order errs by at most k epsilons of sum |x w|. It dequantizes as
    // fma(q, scale, -zero_point * scale), which differs from the reference's
    // (q - zero_point) * scale by up to 2 epsilons of 15 * scale per weight.
    const double eps = std::numeric_limits<float>::epsilon();
    const at::Tensor w_ref = DequantizedWeight(*weight);
    const at::Tensor scale = weight->scale.repeat_interleave(group_size, 1);
    const at::Tensor bound =
        x.abs().mm(w_ref.abs().t()) * ((k + 8) * eps) +
        x.abs().mm(scale.t()) * (2 * eps * 15) + bias.abs() * eps;
    const at::Tensor error = (*y - expected).abs();
    ASSERT_FALSE(at::isnan(*y).any().item<bool>()) << context;
    const at::Tensor excess = (error - bound).reshape({-1});
    const int64_t worst = excess.argmax().item<int64_t>();
    EXPECT_LE(excess[worst].item<float>(), 0.0f)
        << context << ": at row " << worst / n << ", column " << worst % n << " expected "
        << expected.reshape({-1})[worst].item<float>() << ", got "
        << y->reshape({-1})[worst].item<float>() << ", bound " << bound.reshape({-1})[worst].item<float>();
    EXPECT_LE(std::abs((*y - expected).mean().item<float>()), bound.mean().item<float>()) << context;
  }
}

TEST_F(Int4LinearTest, MatchesReference) { ExpectMatchesReference(generator_); }

TEST_F(Int4LinearTest, PortableKernelsMatchReference) {
  internal::UsePortableInt4KernelsForTesting(true);
  ExpectMatchesReference(generator_);
  internal::UsePortableInt4KernelsForTesting(false);
}

TEST_F(Int4LinearTest, QuantizedWeightsErrAtMostHalfAStep) {
  const at::Tensor w = at::randn({8, 96}, generator_);
  absl::StatusOr<Int4Weight> weight = QuantizeWeightInt4(w, 32);
  ASSERT_TRUE(weight.ok()) << weight.status();
  EXPECT_EQ(weight->packed.sizes(), at::IntArrayRef({8, 48}));
  EXPECT_EQ(weight->scale.sizes(), at::IntArrayRef({8, 3}));
  const at::Tensor error = (DequantizedWeight(*weight) - w).abs();
  const at::Tensor half_step = weight->scale.repeat_interleave(32, 1) * 0.5f * 1.0001f;
  EXPECT_TRUE((error <= half_step).all().item<bool>()) << (error - half_step).max();
}

TEST_F(Int4LinearTest, RejectsGroupSizeThatDoesNotDivideInput) {
  for (int64_t group_size : {0, -4, 3, 7, 11}) {
    absl::StatusOr<Int4Weight> weight = QuantizeWeightInt4(at::randn({4, 10}), group_size);
    ASSERT_FALSE(weight.ok()) << group_size;
    EXPECT_EQ(weight.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(weight.status().message().find("does not divide in_features 10"),
              absl::string_view::npos)
        << weight.status();
  }
  Int4Weight weight = QuantizeWeightInt4(at::randn({4, 10}), 5).value();
  weight.group_size = 4;
  EXPECT_FALSE(Int4Linear::Create(weight, at::Tensor()).ok());
  weight.group_size = 5;
  weight.zero_point = weight.zero_point.to(at::kInt) + 20;
  EXPECT_FALSE(Int4Linear::Create(weight, at::Tensor()).ok());
}

TEST_F(Int4LinearTest, RejectsNonFiniteWeightsAndWrongInput) {
  at::Tensor w = at::randn({4, 16});
  w[2][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(QuantizeWeightInt4(w, 8).ok());
  std::shared_ptr<Int4Linear> layer =
      Int4Linear::Create(QuantizeWeightInt4(at::randn({4, 16}), 8).value(), at::Tensor()).value();
  EXPECT_FALSE(layer->Forward(at::randn({2, 15})).ok());
  EXPECT_FALSE(layer->Forward(at::zeros({2, 16}, at::kInt)).ok());
  EXPECT_EQ(layer->Forward(at::randn({2, 3, 16})).value().sizes(), at::IntArrayRef({2, 3, 4}));
}

}  // namespace
}  // namespace polaris::quantization
