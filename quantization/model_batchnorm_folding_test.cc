#include "quantization/model_batchnorm_folding.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/python_test_util.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "quantization/internal/model_graph.h"

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

at::Tensor Forward(torch::jit::Module& model, const at::Tensor& input) {
  at::NoGradGuard no_grad;
  model.eval();
  return model.forward({input}).toTensor();
}

// Sum over the model's weight layers of the number of products each output element adds up,
// the accumulation depth of the float32 error model below.
int64_t AccumulationDepth(const torch::jit::Module& model) {
  int64_t depth = 0;
  for (const at::Tensor& parameter : model.parameters()) {
    if (parameter.dim() >= 2) depth += parameter.numel() / parameter.size(0);
  }
  return depth;
}

// Folding changes only float32 rounding: the folded weights are rounded once, and the
// convolution sums the same products in another order. Following the usual error model for
// float32 dot products, the difference stays within
// max|y| * epsilon * 64 * sqrt(depth), and its mean far below that.
void ExpectFoldedOutputsMatch(torch::jit::Module& original, torch::jit::Module& folded,
                              const std::string& name) {
  const at::Tensor input = at::randn({8, 1, 28, 28}).mul(1.3).add(0.2);
  const at::Tensor expected = Forward(original, input);
  const at::Tensor actual = Forward(folded, input);
  ASSERT_EQ(expected.sizes(), actual.sizes()) << name;

  const double epsilon = std::numeric_limits<float>::epsilon();
  const double depth = static_cast<double>(AccumulationDepth(original));
  const double scale = expected.abs().max().item<double>();
  const double tolerance = scale * epsilon * 64 * std::sqrt(depth);
  const at::Tensor error = (expected - actual).abs();
  const int64_t worst = error.flatten().argmax().item<int64_t>();
  EXPECT_LE(error.max().item<double>(), tolerance)
      << name << ": at flat index " << worst << " expected "
      << expected.flatten()[worst].item<float>() << ", got "
      << actual.flatten()[worst].item<float>() << " (output shape " << expected.sizes()
      << ", depth " << depth << ")";
  EXPECT_LE(error.mean().item<double>(), tolerance / 8) << name;
}

int CountBatchNorms(const torch::jit::Module& model) {
  std::shared_ptr<torch::jit::Graph> graph = InlinedForwardGraph(model);
  int count = 0;
  for (const torch::jit::Node* node : graph->nodes()) count += node->kind() == c10::aten::batch_norm;
  return count;
}

// Gives every BatchNorm of the reference CNN statistics and affine parameters far from the
// identity, as training leaves them.
void RandomizeBatchNorms(torch::jit::Module& model) {
  for (const std::string bn : {"bn1", "layer1.bn1", "layer1.bn2", "layer2.bn1", "layer2.bn2",
                               "layer2.shortcut_bn"}) {
    const int64_t channels = FindTensor(model, bn + ".running_mean")->numel();
    ASSERT_TRUE(SetTensor(model, bn + ".running_mean", at::randn({channels}) * 0.5).ok());
    ASSERT_TRUE(SetTensor(model, bn + ".running_var", at::rand({channels}) * 2 + 0.05).ok());
    at::NoGradGuard no_grad;
    FindTensor(model, bn + ".weight")->copy_(at::rand({channels}) + 0.5);
    FindTensor(model, bn + ".bias")->copy_(at::randn({channels}) * 0.3);
  }
}

TEST(FoldBatchNorm, FoldsEveryBatchNormOfTheResidualCnn) {
  at::manual_seed(polaris::testing::TestSeed());
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 5);
  ASSERT_TRUE(model.ok()) << model.status();
  RandomizeBatchNorms(*model);
  const at::Tensor conv1_before = FindTensor(*model, "conv1.weight")->clone();

  absl::StatusOr<BatchNormFoldingResult> result = FoldBatchNorm(*model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->folded.size(), 6u);
  EXPECT_TRUE(result->not_folded.empty());
  EXPECT_EQ(CountBatchNorms(result->model), 0);
  bool found_shortcut = false;
  for (const FoldedBatchNorm& folded : result->folded) {
    if (folded.batch_norm == "layer2.shortcut_bn") {
      EXPECT_EQ(folded.layer, "layer2.shortcut_conv");
      found_shortcut = true;
    }
  }
  EXPECT_TRUE(found_shortcut);
  // The folded convolutions had no bias and now have one.
  EXPECT_TRUE(result->model.hasattr("conv1_bias"));
  ExpectFoldedOutputsMatch(*model, result->model, "cnn");

  // The caller's model keeps its weights and its BatchNorm layers.
  EXPECT_TRUE(at::equal(*FindTensor(*model, "conv1.weight"), conv1_before));
  EXPECT_EQ(CountBatchNorms(*model), 6);
}

TEST(FoldBatchNorm, FoldsScriptedAndTracedPythonModels) {
  at::manual_seed(polaris::testing::TestSeed());
  for (const std::string how : {"scripted", "traced"}) {
    torch::jit::Module model = MakePythonModel("odd-cnn", how);
    absl::StatusOr<BatchNormFoldingResult> result =
        FoldBatchNorm(model, at::zeros({2, 1, 28, 28}));
    ASSERT_TRUE(result.ok()) << how << ": " << result.status();
    // bn1 (conv with bias), bn2 (depthwise), bn3 (odd channel count 13), bn4 (BatchNorm1d
    // after Linear).
    EXPECT_EQ(result->folded.size(), 4u) << how;
    for (const UnfoldedBatchNorm& unfolded : result->not_folded) {
      ADD_FAILURE() << how << ": " << unfolded.batch_norm << " not folded: " << unfolded.reason;
    }
    EXPECT_EQ(CountBatchNorms(result->model), 0) << how;
    ExpectFoldedOutputsMatch(model, result->model, how);

    // The folded model survives saving and loading.
    absl::StatusOr<std::string> bytes = SerializeModel(result->model);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<torch::jit::Module> loaded = LoadModelFromBytes(*bytes, "folded");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ExpectFoldedOutputsMatch(model, *loaded, how + " reloaded");
  }
}

TEST(FoldBatchNorm, LinearNeedsAnExampleInput) {
  torch::jit::Module model = MakePythonModel("odd-cnn", "scripted");
  absl::StatusOr<BatchNormFoldingResult> result = FoldBatchNorm(model, at::Tensor());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->folded.size(), 3u);
  ASSERT_EQ(result->not_folded.size(), 1u);
  EXPECT_EQ(result->not_folded[0].batch_norm, "bn4");
  EXPECT_NE(result->not_folded[0].reason.find("example input"), std::string::npos)
      << result->not_folded[0].reason;
  ExpectFoldedOutputsMatch(model, result->model, "odd-cnn without example");
}

torch::jit::Module MakeBatchNormAfterRelu() {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "BatchNormAfterRelu");
  model.register_module("conv", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 4}));
  model.register_module("bn", MakeScriptBatchNorm2d(unit, 4));
  model.register_module("fc", MakeScriptLinear(unit, 4 * 26 * 26, 10, /*bias=*/true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    x = self.bn.forward(torch.relu(self.conv.forward(x)))
    return self.fc.forward(torch.flatten(x, 1))
)");
  model.eval();
  return model;
}

TEST(FoldBatchNorm, LeavesBatchNormAfterActivation) {
  torch::jit::Module model = MakeBatchNormAfterRelu();
  ASSERT_TRUE(SetTensor(model, "bn.running_var", at::full({4}, 2.0)).ok());
  absl::StatusOr<BatchNormFoldingResult> result = FoldBatchNorm(model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->folded.empty());
  ASSERT_EQ(result->not_folded.size(), 1u);
  EXPECT_EQ(result->not_folded[0].batch_norm, "bn");
  EXPECT_NE(result->not_folded[0].reason.find("not the output of a convolution"),
            std::string::npos)
      << result->not_folded[0].reason;
  EXPECT_EQ(CountBatchNorms(result->model), 1);
  ExpectFoldedOutputsMatch(model, result->model, "batch norm after relu");
}

TEST(FoldBatchNorm, RejectsNonFiniteStatistics) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 5);
  ASSERT_TRUE(model.ok()) << model.status();
  at::Tensor variance = at::ones({32});
  variance[3] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(SetTensor(*model, "layer1.bn2.running_var", variance).ok());

  const absl::Status status = FoldBatchNorm(*model, at::zeros({1, 1, 28, 28})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("layer1.bn2"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("NaN"), absl::string_view::npos) << status;
}

TEST(FoldBatchNorm, RejectsNegativeVariance) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 5);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(SetTensor(*model, "bn1.running_var", at::full({32}, -1.0)).ok());
  const absl::Status status = FoldBatchNorm(*model, at::zeros({1, 1, 28, 28})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("'bn1'"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace polaris::quantization
