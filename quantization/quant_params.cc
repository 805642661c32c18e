#include "quantization/quant_params.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "core/torch_status.h"

namespace polaris::quantization {

QuantRange RangeOf(QuantDtype dtype) {
  switch (dtype) {
    case QuantDtype::kInt8:
      return {-128, 127};
    case QuantDtype::kUInt8:
      return {0, 255};
    case QuantDtype::kInt4:
      return {-8, 7};
    case QuantDtype::kUInt4:
      return {0, 15};
  }
  return {0, 0};
}

int BitsOf(QuantDtype dtype) {
  return dtype == QuantDtype::kInt8 || dtype == QuantDtype::kUInt8 ? 8 : 4;
}

bool IsSigned(QuantDtype dtype) {
  return dtype == QuantDtype::kInt8 || dtype == QuantDtype::kInt4;
}

absl::string_view QuantDtypeName(QuantDtype dtype) {
  switch (dtype) {
    case QuantDtype::kInt8:
      return "int8";
    case QuantDtype::kUInt8:
      return "uint8";
    case QuantDtype::kInt4:
      return "int4";
    case QuantDtype::kUInt4:
      return "uint4";
  }
  return "unknown";
}

at::ScalarType StorageTypeOf(QuantDtype dtype) {
  return IsSigned(dtype) ? at::kChar : at::kByte;
}

absl::StatusOr<QuantDtype> QuantDtypeFromBits(int bits, bool is_signed) {
  if (bits == 8) return is_signed ? QuantDtype::kInt8 : QuantDtype::kUInt8;
  if (bits == 4) return is_signed ? QuantDtype::kInt4 : QuantDtype::kUInt4;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported number of bits ", bits, "; use 8 or 4"));
}

namespace {

// Symmetric parameters for the range [-max_abs, max_abs].
void ChooseSymmetric(double max_abs, QuantRange range, bool is_signed, float* scale,
                     int64_t* zero_point) {
  *zero_point = is_signed ? 0 : (range.max + 1) / 2;
  const double positive_levels = static_cast<double>(range.max - *zero_point);
  *scale = max_abs == 0.0 ? 1.0f : static_cast<float>(max_abs / positive_levels);
}

// Asymmetric parameters for [min, max] widened to contain 0.
void ChooseAsymmetric(double min, double max, QuantRange range, float* scale,
                      int64_t* zero_point) {
  min = std::min(min, 0.0);
  max = std::max(max, 0.0);
  if (max - min == 0.0) {
    *scale = 1.0f;
    *zero_point = std::clamp<int64_t>(0, range.min, range.max);
    return;
  }
  *scale = std::max(static_cast<float>((max - min) / static_cast<double>(range.max - range.min)),
                    kMinScale);
  const double zero = static_cast<double>(range.min) - std::nearbyint(min / *scale);
  *zero_point = std::clamp<int64_t>(static_cast<int64_t>(zero), range.min, range.max);
}

absl::Status CheckRangeTensors(const at::Tensor& min, const at::Tensor& max, int64_t axis) {
  if (!min.defined() || !max.defined()) {
    return absl::InvalidArgumentError("min and max must be defined tensors");
  }
  if (!min.is_floating_point() || !max.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat("min and max must be floating point, got ",
                                                   c10::toString(min.scalar_type()), " and ",
                                                   c10::toString(max.scalar_type())));
  }
  if (min.sizes() != max.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("min has shape ", c10::str(min.sizes()),
                                                   " but max has shape ", c10::str(max.sizes()),
                                                   "; pass one range per channel in both"));
  }
  if (axis < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid axis ", axis, "; use -1 per tensor or a dimension index >= 0"));
  }
  if (axis == -1 && min.numel() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("per-tensor quantization (axis -1) needs one min and max value, got ",
                     min.numel(), "; pass an axis >= 0 for per-channel ranges"));
  }
  if (axis >= 0 && (min.dim() != 1 || min.numel() == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("per-channel quantization needs min and max of shape [channels], got ",
                     c10::str(min.sizes())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QuantParams> ChooseQuantParams(const at::Tensor& min, const at::Tensor& max,
                                              QuantDtype dtype, QuantScheme scheme,
                                              int64_t axis) {
  if (absl::Status status = CheckRangeTensors(min, max, axis); !status.ok()) return status;

  return CallTorch("choosing quantization parameters", [&]() -> absl::StatusOr<QuantParams> {
    const at::Tensor min_values = min.to(at::kDouble).contiguous().reshape({-1});
    const at::Tensor max_values = max.to(at::kDouble).contiguous().reshape({-1});
    const int64_t channels = min_values.numel();
    const double* min_data = min_values.data_ptr<double>();
    const double* max_data = max_values.data_ptr<double>();

    QuantParams params;
    params.axis = axis;
    params.dtype = dtype;
    params.scheme = scheme;
    params.scale = at::empty({channels}, at::kFloat);
    params.zero_point = at::empty({channels}, at::kLong);
    float* scale = params.scale.data_ptr<float>();
    int64_t* zero_point = params.zero_point.data_ptr<int64_t>();
    const QuantRange range = RangeOf(dtype);

    for (int64_t c = 0; c < channels; ++c) {
      const double lo = min_data[c];
      const double hi = max_data[c];
      if (!std::isfinite(lo) || !std::isfinite(hi)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "clipping range of channel ", c, " is [", lo, ", ", hi,
            "], which is not finite; remove NaN or Inf from the data it was measured on"));
      }
      if (lo > hi) {
        return absl::InvalidArgumentError(absl::StrCat("clipping range of channel ", c,
                                                       " has min ", lo, " > max ", hi));
      }
      if (scheme == QuantScheme::kSymmetric) {
        ChooseSymmetric(std::max(std::abs(lo), std::abs(hi)), range, IsSigned(dtype),
                        &scale[c], &zero_point[c]);
        scale[c] = std::max(scale[c], kMinScale);
      } else {
        ChooseAsymmetric(lo, hi, range, &scale[c], &zero_point[c]);
      }
    }
    return params;
  });
}

absl::Status ValidateQuantParams(const QuantParams& params, const at::Tensor& x,
                                 absl::string_view what) {
  const at::Tensor& scale = params.scale;
  const at::Tensor& zero_point = params.zero_point;
  if (!scale.defined() || !zero_point.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantization parameters of ", what, " have no scale or zero point"));
  }
  if (scale.scalar_type() != at::kFloat || zero_point.scalar_type() != at::kLong ||
      scale.dim() != 1 || zero_point.sizes() != scale.sizes() || scale.numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization parameters of ", what, " need float32 scale and int64 zero_point of ",
        "one shape [channels]; got ", c10::toString(scale.scalar_type()), " ",
        c10::str(scale.sizes()), " and ", c10::toString(zero_point.scalar_type()), " ",
        c10::str(zero_point.sizes())));
  }
  if (params.axis < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid axis ", params.axis, " in the quantization parameters of ", what));
  }
  if (params.axis == -1 && scale.numel() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("per-tensor quantization parameters of ", what, " have ", scale.numel(),
                     " scales; expected 1 (or set axis to the channel dimension)"));
  }
  if (x.defined() && params.axis >= 0) {
    if (params.axis >= x.dim()) {
      return absl::InvalidArgumentError(absl::StrCat("channel axis ", params.axis, " of ", what,
                                                     " is out of range for a tensor of shape ",
                                                     c10::str(x.sizes())));
    }
    if (x.size(params.axis) != scale.numel()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has ", x.size(params.axis), " channels along axis ", params.axis,
          " but its quantization parameters have ", scale.numel(), " scales"));
    }
  }

  const at::Tensor scale_values = scale.contiguous();
  const at::Tensor zero_values = zero_point.contiguous();
  const float* scale_data = scale_values.data_ptr<float>();
  const int64_t* zero_data = zero_values.data_ptr<int64_t>();
  const QuantRange range = RangeOf(params.dtype);
  for (int64_t c = 0; c < scale.numel(); ++c) {
    if (!std::isfinite(scale_data[c]) || !(scale_data[c] > 0.0f)) {
      return absl::InvalidArgumentError(absl::StrCat("scale ", scale_data[c], " of channel ", c,
                                                     " of ", what,
                                                     " is invalid; scales must be finite and > 0"));
    }
    if (zero_data[c] < range.min || zero_data[c] > range.max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "zero point ", zero_data[c], " of channel ", c, " of ", what, " is outside the ",
          QuantDtypeName(params.dtype), " range [", range.min, ", ", range.max, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace polaris::quantization
