#include "quantization/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/fast_kernels.h"

namespace polaris::quantization {

absl::string_view CalibrationMethodName(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kMovingAverageMinMax:
      return "moving_average_minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
    case CalibrationMethod::kEntropy:
      return "entropy";
    case CalibrationMethod::kMse:
      return "mse";
  }
  return "unknown";
}

namespace {

// Number of levels a histogram search spreads over: the non-negative half of the grid for
// kSymmetric (it searches |x|), the whole grid for kAsymmetric.
int SearchLevels(QuantDtype dtype, QuantScheme scheme) {
  const QuantRange range = RangeOf(dtype);
  if (scheme == QuantScheme::kAsymmetric) return static_cast<int>(range.max - range.min + 1);
  const int64_t zero_point = IsSigned(dtype) ? 0 : (range.max + 1) / 2;
  return static_cast<int>(range.max - zero_point + 1);
}

bool IsHistogramMethod(CalibrationMethod method) {
  return method == CalibrationMethod::kPercentile || method == CalibrationMethod::kEntropy ||
         method == CalibrationMethod::kMse;
}

}  // namespace

absl::Status ValidateCalibrationOptions(const CalibrationOptions& options) {
  if (!(options.percentile > 0.0 && options.percentile <= 100.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "percentile ", options.percentile, " is outside (0, 100]; 99.99 is a common choice"));
  }
  if (!(options.averaging_constant > 0.0 && options.averaging_constant <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("averaging_constant ",
                                                   options.averaging_constant,
                                                   " is outside (0, 1]; 0.01 is a common choice"));
  }
  const int levels = SearchLevels(options.dtype, options.scheme);
  if (IsHistogramMethod(options.method) &&
      (options.histogram_bins < levels || options.histogram_bins > (1 << 20))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "histogram_bins ", options.histogram_bins, " is outside [", levels, ", ", 1 << 20,
        "] for ", QuantDtypeName(options.dtype), " ",
        options.scheme == QuantScheme::kSymmetric ? "symmetric" : "asymmetric",
        " calibration; 2048 is a common choice"));
  }
  if (options.axis < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", options.axis, " is invalid; use -1 per tensor or a dimension >= 0"));
  }
  return absl::OkStatus();
}

absl::Status Observer::Observe(const at::Tensor& x) {
  if (!x.defined() || !x.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration data must be a floating-point tensor, got ",
        x.defined() ? c10::toString(x.scalar_type()) : "an undefined tensor"));
  }
  if (x.numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("calibration batch of shape ",
                                                   c10::str(x.sizes()), " is empty"));
  }
  const int64_t axis = options_.axis;
  if (axis >= x.dim()) {
    return absl::InvalidArgumentError(absl::StrCat("channel axis ", axis,
                                                   " is out of range for a batch of shape ",
                                                   c10::str(x.sizes())));
  }
  const int64_t channels = axis < 0 ? 1 : x.size(axis);
  if (channels_ >= 0 && channels != channels_) {
    return absl::InvalidArgumentError(absl::StrCat("batch has ", channels,
                                                   " channels along axis ", axis,
                                                   " but earlier batches had ", channels_));
  }

  return CallTorch("observing a calibration batch", [&]() -> absl::Status {
    at::Tensor values = axis < 0 ? x.reshape({1, -1}) : x.movedim(axis, 0).reshape({channels, -1});
    values = values.to(at::kFloat).contiguous();
    const int64_t n = values.size(1);
    std::vector<float> min(channels);
    std::vector<float> max(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const bool no_nan = MinMaxFast(values.data_ptr<float>() + c * n, n, &min[c], &max[c]);
      if (!no_nan || !std::isfinite(min[c]) || !std::isfinite(max[c])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "calibration data contains NaN or Inf", axis < 0 ? "" : absl::StrCat(" in channel ", c),
            "; check the model's inputs and the layers before this one"));
      }
    }
    ObserveChannels(values, min, max);
    channels_ = channels;
    ++batches_observed_;
    return absl::OkStatus();
  });
}

absl::StatusOr<ClippingRange> Observer::ComputeRange() const {
  if (batches_observed_ == 0) {
    return absl::FailedPreconditionError(
        "the calibration set is empty: call Observe with at least one batch before computing "
        "quantization parameters");
  }
  std::vector<float> min;
  std::vector<float> max;
  ComputeChannelRanges(&min, &max);
  return CallTorch("computing the clipping range", [&] {
    const int64_t channels = static_cast<int64_t>(min.size());
    ClippingRange range{at::empty({channels}, at::kFloat), at::empty({channels}, at::kFloat)};
    std::copy(min.begin(), min.end(), range.min.data_ptr<float>());
    std::copy(max.begin(), max.end(), range.max.data_ptr<float>());
    return range;
  });
}

absl::StatusOr<QuantParams> Observer::ComputeQuantParams() const {
  POLARIS_ASSIGN_OR_RETURN(ClippingRange range, ComputeRange());
  return ChooseQuantParams(range.min, range.max, options_.dtype, options_.scheme,
                           options_.axis);
}

namespace {

class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(const CalibrationOptions& options) : Observer(options) {}

 protected:
  void ObserveChannels(const at::Tensor& values, const std::vector<float>& min,
                       const std::vector<float>& max) override {
    if (min_.empty()) {
      min_ = min;
      max_ = max;
      return;
    }
    const bool moving_average = options().method == CalibrationMethod::kMovingAverageMinMax;
    const float c = static_cast<float>(options().averaging_constant);
    for (size_t i = 0; i < min.size(); ++i) {
      if (moving_average) {
        min_[i] += c * (min[i] - min_[i]);
        max_[i] += c * (max[i] - max_[i]);
      } else {
        min_[i] = std::min(min_[i], min[i]);
        max_[i] = std::max(max_[i], max[i]);
      }
    }
  }

  void ComputeChannelRanges(std::vector<float>* min, std::vector<float>* max) const override {
    *min = min_;
    *max = max_;
  }

 private:
  std::vector<float> min_;
  std::vector<float> max_;
};

// Equal-width histogram over [lo, hi] whose range grows with the data.
struct Histogram {
  double lo = 0.0;
  double hi = 0.0;
  std::vector<double> counts;

  double BinWidth() const { return (hi - lo) / static_cast<double>(counts.size()); }

  // Spreads the current counts over `bins` bins on the wider range [new_lo, new_hi].
  void Widen(double new_lo, double new_hi) {
    const int64_t bins = static_cast<int64_t>(counts.size());
    std::vector<double> widened(bins, 0.0);
    const double new_width = (new_hi - new_lo) / static_cast<double>(bins);
    const double old_width = BinWidth();
    for (int64_t i = 0; i < bins; ++i) {
      if (counts[i] == 0.0) continue;
      // Position of the old bin's edges in units of new bins.
      const double start = (lo + i * old_width - new_lo) / new_width;
      const double end = (lo + (i + 1) * old_width - new_lo) / new_width;
      if (end - start <= 0.0) {
        widened[std::clamp<int64_t>(static_cast<int64_t>(start), 0, bins - 1)] += counts[i];
        continue;
      }
      const int64_t first = std::clamp<int64_t>(static_cast<int64_t>(std::floor(start)), 0, bins - 1);
      const int64_t last = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(end)) - 1, 0, bins - 1);
      for (int64_t j = first; j <= last; ++j) {
        const double overlap = std::min(end, double(j + 1)) - std::max(start, double(j));
        if (overlap > 0.0) widened[j] += counts[i] * overlap / (end - start);
      }
    }
    counts = std::move(widened);
    lo = new_lo;
    hi = new_hi;
  }

  void Add(const float* values, int64_t n, bool absolute, double batch_lo, double batch_hi,
           int bins) {
    if (counts.empty()) {
      counts.assign(bins, 0.0);
      lo = batch_lo;
      hi = batch_hi;
    } else if (batch_lo < lo || batch_hi > hi) {
      Widen(std::min(lo, batch_lo), std::max(hi, batch_hi));
    }
    const double width = hi - lo;
    for (int64_t i = 0; i < n; ++i) {
      const double v = absolute ? std::abs(values[i]) : values[i];
      int64_t bin = 0;
      if (width > 0.0) {
        bin = static_cast<int64_t>((v - lo) / width * static_cast<double>(bins));
        bin = std::clamp<int64_t>(bin, 0, bins - 1);
      }
      counts[bin] += 1.0;
    }
  }
};

// KL divergence between the clipped distribution of bins [begin, end) (with the mass outside
// folded into the edge bins) and its quantization to `levels` levels, as in TensorRT's
// calibration: each level's mass is spread evenly over the bins that were non-empty.
double ClippedKlDivergence(const std::vector<double>& counts, int64_t begin, int64_t end,
                           int levels, std::vector<double>* p, std::vector<double>* q) {
  const int64_t n = end - begin;
  double left = 0.0;
  double right = 0.0;
  for (int64_t j = 0; j < begin; ++j) left += counts[j];
  for (int64_t j = end; j < static_cast<int64_t>(counts.size()); ++j) right += counts[j];
  p->assign(counts.begin() + begin, counts.begin() + end);
  (*p)[0] += left;
  (*p)[n - 1] += right;

  q->assign(n, 0.0);
  for (int64_t k = 0; k < levels; ++k) {
    const int64_t first = k * n / levels;
    const int64_t last = (k + 1) * n / levels;
    double mass = 0.0;
    int64_t non_empty = 0;
    for (int64_t j = first; j < last; ++j) {
      mass += counts[begin + j];
      non_empty += counts[begin + j] > 0.0;
    }
    if (non_empty == 0) continue;
    for (int64_t j = first; j < last; ++j) {
      if (counts[begin + j] > 0.0) (*q)[j] = mass / static_cast<double>(non_empty);
    }
  }

  double p_total = 0.0;
  double q_total = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    p_total += (*p)[j];
    q_total += (*q)[j];
  }
  if (p_total == 0.0) return 0.0;
  if (q_total == 0.0) return std::numeric_limits<double>::infinity();
  // Bins that the quantized distribution leaves empty while the clipped one has mass (the
  // folded outliers) get this probability instead of 0, which would make the divergence
  // infinite.
  constexpr double kSmoothing = 1e-12;
  double divergence = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    if ((*p)[j] <= 0.0) continue;
    const double pj = (*p)[j] / p_total;
    const double qj = std::max((*q)[j] / q_total, kSmoothing);
    divergence += pj * std::log(pj / qj);
  }
  return divergence;
}

// Squared quantization error summed over the histogram, for the affine grid
// x' = (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale. Each bin's
// count is spread evenly over kSamplesPerBin points inside it. Mass near a bin's edge (the
// maximum sits at the top edge of the last bin) is then not treated as if it sat at the center.
double GridSquaredError(const Histogram& histogram, double scale, double zero_point,
                        double qmin, double qmax) {
  constexpr int kSamplesPerBin = 4;
  const double width = histogram.BinWidth();
  double error = 0.0;
  for (size_t j = 0; j < histogram.counts.size(); ++j) {
    if (histogram.counts[j] == 0.0) continue;
    double bin_error = 0.0;
    for (int k = 0; k < kSamplesPerBin; ++k) {
      const double x = histogram.lo + (static_cast<double>(j) +
                                       (k + 0.5) / static_cast<double>(kSamplesPerBin)) * width;
      const double q = std::clamp(std::nearbyint(x / scale) + zero_point, qmin, qmax);
      const double d = x - (q - zero_point) * scale;
      bin_error += d * d;
    }
    error += histogram.counts[j] * bin_error / kSamplesPerBin;
  }
  return error;
}

// Asymmetric parameters for the window [lo, hi], like ChooseQuantParams.
void AsymmetricGrid(double lo, double hi, QuantRange range, double* scale, double* zero_point) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  *scale = hi > lo ? (hi - lo) / static_cast<double>(range.max - range.min) : 1.0;
  *zero_point = std::clamp(static_cast<double>(range.min) - std::nearbyint(lo / *scale),
                           static_cast<double>(range.min), static_cast<double>(range.max));
}

// Greedy search over windows [begin, end) of an asymmetric histogram: drops one bin at a time
// from whichever side gives the lower objective and returns the best window seen.
template <typename Objective>
std::pair<int64_t, int64_t> GreedyWindow(int64_t bins, int64_t min_bins, Objective objective) {
  int64_t begin = 0;
  int64_t end = bins;
  double best = objective(begin, end);
  std::pair<int64_t, int64_t> best_window{begin, end};
  while (end - begin > min_bins) {
    const double drop_left = objective(begin + 1, end);
    const double drop_right = objective(begin, end - 1);
    if (drop_left <= drop_right) {
      ++begin;
    } else {
      --end;
    }
    const double current = std::min(drop_left, drop_right);
    if (current < best) {
      best = current;
      best_window = {begin, end};
    }
  }
  return best_window;
}

class HistogramObserver : public Observer {
 public:
  explicit HistogramObserver(const CalibrationOptions& options) : Observer(options) {}

 protected:
  bool Symmetric() const { return options().scheme == QuantScheme::kSymmetric; }

  void ObserveChannels(const at::Tensor& values, const std::vector<float>& min,
                       const std::vector<float>& max) override {
    const int64_t channels = values.size(0);
    const int64_t n = values.size(1);
    if (histograms_.empty()) {
      histograms_.resize(channels);
      min_ = min;
      max_ = max;
    }
    for (int64_t c = 0; c < channels; ++c) {
      min_[c] = std::min(min_[c], min[c]);
      max_[c] = std::max(max_[c], max[c]);
      const double lo = Symmetric() ? 0.0 : min[c];
      const double hi = Symmetric() ? std::max(std::abs(min[c]), std::abs(max[c])) : max[c];
      histograms_[c].Add(values.data_ptr<float>() + c * n, n, Symmetric(), lo, hi,
                         options().histogram_bins);
    }
  }

  void ComputeChannelRanges(std::vector<float>* min, std::vector<float>* max) const override {
    min->resize(histograms_.size());
    max->resize(histograms_.size());
    for (size_t c = 0; c < histograms_.size(); ++c) {
      // A constant channel gets its exact value as the range, because a histogram records only
      // which bin the value fell into.
      const std::pair<double, double> range =
          min_[c] == max_[c] ? ConstantRange(min_[c]) : ChannelRange(histograms_[c]);
      (*min)[c] = static_cast<float>(range.first);
      (*max)[c] = static_cast<float>(range.second);
    }
  }

 private:
  std::pair<double, double> ConstantRange(double value) const {
    if (Symmetric()) return {-std::abs(value), std::abs(value)};
    return {value, value};
  }

  std::pair<double, double> ChannelRange(const Histogram& histogram) const {
    if (histogram.hi == histogram.lo) {
      return Symmetric() ? std::make_pair(-histogram.hi, histogram.hi)
                         : std::make_pair(histogram.lo, histogram.hi);
    }
    if (Symmetric()) {
      const double t = SymmetricThreshold(histogram);
      return {-t, t};
    }
    return AsymmetricRange(histogram);
  }

  double SymmetricThreshold(const Histogram& histogram) const {
    const QuantRange range = RangeOf(options().dtype);
    const int64_t zero_point = IsSigned(options().dtype) ? 0 : (range.max + 1) / 2;
    switch (options().method) {
      case CalibrationMethod::kPercentile:
        return internal::PercentileThreshold(histogram.counts, histogram.hi,
                                             options().percentile);
      case CalibrationMethod::kEntropy:
        return internal::EntropyThreshold(histogram.counts, histogram.hi,
                                          static_cast<int>(range.max - zero_point + 1));
      default:
        return internal::MseThreshold(histogram.counts, histogram.hi,
                                      static_cast<int>(range.max - zero_point));
    }
  }

  std::pair<double, double> AsymmetricRange(const Histogram& histogram) const {
    const int64_t bins = static_cast<int64_t>(histogram.counts.size());
    const double width = histogram.BinWidth();
    const QuantRange range = RangeOf(options().dtype);
    std::pair<int64_t, int64_t> window{0, bins};

    if (options().method == CalibrationMethod::kPercentile) {
      double total = 0.0;
      for (double count : histogram.counts) total += count;
      const double fraction = options().percentile / 100.0;
      double cumulative = 0.0;
      int64_t begin = -1;
      int64_t end = bins;
      for (int64_t j = 0; j < bins; ++j) {
        cumulative += histogram.counts[j];
        if (begin < 0 && cumulative > (1.0 - fraction) * total) begin = j;
        if (cumulative >= fraction * total) {
          end = j + 1;
          break;
        }
      }
      window = {std::max<int64_t>(begin, 0), std::max(end, std::max<int64_t>(begin, 0) + 1)};
      if (options().percentile == 100.0) window = {0, bins};
    } else if (options().method == CalibrationMethod::kEntropy) {
      const int levels = static_cast<int>(range.max - range.min + 1);
      std::vector<double> p;
      std::vector<double> q;
      window = GreedyWindow(bins, levels, [&](int64_t begin, int64_t end) {
        return ClippedKlDivergence(histogram.counts, begin, end, levels, &p, &q);
      });
    } else {
      window = GreedyWindow(bins, 1, [&](int64_t begin, int64_t end) {
        double scale = 0.0;
        double zero_point = 0.0;
        AsymmetricGrid(histogram.lo + begin * width, histogram.lo + end * width, range, &scale,
                       &zero_point);
        return GridSquaredError(histogram, scale, zero_point, range.min, range.max);
      });
    }
    return {histogram.lo + window.first * width, histogram.lo + window.second * width};
  }

  std::vector<Histogram> histograms_;
  std::vector<float> min_;  // per channel, over all batches
  std::vector<float> max_;
};

}  // namespace

namespace internal {

double PercentileThreshold(const std::vector<double>& counts, double hi, double percentile) {
  if (percentile >= 100.0) return hi;
  const int64_t bins = static_cast<int64_t>(counts.size());
  double total = 0.0;
  for (double count : counts) total += count;
  const double target = percentile / 100.0 * total;
  double cumulative = 0.0;
  for (int64_t j = 0; j < bins; ++j) {
    cumulative += counts[j];
    if (cumulative >= target) return hi * static_cast<double>(j + 1) / static_cast<double>(bins);
  }
  return hi;
}

double EntropyThreshold(const std::vector<double>& counts, double hi, int levels) {
  const int64_t bins = static_cast<int64_t>(counts.size());
  std::vector<double> p;
  std::vector<double> q;
  int64_t best_end = bins;
  double best = std::numeric_limits<double>::infinity();
  for (int64_t end = std::min<int64_t>(levels, bins); end <= bins; ++end) {
    const double divergence = ClippedKlDivergence(counts, 0, end, levels, &p, &q);
    if (divergence < best) {
      best = divergence;
      best_end = end;
    }
  }
  return hi * static_cast<double>(best_end) / static_cast<double>(bins);
}

double MseThreshold(const std::vector<double>& counts, double hi, int positive_levels) {
  const int64_t bins = static_cast<int64_t>(counts.size());
  Histogram histogram;
  histogram.lo = 0.0;
  histogram.hi = hi;
  histogram.counts = counts;
  int64_t best_end = bins;
  double best = std::numeric_limits<double>::infinity();
  for (int64_t end = 1; end <= bins; ++end) {
    const double t = hi * static_cast<double>(end) / static_cast<double>(bins);
    const double error = GridSquaredError(histogram, t / positive_levels, 0.0,
                                          -positive_levels, positive_levels);
    // Ties go to the wider threshold, which clips nothing more.
    if (error <= best) {
      best = error;
      best_end = end;
    }
  }
  return hi * static_cast<double>(best_end) / static_cast<double>(bins);
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(const CalibrationOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateCalibrationOptions(options));
  std::unique_ptr<Observer> observer;
  if (IsHistogramMethod(options.method)) {
    observer = std::make_unique<HistogramObserver>(options);
  } else {
    observer = std::make_unique<MinMaxObserver>(options);
  }
  return observer;
}

}  // namespace polaris::quantization
