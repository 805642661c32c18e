#include "quantization/internal/model_graph.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/python_test_util.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::quantization::internal {
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

int CountNodes(const torch::jit::Graph& graph, c10::Symbol kind) {
  int count = 0;
  for (const torch::jit::Node* node : graph.nodes()) count += node->kind() == kind;
  return count;
}

// Flattening keeps every operation and its order, so the rebuilt module computes bit for bit
// what the original computes.
void ExpectSameOutputs(torch::jit::Module& original, torch::jit::Module& rebuilt,
                       const std::string& name) {
  const at::Tensor input =
      at::randn({5, 1, 28, 28}, at::TensorOptions().dtype(at::kFloat)) * 1.3;
  const at::Tensor expected = Forward(original, input);
  const at::Tensor actual = Forward(rebuilt, input);
  ASSERT_EQ(expected.sizes(), actual.sizes()) << name;
  EXPECT_TRUE(at::equal(expected, actual))
      << name << ": max difference " << (expected - actual).abs().max().item<float>();
}

TEST(FlattenModel, RebuildsReferenceModelsExactly) {
  at::manual_seed(polaris::testing::TestSeed());
  for (ReferenceModel kind :
       {ReferenceModel::kMlp, ReferenceModel::kLeNet, ReferenceModel::kResidualCnn}) {
    absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(kind, /*seed=*/3);
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<FlatModel> flat = FlattenModel(*model);
    ASSERT_TRUE(flat.ok()) << flat.status();
    absl::StatusOr<torch::jit::Module> rebuilt = BuildModule(*flat, "Rebuilt");
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    ExpectSameOutputs(*model, *rebuilt, ReferenceModelName(kind));
  }
}

TEST(FlattenModel, NamesAttributesAfterTheirPaths) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 3);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<FlatModel> flat = FlattenModel(*model);
  ASSERT_TRUE(flat.ok()) << flat.status();

  const AttributeTable::Entry* weight = flat->attributes.Find("layer2_shortcut_conv_weight");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(weight->original_path, "layer2.shortcut_conv.weight");
  EXPECT_TRUE(weight->is_parameter);
  ASSERT_TRUE(weight->value.isTensor());
  EXPECT_EQ(weight->value.toTensor().sizes(), (std::vector<int64_t>{64, 32, 1, 1}));

  const AttributeTable::Entry* mean = flat->attributes.Find("bn1_running_mean");
  ASSERT_NE(mean, nullptr);
  EXPECT_FALSE(mean->is_parameter);
  // The flat graph reads attributes only from `self`, and `training` became a constant.
  for (const torch::jit::Node* node : flat->graph->nodes()) {
    if (node->kind() != c10::prim::GetAttr) continue;
    EXPECT_TRUE(SelfAttributeName(node->output()).has_value());
    EXPECT_NE(node->s(c10::attr::name), "training");
  }
}

TEST(FlattenModel, SimplifiesScriptedAndTracedPythonModels) {
  at::manual_seed(polaris::testing::TestSeed());
  for (const std::string how : {"scripted", "traced"}) {
    torch::jit::Module model = MakePythonModel("odd-cnn", how);
    absl::StatusOr<FlatModel> flat = FlattenModel(model);
    ASSERT_TRUE(flat.ok()) << how << ": " << flat.status();
    // BatchNorm's training branches (num_batches_tracked updates, batch-size checks) are gone
    // once `training` is a constant, and F.relu(inplace=True) became functional.
    EXPECT_EQ(CountNodes(*flat->graph, c10::aten::relu_), 0) << how << "\n" << *flat->graph;
    EXPECT_EQ(flat->attributes.Find("bn1_num_batches_tracked"), nullptr) << how;
    EXPECT_NE(flat->attributes.Find("bn1_running_var"), nullptr) << how;
    EXPECT_NE(flat->attributes.Find("depthwise_weight"), nullptr) << how;

    absl::StatusOr<torch::jit::Module> rebuilt = BuildModule(*flat, "Rebuilt");
    ASSERT_TRUE(rebuilt.ok()) << how << ": " << rebuilt.status();
    ExpectSameOutputs(model, *rebuilt, how);
  }
}

TEST(FlattenModel, LeavesTheCallersModelUnchanged) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 3);
  ASSERT_TRUE(model.ok()) << model.status();
  model->train();
  absl::StatusOr<std::string> before = SerializeModel(*model);
  ASSERT_TRUE(before.ok()) << before.status();

  {
    // The flat model shares tensors with `model`; it goes out of scope before the second
    // serialization because the pickler writes shared tensors differently.
    absl::StatusOr<FlatModel> flat = FlattenModel(*model);
    ASSERT_TRUE(flat.ok()) << flat.status();
    absl::StatusOr<torch::jit::Module> rebuilt = BuildModule(*flat, "Rebuilt");
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  }

  EXPECT_TRUE(model->is_training());
  absl::StatusOr<std::string> after = SerializeModel(*model);
  ASSERT_TRUE(after.ok()) << after.status();
  // Compared as a boolean: printing two serialized files would flood the log.
  EXPECT_TRUE(*before == *after) << "sizes " << before->size() << " and " << after->size()
                                 << ", first difference at byte "
                                 << std::mismatch(before->begin(), before->end(), after->begin())
                                            .first -
                                        before->begin();
}

TEST(FlattenModel, RejectsForwardThatAssignsAttributes) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Counter");
  model.register_attribute("calls", c10::IntType::get(), 0);
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    self.calls = self.calls + 1
    return x * 2.0
)");
  const absl::Status status = FlattenModel(model).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_NE(status.message().find("'calls'"), absl::string_view::npos) << status;
}

TEST(BuildModule, KeepsOnlyAttributesTheGraphReads) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 3);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<FlatModel> flat = FlattenModel(*model);
  ASSERT_TRUE(flat.ok()) << flat.status();
  flat->attributes.AddUnique("unused", at::ones({1000}), /*is_parameter=*/false);
  EXPECT_EQ(flat->attributes.AddUnique("fc1_weight", at::ones({1}), false), "fc1_weight_1");

  absl::StatusOr<torch::jit::Module> rebuilt = BuildModule(*flat, "Rebuilt");
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->hasattr("unused"));
  EXPECT_FALSE(rebuilt->hasattr("fc1_weight_1"));
  EXPECT_TRUE(rebuilt->hasattr("fc1_weight"));
  EXPECT_FALSE(rebuilt->is_training());

  // The rebuilt module survives a save and load.
  absl::StatusOr<std::string> bytes = SerializeModel(*rebuilt);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<torch::jit::Module> loaded = LoadModelFromBytes(*bytes, "rebuilt");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameOutputs(*model, *loaded, "reloaded mlp");
}

TEST(BuildProbeModule, ReturnsIntermediateValues) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 3);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<FlatModel> flat = FlattenModel(*model);
  ASSERT_TRUE(flat.ok()) << flat.status();
  torch::jit::Value* first_linear = nullptr;
  for (torch::jit::Node* node : flat->graph->nodes()) {
    if (node->kind() == c10::aten::linear && first_linear == nullptr) {
      first_linear = node->output();
    }
  }
  ASSERT_NE(first_linear, nullptr);

  absl::StatusOr<torch::jit::Module> probe =
      BuildProbeModule(*flat, {first_linear, flat->graph->inputs()[1]});
  ASSERT_TRUE(probe.ok()) << probe.status();
  const at::Tensor input = at::randn({3, 1, 28, 28});
  absl::StatusOr<std::vector<at::Tensor>> values = RunProbeModule(*probe, input);
  ASSERT_TRUE(values.ok()) << values.status();
  ASSERT_EQ(values->size(), 3u);
  EXPECT_TRUE(at::equal((*values)[0], Forward(*model, input)));
  EXPECT_TRUE(at::equal((*values)[2], input));

  const at::Tensor weight = flat->attributes.Find("fc1_weight")->value.toTensor();
  const at::Tensor bias = flat->attributes.Find("fc1_bias")->value.toTensor();
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal((*values)[1], at::linear(input.flatten(1), weight, bias)));

  const absl::Status wrong_input = RunProbeModule(*probe, at::randn({3, 5})).status();
  EXPECT_EQ(wrong_input.code(), absl::StatusCode::kInvalidArgument) << wrong_input;
}

}  // namespace
}  // namespace polaris::quantization::internal
