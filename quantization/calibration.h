// Calibration: observers that accumulate statistics of a tensor over batches and turn them into
// a clipping range and quantization parameters.
//
//   CalibrationOptions options;
//   options.method = CalibrationMethod::kEntropy;
//   POLARIS_ASSIGN_OR_RETURN(std::unique_ptr<Observer> observer, MakeObserver(options));
//   for (const at::Tensor& batch : activations) POLARIS_RETURN_IF_ERROR(observer->Observe(batch));
//   POLARIS_ASSIGN_OR_RETURN(QuantParams params, observer->ComputeQuantParams());
//
// Methods:
//  - kMinMax: the smallest and largest value seen.
//  - kMovingAverageMinMax: min and max of each batch, averaged as
//    running = running + averaging_constant * (batch - running); the first batch sets them.
//  - kPercentile: with kSymmetric, the `percentile`-th percentile of |x|; with kAsymmetric,
//    the (100 - percentile)-th and percentile-th percentiles of x.
//  - kEntropy: the threshold whose quantized distribution has the smallest KL divergence from
//    the clipped distribution of the data, searched over a histogram as TensorRT's INT8
//    calibration does (Migacz, "8-bit Inference with TensorRT", GTC 2017).
//  - kMse: the threshold that minimizes the mean squared quantization error (clipping plus
//    rounding) over the histogram, each bin sampled at four evenly spaced points.
// Histogram methods (kPercentile, kEntropy, kMse) keep `histogram_bins` bins per channel over
// |x| for kSymmetric and over x for kAsymmetric. When a batch widens the range, the counts
// collected so far are spread over the new, wider bins in proportion to their overlap, so
// the result depends slightly on batch order. With kAsymmetric, kEntropy and kMse shrink the
// window [min, max] greedily one bin at a time from the side that lowers the objective more
// and keep the best window seen. A channel whose values are all equal gets that value as its
// range.
#ifndef POLARIS_QUANTIZATION_CALIBRATION_H_
#define POLARIS_QUANTIZATION_CALIBRATION_H_

#include <cstdint>
#include <memory>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "quantization/quant_params.h"

namespace polaris::quantization {

enum class CalibrationMethod { kMinMax, kMovingAverageMinMax, kPercentile, kEntropy, kMse };

absl::string_view CalibrationMethodName(CalibrationMethod method);

struct CalibrationOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  double percentile = 99.99;          // kPercentile; in (0, 100]
  double averaging_constant = 0.01;   // kMovingAverageMinMax; in (0, 1]
  int histogram_bins = 2048;          // histogram methods; at least the number of levels
  int64_t axis = -1;                  // -1 per tensor, else the channel dimension
  QuantDtype dtype = QuantDtype::kInt8;
  QuantScheme scheme = QuantScheme::kSymmetric;
};

// Returns kInvalidArgument naming the first option out of range: percentile outside (0, 100],
// averaging_constant outside (0, 1], or axis below -1. The same error covers histogram_bins
// above 2^20 or below the number of levels the method searches over. That number is
// qmax - zero_point + 1 for kSymmetric and qmax - qmin + 1 for kAsymmetric.
absl::Status ValidateCalibrationOptions(const CalibrationOptions& options);

// A clipping range per tensor (one element each) or per channel ([channels] each), float32.
struct ClippingRange {
  at::Tensor min;
  at::Tensor max;
};

class Observer {
 public:
  virtual ~Observer() = default;

  // Adds the statistics of one batch. With axis >= 0, dimension `axis` indexes the channels,
  // and every batch must have the same number of them.
  // Returns kInvalidArgument, leaving the statistics unchanged, when `x` is undefined, not
  // floating point, empty, contains NaN or Inf (naming the channel), lacks dimension `axis` or
  // changes the number of channels.
  absl::Status Observe(const at::Tensor& x);

  // Returns the clipping range of the chosen method. Returns kFailedPrecondition when no batch
  // was observed (an empty calibration set).
  absl::StatusOr<ClippingRange> ComputeRange() const;

  // ChooseQuantParams applied to ComputeRange() with the options' dtype, scheme and axis.
  absl::StatusOr<QuantParams> ComputeQuantParams() const;

  int64_t batches_observed() const { return batches_observed_; }
  const CalibrationOptions& options() const { return options_; }

 protected:
  explicit Observer(const CalibrationOptions& options) : options_(options) {}

  // `values` is float32 [channels, n], contiguous and finite; `min` and `max` hold each
  // channel's minimum and maximum.
  virtual void ObserveChannels(const at::Tensor& values, const std::vector<float>& min,
                               const std::vector<float>& max) = 0;
  // Called only after at least one batch; fills min and max per channel.
  virtual void ComputeChannelRanges(std::vector<float>* min, std::vector<float>* max) const = 0;

 private:
  CalibrationOptions options_;
  int64_t batches_observed_ = 0;
  int64_t channels_ = -1;
};

// Makes the observer for options.method. Returns ValidateCalibrationOptions's error.
absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(const CalibrationOptions& options);

namespace internal {

// Threshold searches on one channel's histogram, exposed for tests. `counts` has B bins of
// equal width over [lo, hi]; `levels` is the number of quantization levels.

// Symmetric (histogram of |x| over [0, hi]): returns the threshold t in (0, hi].
double PercentileThreshold(const std::vector<double>& counts, double hi, double percentile);
double EntropyThreshold(const std::vector<double>& counts, double hi, int levels);
// `positive_levels` = qmax - zero_point (127 for int8): the grid is t / positive_levels.
double MseThreshold(const std::vector<double>& counts, double hi, int positive_levels);

}  // namespace internal
}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_CALIBRATION_H_
