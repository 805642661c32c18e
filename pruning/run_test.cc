#include "pruning/run.h"

#include <string>

#include "core/dataset.h"
#include "core/fashion_mnist.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "core/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pruning/proto_conversion.h"

namespace polaris::pruning {
namespace {

using ::testing::HasSubstr;

// Small reference models trained briefly on a Fashion-MNIST subset; the runs below check that
// every method fills its part of the result with measured numbers.
class RunPruningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LabeledData> train = LoadFashionMnist(DataSplit::kTrain);
    absl::StatusOr<LabeledData> test = LoadFashionMnist(DataSplit::kTest);
    ASSERT_TRUE(train.ok()) << train.status();
    ASSERT_TRUE(test.ok()) << test.status();
    train_ = new LabeledData(RandomSubset(*train, 3000, 5));
    test_ = new LabeledData(Slice(*test, 0, 1000));
    for (ReferenceModel kind : {ReferenceModel::kMlp, ReferenceModel::kLeNet}) {
      absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(kind, 1);
      ASSERT_TRUE(model.ok());
      TrainOptions options = DefaultTrainOptions(kind);
      options.epochs = 4;
      options.show_progress = false;
      ASSERT_TRUE(Train(*model, *train_, options).ok());
      (kind == ReferenceModel::kMlp ? mlp_ : lenet_) = new torch::jit::Module(*model);
    }
  }

  static PruningRunInput Input(ReferenceModel kind) {
    PruningRunInput input;
    input.model = kind == ReferenceModel::kMlp ? *mlp_ : *lenet_;
    input.model_name = ReferenceModelName(kind);
    input.reference = kind;
    input.train = *train_;
    input.test = *test_;
    input.data_name = "Fashion-MNIST subset";
    return input;
  }

  static proto::PruningConfig Config(const std::string& text) {
    absl::StatusOr<proto::PruningConfig> config = ParsePruningConfig(text, "test config");
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : proto::PruningConfig();
  }

  static LabeledData* train_;
  static LabeledData* test_;
  static torch::jit::Module* mlp_;
  static torch::jit::Module* lenet_;
};

LabeledData* RunPruningTest::train_ = nullptr;
LabeledData* RunPruningTest::test_ = nullptr;
torch::jit::Module* RunPruningTest::mlp_ = nullptr;
torch::jit::Module* RunPruningTest::lenet_ = nullptr;

void ExpectMeasured(const proto::PruningResult& result) {
  EXPECT_EQ(result.accuracy_before().examples(), 1000);
  EXPECT_GT(result.accuracy_before().accuracy(), 0.5);
  EXPECT_GT(result.accuracy_after().accuracy(), 0.3);
  EXPECT_GT(result.size_before().file_bytes(), 0);
  EXPECT_GT(result.size_after().file_bytes(), 0);
  EXPECT_GT(result.latency_before().median_ms(), 0);
  EXPECT_GT(result.latency_after().median_ms(), 0);
  EXPECT_EQ(result.latency_before().batch_size(), 64);
  EXPECT_GT(result.speedup(), 0);
  EXPECT_FALSE(result.environment().cpu_model().empty());
}

TEST_F(RunPruningTest, MagnitudeExportShrinksTheFile) {
  absl::StatusOr<PruningRunOutput> output = RunPruning(Input(ReferenceModel::kMlp), Config(R"(
    magnitude { sparsity: 0.8 scope: PRUNING_SCOPE_GLOBAL }
    fine_tune { epochs: 1 learning_rate: 0.01 }
    export { formats: "csr" timed_runs: 5 }
    threads: 1
  )"));
  ASSERT_TRUE(output.ok()) << output.status();
  ASSERT_TRUE(output->model.has_value());
  const proto::PruningResult& result = output->result;
  ExpectMeasured(result);
  EXPECT_NEAR(result.overall_sparsity(), 0.8, 1e-3);
  ASSERT_EQ(result.layers_size(), 2);
  EXPECT_EQ(result.export_layers_size(), 2);
  // 80% zeros stored compactly: the file must shrink by more than 2x.
  EXPECT_GT(result.size_reduction(), 2.0);
  EXPECT_GT(result.parameter_reduction(), 4.0);
  EXPECT_GT(result.fine_tune_seconds(), 0);
}

TEST_F(RunPruningTest, StructuredShrinksParametersAndRecordsGroups) {
  absl::StatusOr<PruningRunOutput> output = RunPruning(Input(ReferenceModel::kLeNet), Config(R"(
    structured { fraction: 0.5 }
    fine_tune { epochs: 1 learning_rate: 0.01 }
    threads: 1
  )"));
  ASSERT_TRUE(output.ok()) << output.status();
  const proto::PruningResult& result = output->result;
  ExpectMeasured(result);
  ASSERT_EQ(result.groups_size(), 5);
  EXPECT_TRUE(result.groups(0).pruned());
  EXPECT_EQ(result.groups(0).channels_after(), 3);
  EXPECT_FALSE(result.groups(4).pruned());
  EXPECT_GT(result.parameter_reduction(), 2.0);
  EXPECT_GT(result.size_reduction(), 2.0);
  EXPECT_THAT(output->report, HasSubstr("test accuracy"));
}

TEST_F(RunPruningTest, GradualRecordsTheSchedule) {
  absl::StatusOr<PruningRunOutput> output = RunPruning(Input(ReferenceModel::kMlp), Config(R"(
    gradual { target { sparsity: 0.7 } frequency: 5 }
    fine_tune { epochs: 1 learning_rate: 0.01 }
    threads: 1
  )"));
  ASSERT_TRUE(output.ok()) << output.status();
  ExpectMeasured(output->result);
  EXPECT_GT(output->result.schedule_size(), 3);
  EXPECT_NEAR(output->result.overall_sparsity(), 0.7, 1e-3);
}

TEST_F(RunPruningTest, SensitivityWritesNoModel) {
  absl::StatusOr<PruningRunOutput> output = RunPruning(Input(ReferenceModel::kLeNet), Config(R"(
    sensitivity { method: PRUNING_SENSITIVITY_CHANNELS sparsities: [0.5] }
    threads: 1
  )"));
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_FALSE(output->model.has_value());
  EXPECT_EQ(output->result.sensitivity().layers_size(), 4);
  // Validation is the held-out tenth of the 3000 training examples.
  EXPECT_EQ(output->result.sensitivity().examples(), 300);
}

TEST_F(RunPruningTest, SearchReportsFrontAndChosenModel) {
  absl::StatusOr<PruningRunOutput> output = RunPruning(Input(ReferenceModel::kLeNet), Config(R"(
    search {
      population_size: 4
      generations: 2
      validation_examples: 200
      calibration_examples: 128
      seed_from_sensitivity: true
    }
    threads: 1
  )"));
  ASSERT_TRUE(output.ok()) << output.status();
  ExpectMeasured(output->result);
  EXPECT_EQ(output->result.sensitivity().layers_size(), 4);
  EXPECT_TRUE(output->result.search().finished());
  EXPECT_GT(output->result.search().pareto_front_size(), 0);
  EXPECT_THAT(output->report, HasSubstr("chosen"));
}

TEST_F(RunPruningTest, BadConfigsAreRejected) {
  EXPECT_THAT(RunPruning(Input(ReferenceModel::kMlp), Config("threads: 1")).status().message(),
              HasSubstr("names no method"));
  PruningRunInput no_train = Input(ReferenceModel::kMlp);
  no_train.train = LabeledData{};
  absl::StatusOr<PruningRunOutput> output =
      RunPruning(no_train, Config("gradual { target { sparsity: 0.5 } } threads: 1"));
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(output.status().message(), HasSubstr("needs training data"));
}

}  // namespace
}  // namespace polaris::pruning
