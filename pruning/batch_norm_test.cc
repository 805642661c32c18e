#include "pruning/batch_norm.h"

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "core/graph_utils.h"
#include "core/models.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

TEST(RecalibrateBatchNorm, RunningStatisticsMoveTowardTheData) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE(HasBatchNorm(*model));
  at::manual_seed(testing::TestSeed());
  // Inputs with mean 3: the first BatchNorm after conv1 must see far from zero means.
  LabeledData data{at::randn({65, 1, 28, 28}) + 3.0, at::zeros({65}, at::kLong)};
  const at::Tensor before = FindTensor(*model, "bn1.running_mean")->clone();
  ASSERT_TRUE(RecalibrateBatchNorm(*model, data, 8).ok());
  const at::Tensor after = *FindTensor(*model, "bn1.running_mean");
  EXPECT_GT((after - before).abs().max().item<double>(), 0.1);
  EXPECT_FALSE(model->is_training());
}

TEST(RecalibrateBatchNorm, ModelWithoutBatchNormIsUnchanged) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  EXPECT_FALSE(HasBatchNorm(*model));
  LabeledData data{at::randn({4, 1, 28, 28}), at::zeros({4}, at::kLong)};
  EXPECT_TRUE(RecalibrateBatchNorm(*model, data, 2).ok());
  EXPECT_EQ(RecalibrateBatchNorm(*model, data, 0).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris::pruning
