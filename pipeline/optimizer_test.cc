// Runs the pipeline on a quickly trained MLP with stages made for the test, to check the
// accuracy guard (apply, relax, roll back, failure), measurements and reproducibility.
#include "pipeline/optimizer.h"

#include <memory>
#include <string>

#include "ATen/Functions.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/trainer.h"
#include "gtest/gtest.h"
#include "pipeline/config.h"
#include "pipeline/report.h"

namespace polaris::pipeline {
namespace {

// Adds Gaussian noise of a given size to every weight; weaker settings add less.
class NoiseStage : public Stage {
 public:
  explicit NoiseStage(std::vector<double> noise) : noise_(std::move(noise)) {}
  std::string kind() const override { return "noise"; }
  int num_settings() const override { return static_cast<int>(noise_.size()); }
  std::string DescribeSetting(int setting) const override {
    return "noise " + std::to_string(noise_[setting]);
  }
  bool needs_training_data() const override { return false; }
  bool trains_model() const override { return false; }
  absl::StatusOr<StageOutput> Run(const torch::jit::Module& model, int setting,
                                  const StageContext& context) override {
    absl::StatusOr<torch::jit::Module> copy = CloneModel(model);
    if (!copy.ok()) return copy.status();
    at::manual_seed(context.seed);
    for (const at::Tensor& param : copy->parameters()) {
      at::NoGradGuard no_grad;
      param.add_(at::randn_like(param).mul(noise_[setting]));
    }
    return StageOutput{*copy, "added noise", true};
  }

 private:
  std::vector<double> noise_;
};

class FailingStage : public Stage {
 public:
  std::string kind() const override { return "failing"; }
  int num_settings() const override { return 1; }
  std::string DescribeSetting(int) const override { return "always fails"; }
  bool needs_training_data() const override { return false; }
  bool trains_model() const override { return false; }
  absl::StatusOr<StageOutput> Run(const torch::jit::Module&, int, const StageContext&) override {
    return absl::InternalError("simulated failure");
  }
};

// Setting 0 fails (as a size budget no precision assignment meets does); setting 1 adds no noise.
class FailsFirstStage : public NoiseStage {
 public:
  FailsFirstStage() : NoiseStage({0.0, 0.0}) {}
  absl::StatusOr<StageOutput> Run(const torch::jit::Module& model, int setting,
                                  const StageContext& context) override {
    if (setting == 0) return absl::InvalidArgumentError("no assignment fits the budget");
    return NoiseStage::Run(model, setting, context);
  }
};

class OptimizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    DataOptions options;
    options.validation_examples = 2000;
    options.calibration_examples = 256;
    absl::StatusOr<PipelineData> data = LoadPipelineData("fashion-mnist", options);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new PipelineData(*data);

    absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
    ASSERT_TRUE(model.ok());
    TrainOptions train;
    train.epochs = 1;
    train.show_progress = false;
    ASSERT_TRUE(Train(*model, *data_->train, train).ok());
    model_ = new torch::jit::Module(*model);
  }
  static void TearDownTestSuite() {
    delete data_;
    delete model_;
  }

  static proto::PipelineConfig ConfigWithStages(int count) {
    proto::PipelineConfig config;
    config.set_max_accuracy_drop(1.0);
    config.set_threads(1);
    config.mutable_latency()->add_batch_sizes(1);
    config.mutable_latency()->add_batch_sizes(16);
    config.mutable_latency()->set_timed_runs(5);
    for (int i = 0; i < count; ++i) config.add_stages()->mutable_fine_tune();
    absl::StatusOr<proto::PipelineConfig> resolved = ResolveConfig(config);
    EXPECT_TRUE(resolved.ok()) << resolved.status();
    return *resolved;
  }

  static OptimizeOptions Quiet() {
    OptimizeOptions options;
    options.verbose = false;
    return options;
  }

  static PipelineData* data_;
  static torch::jit::Module* model_;
};

PipelineData* OptimizerTest::data_ = nullptr;
torch::jit::Module* OptimizerTest::model_ = nullptr;

TEST_F(OptimizerTest, GuardRelaxesRollsBackAndRecordsFailures) {
  proto::PipelineConfig config = ConfigWithStages(3);
  config.mutable_stages(0)->set_name("relaxing");
  config.mutable_stages(1)->set_name("hopeless");
  config.mutable_stages(2)->set_name("broken");
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<NoiseStage>(std::vector<double>{1.0, 1e-5}));
  stages.push_back(std::make_unique<NoiseStage>(std::vector<double>{2.0}));
  stages.push_back(std::make_unique<FailingStage>());
  const at::Tensor before = model_->attr("fc1").toModule().attr("weight").toTensor().clone();

  absl::StatusOr<OptimizeOutput> output = RunStages(*model_, config, stages, *data_, Quiet());
  ASSERT_TRUE(output.ok()) << output.status();
  const proto::PipelineResult& result = output->result;
  ASSERT_EQ(result.stages_size(), 3);
  EXPECT_EQ(result.stages(0).status(), proto::StageResult::RELAXED);
  EXPECT_EQ(result.stages(0).attempts_size(), 2);
  EXPECT_FALSE(result.stages(0).attempts(0).accepted());
  EXPECT_TRUE(result.stages(0).attempts(1).accepted());
  EXPECT_EQ(result.stages(1).status(), proto::StageResult::ROLLED_BACK);
  EXPECT_EQ(result.stages(2).status(), proto::StageResult::FAILED);
  EXPECT_NE(result.stages(2).message().find("simulated failure"), std::string::npos);
  EXPECT_TRUE(result.had_failures());
  EXPECT_TRUE(result.metrics().within_budget());
  EXPECT_LT(std::abs(result.metrics().accuracy_drop_points()), 1.0);

  // The caller's model is untouched.
  EXPECT_TRUE(at::equal(model_->attr("fc1").toModule().attr("weight").toTensor(), before));
}

TEST_F(OptimizerTest, FailedSettingFallsBackToTheNext) {
  proto::PipelineConfig config = ConfigWithStages(1);
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<FailsFirstStage>());
  absl::StatusOr<OptimizeOutput> output = RunStages(*model_, config, stages, *data_, Quiet());
  ASSERT_TRUE(output.ok()) << output.status();
  const proto::StageResult& stage = output->result.stages(0);
  EXPECT_EQ(stage.status(), proto::StageResult::RELAXED) << stage.DebugString();
  ASSERT_EQ(stage.attempts_size(), 2);
  EXPECT_NE(stage.attempts(0).note().find("no assignment fits the budget"), std::string::npos);
  EXPECT_TRUE(stage.attempts(1).accepted());
  EXPECT_NE(stage.message().find("failed"), std::string::npos) << stage.message();
  EXPECT_FALSE(output->result.had_failures());
}

TEST_F(OptimizerTest, MeasuresEverythingItReports) {
  proto::PipelineConfig config = ConfigWithStages(1);
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<NoiseStage>(std::vector<double>{1e-6}));
  absl::StatusOr<OptimizeOutput> output = RunStages(*model_, config, stages, *data_, Quiet());
  ASSERT_TRUE(output.ok()) << output.status();
  const proto::PipelineResult& result = output->result;

  EXPECT_EQ(result.original_accuracy().examples(), 10000);
  EXPECT_GT(result.original_accuracy().accuracy(), 0.8);
  EXPECT_EQ(result.original_size().tensor_data_bytes(), 4 * 203530);
  EXPECT_EQ(result.original_latency_size(), 2);
  EXPECT_EQ(result.original_optimized_latency_size(), 2);
  EXPECT_EQ(result.stages(0).latency_size(), 2);
  EXPECT_EQ(result.analysis().architecture(), "MLP");
  EXPECT_NEAR(result.metrics().compression_ratio(), 1.0, 0.01);
  EXPECT_GT(result.metrics().speedup_vs_optimized().at(16), 0);
  EXPECT_EQ(result.environment().threads(), 1);
  EXPECT_EQ(result.config_hash().size(), 16u);
  EXPECT_FALSE(result.had_failures());

  const std::string table = FormatSummaryTable(result);
  EXPECT_NE(table.find("after fine_tune"), std::string::npos) << table;
  EXPECT_NE(table.find("1.00x smaller"), std::string::npos) << table;
  absl::StatusOr<std::string> json = SerializeResult(result, "report.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_NE(json->find("\"compression_ratio\""), std::string::npos);
}

TEST_F(OptimizerTest, SameSeedSameModelAndNumbers) {
  proto::PipelineConfig config = ConfigWithStages(1);
  config.mutable_stages(0)->mutable_fine_tune()->set_epochs(1);
  config.mutable_data()->set_validation_examples(2000);
  absl::StatusOr<OptimizeOutput> first = Optimize(*model_, config, *data_, Quiet());
  absl::StatusOr<OptimizeOutput> second = Optimize(*model_, config, *data_, Quiet());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->result.stages(0).status(), proto::StageResult::APPLIED)
      << first->result.stages(0).message();
  EXPECT_EQ(second->result.stages(0).status(), proto::StageResult::APPLIED);
  EXPECT_EQ(first->result.final_accuracy().accuracy(), second->result.final_accuracy().accuracy());
  const at::Tensor a = first->model.attr("fc1").toModule().attr("weight").toTensor();
  const at::Tensor b = second->model.attr("fc1").toModule().attr("weight").toTensor();
  EXPECT_TRUE(at::equal(a, b));
}

TEST_F(OptimizerTest, RejectsModelThatDoesNotFitData) {
  absl::StatusOr<torch::jit::Module> lenet = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(lenet.ok());
  PipelineData wrong_shape = *data_;
  wrong_shape.test.inputs = at::zeros({8, 3, 32, 32});
  wrong_shape.test.labels = at::zeros({8}, at::kLong);
  const absl::Status status =
      Optimize(*lenet, ConfigWithStages(1), wrong_shape, Quiet()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("cannot run on the data"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace polaris::pipeline
