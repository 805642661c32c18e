#include "pipeline/adapters/quantization_stage.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "quantization/model_proto_conversion.h"
#include "quantization/model_quantization.h"

namespace polaris::pipeline {
namespace {

using quantization::LayerPrecision;
using quantization::QuantizationMethod;
using quantization::QuantizationOptions;
using quantization::QuantizationResult;

std::string Describe(const QuantizationOptions& options) {
  std::string text(quantization::QuantizationMethodName(options.method));
  switch (options.method) {
    case QuantizationMethod::kStatic:
      absl::StrAppend(&text, ", ",
                      quantization::CalibrationMethodName(options.activation_calibration.method),
                      " calibration");
      break;
    case QuantizationMethod::kQat:
      text = absl::StrFormat("static int8 after %d epoch(s) of quantization-aware training",
                             options.qat.epochs);
      break;
    case QuantizationMethod::kMixedPrecision:
      if (options.mixed_precision.budget == quantization::BudgetKind::kModelSize) {
        absl::StrAppend(&text, absl::StrFormat(" under %d weight bytes",
                                               options.mixed_precision.max_weight_bytes));
      } else {
        absl::StrAppend(&text, absl::StrFormat(" under %.2f ms of layer latency",
                                               options.mixed_precision.max_latency_ms));
      }
      break;
    default:
      break;
  }
  if (!options.skip_layers.empty()) {
    absl::StrAppend(&text, ", ", options.skip_layers.size(), " layer(s) kept float");
  }
  return text;
}

bool MayUseInt4(const QuantizationOptions& options) {
  if (options.method == QuantizationMethod::kWeightOnlyInt4) return true;
  if (options.method != QuantizationMethod::kMixedPrecision) return false;
  for (LayerPrecision precision : options.mixed_precision.candidates) {
    if (precision == LayerPrecision::kInt4) return true;
  }
  return false;
}

// INT4 groups must divide a Linear layer's input size, and pruning leaves sizes such as 1568
// that the default 128 does not divide. Each such layer without a group size of its own gets
// the largest even divisor of its input size up to options.group_size, when one of at least 16
// exists (1568 gets 112), so it can still take INT4.
void ChooseInt4GroupSizes(const torch::jit::Module& model, QuantizationOptions& options) {
  for (const torch::jit::NameModule& named : model.named_modules()) {
    if (!named.value.hasattr("weight")) continue;
    const c10::IValue weight = named.value.attr("weight");
    if (!weight.isTensor() || weight.toTensor().dim() != 2) continue;
    const int64_t inputs = weight.toTensor().size(1);
    if (inputs % options.group_size == 0 || options.layer_group_sizes.count(named.name) > 0) {
      continue;
    }
    for (int64_t group = std::min(options.group_size, inputs); group >= 16; --group) {
      if (group % 2 == 0 && inputs % group == 0) {
        options.layer_group_sizes[named.name] = group;
        break;
      }
    }
  }
}

class QuantizationStage : public Stage {
 public:
  QuantizationStage(std::vector<QuantizationOptions> settings, double max_weight_fraction)
      : settings_(std::move(settings)), max_weight_fraction_(max_weight_fraction) {}

  std::string kind() const override { return "quantization"; }
  int num_settings() const override { return static_cast<int>(settings_.size()); }
  std::string DescribeSetting(int setting) const override {
    const QuantizationOptions& options = settings_[setting];
    if (max_weight_fraction_ > 0 && options.method == QuantizationMethod::kMixedPrecision &&
        options.mixed_precision.budget == quantization::BudgetKind::kModelSize) {
      return absl::StrFormat("mixed precision under %.0f%% of the float32 weight bytes",
                             100 * max_weight_fraction_);
    }
    return Describe(options);
  }
  // Only when every setting is QAT: a QAT setting without training data fails on its own, and
  // the guard then moves on to the next setting.
  bool needs_training_data() const override {
    for (const QuantizationOptions& options : settings_) {
      if (options.method != QuantizationMethod::kQat) return false;
    }
    return true;
  }
  // QAT trains a copy through fake quantization, but the stage's input model is only read.
  bool trains_model() const override { return false; }

  absl::StatusOr<StageOutput> Run(const torch::jit::Module& model, int setting,
                                  const StageContext& context) override {
    QuantizationOptions options = settings_[setting];
    options.show_progress = context.show_progress;
    options.qat.seed = context.seed;
    options.mixed_precision.seed = context.seed;
    if (max_weight_fraction_ > 0 && options.method == QuantizationMethod::kMixedPrecision &&
        options.mixed_precision.budget == quantization::BudgetKind::kModelSize) {
      int64_t float_bytes = 0;
      for (const at::Tensor& parameter : model.parameters()) {
        float_bytes += parameter.numel() * 4;
      }
      options.mixed_precision.max_weight_bytes =
          static_cast<int64_t>(max_weight_fraction_ * static_cast<double>(float_bytes));
    }
    if (MayUseInt4(options)) ChooseInt4GroupSizes(model, options);
    const LabeledData* data = &context.data->calibration;
    if (options.method == QuantizationMethod::kQat) {
      if (!context.data->train.has_value()) {
        return absl::FailedPreconditionError(
            "QAT needs training data, and the data source has none; use STATIC instead");
      }
      data = &*context.data->train;
    }
    POLARIS_ASSIGN_OR_RETURN(QuantizationResult result,
                             quantization::QuantizeModel(model, options, *data));
    int int8 = 0, int4 = 0, other = 0;
    for (const quantization::LayerReport& layer : result.layers) {
      if (layer.precision == LayerPrecision::kInt8) {
        ++int8;
      } else if (layer.precision == LayerPrecision::kInt4) {
        ++int4;
      } else {
        ++other;
      }
    }
    std::string summary = absl::StrFormat("%d int8", int8);
    if (int4 > 0) absl::StrAppend(&summary, absl::StrFormat(", %d int4", int4));
    if (other > 0) absl::StrAppend(&summary, absl::StrFormat(", %d fp32/bf16", other));
    absl::StrAppend(&summary,
                    absl::StrFormat(" layers, %d left float; weights %d -> %d bytes; output "
                                    "SQNR %.1f dB",
                                    result.skipped.size(), result.weight_bytes_before,
                                    result.weight_bytes_after, result.output_sqnr_db));
    return StageOutput{result.model, summary, /*trainable=*/false};
  }

 private:
  std::vector<QuantizationOptions> settings_;
  // 0 when unset.
  double max_weight_fraction_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Stage>> MakeQuantizationStage(
    const proto::QuantizationStage& config) {
  double max_weight_fraction = 0;
  if (config.has_max_weight_fraction()) {
    max_weight_fraction = config.max_weight_fraction();
    if (!(max_weight_fraction > 0 && max_weight_fraction <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_weight_fraction must lie in (0, 1], got ", max_weight_fraction,
          "; 0.25 keeps a quarter of the float32 weight bytes"));
    }
  }
  std::vector<QuantizationOptions> settings;
  std::vector<const proto::QuantizationConfig*> configs = {&config.quantization()};
  for (const proto::QuantizationConfig& fallback : config.fallbacks()) {
    configs.push_back(&fallback);
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    proto::QuantizationConfig effective = *configs[i];
    if (max_weight_fraction > 0 && effective.method() == proto::QuantizationConfig::MIXED_PRECISION &&
        effective.mixed_precision().budget_case() ==
            proto::QuantizationConfig::MixedPrecision::BUDGET_NOT_SET) {
      // A placeholder that passes validation; Run replaces it with the fraction of the input
      // model's bytes.
      effective.mutable_mixed_precision()->set_max_weight_bytes(1);
    }
    absl::StatusOr<QuantizationOptions> options = quantization::OptionsFromConfig(effective);
    if (!options.ok()) {
      return Annotate(options.status(),
                      i == 0 ? std::string("quantization")
                             : absl::StrCat("fallbacks[", i - 1, "]"));
    }
    settings.push_back(*std::move(options));
  }
  return std::unique_ptr<Stage>(new QuantizationStage(std::move(settings), max_weight_fraction));
}

}  // namespace polaris::pipeline
