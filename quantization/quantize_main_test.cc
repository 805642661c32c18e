// Runs the quantize command the way a user does, on models and data made in Python, with every
// example config.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/testing/python_test_util.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "quantization/quantization.pb.h"

namespace polaris::quantization {
namespace {

constexpr char kScript[] = "quantization/testing/make_test_models.py";
constexpr char kQuantize[] = "quantization/quantize";

polaris::testing::CommandResult RunQuantize(const std::vector<std::string>& args) {
  return polaris::testing::RunInTestDirectory(kQuantize, args);
}

std::string InTmp(const std::string& name) {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
}

// A scripted Python CNN, the reference MLP saved from C++, and 256 labeled test images, in the
// temporary directory.
class QuantizeCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(
        polaris::testing::RunPython(kScript, {"odd-cnn", "scripted", InTmp("cnn.pt")}).ok());
    ASSERT_TRUE(
        polaris::testing::RunPython(kScript, {"fashion-mnist-test", "256", InTmp("data.pt")})
            .ok());
    absl::StatusOr<torch::jit::Module> mlp = MakeReferenceModel(ReferenceModel::kMlp, 3);
    ASSERT_TRUE(mlp.ok());
    ASSERT_TRUE(SaveModel(*mlp, InTmp("mlp.pt")).ok());
  }

  static std::string Config(const std::string& name) {
    // Configs are read relative to BUILD_WORKING_DIRECTORY, so pass an absolute path.
    return absl::StrCat(std::getenv("TEST_SRCDIR"), "/polaris/quantization/configs/", name);
  }
};

TEST_F(QuantizeCommand, WritesModelAndJsonResult) {
  const polaris::testing::CommandResult run =
      RunQuantize({"--model=cnn.pt", "--config=" + Config("static_int8.textproto"),
                   "--out=cnn_int8.pt", "--result=cnn_int8.json", "--data=data.pt",
                   "--latency_rounds=1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("static int8: 5 layers converted"), std::string::npos) << run.output;

  absl::StatusOr<torch::jit::Module> model = LoadModel(InTmp("cnn_int8.pt"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::string> json = ReadFileToString(InTmp("cnn_int8.json"));
  ASSERT_TRUE(json.ok()) << json.status();
  proto::QuantizationResult result;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &result).ok()) << *json;
  EXPECT_EQ(result.layers_size(), 5);
  EXPECT_EQ(result.config().method(), proto::QuantizationConfig::STATIC);
  ASSERT_EQ(result.measurements_size(), 3);
  EXPECT_EQ(result.measurements(2).variant(), "quantized");
  EXPECT_EQ(result.measurements(2).accuracy().examples(), 256);
  EXPECT_GT(result.measurements(0).size().file_bytes(), result.measurements(2).size().file_bytes());
  ASSERT_EQ(result.measurements(2).latency_size(), 2);
  EXPECT_GT(result.measurements(2).latency(1).median_ms(), 0);
  EXPECT_FALSE(result.environment().cpu_model().empty());
}

TEST_F(QuantizeCommand, RunsEveryExampleConfigOnTheMlp) {
  for (const std::string config :
       {"static_int8_stock_pytorch", "dynamic_int8", "int4_weight_only", "qat_int8", "qat_lsq",
        "mixed_precision_size", "mixed_precision_latency"}) {
    const polaris::testing::CommandResult run = RunQuantize(
        {"--model=mlp.pt", "--config=" + Config(config + ".textproto"),
         "--out=mlp_" + config + ".pt", "--result=mlp_" + config + ".textproto",
         "--data=data.pt", "--calibration_subset=128", "--measure=false"});
    ASSERT_EQ(run.exit_code, 0) << config << ":\n" << run.output;
    absl::StatusOr<std::string> text = ReadFileToString(InTmp("mlp_" + config + ".textproto"));
    ASSERT_TRUE(text.ok()) << text.status();
    proto::QuantizationResult result;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(*text, &result)) << config;
    if (result.config().method() == proto::QuantizationConfig::MIXED_PRECISION) {
      // Layers that keep fp32 are listed in the allocation, not among the converted ones.
      EXPECT_EQ(result.mixed_precision().layers_size(), 2) << config;
    } else {
      EXPECT_EQ(result.layers_size(), 2) << config;
    }
    EXPECT_TRUE(LoadModel(InTmp("mlp_" + config + ".pt")).ok()) << config;
  }
}

TEST_F(QuantizeCommand, ReportsBadInputInOneLine) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::string bad_config = InTmp("bad.textproto");
  ASSERT_TRUE(WriteFileAtomically(bad_config, "method: STATIC\nweight_bits: 3\n").ok());
  const std::string bad_syntax = InTmp("syntax.textproto");
  ASSERT_TRUE(WriteFileAtomically(bad_syntax, "method: STATIC\ngroup_size: \"x\"\n").ok());
  const Case cases[] = {
      {{"--model=cnn.pt"}, "--model, --config, --out and --result are required"},
      {{"--model=missing.pt", "--config=" + Config("static_int8.textproto"), "--out=o.pt",
        "--result=r.json"},
       "missing.pt"},
      {{"--model=cnn.pt", "--config=" + bad_config, "--out=o.pt", "--result=r.json"},
       "weight bits must be 4 or 8, got 3"},
      {{"--model=cnn.pt", "--config=" + bad_syntax, "--out=o.pt", "--result=r.json"},
       "line 2"},
      {{"--model=cnn.pt", "--config=" + Config("int4_weight_only.textproto"), "--out=o.pt",
        "--result=r.json", "--data=data.pt"},
       "does not divide the input size"},
  };
  for (const Case& test_case : cases) {
    const polaris::testing::CommandResult run = RunQuantize(test_case.args);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_NE(run.output.find(test_case.expected), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("quantize: "), std::string::npos) << run.output;
  }
  // No output is written when quantization fails.
  EXPECT_FALSE(PathExists(InTmp("o.pt")));
  EXPECT_FALSE(PathExists(InTmp("r.json")));
}

}  // namespace
}  // namespace polaris::quantization
