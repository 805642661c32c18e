#include "core/fashion_mnist.h"

#include <cmath>

#include "ATen/Functions.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(LoadFashionMnist, ReadsRealTestSet) {
  absl::StatusOr<LabeledData> test = LoadFashionMnist(DataSplit::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->inputs.sizes(), at::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_EQ(test->labels.sizes(), at::IntArrayRef({10000}));
  // The test set is balanced: 1,000 images per class.
  const at::Tensor counts = at::bincount(test->labels);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c].item<int64_t>(), 1000) << "class " << c;
  // Normalized pixels: 0 maps to -mean/std, 255 to (1-mean)/std.
  EXPECT_NEAR(test->inputs.min().item<float>(), -kFashionMnistMean / kFashionMnistStd, 1e-5);
  EXPECT_NEAR(test->inputs.max().item<float>(), (1 - kFashionMnistMean) / kFashionMnistStd, 1e-5);
}

TEST(LoadFashionMnist, TrainingSetIsNormalizedToUnitScale) {
  absl::StatusOr<LabeledData> train = LoadFashionMnist(DataSplit::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->size(), 60000);
  // The constants are the training set's own statistics, so it becomes zero mean, unit std.
  EXPECT_NEAR(train->inputs.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(train->inputs.std().item<double>(), 1.0, 0.01);
}

TEST(LoadFashionMnist, MissingFolderExplainsFix) {
  absl::StatusOr<LabeledData> data = LoadFashionMnist(DataSplit::kTest, "/nonexistent/fmnist");
  ASSERT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(data.status().message().find("dataset-fashion-mnist"), absl::string_view::npos)
      << data.status();
}

}  // namespace
}  // namespace polaris
