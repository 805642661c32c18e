#include "pruning/channel_dependency.h"

#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_join.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/python_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kScript[] = "pruning/testing/make_pruning_models.py";

ChannelDependencies Analyze(const torch::jit::Module& model, const at::Tensor& example) {
  absl::StatusOr<ChannelDependencies> dependencies = AnalyzeChannelDependencies(model, example);
  EXPECT_TRUE(dependencies.ok()) << dependencies.status();
  return dependencies.ok() ? *dependencies : ChannelDependencies{};
}

const ChannelGroup& GroupOf(const ChannelDependencies& dependencies, const std::string& layer) {
  const ChannelGroup* group = FindGroupByProducer(dependencies, layer);
  static const ChannelGroup* const kMissing = new ChannelGroup();
  EXPECT_NE(group, nullptr) << "no group has producer " << layer << "\n"
                            << FormatChannelDependencies(dependencies);
  return group == nullptr ? *kMissing : *group;
}

std::string Reasons(const ChannelGroup& group) { return absl::StrJoin(group.reasons, "; "); }

TEST(AnalyzeChannelDependencies, ResidualCnnTiesChannelsAcrossAdds) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  ASSERT_TRUE(model.ok());
  const ChannelDependencies dependencies = Analyze(*model, at::zeros({1, 1, 28, 28}));
  ASSERT_EQ(dependencies.groups.size(), 5u) << FormatChannelDependencies(dependencies);

  const ChannelGroup& stem = GroupOf(dependencies, "conv1");
  EXPECT_TRUE(stem.prunable) << Reasons(stem);
  EXPECT_EQ(stem.channels, 32);
  EXPECT_THAT(stem.producers, ElementsAre("conv1", "layer1.conv2"));
  EXPECT_THAT(stem.normalizations, UnorderedElementsAre("bn1", "layer1.bn2"));
  EXPECT_THAT(stem.consumers,
              UnorderedElementsAre("layer1.conv1", "layer2.conv1", "layer2.shortcut_conv"));

  const ChannelGroup& inner = GroupOf(dependencies, "layer1.conv1");
  EXPECT_TRUE(inner.prunable) << Reasons(inner);
  EXPECT_THAT(inner.consumers, ElementsAre("layer1.conv2"));
  EXPECT_THAT(inner.normalizations, ElementsAre("layer1.bn1"));

  const ChannelGroup& last = GroupOf(dependencies, "layer2.conv2");
  EXPECT_TRUE(last.prunable) << Reasons(last);
  EXPECT_EQ(last.channels, 64);
  EXPECT_THAT(last.producers, ElementsAre("layer2.conv2", "layer2.shortcut_conv"));
  EXPECT_THAT(last.consumers, ElementsAre("fc"));
  ASSERT_EQ(last.consumer_tensors.size(), 1u);
  EXPECT_EQ(last.consumer_tensors[0].path, "fc.weight");
  EXPECT_EQ(last.consumer_tensors[0].dim, 1);
  // avg_pool2d halves 14x14 to 7x7 before the flatten.
  EXPECT_EQ(last.consumer_tensors[0].block, 49);

  const ChannelGroup& head = GroupOf(dependencies, "fc");
  EXPECT_FALSE(head.prunable);
  EXPECT_THAT(Reasons(head), HasSubstr("model's output"));
}

TEST(AnalyzeChannelDependencies, LeNetFollowsFlattenIntoLinear) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(model.ok());
  const ChannelDependencies dependencies = Analyze(*model, at::zeros({2, 1, 28, 28}));
  ASSERT_EQ(dependencies.groups.size(), 5u);
  const ChannelGroup& conv2 = GroupOf(dependencies, "conv2");
  EXPECT_TRUE(conv2.prunable) << Reasons(conv2);
  ASSERT_EQ(conv2.consumer_tensors.size(), 1u);
  EXPECT_EQ(conv2.consumer_tensors[0].path, "fc1.weight");
  EXPECT_EQ(conv2.consumer_tensors[0].block, 25);
  EXPECT_TRUE(GroupOf(dependencies, "fc1").prunable);
  EXPECT_TRUE(GroupOf(dependencies, "fc2").prunable);
  EXPECT_FALSE(GroupOf(dependencies, "fc3").prunable);
}

TEST(AnalyzeChannelDependencies, MlpHiddenLayerIsPrunable) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  const ChannelDependencies dependencies = Analyze(*model, at::zeros({1, 1, 28, 28}));
  const ChannelGroup& hidden = GroupOf(dependencies, "fc1");
  EXPECT_TRUE(hidden.prunable) << Reasons(hidden);
  EXPECT_EQ(hidden.channels, 256);
  EXPECT_THAT(hidden.consumers, ElementsAre("fc2"));
  // The input features of fc1 are the model's input pixels and are never pruned.
  for (const ChannelTensorSlice& slice : hidden.consumer_tensors)
    EXPECT_NE(slice.path, "fc1.weight");
}

TEST(AnalyzeChannelDependencies, ConcatenationIsFixed) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Concat");
  model.register_module("a", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 4}));
  model.register_module("b", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 4}));
  model.register_module("c", MakeScriptConv2d(unit, {.in_channels = 8, .out_channels = 2}));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    y = torch.cat([self.a.forward(x), self.b.forward(x)], 1)
    return self.c.forward(y)
)");
  const ChannelDependencies dependencies = Analyze(model, at::zeros({1, 1, 8, 8}));
  const ChannelGroup& a = GroupOf(dependencies, "a");
  EXPECT_FALSE(a.prunable);
  EXPECT_THAT(Reasons(a), HasSubstr("aten::cat"));
  EXPECT_FALSE(GroupOf(dependencies, "b").prunable);
}

TEST(AnalyzeChannelDependencies, GroupedConvolutionIsFixed) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Depthwise");
  model.register_module("a", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 4}));
  model.register_module("dw",
                        MakeScriptConv2d(unit, {.in_channels = 4, .out_channels = 4, .groups = 4}));
  model.register_module("c", MakeScriptConv2d(unit, {.in_channels = 4, .out_channels = 2}));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return self.c.forward(torch.relu(self.dw.forward(self.a.forward(x))))
)");
  const ChannelDependencies dependencies = Analyze(model, at::zeros({1, 1, 12, 12}));
  const ChannelGroup& a = GroupOf(dependencies, "a");
  EXPECT_FALSE(a.prunable);
  EXPECT_THAT(Reasons(a), HasSubstr("groups=4"));
  EXPECT_FALSE(GroupOf(dependencies, "dw").prunable);
}

TEST(AnalyzeChannelDependencies, ControlFlowOnChannelsIsFixed) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Branchy");
  model.register_module("a", MakeScriptLinear(unit, 4, 6, true));
  model.register_module("b", MakeScriptLinear(unit, 4, 6, true));
  model.register_module("c", MakeScriptLinear(unit, 6, 2, true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    h = self.a.forward(x)
    if bool(x.sum() > 0):
        h = h * 2.0
    return self.c.forward(torch.relu(h) + self.b.forward(x))
)");
  const ChannelDependencies dependencies = Analyze(model, at::ones({1, 4}));
  const ChannelGroup& a = GroupOf(dependencies, "a");
  EXPECT_FALSE(a.prunable);
  EXPECT_THAT(Reasons(a), HasSubstr("control flow"));
  // b is added to a's channels after the branch, so it is fixed with them.
  EXPECT_FALSE(GroupOf(dependencies, "b").prunable);
}

TEST(AnalyzeChannelDependencies, ReshapeWithConstantSizesIsFixed) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "ConstantView");
  model.register_module("conv", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 4}));
  model.register_module("fc", MakeScriptLinear(unit, 4 * 6 * 6, 3, true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return self.fc.forward(self.conv.forward(x).view(-1, 144))
)");
  const ChannelDependencies dependencies = Analyze(model, at::zeros({2, 1, 8, 8}));
  const ChannelGroup& conv = GroupOf(dependencies, "conv");
  EXPECT_FALSE(conv.prunable);
  EXPECT_THAT(Reasons(conv), HasSubstr("aten::view"));
}

TEST(AnalyzeChannelDependencies, LayerCalledTwiceJoinsItsGroups) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Shared");
  model.register_module(
      "a", MakeScriptConv2d(unit, {.in_channels = 1, .out_channels = 6, .padding = 1}));
  model.register_module(
      "shared", MakeScriptConv2d(unit, {.in_channels = 6, .out_channels = 6, .padding = 1}));
  model.register_module("head", MakeScriptLinear(unit, 6, 3, true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    y = self.shared.forward(torch.relu(self.a.forward(x)))
    y = self.shared.forward(torch.relu(y))
    return self.head.forward(torch.mean(y, [2, 3]))
)");
  const ChannelDependencies dependencies = Analyze(model, at::zeros({1, 1, 8, 8}));
  const ChannelGroup& a = GroupOf(dependencies, "a");
  EXPECT_TRUE(a.prunable) << Reasons(a);
  EXPECT_THAT(a.producers, ElementsAre("a", "shared"));
  EXPECT_THAT(a.consumers, UnorderedElementsAre("shared", "head"));
}

TEST(AnalyzeChannelDependencies, WrongExampleShapeIsInvalidArgument) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<ChannelDependencies> dependencies =
      AnalyzeChannelDependencies(*model, at::zeros({1, 3, 28, 28}));
  EXPECT_EQ(dependencies.status().code(), absl::StatusCode::kInvalidArgument);
}

// Scripted and traced torch.nn models: Sequential, in-place ReLU, dropout, BatchNorm's shape
// checks (control flow that only reads the rank) and a flatten written as x.view(n, -1).
class PythonModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PythonModelTest, FindsTheSameGroups) {
  const std::string path = testing::TempPath(GetParam() + ".pt");
  absl::StatusOr<std::string> made = testing::RunPython(kScript, {GetParam(), path});
  ASSERT_TRUE(made.ok()) << made.status();
  absl::StatusOr<torch::jit::Module> model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const ChannelDependencies dependencies = Analyze(*model, at::zeros({1, 1, 28, 28}));

  const ChannelGroup& stem = GroupOf(dependencies, "stem.0");
  EXPECT_TRUE(stem.prunable) << Reasons(stem);
  EXPECT_THAT(stem.producers, ElementsAre("stem.0", "block.conv_b"));
  EXPECT_THAT(stem.normalizations, UnorderedElementsAre("stem.1", "block.norm_b"));
  EXPECT_THAT(stem.consumers, UnorderedElementsAre("block.conv_a", "widen"));
  EXPECT_TRUE(GroupOf(dependencies, "block.conv_a").prunable);

  const ChannelGroup& widen = GroupOf(dependencies, "widen");
  EXPECT_TRUE(widen.prunable) << Reasons(widen);
  ASSERT_EQ(widen.consumer_tensors.size(), 1u);
  EXPECT_EQ(widen.consumer_tensors[0].path, "hidden.weight");
  EXPECT_EQ(widen.consumer_tensors[0].block, 49);
  EXPECT_TRUE(GroupOf(dependencies, "hidden").prunable);
  EXPECT_FALSE(GroupOf(dependencies, "head").prunable);
}

INSTANTIATE_TEST_SUITE_P(ScriptedAndTraced, PythonModelTest,
                         ::testing::Values("scripted", "traced"));

}  // namespace
}  // namespace polaris::pruning
