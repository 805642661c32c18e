#include "quantization/model_options.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace polaris::quantization {
namespace {

absl::Status ValidateQatOptions(const QatOptions& qat) {
  if (qat.epochs < 1 && qat.max_steps <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("QAT needs epochs >= 1 or max_steps > 0, got epochs ", qat.epochs));
  }
  if (qat.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("QAT batch size must be at least 1, got ", qat.batch_size));
  }
  if (!(qat.learning_rate > 0) || !std::isfinite(qat.learning_rate)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QAT learning rate must be positive and finite, got ", qat.learning_rate));
  }
  if (!(qat.weight_decay >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("QAT weight decay must not be negative, got ", qat.weight_decay));
  }
  return absl::OkStatus();
}

absl::Status ValidateMixedPrecisionOptions(const MixedPrecisionOptions& mixed) {
  if (mixed.candidates.empty()) {
    return absl::InvalidArgumentError(
        "mixed precision needs at least one candidate precision (fp32, bf16, int8, int4)");
  }
  std::vector<LayerPrecision> sorted = mixed.candidates;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError("mixed-precision candidates list a precision twice");
  }
  if (mixed.budget == BudgetKind::kModelSize && mixed.max_weight_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a model-size budget needs max_weight_bytes > 0, got ", mixed.max_weight_bytes));
  }
  if (mixed.budget == BudgetKind::kLatency &&
      (!(mixed.max_latency_ms > 0) || !std::isfinite(mixed.max_latency_ms))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a latency budget needs max_latency_ms > 0, got ", mixed.max_latency_ms));
  }
  if (mixed.latency_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latency_batch_size must be at least 1, got ", mixed.latency_batch_size));
  }
  if (mixed.hutchinson_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hutchinson_samples must be at least 1, got ", mixed.hutchinson_samples));
  }
  if (mixed.sensitivity_examples < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sensitivity_examples must be at least 1, got ", mixed.sensitivity_examples));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view QuantizationMethodName(QuantizationMethod method) {
  switch (method) {
    case QuantizationMethod::kStatic: return "static int8";
    case QuantizationMethod::kDynamic: return "dynamic int8";
    case QuantizationMethod::kWeightOnlyInt4: return "weight-only int4";
    case QuantizationMethod::kQat: return "quantization-aware training";
    case QuantizationMethod::kMixedPrecision: return "mixed precision";
  }
  return "unknown";
}

absl::string_view LayerPrecisionName(LayerPrecision precision) {
  switch (precision) {
    case LayerPrecision::kFloat32: return "fp32";
    case LayerPrecision::kBFloat16: return "bf16";
    case LayerPrecision::kInt8: return "int8";
    case LayerPrecision::kInt4: return "int4";
  }
  return "unknown";
}

int BitsOf(LayerPrecision precision) {
  switch (precision) {
    case LayerPrecision::kFloat32: return 32;
    case LayerPrecision::kBFloat16: return 16;
    case LayerPrecision::kInt8: return 8;
    case LayerPrecision::kInt4: return 4;
  }
  return 32;
}

int64_t GroupSizeOf(const QuantizationOptions& options, const std::string& layer) {
  const auto it = options.layer_group_sizes.find(layer);
  return it == options.layer_group_sizes.end() ? options.group_size : it->second;
}

absl::Status ValidateQuantizationOptions(const QuantizationOptions& options) {
  if (options.weight_bits != 4 && options.weight_bits != 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight bits must be 4 or 8, got ", options.weight_bits,
        " (fp32 and bf16 layers are chosen through mixed-precision candidates)"));
  }
  const bool int4_method = options.method == QuantizationMethod::kWeightOnlyInt4;
  if (options.method != QuantizationMethod::kMixedPrecision &&
      (options.weight_bits == 4) != int4_method) {
    return absl::InvalidArgumentError(absl::StrCat(
        QuantizationMethodName(options.method), " quantization needs weight_bits ",
        int4_method ? 4 : 8, ", got ", options.weight_bits));
  }
  if (options.group_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("group size must be at least 1, got ", options.group_size));
  }
  for (const auto& [layer, group_size] : options.layer_group_sizes) {
    if (group_size < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the group size of layer '", layer, "' must be at least 1, got ", group_size));
    }
  }
  CalibrationOptions calibration = options.activation_calibration;
  calibration.dtype = QuantDtype::kUInt8;
  calibration.scheme = options.activation_scheme;
  calibration.axis = -1;
  POLARIS_RETURN_IF_ERROR(Annotate(ValidateCalibrationOptions(calibration),
                                   "activation calibration options"));
  if (options.calibration_examples < 1 || options.calibration_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration_examples and calibration_batch_size must be at least 1, got ",
        options.calibration_examples, " and ", options.calibration_batch_size));
  }
  if (options.method == QuantizationMethod::kQat) {
    POLARIS_RETURN_IF_ERROR(ValidateQatOptions(options.qat));
  }
  if (options.method == QuantizationMethod::kMixedPrecision) {
    POLARIS_RETURN_IF_ERROR(ValidateMixedPrecisionOptions(options.mixed_precision));
  }
  return absl::OkStatus();
}

}  // namespace polaris::quantization
