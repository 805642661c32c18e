#include "quantization/qat.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "core/fashion_mnist.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/testing/test_seed.h"
#include "core/trainer.h"
#include "gtest/gtest.h"
#include "quantization/error_metrics.h"
#include "quantization/model_quantization.h"

namespace polaris::quantization {
namespace {

// 2048 training images for QAT steps and calibration, 512 test images for comparisons.
const LabeledData& TrainImages() {
  static const LabeledData* data = [] {
    absl::StatusOr<LabeledData> train = LoadFashionMnist(DataSplit::kTrain);
    EXPECT_TRUE(train.ok()) << train.status();
    return new LabeledData(RandomSubset(*train, 2048, /*seed=*/3));
  }();
  return *data;
}

const LabeledData& TestImages() {
  static const LabeledData* data = [] {
    absl::StatusOr<LabeledData> test = LoadFashionMnist(DataSplit::kTest);
    EXPECT_TRUE(test.ok()) << test.status();
    return new LabeledData(Slice(*test, 0, 512));
  }();
  return *data;
}

QuantizationOptions QatOptions(bool learnable_scales) {
  QuantizationOptions options;
  options.method = QuantizationMethod::kQat;
  options.use_polaris_ops = false;
  options.show_progress = false;
  options.calibration_examples = 512;
  options.qat.max_steps = 24;
  options.qat.batch_size = 64;
  options.qat.learning_rate = 0.01;
  options.qat.learnable_scales = learnable_scales;
  return options;
}

// A LeNet trained briefly in float, so that QAT starts from a model that classifies.
torch::jit::Module TrainedLeNet() {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 11);
  EXPECT_TRUE(model.ok()) << model.status();
  TrainOptions train;
  train.max_steps = 100;
  train.batch_size = 64;
  train.optimizer = OptimizerKind::kAdam;
  train.learning_rate = 2e-3;
  train.show_progress = false;
  EXPECT_TRUE(Train(*model, TrainImages(), train).ok());
  return *model;
}

at::Tensor Forward(torch::jit::Module& model, const at::Tensor& input) {
  at::NoGradGuard no_grad;
  model.eval();
  at::Tensor output = model.forward({input}).toTensor();
  return output.is_quantized() ? output.dequantize() : output;
}

void TrainQat(QatModel& qat, const QuantizationOptions& options) {
  TrainOptions train;
  train.max_steps = options.qat.max_steps;
  train.batch_size = options.qat.batch_size;
  train.learning_rate = options.qat.learning_rate;
  train.show_progress = false;
  train.after_step = QatAfterStepHook(qat);
  absl::StatusOr<TrainResult> trained = Train(qat.module, TrainImages(), train);
  ASSERT_TRUE(trained.ok()) << trained.status();
}

// The int8 model computes in integers what the QAT module simulates in float, so the two
// differ only by rounding of accumulators and requantization: their outputs agree to within a
// few quantization steps of the logits.
TEST(ConvertQat, MatchesTheFakeQuantizedModel) {
  at::manual_seed(polaris::testing::TestSeed());
  torch::jit::Module model = TrainedLeNet();
  for (bool learnable : {false, true}) {
    const QuantizationOptions options = QatOptions(learnable);
    absl::StatusOr<QatModel> qat = PrepareQat(model, options, TrainImages());
    ASSERT_TRUE(qat.ok()) << qat.status();
    TrainQat(*qat, options);
    absl::StatusOr<QuantizationResult> result = ConvertQat(*qat, TrainImages());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->layers.size(), 5u);

    const at::Tensor simulated = Forward(qat->module, TestImages().inputs);
    const at::Tensor int8 = Forward(result->model, TestImages().inputs);
    absl::StatusOr<QuantizationError> error = MeasureQuantizationError(simulated, int8);
    ASSERT_TRUE(error.ok()) << error.status();
    EXPECT_GT(error->sqnr_db, 25) << "learnable scales " << learnable;
    const double agreement =
        simulated.argmax(1).eq(int8.argmax(1)).to(at::kDouble).mean().item<double>();
    EXPECT_GE(agreement, 0.97) << "learnable scales " << learnable;
  }
}

TEST(PrepareQat, LearnsScalesWithLsq) {
  at::manual_seed(polaris::testing::TestSeed());
  torch::jit::Module model = TrainedLeNet();
  const QuantizationOptions options = QatOptions(/*learnable_scales=*/true);
  absl::StatusOr<QatModel> qat = PrepareQat(model, options, TrainImages());
  ASSERT_TRUE(qat.ok()) << qat.status();

  std::map<std::string, at::Tensor> before;
  for (const auto& parameter : qat->module.named_parameters()) {
    if (parameter.name.find("scale") != std::string::npos) {
      before[parameter.name] = parameter.value.detach().clone();
    }
  }
  // One activation scale per site and one weight scale tensor per int8 layer.
  EXPECT_GE(before.size(), 10u);
  TrainQat(*qat, options);
  int changed = 0;
  for (const auto& parameter : qat->module.named_parameters()) {
    const auto it = before.find(parameter.name);
    if (it == before.end()) continue;
    EXPECT_GT(parameter.value.min().item<float>(), 0) << parameter.name;
    changed += !at::equal(parameter.value, it->second);
  }
  EXPECT_GT(changed, static_cast<int>(before.size()) / 2);
}

TEST(QuantizeModel, QatGivesTheStaticInt8Structure) {
  at::manual_seed(polaris::testing::TestSeed());
  torch::jit::Module model = TrainedLeNet();
  absl::StatusOr<std::string> before = SerializeModel(model);
  ASSERT_TRUE(before.ok());

  absl::StatusOr<QuantizationResult> result =
      QuantizeModel(model, QatOptions(false), TrainImages());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->qat.steps, 24);
  EXPECT_GT(result->qat.seconds, 0);
  ASSERT_EQ(result->layers.size(), 5u);
  for (const LayerReport& layer : result->layers) {
    EXPECT_EQ(layer.precision, LayerPrecision::kInt8) << layer.name;
  }
  std::map<std::string, int> ops;
  const std::shared_ptr<torch::jit::Graph> graph = InlinedForwardGraph(result->model);
  for (const torch::jit::Node* node : graph->nodes()) {
    ++ops[node->kind().toQualString()];
  }
  EXPECT_EQ(ops["aten::quantize_per_tensor"], 1);
  EXPECT_EQ(ops["aten::dequantize"], 1);
  EXPECT_EQ(ops["quantized::conv2d_relu"], 2);
  EXPECT_EQ(ops["quantized::linear_relu"], 2);
  EXPECT_EQ(ops["aten::fake_quantize_per_tensor_affine"], 0);

  absl::StatusOr<std::string> after = SerializeModel(model);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*before == *after);
}

TEST(QuantizeModel, QatRejectsLabelsOutsideTheClasses) {
  torch::jit::Module model = TrainedLeNet();
  LabeledData data = Slice(TrainImages(), 0, 128);
  data.labels = data.labels.clone();
  data.labels[7] = 10;
  const absl::Status status = QuantizeModel(model, QatOptions(false), data).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST(QuantizeModel, QatRejectsInvalidSettings) {
  torch::jit::Module model = TrainedLeNet();
  QuantizationOptions options = QatOptions(false);
  options.qat.learning_rate = -1;
  absl::Status status = QuantizeModel(model, options, TrainImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("learning rate"), absl::string_view::npos) << status;

  options = QatOptions(false);
  options.qat.epochs = 0;
  options.qat.max_steps = 0;
  status = QuantizeModel(model, options, TrainImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

}  // namespace
}  // namespace polaris::quantization
