#include "pipeline/data_source.h"

#include <string>

#include "ATen/Functions.h"
#include "core/dataset.h"
#include "core/fashion_mnist.h"
#include "core/model_zoo.h"
#include "core/testing/python_test_util.h"
#include "gtest/gtest.h"

namespace polaris::pipeline {
namespace {

constexpr char kScript[] = "core/testing/make_python_files.py";

std::string MakeFile(const std::string& kind) {
  const std::string path = polaris::testing::TempPath(kind + ".pt");
  absl::StatusOr<std::string> output = polaris::testing::RunPython(kScript, {kind, path});
  EXPECT_TRUE(output.ok()) << output.status();
  return path;
}

TEST(LoadPipelineData, SplitsFashionMnistTrainingData) {
  DataOptions options;
  options.validation_examples = 5000;
  options.calibration_examples = 512;
  absl::StatusOr<PipelineData> data = LoadPipelineData("fashion-mnist", options);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_TRUE(data->train.has_value());
  EXPECT_EQ(data->train->size(), 55000);
  EXPECT_EQ(data->validation.size(), 5000);
  EXPECT_EQ(data->calibration.size(), 512);
  EXPECT_EQ(data->test.size(), 10000);
  EXPECT_EQ(data->num_classes, 10);
  EXPECT_TRUE(data->notes.empty());
}

// The validation split is the one the reference models were trained without, whatever the seed;
// the seed picks the calibration subset.
TEST(LoadPipelineData, ValidationSplitIsFixedAndCalibrationFollowsSeed) {
  DataOptions options;
  absl::StatusOr<PipelineData> first = LoadPipelineData("fashion-mnist", options);
  options.seed = 2;
  absl::StatusOr<PipelineData> second = LoadPipelineData("fashion-mnist", options);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->validation.size(), kReferenceValidationExamples);
  EXPECT_TRUE(at::equal(first->validation.inputs, second->validation.inputs));
  EXPECT_FALSE(at::equal(first->calibration.inputs, second->calibration.inputs));

  absl::StatusOr<LabeledData> train = LoadFashionMnist(DataSplit::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  const LabeledData held_out =
      SplitHoldOut(*train, static_cast<double>(kReferenceValidationExamples) / train->size(),
                   kReferenceSplitSeed)
          .second;
  EXPECT_TRUE(at::equal(first->validation.inputs, held_out.inputs));
}

TEST(LoadPipelineData, TestOnlyFileUsesEvaluationDataAndSaysSo) {
  DataOptions options;
  options.calibration_examples = 16;
  absl::StatusOr<PipelineData> data = LoadPipelineData(MakeFile("labeled-pair"), options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_FALSE(data->train.has_value());
  EXPECT_EQ(data->test.size(), 32);
  EXPECT_EQ(data->calibration.size(), 16);
  EXPECT_NE(data->notes.find("no training part"), std::string::npos);
}

TEST(LoadPipelineData, FileWithTrainingPartIsSplit) {
  DataOptions options;
  options.validation_examples = 8;
  absl::StatusOr<PipelineData> data = LoadPipelineData(MakeFile("labeled-four"), options);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_TRUE(data->train.has_value());
  EXPECT_EQ(data->train->size(), 40);
  EXPECT_EQ(data->validation.size(), 8);
  EXPECT_EQ(data->test.size(), 16);

  options.validation_examples = 48;
  const absl::Status too_small = LoadPipelineData(MakeFile("labeled-four"), options).status();
  EXPECT_EQ(too_small.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_small.message().find("48"), absl::string_view::npos) << too_small;
}

TEST(LoadPipelineData, MissingSourceExplainsChoices) {
  const absl::Status status = LoadPipelineData("/nonexistent/data.pt", {}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("fashion-mnist"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace polaris::pipeline
