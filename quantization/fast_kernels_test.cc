#include "quantization/fast_kernels.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/Parallel.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "quantization/reference_kernels.h"

namespace polaris::quantization {
namespace {

// Sizes around the 16-lane vector, the 64-element unrolled loop and the threading grain.
const int64_t kSizes[] = {1, 2, 3, 15, 16, 17, 31, 63, 64, 65, 127, 128, 129, 1021,
                          kQuantizeGrainSize - 1, kQuantizeGrainSize + 1, 3 * kQuantizeGrainSize + 7};

class FastKernelsTest : public ::testing::Test {
 protected:
  // Two threads so that the split across threads runs too; the test main sets one.
  void SetUp() override { at::set_num_threads(2); }
  void TearDown() override { at::set_num_threads(1); }

  at::Generator generator_ = at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed());
};

template <typename Q>
void ExpectQuantizeMatchesReference(const at::Tensor& x, float scale, int32_t zero_point,
                                    int32_t qmin, int32_t qmax) {
  const int64_t n = x.numel();
  std::vector<Q> fast(n);
  std::vector<Q> expected(n);
  ASSERT_TRUE(QuantizeFast(x.data_ptr<float>(), n, scale, zero_point, qmin, qmax, fast.data()));
  ASSERT_TRUE(reference::Quantize(x.data_ptr<float>(), n, scale, zero_point, qmin, qmax,
                                  expected.data()));
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(int{fast[i]}, int{expected[i]}) << "n=" << n << " index " << i
                                              << " x=" << x.data_ptr<float>()[i];
  }
}

TEST_F(FastKernelsTest, QuantizeMatchesReference) {
  for (int64_t n : kSizes) {
    // Half-integer multiples of the scale exercise round-half-to-even; the wide normal part
    // exercises saturation.
    const float scale = 0.05f;
    at::Tensor x = at::randn({n}, generator_) * 8.0f;
    x.slice(0, 0, n / 3) = (at::randint(-300, 300, {n / 3}, generator_).to(at::kFloat) + 0.5f) * scale;
    ExpectQuantizeMatchesReference<int8_t>(x, scale, 3, -128, 127);
    ExpectQuantizeMatchesReference<uint8_t>(x, scale, 128, 0, 255);
    ExpectQuantizeMatchesReference<int8_t>(x, scale, 0, -8, 7);
  }
}

TEST_F(FastKernelsTest, QuantizeReportsNanAnywhere) {
  for (int64_t n : kSizes) {
    for (int64_t position : {int64_t{0}, n / 2, n - 1}) {
      at::Tensor x = at::zeros({n});
      x[position] = std::numeric_limits<float>::quiet_NaN();
      std::vector<int8_t> q(n);
      EXPECT_FALSE(QuantizeFast(x.data_ptr<float>(), n, 1.0f, 0, -128, 127, q.data()))
          << "n=" << n << " NaN at " << position;
      std::vector<uint8_t> u(n);
      EXPECT_FALSE(QuantizeFast(x.data_ptr<float>(), n, 1.0f, 0, 0, 255, u.data()))
          << "n=" << n << " NaN at " << position;
      float min = 0.0f;
      float max = 0.0f;
      EXPECT_FALSE(MinMaxFast(x.data_ptr<float>(), n, &min, &max))
          << "n=" << n << " NaN at " << position;
    }
  }
}

TEST_F(FastKernelsTest, DequantizeMatchesReference) {
  for (int64_t n : kSizes) {
    const at::Tensor s8 = at::randint(-128, 128, {n}, generator_, at::kChar);
    const at::Tensor u8 = at::randint(0, 256, {n}, generator_, at::kByte);
    std::vector<float> fast(n);
    std::vector<float> expected(n);
    DequantizeFast(s8.data_ptr<int8_t>(), n, 0.013f, -5, fast.data());
    reference::Dequantize(s8.data_ptr<int8_t>(), n, 0.013f, -5, expected.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], expected[i]) << "n=" << n << " i=" << i;
    DequantizeFast(u8.data_ptr<uint8_t>(), n, 0.7f, 131, fast.data());
    reference::Dequantize(u8.data_ptr<uint8_t>(), n, 0.7f, 131, expected.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], expected[i]) << "n=" << n << " i=" << i;
  }
}

TEST_F(FastKernelsTest, RequantizeMatchesReference) {
  for (int64_t n : kSizes) {
    const at::Tensor acc = at::randint(-40000, 40000, {n}, generator_, at::kInt);
    std::vector<int8_t> fast(n);
    std::vector<int8_t> expected(n);
    RequantizeFast(acc.data_ptr<int32_t>(), n, 0.003f, 2, -128, 127, fast.data());
    reference::Requantize(acc.data_ptr<int32_t>(), n, 0.003f, 2, -128, 127, expected.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], expected[i]) << "n=" << n << " i=" << i;
    std::vector<uint8_t> fast_u(n);
    std::vector<uint8_t> expected_u(n);
    RequantizeFast(acc.data_ptr<int32_t>(), n, 0.002f, 128, 0, 255, fast_u.data());
    reference::Requantize(acc.data_ptr<int32_t>(), n, 0.002f, 128, 0, 255, expected_u.data());
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(fast_u[i], expected_u[i]) << "n=" << n << " i=" << i;
    }
  }
}

TEST_F(FastKernelsTest, MinMaxMatchesReference) {
  for (int64_t n : kSizes) {
    const at::Tensor x = at::randn({n}, generator_) * 3.0f + 1.0f;
    float min = 0.0f;
    float max = 0.0f;
    float expected_min = 0.0f;
    float expected_max = 0.0f;
    ASSERT_TRUE(MinMaxFast(x.data_ptr<float>(), n, &min, &max));
    ASSERT_TRUE(reference::MinMax(x.data_ptr<float>(), n, &expected_min, &expected_max));
    EXPECT_EQ(min, expected_min) << "n=" << n;
    EXPECT_EQ(max, expected_max) << "n=" << n;
  }
}

}  // namespace
}  // namespace polaris::quantization
