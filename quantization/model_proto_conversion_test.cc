#include "quantization/model_proto_conversion.h"

#include <dirent.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/file_util.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace polaris::quantization {
namespace {

constexpr char kConfigDir[] = "quantization/configs";

std::vector<std::string> ConfigFiles() {
  std::vector<std::string> files;
  DIR* dir = opendir(kConfigDir);
  EXPECT_NE(dir, nullptr) << "cannot open " << kConfigDir;
  if (dir == nullptr) return files;
  while (const dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (absl::EndsWith(name, ".textproto")) files.push_back(name);
  }
  closedir(dir);
  return files;
}

TEST(OptionsFromConfig, ExampleConfigsAreValid) {
  const std::vector<std::string> files = ConfigFiles();
  EXPECT_GE(files.size(), 8u);
  for (const std::string& file : files) {
    absl::StatusOr<proto::QuantizationConfig> config =
        ReadQuantizationConfig(std::string(kConfigDir) + "/" + file);
    ASSERT_TRUE(config.ok()) << file << ": " << config.status();
    absl::StatusOr<QuantizationOptions> options = OptionsFromConfig(*config);
    ASSERT_TRUE(options.ok()) << file << ": " << options.status();

    // Each file is named after its method.
    const QuantizationMethod method = options->method;
    if (absl::StartsWith(file, "static")) EXPECT_EQ(method, QuantizationMethod::kStatic) << file;
    if (absl::StartsWith(file, "dynamic")) EXPECT_EQ(method, QuantizationMethod::kDynamic) << file;
    if (absl::StartsWith(file, "int4")) {
      EXPECT_EQ(method, QuantizationMethod::kWeightOnlyInt4) << file;
      EXPECT_EQ(options->weight_bits, 4) << file;
    }
    if (absl::StartsWith(file, "qat")) EXPECT_EQ(method, QuantizationMethod::kQat) << file;
    if (absl::StartsWith(file, "mixed")) {
      EXPECT_EQ(method, QuantizationMethod::kMixedPrecision) << file;
    }
  }
}

TEST(OptionsFromConfig, EmptyConfigGivesTheDefaults) {
  absl::StatusOr<QuantizationOptions> options = OptionsFromConfig(proto::QuantizationConfig());
  ASSERT_TRUE(options.ok()) << options.status();
  const QuantizationOptions defaults;
  EXPECT_EQ(options->method, QuantizationMethod::kStatic);
  EXPECT_EQ(options->weight_bits, 8);
  EXPECT_EQ(options->weight_granularity, Granularity::kPerChannel);
  EXPECT_EQ(options->activation_calibration.method, CalibrationMethod::kMse);
  EXPECT_EQ(options->activation_calibration.percentile, defaults.activation_calibration.percentile);
  EXPECT_EQ(options->calibration_examples, defaults.calibration_examples);
  EXPECT_TRUE(options->use_polaris_ops);
  EXPECT_TRUE(options->bias_correction);
  EXPECT_EQ(options->group_size, defaults.group_size);
  EXPECT_EQ(options->mixed_precision.candidates.size(), 4u);
}

TEST(ConfigFromOptions, RoundTripsEveryField) {
  absl::StatusOr<proto::QuantizationConfig> config = ParseQuantizationConfig(R"(
    method: MIXED_PRECISION
    weight_granularity: PER_TENSOR
    group_size: 32
    activation_scheme: SYMMETRIC
    activation_calibration { method: PERCENTILE percentile: 99.9 histogram_bins: 1024 }
    calibration_examples: 300
    calibration_batch_size: 50
    skip_layers: "fc"
    use_polaris_ops: false
    bias_correction: false
    qat { epochs: 3 learning_rate: 0.001 learnable_scales: true }
    mixed_precision { candidates: [FP32, INT8] metric: FISHER max_latency_ms: 2.5
                      latency_batch_size: 8 hutchinson_samples: 3 sensitivity_examples: 64 }
  )", "inline");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<QuantizationOptions> options = OptionsFromConfig(*config);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->weight_granularity, Granularity::kPerTensor);
  EXPECT_EQ(options->activation_scheme, QuantScheme::kSymmetric);
  EXPECT_EQ(options->activation_calibration.percentile, 99.9);
  EXPECT_EQ(options->skip_layers, std::vector<std::string>{"fc"});
  EXPECT_FALSE(options->use_polaris_ops);
  EXPECT_FALSE(options->bias_correction);
  EXPECT_TRUE(options->qat.learnable_scales);
  EXPECT_EQ(options->mixed_precision.budget, BudgetKind::kLatency);
  EXPECT_EQ(options->mixed_precision.max_latency_ms, 2.5);
  EXPECT_EQ(options->mixed_precision.metric, SensitivityMetric::kFisher);

  const proto::QuantizationConfig effective = ConfigFromOptions(*options);
  absl::StatusOr<QuantizationOptions> again = OptionsFromConfig(effective);
  ASSERT_TRUE(again.ok()) << again.status();
  const proto::QuantizationConfig effective_again = ConfigFromOptions(*again);
  EXPECT_EQ(effective.SerializeAsString(), effective_again.SerializeAsString())
      << effective.DebugString() << "\nversus\n"
      << effective_again.DebugString();
}

TEST(OptionsFromConfig, RejectsInvalidValues) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"weight_bits: 3", "got 3"},
      {"method: WEIGHT_ONLY_INT4 weight_bits: 8", "weight_bits 4"},
      {"activation_calibration { method: PERCENTILE percentile: 0 }", "percentile"},
      {"activation_calibration { method: PERCENTILE percentile: 100.5 }", "percentile"},
      {"group_size: 0", "group size"},
      {"method: 9", "unknown method value 9"},
      {"method: MIXED_PRECISION", "max_weight_bytes"},
      {"method: QAT qat { learning_rate: 0 }", "learning rate"},
  };
  for (const Case& test_case : cases) {
    absl::StatusOr<proto::QuantizationConfig> config =
        ParseQuantizationConfig(test_case.text, "inline");
    ASSERT_TRUE(config.ok()) << test_case.text << ": " << config.status();
    const absl::Status status = OptionsFromConfig(*config).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << test_case.text;
    EXPECT_NE(status.message().find(test_case.expected), absl::string_view::npos)
        << test_case.text << ": " << status;
  }
}

TEST(ParseQuantizationConfig, ReportsLineAndColumn) {
  const absl::Status status =
      ParseQuantizationConfig("method: STATIC\nweight_bitz: 8\n", "my.textproto").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("my.textproto"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("line 2"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("weight_bitz"), absl::string_view::npos) << status;

  EXPECT_EQ(ReadQuantizationConfig("/nonexistent/config.textproto").status().code(),
            absl::StatusCode::kNotFound);
}

QuantizationResult SampleResult() {
  QuantizationResult result;
  result.method = QuantizationMethod::kMixedPrecision;
  LayerReport layer;
  layer.name = "layer1.conv1";
  layer.type = "Conv2d";
  layer.precision = LayerPrecision::kInt8;
  layer.op = "quantized::conv2d_relu";
  layer.weight_scales = {0.001, 0.01, 0.005, 32};
  layer.output_sqnr_db = 31.5;
  layer.bytes_before = 37000;
  layer.bytes_after = 9900;
  result.layers.push_back(layer);
  result.skipped.push_back({"norm", "aten::layer_norm", "no int8 conversion"});
  result.folded_batchnorm.push_back({"layer1.bn1", "layer1.conv1"});
  MixedPrecisionLayer mixed;
  mixed.name = "layer1.conv1";
  mixed.candidates = {LayerPrecision::kFloat32, LayerPrecision::kInt8};
  mixed.sensitivity = {0, 0.002};
  mixed.bytes = {37000, 9900};
  mixed.latency_ms = {0, 0};
  mixed.chosen = LayerPrecision::kInt8;
  result.mixed_precision.layers.push_back(mixed);
  return result;
}

TEST(ResultToProto, KeepsLayersSkippedLayersAndBits) {
  QuantizationOptions options;
  options.method = QuantizationMethod::kMixedPrecision;
  options.mixed_precision.max_weight_bytes = 100000;
  const proto::QuantizationResult message = ResultToProto(SampleResult(), options);
  ASSERT_EQ(message.layers_size(), 1);
  EXPECT_EQ(message.layers(0).bits(), 8);
  EXPECT_EQ(message.layers(0).weight_scales().count(), 32);
  EXPECT_EQ(message.skipped(0).name(), "norm");
  EXPECT_EQ(message.batchnorm(0).layer(), "layer1.conv1");
  EXPECT_EQ(message.mixed_precision().layers(0).chosen(), proto::QuantizationConfig::INT8);
  EXPECT_EQ(message.config().mixed_precision().max_weight_bytes(), 100000);
}

TEST(FormatQuantizationResult, WritesJsonOrTextByExtension) {
  QuantizationOptions options;
  const proto::QuantizationResult message = ResultToProto(SampleResult(), options);

  absl::StatusOr<std::string> json = FormatQuantizationResult(message, "result.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_NE(json->find("\"output_sqnr_db\""), std::string::npos) << *json;
  proto::QuantizationResult from_json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &from_json).ok());
  EXPECT_EQ(from_json.layers(0).name(), "layer1.conv1");

  absl::StatusOr<std::string> text = FormatQuantizationResult(message, "result.textproto");
  ASSERT_TRUE(text.ok()) << text.status();
  proto::QuantizationResult from_text;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(*text, &from_text));
  EXPECT_EQ(from_text.layers(0).bytes_after(), 9900);
}

}  // namespace
}  // namespace polaris::quantization
