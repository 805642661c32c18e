#include "sparse/training_run.h"

#include "ATen/Functions.h"
#include "core/models.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "sparse/proto_conversion.h"

namespace polaris::sparse {
namespace {

TEST(RunSparseTraining, FillsEveryMeasurement) {
  at::Generator generator = at::detail::createCPUGenerator(testing::TestSeed());
  const LabeledData train{at::randn({256, 1, 28, 28}, generator),
                          at::randint(0, 10, {256}, generator)};
  const LabeledData test{at::randn({64, 1, 28, 28}, generator),
                         at::randint(0, 10, {64}, generator)};
  absl::StatusOr<proto::SparseConfig> config = ParseSparseConfig(R"(
    sparsity { sparsity: 0.9 update_interval: 2 }
    training { epochs: 1 batch_size: 32 }
    export { batch_size: 16 timed_runs: 2 }
    train_dense_baseline: true
    latency_batch_size: 16
  )",
                                                                 "test");
  ASSERT_TRUE(config.ok()) << config.status();
  const torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kMlp, 1);
  TrainOptions defaults;
  defaults.show_progress = false;

  absl::StatusOr<SparseTrainingRun> run =
      RunSparseTraining(model, train, test, *config, defaults, "mlp");
  ASSERT_TRUE(run.ok()) << run.status();
  const proto::SparseResult& result = run->result;
  EXPECT_EQ(result.model(), "mlp");
  EXPECT_TRUE(result.has_dense_accuracy());
  EXPECT_EQ(result.sparse_accuracy().examples(), 64);
  // Export only changes summation order, so the predictions stay the same.
  EXPECT_NEAR(result.exported_accuracy().accuracy(), result.sparse_accuracy().accuracy(), 1e-9);
  EXPECT_NEAR(result.overall_sparsity(), 0.9, 0.002);
  EXPECT_GT(result.mask_updates(), 0);
  ASSERT_EQ(result.layers_size(), 2);
  EXPECT_EQ(result.layers(0).layer(), "fc1");
  EXPECT_GT(result.layers(0).dense_ms(), 0);
  EXPECT_LT(result.size_after().file_bytes(), result.size_before().file_bytes() / 3);
  EXPECT_GT(result.latency_dense().median_ms(), 0);
  EXPECT_GT(result.latency_exported().median_ms(), 0);
  EXPECT_EQ(result.latency_exported().batch_size(), 16);
  EXPECT_FALSE(result.environment().cpu_model().empty());
  EXPECT_NE(FormatSparseResult(result).find("fc1"), std::string::npos);
}

TEST(RunSparseTraining, RejectsInvalidConfig) {
  const LabeledData data{at::randn({8, 1, 28, 28}), at::randint(0, 10, {8})};
  proto::SparseConfig config;
  config.mutable_sparsity()->set_sparsity(1.5);
  const torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kMlp, 1);
  EXPECT_EQ(RunSparseTraining(model, data, data, config, TrainOptions(), "mlp").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris::sparse
