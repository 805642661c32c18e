// Trains the reference models on the real Fashion-MNIST training set and checks their accuracy
// on the full 10,000-image test set. To keep the test short the MLP trains for 3 epochs instead
// of its default 10, and the CNN for 1 epoch instead of 2 (on 2 threads); both still clear the
// accuracy floors that the full recipes exceed.
#include "core/trainer.h"

#include <cmath>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LabeledData> train = LoadFashionMnist(DataSplit::kTrain);
    absl::StatusOr<LabeledData> test = LoadFashionMnist(DataSplit::kTest);
    ASSERT_TRUE(train.ok()) << train.status();
    ASSERT_TRUE(test.ok()) << test.status();
    train_ = new LabeledData(*train);
    test_ = new LabeledData(*test);
  }
  static void TearDownTestSuite() {
    delete train_;
    delete test_;
  }

  static double TrainAndEvaluate(ReferenceModel kind, TrainOptions options) {
    absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(kind, 1);
    EXPECT_TRUE(model.ok()) << model.status();
    absl::StatusOr<TrainResult> result = Train(*model, *train_, options);
    EXPECT_TRUE(result.ok()) << result.status();
    absl::StatusOr<EvalResult> eval = Evaluate(*model, *test_);
    EXPECT_TRUE(eval.ok()) << eval.status();
    EXPECT_EQ(eval->examples, 10000);
    EXPECT_EQ(eval->confusion.sum().item<int64_t>(), 10000);
    return eval->accuracy;
  }

  static LabeledData* train_;
  static LabeledData* test_;
};

LabeledData* TrainerTest::train_ = nullptr;
LabeledData* TrainerTest::test_ = nullptr;

TEST_F(TrainerTest, MlpReaches87Percent) {
  TrainOptions options = DefaultTrainOptions(ReferenceModel::kMlp);
  options.epochs = 3;
  options.show_progress = false;
  const double accuracy = TrainAndEvaluate(ReferenceModel::kMlp, options);
  EXPECT_GE(accuracy, 0.87);
  std::printf("MLP test accuracy after 3 epochs: %.2f%%\n", 100 * accuracy);
}

TEST_F(TrainerTest, ResidualCnnReaches90Percent) {
  at::set_num_threads(2);
  TrainOptions options = DefaultTrainOptions(ReferenceModel::kResidualCnn);
  options.epochs = 1;
  options.show_progress = false;
  const double accuracy = TrainAndEvaluate(ReferenceModel::kResidualCnn, options);
  at::set_num_threads(1);
  EXPECT_GE(accuracy, 0.90);
  std::printf("CNN test accuracy after %d epochs: %.2f%%\n", options.epochs, 100 * accuracy);
}

TEST_F(TrainerTest, HooksRunEveryStepAndCanStopTraining) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  TrainOptions options;
  options.max_steps = 5;
  options.show_progress = false;
  int backward_calls = 0;
  int step_calls = 0;
  options.after_backward = [&](int64_t step) {
    ++backward_calls;
    return absl::OkStatus();
  };
  options.after_step = [&](int64_t step) {
    ++step_calls;
    if (step == 3) return absl::AbortedError("stop requested at step 3");
    return absl::OkStatus();
  };
  absl::StatusOr<TrainResult> result = Train(*model, *train_, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(backward_calls, 4);
  EXPECT_EQ(step_calls, 4);
}

TEST_F(TrainerTest, RejectsBadOptionsAndLabels) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  TrainOptions options;
  options.learning_rate = -1;
  EXPECT_EQ(Train(*model, *test_, options).status().code(), absl::StatusCode::kInvalidArgument);

  options = TrainOptions();
  LabeledData bad = {test_->inputs.slice(0, 0, 10), test_->labels.slice(0, 0, 10).clone()};
  bad.labels[0] = 12;
  const absl::Status status = Train(*model, bad, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("[0, 10)"), absl::string_view::npos) << status;
}

TEST_F(TrainerTest, DivergenceIsReported) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  TrainOptions options;
  options.learning_rate = 1e12;
  options.momentum = 0;
  options.schedule = LearningRateSchedule::kConstant;
  options.max_steps = 20;
  options.show_progress = false;
  const absl::Status status = Train(*model, *train_, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("lower the learning rate"), absl::string_view::npos) << status;
}

TEST(ScheduledLearningRate, WarmsUpThenDecaysToZero) {
  TrainOptions options;
  options.learning_rate = 0.1;
  options.warmup_steps = 10;
  EXPECT_NEAR(ScheduledLearningRate(options, 0, 110), 0.01, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(options, 9, 110), 0.1, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(options, 10, 110), 0.1, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(options, 60, 110), 0.05, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(options, 110, 110), 0.0, 1e-12);
}

}  // namespace
}  // namespace polaris
