#include "pruning/structured.h"

#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/graph_utils.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/python_test_util.h"
#include "core/testing/test_seed.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

using ::testing::HasSubstr;

constexpr char kScript[] = "pruning/testing/make_pruning_models.py";

torch::jit::Module ReferenceModelOrDie(ReferenceModel kind) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(kind, 1);
  EXPECT_TRUE(model.ok()) << model.status();
  model->eval();
  return *model;
}

// Makes the odd-numbered channels of every prunable group dead: their producer rows are zero
// and their BatchNorm shift and mean are zero, so they output exactly zero. Removing exactly
// those channels must then leave the model's output unchanged, which checks every slice the
// pruning makes (producers, BatchNorm, consumers, flatten blocks).
void KillOddChannels(torch::jit::Module& model, const ChannelDependencies& dependencies) {
  at::NoGradGuard no_grad;
  for (const ChannelGroup& group : dependencies.groups) {
    if (!group.prunable) continue;
    const at::Tensor odd = at::arange(1, group.channels, 2);
    for (const ChannelTensorSlice& slice : group.producer_tensors) {
      FindTensor(model, slice.path)->index_fill_(0, odd, 0.0);
    }
    for (const ChannelTensorSlice& slice : group.normalization_tensors) {
      if (absl::EndsWith(slice.path, ".bias") || absl::EndsWith(slice.path, ".running_mean")) {
        FindTensor(model, slice.path)->index_fill_(0, odd, 0.0);
      }
    }
  }
}

at::Tensor Forward(torch::jit::Module& model, const at::Tensor& input) {
  at::NoGradGuard no_grad;
  model.eval();
  return model.forward({input}).toTensor();
}

void ExpectSameOutputs(const at::Tensor& expected, const at::Tensor& actual) {
  ASSERT_EQ(expected.sizes(), actual.sizes());
  // Removing zero terms changes only the order of float sums: allow a few units of rounding
  // relative to the output's scale.
  const double scale = expected.abs().max().item<double>() + 1.0;
  const double max_error = (expected - actual).abs().max().item<double>();
  EXPECT_LE(max_error, 1e-5 * scale) << "expected\n" << expected << "\nactual\n" << actual;
  EXPECT_FALSE(actual.isnan().any().item<bool>());
}

std::vector<at::Tensor> Snapshot(const torch::jit::Module& model) {
  std::vector<at::Tensor> tensors;
  for (const at::Tensor& tensor : model.parameters()) tensors.push_back(tensor.detach().clone());
  for (const at::Tensor& tensor : model.buffers()) tensors.push_back(tensor.detach().clone());
  return tensors;
}

void ExpectUnchanged(const std::vector<at::Tensor>& before, const torch::jit::Module& model) {
  const std::vector<at::Tensor> after = Snapshot(model);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ(before[i].sizes(), after[i].sizes()) << "tensor " << i;
    EXPECT_TRUE(before[i].equal(after[i])) << "tensor " << i;
  }
}

TEST(PruneChannels, ResidualCnnHalfOfDeadChannelsKeepsOutput) {
  torch::jit::Module model = ReferenceModelOrDie(ReferenceModel::kResidualCnn);
  absl::StatusOr<ChannelDependencies> dependencies =
      AnalyzeChannelDependencies(model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(dependencies.ok()) << dependencies.status();
  KillOddChannels(model, *dependencies);
  const std::vector<at::Tensor> before = Snapshot(model);

  StructuredPruningOptions options;
  options.fraction = 0.5;
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(model, options, nullptr);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  ExpectUnchanged(before, model);

  at::manual_seed(testing::TestSeed());
  const at::Tensor input = at::randn({5, 1, 28, 28});
  ExpectSameOutputs(Forward(model, input), Forward(pruned->model, input));

  EXPECT_EQ(FindTensor(pruned->model, "conv1.weight")->sizes(), at::IntArrayRef({16, 1, 3, 3}));
  EXPECT_EQ(FindTensor(pruned->model, "layer1.conv1.weight")->sizes(),
            at::IntArrayRef({16, 16, 3, 3}));
  EXPECT_EQ(FindTensor(pruned->model, "layer2.shortcut_conv.weight")->sizes(),
            at::IntArrayRef({32, 16, 1, 1}));
  EXPECT_EQ(FindTensor(pruned->model, "layer2.bn2.running_var")->sizes(), at::IntArrayRef({32}));
  EXPECT_EQ(FindTensor(pruned->model, "fc.weight")->sizes(), at::IntArrayRef({10, 32 * 49}));
  EXPECT_EQ(pruned->parameters_before, ParameterCount(model));
  EXPECT_EQ(pruned->parameters_after, ParameterCount(pruned->model));
  EXPECT_GE(static_cast<double>(pruned->parameters_before) / pruned->parameters_after, 1.8);

  ASSERT_EQ(pruned->groups.size(), 5u);
  for (const ChannelGroupReport& group : pruned->groups) {
    if (group.name == "fc") {
      EXPECT_FALSE(group.pruned);
      EXPECT_THAT(group.note, HasSubstr("output"));
      continue;
    }
    EXPECT_TRUE(group.pruned) << group.name;
    EXPECT_EQ(group.channels_after * 2, group.channels_before) << group.name;
    for (int64_t channel : group.kept_channels) EXPECT_EQ(channel % 2, 0) << group.name;
  }
  const std::string report = FormatStructuredPruningReport(*pruned);
  EXPECT_THAT(report, HasSubstr("layer2.conv2"));
}

TEST(PruneChannels, TaylorImportanceRemovesDeadChannels) {
  torch::jit::Module model = ReferenceModelOrDie(ReferenceModel::kLeNet);
  absl::StatusOr<ChannelDependencies> dependencies =
      AnalyzeChannelDependencies(model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(dependencies.ok());
  KillOddChannels(model, *dependencies);

  at::manual_seed(testing::TestSeed());
  LabeledData data{at::randn({48, 1, 28, 28}), at::randint(0, 10, {48})};
  StructuredPruningOptions options;
  options.criterion = ChannelCriterion::kTaylor;
  options.importance_batch_size = 16;
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(model, options, &data);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  // A live channel whose ReLU output is zero for every importance example also scores zero
  // and may be removed in place of a dead one, so compare on the importance data itself.
  ExpectSameOutputs(Forward(model, data.inputs), Forward(pruned->model, data.inputs));
  EXPECT_EQ(FindTensor(pruned->model, "fc1.weight")->sizes(), at::IntArrayRef({60, 8 * 25}));
}

TEST(PruneChannels, TaylorWithoutDataIsInvalidArgument) {
  torch::jit::Module model = ReferenceModelOrDie(ReferenceModel::kLeNet);
  StructuredPruningOptions options;
  options.criterion = ChannelCriterion::kTaylor;
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(model, options, nullptr);
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pruned.status().message(), HasSubstr("importance data"));
}

TEST(PruneChannels, LayerChannelsAndRoundingSetCounts) {
  torch::jit::Module model = ReferenceModelOrDie(ReferenceModel::kResidualCnn);
  StructuredPruningOptions options;
  options.fraction = 0.3;
  options.channel_multiple = 8;
  options.layer_channels = {{"layer1.conv2", 5}};
  options.excluded_layers = {"layer2.conv1"};
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(model, options, nullptr);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  for (const ChannelGroupReport& group : pruned->groups) {
    if (group.name == "conv1") {
      // Named through its tied producer layer1.conv2; exact counts are not rounded.
      EXPECT_EQ(group.channels_after, 5);
    } else if (group.name == "layer1.conv1") {
      // 32 - round(0.3 * 32) = 22, rounded up to a multiple of 8.
      EXPECT_EQ(group.channels_after, 24);
    } else if (group.name == "layer2.conv1") {
      EXPECT_FALSE(group.pruned);
      EXPECT_THAT(group.note, HasSubstr("excluded_layers"));
    } else if (group.name == "layer2.conv2") {
      EXPECT_EQ(group.channels_after, 48);
    }
  }
  EXPECT_EQ(Forward(pruned->model, at::zeros({2, 1, 28, 28})).sizes(), at::IntArrayRef({2, 10}));
}

TEST(PruneChannels, GlobalScopeRemovesTheRequestedShare) {
  torch::jit::Module model = ReferenceModelOrDie(ReferenceModel::kResidualCnn);
  StructuredPruningOptions options;
  options.scope = PruningScope::kGlobal;
  options.fraction = 0.5;
  options.min_channels = 4;
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(model, options, nullptr);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  int64_t before = 0;
  int64_t after = 0;
  for (const ChannelGroupReport& group : pruned->groups) {
    if (group.name == "fc") continue;
    before += group.channels_before;
    after += group.channels_after;
    EXPECT_GE(group.channels_after, 4) << group.name;
  }
  EXPECT_EQ(before, 32 + 32 + 64 + 64);
  EXPECT_EQ(after, before / 2);
}

TEST(PruneChannels, BadOptionsAreRejectedWithTheValue) {
  torch::jit::Module model = ReferenceModelOrDie(ReferenceModel::kResidualCnn);
  const std::vector<at::Tensor> before = Snapshot(model);
  struct Case {
    std::string name;
    StructuredPruningOptions options;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  {
    Case c{"fraction one", {}, absl::StatusCode::kInvalidArgument, "fraction must lie in [0, 1)"};
    c.options.fraction = 1.0;
    cases.push_back(c);
  }
  {
    Case c{"negative fraction", {}, absl::StatusCode::kInvalidArgument, "-0.1"};
    c.options.fraction = -0.1;
    cases.push_back(c);
  }
  {
    Case c{"zero channels", {}, absl::StatusCode::kInvalidArgument, "at least one channel"};
    c.options.layer_channels = {{"conv1", 0}};
    cases.push_back(c);
  }
  {
    Case c{"too many channels", {}, absl::StatusCode::kInvalidArgument, "only 32 channels"};
    c.options.layer_channels = {{"layer1.conv1", 33}};
    cases.push_back(c);
  }
  {
    Case c{"unknown layer", {}, absl::StatusCode::kNotFound, "'conv9'"};
    c.options.layer_fractions = {{"conv9", 0.5}};
    cases.push_back(c);
  }
  {
    Case c{"fixed layer", {}, absl::StatusCode::kInvalidArgument, "model's output"};
    c.options.layer_fractions = {{"fc", 0.5}};
    cases.push_back(c);
  }
  {
    Case c{"tied conflict", {}, absl::StatusCode::kInvalidArgument, "tied"};
    c.options.layer_channels = {{"conv1", 8}, {"layer1.conv2", 16}};
    cases.push_back(c);
  }
  {
    Case c{"min channels", {}, absl::StatusCode::kInvalidArgument, "min_channels"};
    c.options.min_channels = 0;
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(model, c.options, nullptr);
    EXPECT_EQ(pruned.status().code(), c.code) << c.name << ": " << pruned.status();
    EXPECT_THAT(pruned.status().message(), HasSubstr(c.message)) << c.name;
  }
  ExpectUnchanged(before, model);
}

TEST(PruneChannels, ModelWithoutPrunableLayerIsRejected) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module linear = MakeScriptModule(unit, "OnlyHead");
  linear.register_module("head", MakeScriptLinear(unit, 4, 3, true));
  linear.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return self.head.forward(x)
)");
  StructuredPruningOptions options;
  options.example_shape = {4};
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(linear, options, nullptr);
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pruned.status().message(), HasSubstr("no layer of the model can be pruned"));

  torch::jit::Module empty = MakeScriptModule(unit, "NoLayers");
  empty.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.relu(x)
)");
  pruned = PruneChannels(empty, options, nullptr);
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pruned.status().message(), HasSubstr("no Conv2d or Linear layer"));
}

// A scripted torch.nn model pruned in C++ must still load and run in PyTorch.
TEST(PruneChannels, PrunedPythonModelRunsInPython) {
  const std::string path = testing::TempPath("scripted.pt");
  absl::StatusOr<std::string> made = testing::RunPython(kScript, {"scripted", path});
  ASSERT_TRUE(made.ok()) << made.status();
  absl::StatusOr<torch::jit::Module> model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  model->eval();
  absl::StatusOr<ChannelDependencies> dependencies =
      AnalyzeChannelDependencies(*model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(dependencies.ok());
  KillOddChannels(*model, *dependencies);

  StructuredPruningOptions options;
  absl::StatusOr<StructuredPruningResult> pruned = PruneChannels(*model, options, nullptr);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  at::manual_seed(testing::TestSeed());
  const at::Tensor input = at::randn({3, 1, 28, 28});
  ExpectSameOutputs(Forward(*model, input), Forward(pruned->model, input));

  const std::string pruned_path = testing::TempPath("pruned.pt");
  ASSERT_TRUE(SaveModel(pruned->model, pruned_path).ok());
  absl::StatusOr<std::string> ran = testing::RunPython(kScript, {"run", pruned_path});
  ASSERT_TRUE(ran.ok()) << ran.status();
  std::vector<std::string> fields =
      absl::StrSplit(std::string(absl::StripTrailingAsciiWhitespace(*ran)), ' ');
  ASSERT_EQ(fields.size(), 3u) << *ran;
  EXPECT_EQ(fields[0], "[3,");
  EXPECT_EQ(fields[1], "10]");
  int64_t parameters = 0;
  ASSERT_TRUE(absl::SimpleAtoi(fields[2], &parameters)) << *ran;
  EXPECT_EQ(parameters, pruned->parameters_after);
  EXPECT_LT(pruned->parameters_after, pruned->parameters_before);
}

}  // namespace
}  // namespace polaris::pruning
