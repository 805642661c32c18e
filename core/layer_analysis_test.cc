#include "core/layer_analysis.h"

#include <memory>

#include "ATen/Functions.h"
#include "core/graph_utils.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(AnalyzeModel, FindsLeNetLayersWithShapesAndMacs) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(*model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  ASSERT_EQ(analysis->layers.size(), 5u);

  const LayerInfo& conv2 = analysis->layers[1];
  EXPECT_EQ(conv2.name, "conv2");
  EXPECT_EQ(conv2.kind, LayerKind::kConv2d);
  EXPECT_EQ(conv2.weight_path, "conv2.weight");
  EXPECT_EQ(conv2.bias_path, "conv2.bias");
  EXPECT_EQ(conv2.input_shape, std::vector<int64_t>({1, 6, 14, 14}));
  EXPECT_EQ(conv2.output_shape, std::vector<int64_t>({1, 16, 10, 10}));
  EXPECT_EQ(conv2.stride, std::vector<int64_t>({1, 1}));
  EXPECT_EQ(conv2.macs, 16 * 10 * 10 * 6 * 25);

  const LayerInfo& fc1 = analysis->layers[2];
  EXPECT_EQ(fc1.kind, LayerKind::kLinear);
  EXPECT_EQ(fc1.macs, 400 * 120);
  EXPECT_EQ(fc1.parameters, 400 * 120 + 120);
  EXPECT_FALSE(analysis->has_residual_add);
  EXPECT_FALSE(analysis->has_control_flow);
  EXPECT_EQ(analysis->operator_counts.at("aten::max_pool2d"), 2);
}

TEST(AnalyzeModel, ReportsControlFlowLayersWithoutShapes) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Branchy");
  model.register_module("fc", MakeScriptLinear(unit, 4, 2, true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    if bool(x.sum() > 0):
        return self.fc.forward(x)
    return self.fc.forward(x) * 2.0
)");
  absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(model, at::ones({1, 4}));
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  EXPECT_TRUE(analysis->has_control_flow);
  ASSERT_EQ(analysis->layers.size(), 2u);
  EXPECT_TRUE(analysis->layers[0].in_control_flow);
  EXPECT_EQ(analysis->layers[0].macs, -1);
}

TEST(AnalyzeModel, ExampleOfWrongShapeIsInvalidArgument) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  const absl::Status status = AnalyzeModel(*model, at::zeros({1, 3, 32, 32})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("3072"), absl::string_view::npos) << status;
}

TEST(GraphUtils, ConstantInputIsEmptyForComputedValues) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(model.ok());
  std::shared_ptr<torch::jit::Graph> graph = InlinedForwardGraph(*model);
  int convolutions = 0;
  for (torch::jit::Node* node : graph->nodes()) {
    if (node->kind() != c10::aten::conv2d) continue;
    ++convolutions;
    // Input 0 is an activation, input 6 the constant group count.
    EXPECT_FALSE(ConstantInput(node, 0).has_value());
    std::optional<c10::IValue> groups = ConstantInput(node, 6);
    ASSERT_TRUE(groups.has_value());
    EXPECT_EQ(groups->toInt(), 1);
    EXPECT_FALSE(ConstantInput(node, 99).has_value());
  }
  EXPECT_EQ(convolutions, 2);
}

TEST(GraphUtils, FindsAndReplacesTensorsByPath) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<at::Tensor> weight = FindTensor(*model, "layer2.shortcut_conv.weight");
  ASSERT_TRUE(weight.ok()) << weight.status();
  EXPECT_EQ(weight->sizes(), at::IntArrayRef({64, 32, 1, 1}));
  ASSERT_TRUE(SetTensor(*model, "layer2.shortcut_conv.weight", at::zeros({64, 32, 1, 1})).ok());
  EXPECT_EQ(FindTensor(*model, "layer2.shortcut_conv.weight")->abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(FindTensor(*model, "layer9.conv1.weight").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(FindTensor(*model, "layer1.training").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris
