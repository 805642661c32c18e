#include "pruning/magnitude.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "core/graph_utils.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/test_seed.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

using ::testing::HasSubstr;

// The specification of NmMask, written as plain loops: in each row of the weight viewed as
// [out, inputs], every group of m consecutive entries keeps its n largest magnitudes, the
// earlier entry winning a tie.
at::Tensor ReferenceNmMask(const at::Tensor& weight, int64_t n, int64_t m) {
  const at::Tensor rows = weight.reshape({weight.size(0), -1}).contiguous();
  at::Tensor keep = at::zeros(rows.sizes(), at::kBool);
  auto values = rows.accessor<float, 2>();
  auto kept = keep.accessor<bool, 2>();
  for (int64_t row = 0; row < rows.size(0); ++row) {
    for (int64_t start = 0; start < rows.size(1); start += m) {
      for (int64_t picked = 0; picked < n; ++picked) {
        int64_t best = -1;
        for (int64_t j = start; j < start + m; ++j) {
          if (kept[row][j]) continue;
          if (best < 0 || std::abs(values[row][j]) > std::abs(values[row][best])) best = j;
        }
        kept[row][best] = true;
      }
    }
  }
  return keep.reshape(weight.sizes());
}

torch::jit::Module Reference(ReferenceModel kind) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(kind, 1);
  EXPECT_TRUE(model.ok());
  return *model;
}

TEST(MagnitudeMask, RemovesExactCountOfSmallest) {
  at::manual_seed(testing::TestSeed());
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1, 1}, {7, 13}, {16, 3, 3, 3}, {31, 64}}) {
    const at::Tensor weight = at::randn(shape);
    for (double sparsity : {0.0, 0.3, 0.5, 0.9, 0.999}) {
      absl::StatusOr<at::Tensor> mask = MagnitudeMask(weight, sparsity);
      ASSERT_TRUE(mask.ok()) << mask.status();
      const int64_t expected = std::llround(sparsity * weight.numel());
      const int64_t removed = mask->logical_not().sum().item<int64_t>();
      EXPECT_EQ(removed, expected) << "shape " << weight.sizes() << " sparsity " << sparsity;
      if (removed == 0 || removed == weight.numel()) continue;
      const double largest_removed =
          weight.abs().masked_select(mask->logical_not()).max().item<double>();
      const double smallest_kept = weight.abs().masked_select(*mask).min().item<double>();
      EXPECT_LE(largest_removed, smallest_kept) << "shape " << weight.sizes();
    }
  }
}

TEST(MagnitudeMask, TiesStillGiveExactCount) {
  absl::StatusOr<at::Tensor> mask = MagnitudeMask(at::ones({10, 10}), 0.37);
  ASSERT_TRUE(mask.ok());
  EXPECT_EQ(mask->logical_not().sum().item<int64_t>(), 37);
}

TEST(MagnitudeMask, SparsityOutsideRangeIsInvalidArgument) {
  for (double sparsity : {-0.1, 1.0, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    absl::StatusOr<at::Tensor> mask = MagnitudeMask(at::ones({4}), sparsity);
    EXPECT_EQ(mask.status().code(), absl::StatusCode::kInvalidArgument) << sparsity;
    EXPECT_THAT(mask.status().message(), HasSubstr("[0, 1)")) << sparsity;
  }
}

TEST(NmMask, MatchesReferenceOverShapesAndPatterns) {
  at::manual_seed(testing::TestSeed());
  const std::vector<std::vector<int64_t>> shapes = {
      {1, 4}, {5, 16}, {3, 2, 2, 2}, {17, 64}, {8, 4, 3, 4}};
  for (const std::vector<int64_t>& shape : shapes) {
    const at::Tensor weight = at::randn(shape);
    for (NmPattern pattern :
         {NmPattern{2, 4}, NmPattern{1, 4}, NmPattern{4, 4}, NmPattern{1, 2}, NmPattern{3, 8}}) {
      const int64_t inputs = weight.numel() / weight.size(0);
      if (inputs % pattern.m != 0) continue;
      absl::StatusOr<at::Tensor> mask = NmMask(weight, pattern);
      ASSERT_TRUE(mask.ok()) << mask.status();
      const at::Tensor expected = ReferenceNmMask(weight, pattern.n, pattern.m);
      EXPECT_TRUE(mask->equal(expected))
          << pattern.n << ":" << pattern.m << " shape " << weight.sizes() << "\nweight\n"
          << weight << "\nexpected\n"
          << expected << "\nactual\n"
          << *mask;
      EXPECT_EQ(mask->sum().item<int64_t>(), weight.numel() / pattern.m * pattern.n);
    }
  }
}

TEST(NmMask, BadPatternsAreInvalidArgument) {
  const at::Tensor weight = at::ones({4, 8});
  EXPECT_THAT(NmMask(weight, {5, 4}).status().message(), HasSubstr("N = 5 and M = 4"));
  EXPECT_EQ(NmMask(weight, {0, 4}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NmMask(weight, {1, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(NmMask(at::ones({4, 6}), {2, 4}).status().message(), HasSubstr("multiple of M"));
  EXPECT_EQ(NmMask(at::ones({6}), {2, 4}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PruneMagnitude, PerLayerReachesEachSparsityAndKeepsCaller) {
  torch::jit::Module model = Reference(ReferenceModel::kMlp);
  const at::Tensor before = FindTensor(model, "fc1.weight")->clone();
  UnstructuredPruningOptions options;
  options.sparsity = 0.75;
  absl::StatusOr<UnstructuredPruningResult> pruned = PruneMagnitude(model, options);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_TRUE(FindTensor(model, "fc1.weight")->equal(before));

  ASSERT_EQ(pruned->masks.layers.size(), 2u);
  for (const LayerSparsity& layer : pruned->masks.layers) {
    EXPECT_EQ(layer.zeros, std::llround(0.75 * layer.weights)) << layer.layer;
    const at::Tensor weight = *FindTensor(pruned->model, layer.weight_path);
    EXPECT_EQ(weight.eq(0).sum().item<int64_t>(), layer.zeros) << layer.layer;
    EXPECT_TRUE(weight.masked_select(pruned->masks.masks.at(layer.weight_path).logical_not())
                    .eq(0)
                    .all()
                    .item<bool>());
  }
  EXPECT_NEAR(pruned->masks.sparsity, 0.75, 1e-5);
}

TEST(PruneMagnitude, GlobalHitsTargetAndKeepsMinimumDensity) {
  torch::jit::Module model = Reference(ReferenceModel::kMlp);
  UnstructuredPruningOptions options;
  options.scope = PruningScope::kGlobal;
  options.sparsity = 0.9;
  options.min_density = 0.05;
  absl::StatusOr<UnstructuredPruningResult> pruned = PruneMagnitude(model, options);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  const int64_t total = 784 * 256 + 256 * 10;
  int64_t zeros = 0;
  for (const LayerSparsity& layer : pruned->masks.layers) {
    zeros += layer.zeros;
    EXPECT_GE(layer.weights - layer.zeros, std::ceil(0.05 * layer.weights)) << layer.layer;
  }
  EXPECT_EQ(zeros, std::llround(0.9 * total));
  // fc2's 2560 weights are larger (fan-in 256) than fc1's (fan-in 784), so the global
  // threshold removes fewer of them.
  EXPECT_LT(pruned->masks.layers[1].sparsity, pruned->masks.layers[0].sparsity);
}

TEST(PruneMagnitude, UnreachableGlobalTargetIsInvalidArgument) {
  UnstructuredPruningOptions options;
  options.scope = PruningScope::kGlobal;
  options.sparsity = 0.99;
  options.min_density = 0.05;
  absl::StatusOr<UnstructuredPruningResult> pruned =
      PruneMagnitude(Reference(ReferenceModel::kMlp), options);
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pruned.status().message(), HasSubstr("min_density"));
}

TEST(PruneMagnitude, OverridesAndExclusionsApply) {
  torch::jit::Module model = Reference(ReferenceModel::kLeNet);
  UnstructuredPruningOptions options;
  options.sparsity = 0.5;
  options.layer_sparsity = {{"fc1", 0.8}};
  options.excluded_layers = {"conv1"};
  absl::StatusOr<UnstructuredPruningResult> pruned = PruneMagnitude(model, options);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  for (const LayerSparsity& layer : pruned->masks.layers) {
    if (layer.layer == "conv1") {
      EXPECT_EQ(layer.zeros, 0);
      EXPECT_EQ(layer.note, "excluded");
      EXPECT_EQ(pruned->masks.masks.count(layer.weight_path), 0u);
    } else if (layer.layer == "fc1") {
      EXPECT_EQ(layer.zeros, std::llround(0.8 * layer.weights));
    } else {
      EXPECT_EQ(layer.zeros, std::llround(0.5 * layer.weights)) << layer.layer;
    }
  }
}

TEST(PruneMagnitude, NmPatternSkipsLayersThatDoNotFit) {
  UnstructuredPruningOptions options;
  options.nm = NmPattern{2, 4};
  absl::StatusOr<UnstructuredPruningResult> pruned =
      PruneMagnitude(Reference(ReferenceModel::kLeNet), options);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  for (const LayerSparsity& layer : pruned->masks.layers) {
    // conv1 reads 1 x 5 x 5 = 25 inputs and conv2 6 x 5 x 5 = 150: not multiples of 4.
    if (layer.layer == "conv1" || layer.layer == "conv2") {
      EXPECT_THAT(layer.note, HasSubstr("multiple of M")) << layer.layer;
      EXPECT_EQ(layer.zeros, 0) << layer.layer;
    } else {
      EXPECT_EQ(layer.zeros * 2, layer.weights) << layer.layer;
    }
  }
}

TEST(PruneMagnitude, BadOptionsAreRejected) {
  torch::jit::Module model = Reference(ReferenceModel::kMlp);
  UnstructuredPruningOptions options;
  options.layer_sparsity = {{"fc9", 0.5}};
  EXPECT_EQ(PruneMagnitude(model, options).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(PruneMagnitude(model, options).status().message(), HasSubstr("fc1, fc2"));

  options = {};
  options.excluded_layers = {"fc1", "fc2"};
  EXPECT_THAT(PruneMagnitude(model, options).status().message(), HasSubstr("every Conv2d"));

  options = {};
  options.nm = NmPattern{3, 2};
  EXPECT_EQ(PruneMagnitude(model, options).status().code(), absl::StatusCode::kInvalidArgument);

  options = {};
  options.sparsity = 1.0;
  EXPECT_EQ(PruneMagnitude(model, options).status().code(), absl::StatusCode::kInvalidArgument);

  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module empty = MakeScriptModule(unit, "NoLayers");
  empty.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.relu(x)
)");
  absl::StatusOr<UnstructuredPruningResult> pruned = PruneMagnitude(empty, {});
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pruned.status().message(), HasSubstr("nothing to prune"));
}

TEST(ApplyMasks, ZeroesInPlaceAndKeepsTheParameter) {
  torch::jit::Module model = Reference(ReferenceModel::kMlp);
  UnstructuredPruningOptions options;
  options.sparsity = 0.5;
  absl::StatusOr<PruningMasks> masks = ComputeMagnitudeMasks(model, options);
  ASSERT_TRUE(masks.ok());
  const void* storage = FindTensor(model, "fc1.weight")->data_ptr();
  ASSERT_TRUE(ApplyMasks(model, *masks).ok());
  EXPECT_EQ(FindTensor(model, "fc1.weight")->data_ptr(), storage);
  EXPECT_NEAR(masks->sparsity, 0.5, 1e-5);
  EXPECT_TRUE(FindTensor(model, "fc1.weight")->requires_grad());
}

TEST(ReapplyMasks, ZeroesWeightsThatMoved) {
  torch::jit::Module model = Reference(ReferenceModel::kMlp);
  UnstructuredPruningOptions options;
  options.sparsity = 0.6;
  absl::StatusOr<PruningMasks> masks = ComputeMagnitudeMasks(model, options);
  ASSERT_TRUE(masks.ok());
  {
    at::NoGradGuard no_grad;
    FindTensor(model, "fc1.weight")->add_(1.0);
  }
  ASSERT_TRUE(ReapplyMasks(model, *masks).ok());
  const at::Tensor mask = masks->masks.at("fc1.weight");
  const at::Tensor weight = *FindTensor(model, "fc1.weight");
  EXPECT_TRUE(weight.masked_select(mask.logical_not()).eq(0).all().item<bool>());
  EXPECT_FALSE(weight.masked_select(mask).eq(0).any().item<bool>());
}

}  // namespace
}  // namespace polaris::pruning
