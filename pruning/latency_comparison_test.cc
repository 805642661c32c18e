#include "pruning/latency_comparison.h"

#include "ATen/Functions.h"
#include "core/models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

TEST(CompareLatency, TimesBothModelsTheSameNumberOfRounds) {
  absl::StatusOr<torch::jit::Module> mlp = MakeReferenceModel(ReferenceModel::kMlp, 1);
  absl::StatusOr<torch::jit::Module> lenet = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(mlp.ok());
  ASSERT_TRUE(lenet.ok());
  LatencyOptions options;
  options.warmup_runs = 1;
  options.timed_runs = 7;
  absl::StatusOr<LatencyComparison> comparison =
      CompareLatency(*mlp, *lenet, at::zeros({2, 1, 28, 28}), options);
  ASSERT_TRUE(comparison.ok()) << comparison.status();
  EXPECT_EQ(comparison->baseline.runs, 7);
  EXPECT_EQ(comparison->candidate.runs, 7);
  EXPECT_GT(comparison->baseline.median_ms, 0);
  EXPECT_LE(comparison->baseline.min_ms, comparison->baseline.median_ms);
  EXPECT_LE(comparison->baseline.median_ms, comparison->baseline.p90_ms);
  EXPECT_DOUBLE_EQ(comparison->speedup,
                   comparison->baseline.median_ms / comparison->candidate.median_ms);
  // Training flags are restored.
  EXPECT_TRUE(mlp->is_training());
}

TEST(CompareLatency, BadInputAndOptionsAreInvalidArgument) {
  absl::StatusOr<torch::jit::Module> mlp = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(mlp.ok());
  torch::jit::Module other = *mlp;
  EXPECT_EQ(CompareLatency(*mlp, other, at::zeros({2, 3}), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  LatencyOptions options;
  options.timed_runs = 0;
  EXPECT_EQ(CompareLatency(*mlp, other, at::zeros({2, 784}), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris::pruning
