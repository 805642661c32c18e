#include "quantization/model_quantization.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_split.h"
#include "core/fashion_mnist.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/tensor_file.h"
#include "core/testing/python_test_util.h"
#include "core/testing/test_seed.h"
#include "core/trainer.h"
#include "gtest/gtest.h"
#include "quantization/error_metrics.h"

namespace polaris::quantization {
namespace {

constexpr char kScript[] = "quantization/testing/make_test_models.py";

torch::jit::Module MakePythonModel(const std::string& kind, const std::string& how) {
  const std::string path = polaris::testing::TempPath(kind + "_" + how + ".pt");
  absl::StatusOr<std::string> output = polaris::testing::RunPython(kScript, {kind, how, path});
  EXPECT_TRUE(output.ok()) << output.status();
  absl::StatusOr<torch::jit::Module> model = LoadModel(path);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

// The first 512 Fashion-MNIST test images: real inputs for calibration and comparisons.
const LabeledData& TestImages() {
  static const LabeledData* data = [] {
    absl::StatusOr<LabeledData> test = LoadFashionMnist(DataSplit::kTest);
    EXPECT_TRUE(test.ok()) << test.status();
    return new LabeledData(Slice(*test, 0, 512));
  }();
  return *data;
}

at::Tensor Forward(torch::jit::Module& model, const at::Tensor& input) {
  at::NoGradGuard no_grad;
  model.eval();
  return model.forward({input}).toTensor();
}

double Agreement(torch::jit::Module& a, torch::jit::Module& b, const at::Tensor& input) {
  const at::Tensor predictions_a = Forward(a, input).argmax(1);
  const at::Tensor predictions_b = Forward(b, input).argmax(1);
  return predictions_a.eq(predictions_b).to(at::kDouble).mean().item<double>();
}

std::map<std::string, int> CountOperators(const torch::jit::Module& model) {
  std::map<std::string, int> counts;
  std::shared_ptr<torch::jit::Graph> graph = InlinedForwardGraph(model);
  for (const torch::jit::Node* node : graph->nodes()) ++counts[node->kind().toQualString()];
  return counts;
}

QuantizationOptions StaticOptions() {
  QuantizationOptions options;
  options.use_polaris_ops = false;
  options.show_progress = false;
  options.calibration_examples = 512;
  return options;
}

// Trained-looking BatchNorm statistics, so that folding changes the weights.
void RandomizeBatchNorms(torch::jit::Module& model) {
  for (const std::string bn : {"bn1", "layer1.bn1", "layer1.bn2", "layer2.bn1", "layer2.bn2",
                               "layer2.shortcut_bn"}) {
    const int64_t channels = FindTensor(model, bn + ".running_mean")->numel();
    ASSERT_TRUE(SetTensor(model, bn + ".running_mean", at::randn({channels}) * 0.2).ok());
    ASSERT_TRUE(SetTensor(model, bn + ".running_var", at::rand({channels}) + 0.5).ok());
  }
}

const LayerReport* FindLayer(const QuantizationResult& result, const std::string& name) {
  for (const LayerReport& layer : result.layers) {
    if (layer.name == name) return &layer;
  }
  return nullptr;
}

TEST(QuantizeModel, StaticResidualCnnKeepsActivationsInInt8) {
  at::manual_seed(polaris::testing::TestSeed());
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 7);
  ASSERT_TRUE(model.ok()) << model.status();
  RandomizeBatchNorms(*model);
  absl::StatusOr<std::string> before = SerializeModel(*model);
  ASSERT_TRUE(before.ok()) << before.status();

  absl::StatusOr<QuantizationResult> result = QuantizeModel(*model, StaticOptions(), TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  // The caller's model is unchanged (its training flag included).
  absl::StatusOr<std::string> after = SerializeModel(*model);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(*before == *after);

  EXPECT_EQ(result->folded_batchnorm.size(), 6u);
  EXPECT_TRUE(result->skipped.empty());
  ASSERT_EQ(result->layers.size(), 7u);  // six convolutions and the Linear head
  for (const LayerReport& layer : result->layers) {
    EXPECT_EQ(layer.precision, LayerPrecision::kInt8) << layer.name;
    EXPECT_GT(layer.weight_sqnr_db, 30) << layer.name;
    EXPECT_GT(layer.output_sqnr_db, 15) << layer.name;
    EXPECT_GT(layer.weight_scales.min, 0) << layer.name;
    EXPECT_GT(layer.output_scale, 0) << layer.name;
    EXPECT_LT(layer.bytes_after, layer.bytes_before) << layer.name;
  }
  // Per-channel scales (float64) and zero points (int64) cost 16 bytes per channel, which
  // small layers feel; the model as a whole stores int8 weights.
  EXPECT_GT(result->weight_bytes_before, 3 * result->weight_bytes_after);
  EXPECT_EQ(FindLayer(*result, "conv1")->op, "quantized::conv2d_relu");
  EXPECT_EQ(FindLayer(*result, "layer1.conv2")->op, "quantized::conv2d");
  EXPECT_EQ(FindLayer(*result, "fc")->op, "quantized::linear");

  // One int8 region from the first convolution to the logits: one quantize, one dequantize,
  // residual adds fused with their ReLU, and no float convolution left.
  std::map<std::string, int> ops = CountOperators(result->model);
  EXPECT_EQ(ops["aten::quantize_per_tensor"], 1);
  EXPECT_EQ(ops["aten::dequantize"], 1);
  EXPECT_EQ(ops["quantized::add_relu"], 2);
  EXPECT_EQ(ops["aten::conv2d"], 0);
  EXPECT_EQ(ops["aten::linear"], 0);
  EXPECT_EQ(ops["aten::batch_norm"], 0);

  EXPECT_GT(result->output_sqnr_db, 15);
  EXPECT_GE(Agreement(*model, result->model, TestImages().inputs), 0.9);
}

TEST(QuantizeModel, StaticPythonModelsWithOddChannels) {
  at::manual_seed(polaris::testing::TestSeed());
  for (const std::string how : {"scripted", "traced"}) {
    torch::jit::Module model = MakePythonModel("odd-cnn", how);
    absl::StatusOr<QuantizationResult> result = QuantizeModel(model, StaticOptions(), TestImages());
    ASSERT_TRUE(result.ok()) << how << ": " << result.status();
    EXPECT_EQ(result->layers.size(), 5u) << how;
    for (const SkippedLayer& layer : result->skipped) {
      ADD_FAILURE() << how << ": " << layer.name << " skipped: " << layer.reason;
    }
    std::map<std::string, int> ops = CountOperators(result->model);
    EXPECT_EQ(ops["aten::quantize_per_tensor"], 1) << how;
    EXPECT_EQ(ops["aten::dequantize"], 1) << how;
    EXPECT_EQ(ops["quantized::linear_relu"], 1) << how;
    EXPECT_EQ(ops["aten::max_pool2d"], 1) << how;
    EXPECT_GT(result->output_sqnr_db, 15) << how;
    EXPECT_GE(Agreement(model, result->model, TestImages().inputs), 0.85) << how;
  }
}

TEST(QuantizeModel, UnsupportedLayersStayFloatWithReasons) {
  for (const std::string how : {"scripted", "traced"}) {
    torch::jit::Module model = MakePythonModel("unsupported", how);
    absl::StatusOr<QuantizationResult> result = QuantizeModel(model, StaticOptions(), TestImages());
    ASSERT_TRUE(result.ok()) << how << ": " << result.status();
    std::map<std::string, std::string> skipped;
    for (const SkippedLayer& layer : result->skipped) skipped[layer.name] = layer.reason;
    ASSERT_EQ(skipped.count("up"), 1u) << how;
    EXPECT_NE(skipped["up"].find("transposed"), std::string::npos) << skipped["up"];
    ASSERT_EQ(skipped.count("norm"), 1u) << how;
    EXPECT_NE(skipped["norm"].find("layer_norm"), std::string::npos) << skipped["norm"];
    ASSERT_NE(FindLayer(*result, "conv1"), nullptr) << how;
    ASSERT_NE(FindLayer(*result, "fc"), nullptr) << how;

    // Two int8 regions around the float layers: conv1 + pooling, then fc.
    std::map<std::string, int> ops = CountOperators(result->model);
    EXPECT_EQ(ops["aten::quantize_per_tensor"], 2) << how;
    EXPECT_EQ(ops["aten::dequantize"], 2) << how;
    EXPECT_EQ(ops["aten::layer_norm"], 1) << how;
    EXPECT_GT(result->output_sqnr_db, 15) << how;
  }
}

TEST(QuantizeModel, SavedFileLoadsInPythonAndPredictsTheSameClasses) {
  at::manual_seed(polaris::testing::TestSeed());
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 7);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<QuantizationResult> result = QuantizeModel(*model, StaticOptions(), TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string model_path = polaris::testing::TempPath("cnn_int8.pt");
  ASSERT_TRUE(SaveModel(result->model, model_path).ok());

  const std::string data_path = polaris::testing::TempPath("images.pt");
  ASSERT_TRUE(polaris::testing::RunPython(kScript, {"fashion-mnist-test", "64", data_path}).ok());
  absl::StatusOr<SavedDataSets> data = LoadSavedDataSets(data_path);
  ASSERT_TRUE(data.ok()) << data.status();
  absl::StatusOr<std::string> printed =
      polaris::testing::RunPython(kScript, {"predict", model_path, data_path});
  ASSERT_TRUE(printed.ok()) << printed.status();

  const at::Tensor expected = Forward(result->model, data->test.inputs).argmax(1);
  const std::vector<std::string> classes =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(*printed), ' ');
  ASSERT_EQ(static_cast<int64_t>(classes.size()), expected.size(0));
  for (size_t i = 0; i < classes.size(); ++i) {
    EXPECT_EQ(classes[i], std::to_string(expected[i].item<int64_t>())) << "example " << i;
  }
}

// Runs the Python checker on `model` and expects the classes C++ predicts.
void ExpectPythonPredictsTheSame(torch::jit::Module& model, const std::string& name,
                                 const std::string& ops_library) {
  const std::string model_path = polaris::testing::TempPath(name + ".pt");
  ASSERT_TRUE(SaveModel(model, model_path).ok());
  const std::string data_path = polaris::testing::TempPath(name + "_images.pt");
  ASSERT_TRUE(polaris::testing::RunPython(kScript, {"fashion-mnist-test", "64", data_path}).ok());
  absl::StatusOr<SavedDataSets> data = LoadSavedDataSets(data_path);
  ASSERT_TRUE(data.ok()) << data.status();
  std::vector<std::string> args = {"predict", model_path, data_path};
  if (!ops_library.empty()) args.push_back(ops_library);
  absl::StatusOr<std::string> printed = polaris::testing::RunPython(kScript, args);
  ASSERT_TRUE(printed.ok()) << name << ": " << printed.status();

  const at::Tensor expected = Forward(model, data->test.inputs).argmax(1);
  const std::vector<std::string> classes =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(*printed), ' ');
  ASSERT_EQ(static_cast<int64_t>(classes.size()), expected.size(0)) << name;
  for (size_t i = 0; i < classes.size(); ++i) {
    EXPECT_EQ(classes[i], std::to_string(expected[i].item<int64_t>()))
        << name << ", example " << i;
  }
}

constexpr char kOpsLibrary[] = "quantization/libpolaris_quantization_ops.so";

TEST(QuantizeModel, StaticWithPolarisOpsMatchesLibTorchOps) {
  at::manual_seed(polaris::testing::TestSeed());
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 7);
  ASSERT_TRUE(model.ok()) << model.status();
  RandomizeBatchNorms(*model);
  QuantizationOptions options = StaticOptions();
  options.use_polaris_ops = true;
  absl::StatusOr<QuantizationResult> fast = QuantizeModel(*model, options, TestImages());
  ASSERT_TRUE(fast.ok()) << fast.status();
  absl::StatusOr<QuantizationResult> stock = QuantizeModel(*model, StaticOptions(), TestImages());
  ASSERT_TRUE(stock.ok()) << stock.status();

  std::map<std::string, int> ops = CountOperators(fast->model);
  EXPECT_EQ(ops["polaris::quant_quantize_per_tensor"], 1);
  EXPECT_EQ(ops["polaris::quant_dequantize"], 1);
  EXPECT_EQ(ops["aten::quantize_per_tensor"], 0);
  EXPECT_EQ(ops["aten::dequantize"], 0);
  // Both quantize with round-half-even of x / scale; only ties broken differently by the
  // multiplication by 1 / scale can differ, so the outputs agree closely.
  absl::StatusOr<QuantizationError> error = MeasureQuantizationError(
      Forward(stock->model, TestImages().inputs), Forward(fast->model, TestImages().inputs));
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_GT(error->sqnr_db, 40);

  ExpectPythonPredictsTheSame(fast->model, "cnn_polaris_ops", kOpsLibrary);
}

torch::jit::Module TrainedMlp() {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 7);
  EXPECT_TRUE(model.ok()) << model.status();
  TrainOptions train;
  train.max_steps = 30;
  train.batch_size = 64;
  train.optimizer = OptimizerKind::kAdam;
  train.learning_rate = 1e-3;
  train.show_progress = false;
  EXPECT_TRUE(Train(*model, TestImages(), train).ok());
  return *model;
}

TEST(QuantizeModel, DynamicInt8LinearLayers) {
  at::manual_seed(polaris::testing::TestSeed());
  torch::jit::Module model = TrainedMlp();
  QuantizationOptions options = StaticOptions();
  options.method = QuantizationMethod::kDynamic;
  absl::StatusOr<QuantizationResult> result = QuantizeModel(model, options, TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->layers.size(), 2u);
  for (const LayerReport& layer : result->layers) {
    EXPECT_EQ(layer.op, "polaris::quant_linear_int8_dynamic") << layer.name;
    EXPECT_GT(layer.weight_sqnr_db, 35) << layer.name;
  }
  // Per-call input ranges keep the logits close to float32's.
  EXPECT_GT(result->output_sqnr_db, 30);
  EXPECT_GE(Agreement(model, result->model, TestImages().inputs), 0.97);
  EXPECT_EQ(CountOperators(result->model)["aten::linear"], 0);

  // Convolutions stay float under dynamic quantization, and say so.
  absl::StatusOr<torch::jit::Module> cnn = MakeReferenceModel(ReferenceModel::kLeNet, 7);
  ASSERT_TRUE(cnn.ok()) << cnn.status();
  absl::StatusOr<QuantizationResult> lenet = QuantizeModel(*cnn, options, TestImages());
  ASSERT_TRUE(lenet.ok()) << lenet.status();
  EXPECT_EQ(lenet->layers.size(), 3u);
  ASSERT_EQ(lenet->skipped.size(), 2u);
  EXPECT_NE(lenet->skipped[0].reason.find("Linear layers only"), std::string::npos);
  ExpectPythonPredictsTheSame(result->model, "mlp_dynamic", kOpsLibrary);
}

TEST(QuantizeModel, Int4WeightOnlyStoresPackedBytes) {
  at::manual_seed(polaris::testing::TestSeed());
  torch::jit::Module model = TrainedMlp();
  QuantizationOptions options = StaticOptions();
  options.method = QuantizationMethod::kWeightOnlyInt4;
  options.weight_bits = 4;
  options.group_size = 112;
  options.layer_group_sizes["fc2"] = 128;
  absl::StatusOr<QuantizationResult> result = QuantizeModel(model, options, TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->layers.size(), 2u);
  const LayerReport& fc1 = result->layers[0];
  EXPECT_EQ(fc1.op, "polaris::quant_linear_int4");
  EXPECT_EQ(fc1.precision, LayerPrecision::kInt4);
  // 256 x 784 weights at half a byte, 256 x 7 float scales and uint8 zero points, the bias.
  EXPECT_EQ(fc1.bytes_after, 256 * 784 / 2 + 256 * 7 * (4 + 1) + 256 * 4);
  EXPECT_EQ(fc1.weight_scales.count, 256 * 7);
  EXPECT_GT(fc1.weight_sqnr_db, 15);
  EXPECT_GT(result->output_sqnr_db, 15);
  EXPECT_GE(Agreement(model, result->model, TestImages().inputs), 0.9);

  // The saved file stores the packed bytes: the MLP's 203,530 float weights take 814 KB.
  absl::StatusOr<std::string> bytes = SerializeModel(result->model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_LT(bytes->size(), 140000u);
  ExpectPythonPredictsTheSame(result->model, "mlp_int4", kOpsLibrary);

  options.layer_group_sizes.clear();
  options.group_size = 64;
  const absl::Status status = QuantizeModel(model, options, TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("group size 64 does not divide the input size 784"),
            absl::string_view::npos)
      << status;
}

TEST(QuantizeModel, ConstantAndZeroChannelsGetValidScales) {
  at::manual_seed(polaris::testing::TestSeed());
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 7);
  ASSERT_TRUE(model.ok()) << model.status();
  {
    at::NoGradGuard no_grad;
    at::Tensor weight = *FindTensor(*model, "conv2.weight");
    weight[0].zero_();      // an all-zero channel, as pruning leaves
    weight[1].fill_(0.25);  // a constant channel
  }
  absl::StatusOr<QuantizationResult> result = QuantizeModel(*model, StaticOptions(), TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  const LayerReport* conv2 = FindLayer(*result, "conv2");
  ASSERT_NE(conv2, nullptr);
  EXPECT_GT(conv2->weight_scales.min, 0);
  EXPECT_TRUE(std::isfinite(conv2->weight_scales.max));
  EXPECT_GT(conv2->weight_sqnr_db, 30);
  EXPECT_GT(result->output_sqnr_db, 15);
}

TEST(QuantizeModel, RejectsBadCalibrationData) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 7);
  ASSERT_TRUE(model.ok()) << model.status();

  LabeledData empty;
  empty.inputs = at::zeros({0, 1, 28, 28});
  empty.labels = at::zeros({0}, at::kLong);
  absl::Status status = QuantizeModel(*model, StaticOptions(), empty).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("no examples"), absl::string_view::npos) << status;

  LabeledData with_nan = Slice(TestImages(), 0, 16);
  with_nan.inputs = with_nan.inputs.clone();
  with_nan.inputs[5][0][3][3] = std::numeric_limits<float>::quiet_NaN();
  status = QuantizeModel(*model, StaticOptions(), with_nan).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("example 5"), absl::string_view::npos) << status;

  LabeledData with_inf = Slice(TestImages(), 0, 16);
  with_inf.inputs = with_inf.inputs.clone();
  with_inf.inputs[2][0][0][0] = std::numeric_limits<float>::infinity();
  status = QuantizeModel(*model, StaticOptions(), with_inf).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("example 2"), absl::string_view::npos) << status;
}

TEST(QuantizeModel, RejectsNonFiniteWeights) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 7);
  ASSERT_TRUE(model.ok()) << model.status();
  {
    at::NoGradGuard no_grad;
    (*FindTensor(*model, "fc2.weight"))[3][7] = std::numeric_limits<float>::infinity();
  }
  const absl::Status status = QuantizeModel(*model, StaticOptions(), TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("'fc2'"), absl::string_view::npos) << status;
}

TEST(QuantizeModel, RejectsInvalidOptions) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 7);
  ASSERT_TRUE(model.ok()) << model.status();

  QuantizationOptions bits = StaticOptions();
  bits.weight_bits = 3;
  absl::Status status = QuantizeModel(*model, bits, TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("got 3"), absl::string_view::npos) << status;

  QuantizationOptions int4_static = StaticOptions();
  int4_static.weight_bits = 4;
  status = QuantizeModel(*model, int4_static, TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;

  for (double percentile : {0.0, -1.0, 100.5}) {
    QuantizationOptions options = StaticOptions();
    options.activation_calibration.method = CalibrationMethod::kPercentile;
    options.activation_calibration.percentile = percentile;
    status = QuantizeModel(*model, options, TestImages()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << percentile << ": " << status;
    EXPECT_NE(status.message().find("percentile"), absl::string_view::npos) << status;
  }
  QuantizationOptions percentile_100 = StaticOptions();
  percentile_100.activation_calibration.method = CalibrationMethod::kPercentile;
  percentile_100.activation_calibration.percentile = 100;
  EXPECT_TRUE(QuantizeModel(*model, percentile_100, TestImages()).ok());

  QuantizationOptions unknown_layer = StaticOptions();
  unknown_layer.skip_layers = {"fc3"};
  status = QuantizeModel(*model, unknown_layer, TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("'fc3'"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("fc1, fc2"), absl::string_view::npos) << status;
}

TEST(QuantizeModel, SkipListKeepsLayersInFloat) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 7);
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizationOptions options = StaticOptions();
  options.skip_layers = {"fc2"};
  absl::StatusOr<QuantizationResult> result = QuantizeModel(*model, options, TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->layers.size(), 1u);
  EXPECT_EQ(result->layers[0].name, "fc1");
  EXPECT_EQ(result->layers[0].op, "quantized::linear_relu");
  ASSERT_EQ(result->skipped.size(), 1u);
  EXPECT_EQ(result->skipped[0].name, "fc2");
  EXPECT_EQ(result->skipped[0].reason, "listed in skip_layers");
  EXPECT_EQ(CountOperators(result->model)["aten::linear"], 1);

  options.skip_layers = {"fc1", "fc2"};
  const absl::Status status = QuantizeModel(*model, options, TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("no layer"), absl::string_view::npos) << status;
}

TEST(QuantizeModel, LayersInControlFlowStayFloat) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Branching");
  model.register_module("fc1", MakeScriptLinear(unit, 784, 64, /*bias=*/true));
  model.register_module("fc2", MakeScriptLinear(unit, 64, 10, /*bias=*/true));
  model.register_module("fc3", MakeScriptLinear(unit, 64, 10, /*bias=*/true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    h = torch.relu(self.fc1.forward(torch.flatten(x, 1)))
    if bool(h.sum() > 0.0):
        y = self.fc2.forward(h)
    else:
        y = self.fc3.forward(h)
    return y
)");
  absl::StatusOr<QuantizationResult> result = QuantizeModel(model, StaticOptions(), TestImages());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->layers.size(), 1u);
  EXPECT_EQ(result->layers[0].name, "fc1");
  ASSERT_EQ(result->skipped.size(), 2u);
  for (const SkippedLayer& layer : result->skipped) {
    EXPECT_NE(layer.reason.find("inside an if or a loop"), std::string::npos) << layer.reason;
  }
  EXPECT_GT(result->output_sqnr_db, 20);

  // Dynamic quantization rewrites layers in place, so it reaches the branches too.
  QuantizationOptions dynamic = StaticOptions();
  dynamic.method = QuantizationMethod::kDynamic;
  absl::StatusOr<QuantizationResult> converted = QuantizeModel(model, dynamic, TestImages());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->layers.size(), 3u);
  EXPECT_TRUE(converted->skipped.empty());
  at::NoGradGuard no_grad;
  absl::StatusOr<QuantizationError> error = MeasureQuantizationError(
      model.forward({TestImages().inputs}).toTensor(),
      converted->model.forward({TestImages().inputs}).toTensor());
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_GT(error->sqnr_db, 25);
}

TEST(QuantizeModel, RejectsModelWithoutQuantizableLayers) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "PoolOnly");
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.flatten(torch.adaptive_avg_pool2d(x, [2, 5]), 1)
)");
  const absl::Status status = QuantizeModel(model, StaticOptions(), TestImages()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("no Linear or convolution layer"), absl::string_view::npos)
      << status;
}

}  // namespace
}  // namespace polaris::quantization
