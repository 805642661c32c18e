#include "quantization/quant_params.h"

#include <cmath>
#include <limits>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "gtest/gtest.h"

namespace polaris::quantization {
namespace {

at::Tensor Values(std::vector<float> values) {
  return at::tensor(at::ArrayRef<float>(values), at::kFloat);
}

TEST(RangeOf, CoversEachDtype) {
  EXPECT_EQ(RangeOf(QuantDtype::kInt8).min, -128);
  EXPECT_EQ(RangeOf(QuantDtype::kInt8).max, 127);
  EXPECT_EQ(RangeOf(QuantDtype::kUInt8).min, 0);
  EXPECT_EQ(RangeOf(QuantDtype::kUInt8).max, 255);
  EXPECT_EQ(RangeOf(QuantDtype::kInt4).min, -8);
  EXPECT_EQ(RangeOf(QuantDtype::kInt4).max, 7);
  EXPECT_EQ(RangeOf(QuantDtype::kUInt4).min, 0);
  EXPECT_EQ(RangeOf(QuantDtype::kUInt4).max, 15);
}

TEST(QuantDtypeFromBits, RejectsUnsupportedBits) {
  EXPECT_EQ(*QuantDtypeFromBits(8, true), QuantDtype::kInt8);
  EXPECT_EQ(*QuantDtypeFromBits(4, false), QuantDtype::kUInt4);
  for (int bits : {0, 1, 2, 3, 5, 7, 16, 32, -8}) {
    absl::StatusOr<QuantDtype> dtype = QuantDtypeFromBits(bits, true);
    ASSERT_FALSE(dtype.ok()) << bits;
    EXPECT_EQ(dtype.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(dtype.status().message().find("use 8 or 4"), absl::string_view::npos);
  }
}

TEST(ChooseQuantParams, SymmetricSignedUsesMaxAbs) {
  absl::StatusOr<QuantParams> params =
      ChooseQuantParams(Values({-2.54f}), Values({1.0f}), QuantDtype::kInt8,
                        QuantScheme::kSymmetric, -1);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_FLOAT_EQ(params->scale.item<float>(), 2.54f / 127.0f);
  EXPECT_EQ(params->zero_point.item<int64_t>(), 0);
}

TEST(ChooseQuantParams, SymmetricUnsignedCentersZeroPoint) {
  absl::StatusOr<QuantParams> params = ChooseQuantParams(
      Values({-1.0f}), Values({3.0f}), QuantDtype::kUInt8, QuantScheme::kSymmetric, -1);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->zero_point.item<int64_t>(), 128);
  EXPECT_FLOAT_EQ(params->scale.item<float>(), 3.0f / 127.0f);

  absl::StatusOr<QuantParams> uint4 = ChooseQuantParams(
      Values({-1.0f}), Values({0.7f}), QuantDtype::kUInt4, QuantScheme::kSymmetric, -1);
  ASSERT_TRUE(uint4.ok()) << uint4.status();
  EXPECT_EQ(uint4->zero_point.item<int64_t>(), 8);
  EXPECT_FLOAT_EQ(uint4->scale.item<float>(), 1.0f / 7.0f);
}

TEST(ChooseQuantParams, AsymmetricMapsRangeOntoGrid) {
  absl::StatusOr<QuantParams> params = ChooseQuantParams(
      Values({-1.0f}), Values({3.0f}), QuantDtype::kUInt8, QuantScheme::kAsymmetric, -1);
  ASSERT_TRUE(params.ok()) << params.status();
  const float scale = params->scale.item<float>();
  EXPECT_FLOAT_EQ(scale, 4.0f / 255.0f);
  EXPECT_EQ(params->zero_point.item<int64_t>(), static_cast<int64_t>(std::nearbyint(1.0 / scale)));

  absl::StatusOr<QuantParams> signed_params = ChooseQuantParams(
      Values({-1.0f}), Values({3.0f}), QuantDtype::kInt8, QuantScheme::kAsymmetric, -1);
  ASSERT_TRUE(signed_params.ok()) << signed_params.status();
  EXPECT_EQ(signed_params->zero_point.item<int64_t>(),
            params->zero_point.item<int64_t>() - 128);
}

TEST(ChooseQuantParams, AsymmetricRangeIsWidenedToContainZero) {
  absl::StatusOr<QuantParams> positive = ChooseQuantParams(
      Values({2.0f}), Values({5.1f}), QuantDtype::kUInt8, QuantScheme::kAsymmetric, -1);
  ASSERT_TRUE(positive.ok()) << positive.status();
  EXPECT_FLOAT_EQ(positive->scale.item<float>(), 5.1f / 255.0f);
  EXPECT_EQ(positive->zero_point.item<int64_t>(), 0);

  absl::StatusOr<QuantParams> negative = ChooseQuantParams(
      Values({-5.1f}), Values({-2.0f}), QuantDtype::kInt8, QuantScheme::kAsymmetric, -1);
  ASSERT_TRUE(negative.ok()) << negative.status();
  EXPECT_EQ(negative->zero_point.item<int64_t>(), 127);
}

TEST(ChooseQuantParams, ZeroAndConstantChannelsGetValidScales) {
  for (QuantScheme scheme : {QuantScheme::kSymmetric, QuantScheme::kAsymmetric}) {
    absl::StatusOr<QuantParams> params =
        ChooseQuantParams(Values({0.0f, 4.0f, -3.0f, 1e-39f}), Values({0.0f, 4.0f, -3.0f, 1e-39f}),
                          QuantDtype::kInt8, scheme, 0);
    ASSERT_TRUE(params.ok()) << params.status();
    const float* scale = params->scale.data_ptr<float>();
    EXPECT_EQ(scale[0], 1.0f);
    for (int c = 0; c < 4; ++c) {
      EXPECT_TRUE(std::isfinite(scale[c])) << "channel " << c;
      EXPECT_GE(scale[c], kMinScale) << "channel " << c;
      EXPECT_TRUE(std::isfinite(1.0f / scale[c])) << "channel " << c;
    }
    EXPECT_TRUE(ValidateQuantParams(*params, at::Tensor(), "test").ok());
  }
}

TEST(ChooseQuantParams, RejectsNonFiniteAndInvertedRanges) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{nan, 1.0f}, {0.0f, nan},
                                                            {-inf, 1.0f}, {0.0f, inf}}) {
    absl::StatusOr<QuantParams> params = ChooseQuantParams(
        Values({lo}), Values({hi}), QuantDtype::kInt8, QuantScheme::kSymmetric, -1);
    ASSERT_FALSE(params.ok()) << lo << " " << hi;
    EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(params.status().message().find("not finite"), absl::string_view::npos);
  }
  absl::StatusOr<QuantParams> inverted = ChooseQuantParams(
      Values({2.0f}), Values({1.0f}), QuantDtype::kInt8, QuantScheme::kSymmetric, -1);
  EXPECT_EQ(inverted.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChooseQuantParams, RejectsShapesThatDoNotFitAxis) {
  EXPECT_FALSE(ChooseQuantParams(Values({0.0f, 1.0f}), Values({1.0f}), QuantDtype::kInt8,
                                 QuantScheme::kSymmetric, 0)
                   .ok());
  EXPECT_FALSE(ChooseQuantParams(Values({0.0f, 1.0f}), Values({1.0f, 2.0f}), QuantDtype::kInt8,
                                 QuantScheme::kSymmetric, -1)
                   .ok());
  EXPECT_FALSE(ChooseQuantParams(Values({0.0f}), Values({1.0f}), QuantDtype::kInt8,
                                 QuantScheme::kSymmetric, -2)
                   .ok());
}

TEST(ValidateQuantParams, RejectsBadScaleZeroPointAndAxis) {
  QuantParams params;
  params.scale = Values({0.5f, 0.0f});
  params.zero_point = at::zeros({2}, at::kLong);
  params.axis = 1;
  absl::Status status = ValidateQuantParams(params, at::zeros({3, 2}), "w");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("scale 0 of channel 1"), absl::string_view::npos) << status;

  params.scale = Values({0.5f, 0.5f});
  params.zero_point = at::tensor({0, 300}, at::kLong);
  status = ValidateQuantParams(params, at::zeros({3, 2}), "w");
  EXPECT_NE(status.message().find("zero point 300"), absl::string_view::npos) << status;

  params.zero_point = at::zeros({2}, at::kLong);
  EXPECT_TRUE(ValidateQuantParams(params, at::zeros({3, 2}), "w").ok());
  status = ValidateQuantParams(params, at::zeros({3, 5}), "w");
  EXPECT_NE(status.message().find("5 channels"), absl::string_view::npos) << status;
  status = ValidateQuantParams(params, at::zeros({3}), "w");
  EXPECT_NE(status.message().find("out of range"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace polaris::quantization
