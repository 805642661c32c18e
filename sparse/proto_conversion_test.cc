#include "sparse/proto_conversion.h"

#include "gtest/gtest.h"

namespace polaris::sparse {
namespace {

TEST(ParseSparseConfig, ReadsEverySection) {
  absl::StatusOr<proto::SparseConfig> config = ParseSparseConfig(R"(
    sparsity { method: SPARSE_TRAINING_SET sparsity: 0.8 distribution: SPARSITY_DISTRIBUTION_UNIFORM
               update_interval: 50 drop_fraction: 0.2 drop_schedule: DROP_FRACTION_CONSTANT
               end_fraction: 0.5 seed: 7 dense_layers: "fc2" }
    training { epochs: 3 optimizer: "adam" learning_rate: 0.001 learning_rate_schedule: "constant" }
    export { batch_size: 32 formats: "csr" formats: "nm" n: 1 m: 4 timed_runs: 3 }
    train_dense_baseline: true
  )",
                                                                 "test config");
  ASSERT_TRUE(config.ok()) << config.status();

  absl::StatusOr<DynamicSparsityOptions> sparsity = ToDynamicSparsityOptions(config->sparsity());
  ASSERT_TRUE(sparsity.ok()) << sparsity.status();
  EXPECT_EQ(sparsity->method, DynamicSparsityMethod::kSet);
  EXPECT_DOUBLE_EQ(sparsity->sparsity, 0.8);
  EXPECT_EQ(sparsity->distribution, SparsityDistribution::kUniform);
  EXPECT_EQ(sparsity->update_interval, 50);
  EXPECT_DOUBLE_EQ(sparsity->drop_fraction, 0.2);
  EXPECT_EQ(sparsity->drop_schedule, DropSchedule::kConstant);
  EXPECT_DOUBLE_EQ(sparsity->end_fraction, 0.5);
  EXPECT_EQ(sparsity->seed, 7u);
  EXPECT_EQ(sparsity->dense_layers, std::vector<std::string>{"fc2"});

  absl::StatusOr<TrainOptions> training = ToTrainOptions(config->training(), TrainOptions());
  ASSERT_TRUE(training.ok()) << training.status();
  EXPECT_EQ(training->epochs, 3);
  EXPECT_EQ(training->optimizer, OptimizerKind::kAdam);
  EXPECT_DOUBLE_EQ(training->learning_rate, 0.001);
  EXPECT_EQ(training->schedule, LearningRateSchedule::kConstant);
  EXPECT_EQ(training->batch_size, TrainOptions().batch_size);

  absl::StatusOr<SparseExportOptions> exported = ToSparseExportOptions(config->export_());
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->batch_size, 32);
  EXPECT_EQ(exported->formats, (std::vector<SparseFormat>{SparseFormat::kCsr, SparseFormat::kNm}));
  EXPECT_EQ(exported->n, 1);
  EXPECT_EQ(exported->timing.timed_runs, 3);
  EXPECT_TRUE(config->train_dense_baseline());
}

TEST(ParseSparseConfig, UnsetFieldsKeepDefaults) {
  absl::StatusOr<proto::SparseConfig> config = ParseSparseConfig("", "empty");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<DynamicSparsityOptions> sparsity = ToDynamicSparsityOptions(config->sparsity());
  ASSERT_TRUE(sparsity.ok()) << sparsity.status();
  EXPECT_EQ(sparsity->method, DynamicSparsityMethod::kRigL);
  EXPECT_DOUBLE_EQ(sparsity->sparsity, DynamicSparsityOptions().sparsity);
  EXPECT_EQ(sparsity->distribution, SparsityDistribution::kErdosRenyiKernel);
}

TEST(ParseSparseConfig, ReportsPositionOfSyntaxError) {
  const absl::Status status = ParseSparseConfig("sparsity { sparsity: }", "bad.textproto").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("bad.textproto: line 1"), absl::string_view::npos) << status;
}

TEST(ToDynamicSparsityOptions, RejectsOutOfRange) {
  proto::DynamicSparsityConfig config;
  config.set_sparsity(1.0);
  EXPECT_EQ(ToDynamicSparsityOptions(config).status().code(), absl::StatusCode::kInvalidArgument);
  config.set_sparsity(0.5);
  config.set_update_interval(0);
  EXPECT_EQ(ToDynamicSparsityOptions(config).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ToTrainOptions, RejectsUnknownOptimizer) {
  proto::TrainingSchedule schedule;
  schedule.set_optimizer("rmsprop");
  const absl::Status status = ToTrainOptions(schedule, TrainOptions()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("rmsprop"), absl::string_view::npos) << status;
}

TEST(ToSparseExportOptions, RejectsUnknownFormat) {
  proto::SparseExportConfig config;
  config.add_formats("coo");
  EXPECT_EQ(ToSparseExportOptions(config).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ToLayerResultProto, CopiesDecisionAndTraining) {
  LayerExportDecision decision;
  decision.layer = "fc1";
  decision.format = "csr";
  decision.dense_ms = 2;
  decision.sparse_ms = 0.5;
  decision.uses_sparse_kernel = true;
  decision.bytes_before = 1000;
  decision.bytes_after = 200;
  SparseLayerReport training;
  training.parameters = 250;
  training.target_sparsity = 0.9;
  const proto::SparseLayerResult result = ToLayerResultProto(decision, &training);
  EXPECT_EQ(result.layer(), "fc1");
  EXPECT_EQ(result.format(), "csr");
  EXPECT_TRUE(result.uses_sparse_kernel());
  EXPECT_EQ(result.parameters(), 250);
  EXPECT_DOUBLE_EQ(result.target_sparsity(), 0.9);
  EXPECT_EQ(result.bytes_after(), 200);
}

}  // namespace
}  // namespace polaris::sparse
