#include "quantization/model_proto_conversion.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/proto_conversion.h"
#include "core/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace polaris::quantization {
namespace {

using Config = proto::QuantizationConfig;

absl::Status UnknownEnum(absl::string_view field, int value) {
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", field, " value ", value, " in the quantization config"));
}

absl::StatusOr<LayerPrecision> PrecisionFromProto(Config::Precision precision) {
  switch (precision) {
    case Config::FP32: return LayerPrecision::kFloat32;
    case Config::BF16: return LayerPrecision::kBFloat16;
    case Config::INT8: return LayerPrecision::kInt8;
    case Config::INT4: return LayerPrecision::kInt4;
    default: break;
  }
  return UnknownEnum("mixed_precision.candidates", precision);
}

Config::Precision PrecisionToProto(LayerPrecision precision) {
  switch (precision) {
    case LayerPrecision::kFloat32: return Config::FP32;
    case LayerPrecision::kBFloat16: return Config::BF16;
    case LayerPrecision::kInt8: return Config::INT8;
    case LayerPrecision::kInt4: return Config::INT4;
  }
  return Config::PRECISION_UNSPECIFIED;
}

absl::StatusOr<CalibrationMethod> CalibrationMethodFromProto(Config::Calibration::Method method) {
  switch (method) {
    case Config::Calibration::METHOD_UNSPECIFIED:
    case Config::Calibration::MSE: return CalibrationMethod::kMse;
    case Config::Calibration::MIN_MAX: return CalibrationMethod::kMinMax;
    case Config::Calibration::MOVING_AVERAGE_MIN_MAX:
      return CalibrationMethod::kMovingAverageMinMax;
    case Config::Calibration::PERCENTILE: return CalibrationMethod::kPercentile;
    case Config::Calibration::ENTROPY: return CalibrationMethod::kEntropy;
    default: break;
  }
  return UnknownEnum("activation_calibration.method", method);
}

Config::Calibration::Method CalibrationMethodToProto(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax: return Config::Calibration::MIN_MAX;
    case CalibrationMethod::kMovingAverageMinMax: return Config::Calibration::MOVING_AVERAGE_MIN_MAX;
    case CalibrationMethod::kPercentile: return Config::Calibration::PERCENTILE;
    case CalibrationMethod::kEntropy: return Config::Calibration::ENTROPY;
    case CalibrationMethod::kMse: return Config::Calibration::MSE;
  }
  return Config::Calibration::METHOD_UNSPECIFIED;
}

absl::StatusOr<QuantizationMethod> MethodFromProto(Config::Method method) {
  switch (method) {
    case Config::METHOD_UNSPECIFIED:
    case Config::STATIC: return QuantizationMethod::kStatic;
    case Config::DYNAMIC: return QuantizationMethod::kDynamic;
    case Config::WEIGHT_ONLY_INT4: return QuantizationMethod::kWeightOnlyInt4;
    case Config::QAT: return QuantizationMethod::kQat;
    case Config::MIXED_PRECISION: return QuantizationMethod::kMixedPrecision;
    default: break;
  }
  return UnknownEnum("method", method);
}

Config::Method MethodToProto(QuantizationMethod method) {
  switch (method) {
    case QuantizationMethod::kStatic: return Config::STATIC;
    case QuantizationMethod::kDynamic: return Config::DYNAMIC;
    case QuantizationMethod::kWeightOnlyInt4: return Config::WEIGHT_ONLY_INT4;
    case QuantizationMethod::kQat: return Config::QAT;
    case QuantizationMethod::kMixedPrecision: return Config::MIXED_PRECISION;
  }
  return Config::METHOD_UNSPECIFIED;
}

absl::StatusOr<SensitivityMetric> MetricFromProto(Config::MixedPrecision::Metric metric) {
  switch (metric) {
    case Config::MixedPrecision::METRIC_UNSPECIFIED:
    case Config::MixedPrecision::OUTPUT_SQNR: return SensitivityMetric::kOutputSqnr;
    case Config::MixedPrecision::HESSIAN_TRACE: return SensitivityMetric::kHessianTrace;
    case Config::MixedPrecision::FISHER: return SensitivityMetric::kFisher;
    default: break;
  }
  return UnknownEnum("mixed_precision.metric", metric);
}

Config::MixedPrecision::Metric MetricToProto(SensitivityMetric metric) {
  switch (metric) {
    case SensitivityMetric::kOutputSqnr: return Config::MixedPrecision::OUTPUT_SQNR;
    case SensitivityMetric::kHessianTrace: return Config::MixedPrecision::HESSIAN_TRACE;
    case SensitivityMetric::kFisher: return Config::MixedPrecision::FISHER;
  }
  return Config::MixedPrecision::METRIC_UNSPECIFIED;
}

absl::Status ReadQat(const Config::Qat& config, QatOptions& qat) {
  if (config.has_epochs()) qat.epochs = config.epochs();
  if (config.has_max_steps()) qat.max_steps = config.max_steps();
  if (config.has_batch_size()) qat.batch_size = config.batch_size();
  if (config.has_learning_rate()) qat.learning_rate = config.learning_rate();
  if (config.has_weight_decay()) qat.weight_decay = config.weight_decay();
  qat.learnable_scales = config.learnable_scales();
  if (config.has_seed()) qat.seed = config.seed();
  return absl::OkStatus();
}

absl::Status ReadMixedPrecision(const Config::MixedPrecision& config,
                                MixedPrecisionOptions& mixed) {
  if (config.candidates_size() > 0) {
    mixed.candidates.clear();
    for (int candidate : config.candidates()) {
      POLARIS_ASSIGN_OR_RETURN(LayerPrecision precision,
                               PrecisionFromProto(static_cast<Config::Precision>(candidate)));
      mixed.candidates.push_back(precision);
    }
  }
  POLARIS_ASSIGN_OR_RETURN(mixed.metric, MetricFromProto(config.metric()));
  if (config.budget_case() == Config::MixedPrecision::kMaxLatencyMs) {
    mixed.budget = BudgetKind::kLatency;
    mixed.max_latency_ms = config.max_latency_ms();
  } else {
    mixed.budget = BudgetKind::kModelSize;
    mixed.max_weight_bytes = config.max_weight_bytes();
  }
  if (config.has_latency_batch_size()) mixed.latency_batch_size = config.latency_batch_size();
  if (config.has_hutchinson_samples()) mixed.hutchinson_samples = config.hutchinson_samples();
  if (config.has_sensitivity_examples()) {
    mixed.sensitivity_examples = config.sensitivity_examples();
  }
  if (config.has_seed()) mixed.seed = config.seed();
  return absl::OkStatus();
}

// Collects the first error of the text-format parser.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!error_.empty()) return;
    // The parser counts from 0; editors count from 1.
    error_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

}  // namespace

absl::StatusOr<QuantizationOptions> OptionsFromConfig(const Config& config) {
  QuantizationOptions options;
  POLARIS_ASSIGN_OR_RETURN(options.method, MethodFromProto(config.method()));
  switch (config.weight_granularity()) {
    case Config::GRANULARITY_UNSPECIFIED:
    case Config::PER_CHANNEL: options.weight_granularity = Granularity::kPerChannel; break;
    case Config::PER_TENSOR: options.weight_granularity = Granularity::kPerTensor; break;
    default: return UnknownEnum("weight_granularity", config.weight_granularity());
  }
  options.weight_bits = config.has_weight_bits()
                            ? config.weight_bits()
                            : (options.method == QuantizationMethod::kWeightOnlyInt4 ? 4 : 8);
  if (config.has_group_size()) options.group_size = config.group_size();
  for (const auto& [layer, group_size] : config.layer_group_sizes()) {
    options.layer_group_sizes[layer] = group_size;
  }
  switch (config.activation_scheme()) {
    case Config::SCHEME_UNSPECIFIED:
    case Config::ASYMMETRIC: options.activation_scheme = QuantScheme::kAsymmetric; break;
    case Config::SYMMETRIC: options.activation_scheme = QuantScheme::kSymmetric; break;
    default: return UnknownEnum("activation_scheme", config.activation_scheme());
  }
  const Config::Calibration& calibration = config.activation_calibration();
  POLARIS_ASSIGN_OR_RETURN(options.activation_calibration.method,
                           CalibrationMethodFromProto(calibration.method()));
  if (calibration.has_percentile()) {
    options.activation_calibration.percentile = calibration.percentile();
  }
  if (calibration.has_averaging_constant()) {
    options.activation_calibration.averaging_constant = calibration.averaging_constant();
  }
  if (calibration.has_histogram_bins()) {
    options.activation_calibration.histogram_bins = calibration.histogram_bins();
  }
  if (config.has_calibration_examples()) {
    options.calibration_examples = config.calibration_examples();
  }
  if (config.has_calibration_batch_size()) {
    options.calibration_batch_size = config.calibration_batch_size();
  }
  options.skip_layers.assign(config.skip_layers().begin(), config.skip_layers().end());
  if (config.has_use_polaris_ops()) options.use_polaris_ops = config.use_polaris_ops();
  if (config.has_bias_correction()) options.bias_correction = config.bias_correction();
  POLARIS_RETURN_IF_ERROR(ReadQat(config.qat(), options.qat));
  POLARIS_RETURN_IF_ERROR(ReadMixedPrecision(config.mixed_precision(), options.mixed_precision));
  POLARIS_RETURN_IF_ERROR(ValidateQuantizationOptions(options));
  return options;
}

Config ConfigFromOptions(const QuantizationOptions& options) {
  Config config;
  config.set_method(MethodToProto(options.method));
  config.set_weight_granularity(options.weight_granularity == Granularity::kPerChannel
                                    ? Config::PER_CHANNEL
                                    : Config::PER_TENSOR);
  config.set_weight_bits(options.weight_bits);
  config.set_group_size(options.group_size);
  for (const auto& [layer, group_size] : options.layer_group_sizes) {
    (*config.mutable_layer_group_sizes())[layer] = group_size;
  }
  config.set_activation_scheme(options.activation_scheme == QuantScheme::kSymmetric
                                   ? Config::SYMMETRIC
                                   : Config::ASYMMETRIC);
  Config::Calibration* calibration = config.mutable_activation_calibration();
  calibration->set_method(CalibrationMethodToProto(options.activation_calibration.method));
  calibration->set_percentile(options.activation_calibration.percentile);
  calibration->set_averaging_constant(options.activation_calibration.averaging_constant);
  calibration->set_histogram_bins(options.activation_calibration.histogram_bins);
  config.set_calibration_examples(options.calibration_examples);
  config.set_calibration_batch_size(options.calibration_batch_size);
  for (const std::string& layer : options.skip_layers) config.add_skip_layers(layer);
  config.set_use_polaris_ops(options.use_polaris_ops);
  config.set_bias_correction(options.bias_correction);

  Config::Qat* qat = config.mutable_qat();
  qat->set_epochs(options.qat.epochs);
  qat->set_max_steps(options.qat.max_steps);
  qat->set_batch_size(options.qat.batch_size);
  qat->set_learning_rate(options.qat.learning_rate);
  qat->set_weight_decay(options.qat.weight_decay);
  qat->set_learnable_scales(options.qat.learnable_scales);
  qat->set_seed(options.qat.seed);

  const MixedPrecisionOptions& mixed = options.mixed_precision;
  Config::MixedPrecision* mixed_config = config.mutable_mixed_precision();
  for (LayerPrecision precision : mixed.candidates) {
    mixed_config->add_candidates(PrecisionToProto(precision));
  }
  mixed_config->set_metric(MetricToProto(mixed.metric));
  if (mixed.budget == BudgetKind::kLatency) {
    mixed_config->set_max_latency_ms(mixed.max_latency_ms);
  } else {
    mixed_config->set_max_weight_bytes(mixed.max_weight_bytes);
  }
  mixed_config->set_latency_batch_size(mixed.latency_batch_size);
  mixed_config->set_hutchinson_samples(mixed.hutchinson_samples);
  mixed_config->set_sensitivity_examples(mixed.sensitivity_examples);
  mixed_config->set_seed(mixed.seed);
  return config;
}

proto::QuantizationResult ResultToProto(const QuantizationResult& result,
                                        const QuantizationOptions& options) {
  proto::QuantizationResult message;
  *message.mutable_config() = ConfigFromOptions(options);
  for (const LayerReport& layer : result.layers) {
    proto::QuantizationLayerResult* entry = message.add_layers();
    entry->set_name(layer.name);
    entry->set_type(layer.type);
    entry->set_precision(PrecisionToProto(layer.precision));
    entry->set_bits(BitsOf(layer.precision));
    entry->set_op(layer.op);
    entry->set_reason(layer.reason);
    proto::QuantizationScaleSummary* scales = entry->mutable_weight_scales();
    scales->set_min(layer.weight_scales.min);
    scales->set_max(layer.weight_scales.max);
    scales->set_mean(layer.weight_scales.mean);
    scales->set_count(layer.weight_scales.count);
    entry->set_output_scale(layer.output_scale);
    entry->set_output_zero_point(layer.output_zero_point);
    entry->set_weight_sqnr_db(layer.weight_sqnr_db);
    entry->set_output_sqnr_db(layer.output_sqnr_db);
    entry->set_bytes_before(layer.bytes_before);
    entry->set_bytes_after(layer.bytes_after);
  }
  for (const SkippedLayer& layer : result.skipped) {
    proto::QuantizationSkippedLayer* entry = message.add_skipped();
    entry->set_name(layer.name);
    entry->set_type(layer.type);
    entry->set_reason(layer.reason);
  }
  for (const FoldedBatchNorm& folded : result.folded_batchnorm) {
    proto::QuantizationFoldedBatchNorm* entry = message.add_batchnorm();
    entry->set_batch_norm(folded.batch_norm);
    entry->set_layer(folded.layer);
  }
  for (const UnfoldedBatchNorm& unfolded : result.unfolded_batchnorm) {
    proto::QuantizationFoldedBatchNorm* entry = message.add_batchnorm();
    entry->set_batch_norm(unfolded.batch_norm);
    entry->set_reason(unfolded.reason);
  }
  message.set_output_sqnr_db(result.output_sqnr_db);
  message.set_weight_bytes_before(result.weight_bytes_before);
  message.set_weight_bytes_after(result.weight_bytes_after);

  if (result.method == QuantizationMethod::kMixedPrecision) {
    const MixedPrecisionReport& report = result.mixed_precision;
    proto::QuantizationMixedPrecisionResult* mixed = message.mutable_mixed_precision();
    mixed->set_metric(MetricToProto(report.metric));
    mixed->set_budget(report.budget == BudgetKind::kModelSize ? "model size (bytes)"
                                                               : "latency (ms)");
    mixed->set_budget_value(report.budget_value);
    for (const MixedPrecisionLayer& layer : report.layers) {
      proto::QuantizationMixedPrecisionLayer* entry = mixed->add_layers();
      entry->set_name(layer.name);
      for (LayerPrecision precision : layer.candidates) {
        entry->add_candidates(PrecisionToProto(precision));
      }
      for (double sensitivity : layer.sensitivity) entry->add_sensitivity(sensitivity);
      for (int64_t bytes : layer.bytes) entry->add_bytes(bytes);
      for (double latency : layer.latency_ms) entry->add_latency_ms(latency);
      entry->set_chosen(PrecisionToProto(layer.chosen));
      entry->set_reason(layer.reason);
    }
    mixed->set_total_sensitivity(report.total_sensitivity);
    mixed->set_total_bytes(report.total_bytes);
    mixed->set_total_latency_ms(report.total_latency_ms);
    mixed->set_calibration_accuracy(report.calibration_accuracy);
    mixed->set_float_calibration_accuracy(report.float_calibration_accuracy);
  }
  if (result.method == QuantizationMethod::kQat) {
    proto::QuantizationQatResult* qat = message.mutable_qat();
    qat->set_steps(result.qat.steps);
    qat->set_seconds(result.qat.seconds);
    qat->set_last_epoch_loss(result.qat.last_epoch_loss);
    qat->set_last_epoch_accuracy(result.qat.last_epoch_accuracy);
  }
  return message;
}

proto::QuantizationModelMeasurement MeasurementToProto(const ModelMeasurement& measurement,
                                                       const std::string& variant,
                                                       const std::string& data_name) {
  proto::QuantizationModelMeasurement message;
  message.set_variant(variant);
  *message.mutable_accuracy() = ToAccuracyProto(measurement.evaluation, data_name);
  *message.mutable_size() = ToModelSizeProto(measurement.size, measurement.parameters);
  for (size_t i = 0; i < measurement.batch_sizes.size(); ++i) {
    *message.add_latency() =
        ToLatencyProto(measurement.latencies[i], measurement.batch_sizes[i]);
  }
  return message;
}

absl::StatusOr<Config> ParseQuantizationConfig(const std::string& text, const std::string& name) {
  Config config;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid quantization config '", name, "': ", errors.error(),
        " (the file must be a text-format polaris.proto.QuantizationConfig, see "
        "quantization/quantization.proto)"));
  }
  return config;
}

absl::StatusOr<Config> ReadQuantizationConfig(const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  return ParseQuantizationConfig(text, path);
}

absl::StatusOr<std::string> FormatQuantizationResult(const proto::QuantizationResult& result,
                                                     const std::string& path) {
  std::string text;
  if (absl::EndsWith(path, ".json")) {
    google::protobuf::util::JsonPrintOptions json;
    json.add_whitespace = true;
    json.always_print_primitive_fields = true;
    json.preserve_proto_field_names = true;
    const auto status = google::protobuf::util::MessageToJsonString(result, &text, json);
    if (!status.ok()) {
      return absl::InternalError(
          absl::StrCat("formatting the result as JSON failed: ", status.ToString()));
    }
    return text;
  }
  if (!google::protobuf::TextFormat::PrintToString(result, &text)) {
    return absl::InternalError("formatting the result in text format failed");
  }
  return text;
}

absl::Status WriteQuantizationResult(const proto::QuantizationResult& result,
                                     const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(const std::string text, FormatQuantizationResult(result, path));
  return WriteFileAtomically(path, text);
}

}  // namespace polaris::quantization
