// Conversion between quantization.proto's messages and the option and result structs of
// model_options.h, plus reading text-format configs and writing results as text or JSON. Kept
// apart so that the numeric libraries do not depend on protobuf.
//
//   POLARIS_ASSIGN_OR_RETURN(proto::QuantizationConfig config, ReadQuantizationConfig(path));
//   POLARIS_ASSIGN_OR_RETURN(QuantizationOptions options, OptionsFromConfig(config));
//   ...
//   POLARIS_RETURN_IF_ERROR(WriteQuantizationResult(ResultToProto(result, options), "r.json"));
#ifndef POLARIS_QUANTIZATION_MODEL_PROTO_CONVERSION_H_
#define POLARIS_QUANTIZATION_MODEL_PROTO_CONVERSION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "quantization/model_measurement.h"
#include "quantization/model_options.h"
#include "quantization/quantization.pb.h"

namespace polaris::quantization {

// Returns the options `config` describes; unset fields take QuantizationOptions's defaults, and
// weight_bits defaults to 4 for WEIGHT_ONLY_INT4 and 8 otherwise.
// Errors: kInvalidArgument for enum values the proto does not define, and the errors of
// ValidateQuantizationOptions (bits outside {4, 8}, a percentile outside (0, 100], ...).
absl::StatusOr<QuantizationOptions> OptionsFromConfig(const proto::QuantizationConfig& config);

// Returns the config of `options` with every field set, as results record it.
proto::QuantizationConfig ConfigFromOptions(const QuantizationOptions& options);

// Returns the result message for `result` of quantizing with `options`, without measurements
// or environment (the caller adds those).
proto::QuantizationResult ResultToProto(const QuantizationResult& result,
                                        const QuantizationOptions& options);

// Returns the measurement message of one model; `data_name` describes the evaluation data.
proto::QuantizationModelMeasurement MeasurementToProto(const ModelMeasurement& measurement,
                                                       const std::string& variant,
                                                       const std::string& data_name);

// Parses a text-format QuantizationConfig. `name` (a file name) goes into messages.
// Returns kInvalidArgument with the line, column and parser message of the first error.
absl::StatusOr<proto::QuantizationConfig> ParseQuantizationConfig(const std::string& text,
                                                                  const std::string& name);

// Reads and parses a text-format config file. Errors: those of reading the file and parsing.
absl::StatusOr<proto::QuantizationConfig> ReadQuantizationConfig(const std::string& path);

// Formats `result` as JSON when `path` ends in ".json", otherwise in text format.
absl::StatusOr<std::string> FormatQuantizationResult(const proto::QuantizationResult& result,
                                                     const std::string& path);

// Writes FormatQuantizationResult's output to `path` atomically.
absl::Status WriteQuantizationResult(const proto::QuantizationResult& result,
                                     const std::string& path);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_MODEL_PROTO_CONVERSION_H_
