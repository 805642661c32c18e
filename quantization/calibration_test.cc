#include "quantization/calibration.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "quantization/error_metrics.h"
#include "quantization/quantize.h"

namespace polaris::quantization {
namespace {

std::unique_ptr<Observer> Make(CalibrationMethod method, QuantScheme scheme = QuantScheme::kSymmetric,
                               int64_t axis = -1, QuantDtype dtype = QuantDtype::kInt8) {
  CalibrationOptions options;
  options.method = method;
  options.scheme = scheme;
  options.axis = axis;
  options.dtype = dtype;
  absl::StatusOr<std::unique_ptr<Observer>> observer = MakeObserver(options);
  EXPECT_TRUE(observer.ok()) << observer.status();
  return observer.ok() ? std::move(*observer) : nullptr;
}

const CalibrationMethod kAllMethods[] = {
    CalibrationMethod::kMinMax, CalibrationMethod::kMovingAverageMinMax,
    CalibrationMethod::kPercentile, CalibrationMethod::kEntropy, CalibrationMethod::kMse};

TEST(ValidateCalibrationOptions, RejectsOutOfRangeOptions) {
  CalibrationOptions options;
  options.method = CalibrationMethod::kPercentile;
  for (double percentile : {0.0, -1.0, 100.001, std::numeric_limits<double>::quiet_NaN()}) {
    options.percentile = percentile;
    absl::Status status = ValidateCalibrationOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << percentile;
    EXPECT_NE(status.message().find("(0, 100]"), absl::string_view::npos) << status;
  }
  options.percentile = 100.0;
  EXPECT_TRUE(ValidateCalibrationOptions(options).ok());

  options.averaging_constant = 0.0;
  EXPECT_FALSE(ValidateCalibrationOptions(options).ok());
  options.averaging_constant = 0.5;

  options.scheme = QuantScheme::kAsymmetric;
  options.histogram_bins = 200;  // fewer than the 256 int8 levels
  EXPECT_FALSE(ValidateCalibrationOptions(options).ok());
  options.dtype = QuantDtype::kInt4;  // 16 levels
  EXPECT_TRUE(ValidateCalibrationOptions(options).ok());
  options.axis = -2;
  EXPECT_FALSE(ValidateCalibrationOptions(options).ok());
}

TEST(Observer, EmptyCalibrationSetIsFailedPrecondition) {
  for (CalibrationMethod method : kAllMethods) {
    std::unique_ptr<Observer> observer = Make(method);
    absl::StatusOr<QuantParams> params = observer->ComputeQuantParams();
    ASSERT_FALSE(params.ok()) << CalibrationMethodName(method);
    EXPECT_EQ(params.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(params.status().message().find("empty"), absl::string_view::npos);
  }
}

TEST(Observer, RejectsBadBatchesKeepingState) {
  for (CalibrationMethod method : kAllMethods) {
    std::unique_ptr<Observer> observer = Make(method, QuantScheme::kSymmetric, 1);
    ASSERT_TRUE(observer->Observe(at::ones({2, 3})).ok());
    at::Tensor bad = at::ones({2, 3});
    bad[1][2] = std::numeric_limits<float>::quiet_NaN();
    absl::Status status = observer->Observe(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("channel 2"), absl::string_view::npos) << status;
    bad[1][2] = std::numeric_limits<float>::infinity();
    EXPECT_FALSE(observer->Observe(bad).ok());
    EXPECT_FALSE(observer->Observe(at::ones({0, 3})).ok());
    EXPECT_FALSE(observer->Observe(at::ones({2, 4})).ok());  // channel count changed
    EXPECT_FALSE(observer->Observe(at::ones({2, 3}, at::kInt)).ok());
    EXPECT_EQ(observer->batches_observed(), 1) << CalibrationMethodName(method);
    absl::StatusOr<QuantParams> params = observer->ComputeQuantParams();
    ASSERT_TRUE(params.ok()) << params.status();
    EXPECT_FLOAT_EQ(params->scale[0].item<float>(), 1.0f / 127.0f) << CalibrationMethodName(method);
  }
}

TEST(MinMaxObserver, TracksExtremesAcrossBatchesPerChannel) {
  std::unique_ptr<Observer> observer = Make(CalibrationMethod::kMinMax, QuantScheme::kAsymmetric, 1);
  ASSERT_TRUE(observer->Observe(at::tensor({1.0f, -2.0f, 0.5f, 3.0f}).reshape({2, 2})).ok());
  ASSERT_TRUE(observer->Observe(at::tensor({-4.0f, 1.0f, 0.0f, 0.0f}).reshape({2, 2})).ok());
  absl::StatusOr<ClippingRange> range = observer->ComputeRange();
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_FLOAT_EQ(range->min[0].item<float>(), -4.0f);
  EXPECT_FLOAT_EQ(range->max[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(range->min[1].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(range->max[1].item<float>(), 3.0f);
}

TEST(MovingAverageObserver, AveragesBatchExtremes) {
  CalibrationOptions options;
  options.method = CalibrationMethod::kMovingAverageMinMax;
  options.averaging_constant = 0.25;
  std::unique_ptr<Observer> observer = std::move(*MakeObserver(options));
  ASSERT_TRUE(observer->Observe(at::tensor({-1.0f, 1.0f})).ok());
  ASSERT_TRUE(observer->Observe(at::tensor({-5.0f, 9.0f})).ok());
  absl::StatusOr<ClippingRange> range = observer->ComputeRange();
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_FLOAT_EQ(range->min.item<float>(), -1.0f + 0.25f * (-5.0f + 1.0f));
  EXPECT_FLOAT_EQ(range->max.item<float>(), 1.0f + 0.25f * (9.0f - 1.0f));
}

TEST(Observer, ZeroAndConstantChannelsGiveValidParams) {
  for (CalibrationMethod method : kAllMethods) {
    for (QuantScheme scheme : {QuantScheme::kSymmetric, QuantScheme::kAsymmetric}) {
      std::unique_ptr<Observer> observer = Make(method, scheme, 0);
      at::Tensor x = at::zeros({3, 50});
      x[1].fill_(2.5f);
      x[2].fill_(-0.75f);
      ASSERT_TRUE(observer->Observe(x).ok());
      absl::StatusOr<QuantParams> params = observer->ComputeQuantParams();
      ASSERT_TRUE(params.ok()) << params.status();
      absl::StatusOr<at::Tensor> fake = FakeQuantize(x, *params);
      ASSERT_TRUE(fake.ok()) << fake.status();
      // Each constant is an end of its range, which the grid represents up to rounding of the
      // float32 scale.
      EXPECT_TRUE(at::allclose(*fake, x, 0.0, 1e-6))
          << CalibrationMethodName(method) << "\n" << *fake;
    }
  }
}

TEST(PercentileObserver, FindsTheRequestedPercentile) {
  const at::Tensor x = at::arange(0, 10000, at::kFloat);  // |x| uniform on [0, 9999]
  for (double percentile : {50.0, 99.0, 100.0}) {
    CalibrationOptions options;
    options.method = CalibrationMethod::kPercentile;
    options.percentile = percentile;
    std::unique_ptr<Observer> observer = std::move(*MakeObserver(options));
    ASSERT_TRUE(observer->Observe(x.slice(0, 0, 5000)).ok());
    ASSERT_TRUE(observer->Observe(x.slice(0, 5000)).ok());
    absl::StatusOr<ClippingRange> range = observer->ComputeRange();
    ASSERT_TRUE(range.ok()) << range.status();
    // The histogram resolves the threshold to one bin (9999 / 2048 wide) plus the spreading of
    // the first batch's bins when the second batch doubled the range.
    EXPECT_NEAR(range->max.item<float>(), 9999.0 * percentile / 100.0, 2 * 9999.0 / 2048 + 1)
        << percentile;
  }
}

// Laplace(0, 1) samples with a few large outliers: the bulk needs a fine grid, the outliers
// stretch MinMax's range.
at::Tensor HeavyTailedTensor() {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed());
  const int64_t n = 1 << 19;
  const at::Tensor u = at::rand({n}, generator) - 0.5f;
  at::Tensor x = -at::sign(u) * at::log1p(-2.0f * u.abs().clamp_max(0.4999999f));
  x[12345] = 40.0f;
  x[54321] = -35.0f;
  return x;
}

TEST(Calibration, HistogramMethodsBeatMinMaxOnHeavyTails) {
  const at::Tensor x = HeavyTailedTensor();
  for (QuantScheme scheme : {QuantScheme::kSymmetric, QuantScheme::kAsymmetric}) {
    double minmax_sqnr = 0.0;
    for (CalibrationMethod method : kAllMethods) {
      std::unique_ptr<Observer> observer = Make(method, scheme);
      // Four batches, so the histograms also go through range changes.
      for (int64_t b = 0; b < 4; ++b) {
        ASSERT_TRUE(observer->Observe(x.slice(0, b * x.numel() / 4, (b + 1) * x.numel() / 4)).ok());
      }
      absl::StatusOr<QuantParams> params = observer->ComputeQuantParams();
      ASSERT_TRUE(params.ok()) << params.status();
      absl::StatusOr<at::Tensor> fake = FakeQuantize(x, *params);
      ASSERT_TRUE(fake.ok()) << fake.status();
      absl::StatusOr<QuantizationError> error = MeasureQuantizationError(x, *fake);
      ASSERT_TRUE(error.ok()) << error.status();
      absl::StatusOr<ClippingRange> range = observer->ComputeRange();
      std::printf("%-10s %-22s range [%8.3f, %8.3f]  SQNR %6.2f dB  mean |error| %.5f\n",
                  scheme == QuantScheme::kSymmetric ? "symmetric" : "asymmetric",
                  std::string(CalibrationMethodName(method)).c_str(), range->min.item<float>(),
                  range->max.item<float>(), error->sqnr_db, error->mean_abs_error);
      if (method == CalibrationMethod::kMinMax) {
        minmax_sqnr = error->sqnr_db;
      } else if (method != CalibrationMethod::kMovingAverageMinMax) {
        EXPECT_GT(error->sqnr_db, minmax_sqnr + 1.0) << CalibrationMethodName(method);
      }
    }
  }
}

TEST(ThresholdSearch, ClipsAFarOutlierBin) {
  // Exponentially decaying mass over the first 400 bins and one count in the last bin.
  std::vector<double> counts(2048, 0.0);
  for (int j = 0; j < 400; ++j) counts[j] = std::round(10000.0 * std::exp(-j / 100.0));
  counts[2047] = 1.0;
  const double t = internal::EntropyThreshold(counts, 2048.0, 128);
  EXPECT_GE(t, 128.0);
  EXPECT_LT(t, 1000.0);
  const double mse_t = internal::MseThreshold(counts, 2048.0, 127);
  EXPECT_GE(mse_t, 300.0);
  EXPECT_LT(mse_t, 1000.0);
}

}  // namespace
}  // namespace polaris::quantization
