#include "sparse/dynamic_sparsity.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "core/graph_utils.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::sparse {
namespace {

TEST(LayerDensities, UniformGivesEveryLayerTheTarget) {
  absl::StatusOr<std::vector<double>> densities =
      LayerDensities({{256, 784}, {10, 256}}, 0.9, SparsityDistribution::kUniform);
  ASSERT_TRUE(densities.ok()) << densities.status();
  for (double density : *densities) EXPECT_NEAR(density, 0.1, 1e-12);
}

TEST(LayerDensities, ErdosRenyiKernelKeepsBudget) {
  const std::vector<std::vector<int64_t>> shapes = {{256, 784}, {10, 256}};
  absl::StatusOr<std::vector<double>> densities =
      LayerDensities(shapes, 0.9, SparsityDistribution::kErdosRenyiKernel);
  ASSERT_TRUE(densities.ok()) << densities.status();
  // The small output layer would pass density 1, so it is made dense. The large layer takes
  // the rest of the 10% budget: (0.1 * 203264 - 2560) / 200704.
  EXPECT_DOUBLE_EQ((*densities)[1], 1.0);
  EXPECT_NEAR((*densities)[0], (0.1 * 203264 - 2560) / 200704.0, 1e-12);
}

TEST(LayerDensities, ErdosRenyiKernelFollowsDimensions) {
  const std::vector<std::vector<int64_t>> shapes = {{32, 1, 3, 3}, {64, 32, 3, 3}, {10, 3136}};
  absl::StatusOr<std::vector<double>> densities =
      LayerDensities(shapes, 0.8, SparsityDistribution::kErdosRenyiKernel);
  ASSERT_TRUE(densities.ok()) << densities.status();
  double kept = 0;
  double total = 0;
  for (size_t l = 0; l < shapes.size(); ++l) {
    double elements = 1;
    for (int64_t size : shapes[l]) elements *= size;
    kept += (*densities)[l] * elements;
    total += elements;
  }
  EXPECT_NEAR(kept / total, 0.2, 1e-9);
  // Non-dense layers: density ratio equals (sum / product) ratio of their dimensions.
  const double raw_conv = (64 + 32 + 3 + 3) / (64.0 * 32 * 9);
  const double raw_fc = (10 + 3136) / (10.0 * 3136);
  ASSERT_LT((*densities)[1], 1.0);
  ASSERT_LT((*densities)[2], 1.0);
  EXPECT_NEAR((*densities)[1] / (*densities)[2], raw_conv / raw_fc, 1e-9);
}

TEST(LayerDensities, RejectsSparsityOutsideRange) {
  EXPECT_EQ(LayerDensities({{4, 4}}, 1.0, SparsityDistribution::kUniform).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LayerDensities({{4, 4}}, -0.1, SparsityDistribution::kUniform).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LayerDensities({{4, 0}}, 0.5, SparsityDistribution::kUniform).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A model with a single Linear layer `fc` of 2 x 8 weights, taking input [batch, 8].
torch::jit::Module TinyModel() {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptModule(unit, "Tiny");
  model.register_module("fc", MakeScriptLinear(unit, 8, 2, /*bias=*/true));
  model.define("def forward(self, x: Tensor) -> Tensor:\n    return self.fc.forward(x)\n");
  return model;
}

DynamicSparsityOptions TinyOptions(DynamicSparsityMethod method) {
  DynamicSparsityOptions options;
  options.method = method;
  options.sparsity = 0.5;
  options.distribution = SparsityDistribution::kUniform;
  options.update_interval = 10;
  options.drop_fraction = 0.25;  // 2 of the 8 active weights per update
  options.drop_schedule = DropSchedule::kConstant;
  options.example_shape = {8};
  options.seed = testing::TestSeed();
  return options;
}

// Gives the active weights the magnitudes 1..8 in order and returns the two smallest's flat
// indices.
std::vector<int64_t> SetActiveMagnitudes(const SparseLayerState& layer) {
  at::NoGradGuard no_grad;
  const at::Tensor active = layer.mask.flatten().nonzero().flatten();
  for (int64_t i = 0; i < active.numel(); ++i) {
    layer.weight.view({-1})[active[i].item<int64_t>()] = (i % 2 == 0 ? 1.0 : -1.0) * (i + 1);
  }
  return {active[0].item<int64_t>(), active[1].item<int64_t>()};
}

TEST(DynamicSparsity, RigLDropsSmallestAndGrowsLargestGradient) {
  torch::jit::Module model = TinyModel();
  absl::StatusOr<std::unique_ptr<DynamicSparsity>> sparsity =
      DynamicSparsity::Create(model, TinyOptions(DynamicSparsityMethod::kRigL), 100);
  ASSERT_TRUE(sparsity.ok()) << sparsity.status();
  const SparseLayerState& layer = (*sparsity)->layers()[0];
  ASSERT_EQ(layer.active, 8);
  EXPECT_EQ(layer.mask.sum().item<int64_t>(), 8);
  EXPECT_TRUE(layer.weight.masked_select(layer.mask.logical_not()).eq(0).all().item<bool>());

  const std::vector<int64_t> smallest = SetActiveMagnitudes(layer);
  const at::Tensor old_mask = layer.mask.clone();
  const at::Tensor inactive = old_mask.flatten().logical_not().nonzero().flatten();
  // Gradient: the last two inactive connections get the largest magnitudes.
  at::Tensor gradient = at::rand({2, 8}) * 0.1;
  gradient.view({-1})[inactive[6].item<int64_t>()] = -5.0;
  gradient.view({-1})[inactive[7].item<int64_t>()] = 4.0;
  layer.weight.mutable_grad() = gradient.clone();

  ASSERT_TRUE((*sparsity)->AfterBackward(10).ok());
  const at::Tensor mask = layer.mask.flatten();
  EXPECT_EQ(mask.sum().item<int64_t>(), 8);
  EXPECT_FALSE(mask[smallest[0]].item<bool>());
  EXPECT_FALSE(mask[smallest[1]].item<bool>());
  EXPECT_TRUE(mask[inactive[6].item<int64_t>()].item<bool>());
  EXPECT_TRUE(mask[inactive[7].item<int64_t>()].item<bool>());
  // Grown weights start at zero; gradients of inactive weights are zeroed.
  EXPECT_EQ(layer.weight.view({-1})[inactive[6].item<int64_t>()].item<float>(), 0.0f);
  EXPECT_TRUE(layer.weight.grad().masked_select(layer.mask.logical_not()).eq(0).all().item<bool>());
  EXPECT_EQ((*sparsity)->updates(), 1);
  EXPECT_EQ((*sparsity)->grown_connections(), 2);

  // Not an update step: masks stay, only gradients are masked.
  const at::Tensor kept = layer.mask.clone();
  ASSERT_TRUE((*sparsity)->AfterBackward(11).ok());
  EXPECT_TRUE(at::equal(kept, layer.mask));
  ASSERT_TRUE((*sparsity)->AfterStep(11).ok());
  EXPECT_TRUE(layer.weight.masked_select(layer.mask.logical_not()).eq(0).all().item<bool>());
}

TEST(DynamicSparsity, SetDropsSmallestAndGrowsRandomly) {
  torch::jit::Module model = TinyModel();
  absl::StatusOr<std::unique_ptr<DynamicSparsity>> sparsity =
      DynamicSparsity::Create(model, TinyOptions(DynamicSparsityMethod::kSet), 100);
  ASSERT_TRUE(sparsity.ok()) << sparsity.status();
  const SparseLayerState& layer = (*sparsity)->layers()[0];
  const std::vector<int64_t> smallest = SetActiveMagnitudes(layer);
  const at::Tensor old_mask = layer.mask.clone().flatten();

  ASSERT_TRUE((*sparsity)->AfterBackward(20).ok());
  const at::Tensor mask = layer.mask.flatten();
  EXPECT_EQ(mask.sum().item<int64_t>(), 8);
  // The six largest survive; the two smallest are dropped unless randomly regrown.
  EXPECT_EQ(mask.logical_and(old_mask).sum().item<int64_t>() +
                (mask[smallest[0]].item<bool>() ? 0 : 1) + (mask[smallest[1]].item<bool>() ? 0 : 1),
            8);
  const at::Tensor fresh = mask.logical_and(old_mask.logical_not());
  EXPECT_EQ(fresh.sum().item<int64_t>(), (*sparsity)->grown_connections());
  EXPECT_TRUE(layer.weight.flatten().masked_select(fresh).eq(0).all().item<bool>());
}

TEST(DynamicSparsity, CosineDropFractionDecaysToEnd) {
  torch::jit::Module model = TinyModel();
  DynamicSparsityOptions options = TinyOptions(DynamicSparsityMethod::kRigL);
  options.drop_schedule = DropSchedule::kCosine;
  options.drop_fraction = 0.3;
  options.end_fraction = 0.75;
  absl::StatusOr<std::unique_ptr<DynamicSparsity>> sparsity =
      DynamicSparsity::Create(model, options, 1000);
  ASSERT_TRUE(sparsity.ok()) << sparsity.status();
  EXPECT_EQ((*sparsity)->end_step(), 750);
  EXPECT_NEAR((*sparsity)->DropFraction(0), 0.3, 1e-12);
  EXPECT_NEAR((*sparsity)->DropFraction(375), 0.15, 1e-12);
  EXPECT_NEAR((*sparsity)->DropFraction(749), 0.0, 1e-5);
  EXPECT_EQ((*sparsity)->DropFraction(750), 0.0);
  EXPECT_EQ((*sparsity)->DropFraction(900), 0.0);
}

TEST(TrainDynamicSparse, KeepsLayerSparsityWhileTraining) {
  const torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kMlp, testing::TestSeed());
  const at::Tensor fc1_before = FindTensor(model, "fc1.weight")->clone();
  at::Generator generator = at::detail::createCPUGenerator(testing::TestSeed());
  LabeledData data{at::randn({512, 1, 28, 28}, generator), at::randint(0, 10, {512}, generator)};
  TrainOptions train;
  train.epochs = 2;
  train.batch_size = 64;
  train.show_progress = false;
  for (DynamicSparsityMethod method : {DynamicSparsityMethod::kRigL, DynamicSparsityMethod::kSet,
                                       DynamicSparsityMethod::kStatic}) {
    SCOPED_TRACE(MethodName(method));
    DynamicSparsityOptions options;
    options.method = method;
    options.sparsity = 0.9;
    options.update_interval = 4;
    absl::StatusOr<DynamicSparseTrainingResult> result =
        TrainDynamicSparse(model, data, train, options);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->training.steps, 16);
    ASSERT_EQ(result->layers.size(), 2u);
    for (const SparseLayerReport& layer : result->layers) {
      EXPECT_GE(layer.final_sparsity, layer.target_sparsity - 1e-12) << layer.layer;
      EXPECT_LE(layer.final_sparsity, layer.target_sparsity + 0.002) << layer.layer;
    }
    EXPECT_NEAR(result->overall_sparsity, 0.9, 0.002);
    if (method == DynamicSparsityMethod::kStatic) {
      EXPECT_EQ(result->updates, 0);
    } else {
      // T_end = 0.75 * 16 = 12 steps: updates at steps 4 and 8 (never at step 0).
      EXPECT_EQ(result->updates, 2);
      EXPECT_GT(result->grown_connections, 0);
    }
  }
  EXPECT_TRUE(at::equal(fc1_before, *FindTensor(model, "fc1.weight")));
}

TEST(DynamicSparsity, RejectsBadInput) {
  torch::jit::Module model = TinyModel();
  DynamicSparsityOptions options = TinyOptions(DynamicSparsityMethod::kRigL);
  options.sparsity = 1.0;
  EXPECT_EQ(DynamicSparsity::Create(model, options, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = TinyOptions(DynamicSparsityMethod::kRigL);
  options.update_interval = 0;
  EXPECT_EQ(DynamicSparsity::Create(model, options, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = TinyOptions(DynamicSparsityMethod::kRigL);
  options.dense_layers = {"fc9"};
  const absl::Status unknown = DynamicSparsity::Create(model, options, 10).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("fc9"), absl::string_view::npos) << unknown;
  options = TinyOptions(DynamicSparsityMethod::kRigL);
  options.dense_layers = {"fc"};
  EXPECT_EQ(DynamicSparsity::Create(model, options, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris::sparse
