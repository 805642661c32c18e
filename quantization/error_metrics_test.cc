#include "quantization/error_metrics.h"

#include <cmath>
#include <limits>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "gtest/gtest.h"

namespace polaris::quantization {
namespace {

TEST(MeasureQuantizationError, ComputesKnownValues) {
  absl::StatusOr<QuantizationError> error = MeasureQuantizationError(
      at::tensor({1.0f, 2.0f, 3.0f, 4.0f}), at::tensor({1.0f, 2.0f, 3.0f, 5.0f}));
  ASSERT_TRUE(error.ok()) << error.status();
  // Signal 1 + 4 + 9 + 16 = 30, noise 1.
  EXPECT_NEAR(error->sqnr_db, 10.0 * std::log10(30.0), 1e-12);
  EXPECT_DOUBLE_EQ(error->max_abs_error, 1.0);
  EXPECT_DOUBLE_EQ(error->mean_abs_error, 0.25);
  EXPECT_NEAR(error->cosine_similarity, 34.0 / std::sqrt(30.0 * 39.0), 1e-12);
}

TEST(MeasureQuantizationError, HandlesExactAndZeroTensors) {
  const at::Tensor x = at::tensor({1.0f, -2.0f});
  absl::StatusOr<QuantizationError> exact = MeasureQuantizationError(x, x);
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(exact->sqnr_db, std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(exact->cosine_similarity, 1.0);

  absl::StatusOr<QuantizationError> zeros =
      MeasureQuantizationError(at::zeros({2}), at::zeros({2}));
  ASSERT_TRUE(zeros.ok()) << zeros.status();
  EXPECT_EQ(zeros->sqnr_db, std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(zeros->cosine_similarity, 1.0);

  absl::StatusOr<QuantizationError> from_zero = MeasureQuantizationError(at::zeros({2}), x);
  ASSERT_TRUE(from_zero.ok()) << from_zero.status();
  EXPECT_EQ(from_zero->sqnr_db, -std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(from_zero->cosine_similarity, 0.0);
}

TEST(MeasureQuantizationError, RejectsBadInput) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(MeasureQuantizationError(at::zeros({2}), at::zeros({3})).ok());
  EXPECT_FALSE(MeasureQuantizationError(at::zeros({0}), at::zeros({0})).ok());
  EXPECT_FALSE(MeasureQuantizationError(at::zeros({2}, at::kInt), at::zeros({2})).ok());
  absl::StatusOr<QuantizationError> with_nan =
      MeasureQuantizationError(at::zeros({2}), at::tensor({0.0f, nan}));
  ASSERT_FALSE(with_nan.ok());
  EXPECT_NE(with_nan.status().message().find("element 1"), absl::string_view::npos)
      << with_nan.status();
}

}  // namespace
}  // namespace polaris::quantization
