#include "pruning/sensitivity.h"

#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "core/graph_utils.h"
#include "core/models.h"
#include "core/script_layers.h"
#include "core/testing/test_seed.h"
#include "core/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

using ::testing::HasSubstr;

// A 16 -> 32 -> 4 classifier trained briefly on data whose class is the argmax of a fixed
// projection, so that pruning measurably costs accuracy.
struct Trained {
  torch::jit::Module model;
  LabeledData validation;
};

LabeledData ProjectionData(int64_t count, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor inputs = at::randn({count, 16});
  at::manual_seed(7);
  const at::Tensor projection = at::randn({16, 4});
  return {inputs, inputs.matmul(projection).argmax(1)};
}

Trained TrainedMlp() {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  at::manual_seed(testing::TestSeed());
  torch::jit::Module model = MakeScriptModule(unit, "SmallMlp");
  model.register_module("fc1", MakeScriptLinear(unit, 16, 32, true));
  model.register_module("fc2", MakeScriptLinear(unit, 32, 4, true));
  model.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return self.fc2.forward(torch.relu(self.fc1.forward(x)))
)");
  TrainOptions options;
  options.epochs = 4;
  options.batch_size = 32;
  options.show_progress = false;
  EXPECT_TRUE(Train(model, ProjectionData(640, 1), options).ok());
  return {model, ProjectionData(400, 2)};
}

TEST(ScanSensitivity, MagnitudeScanStartsAtBaselineAndDrops) {
  Trained trained = TrainedMlp();
  const at::Tensor before = FindTensor(trained.model, "fc1.weight")->clone();
  SensitivityOptions options;
  options.sparsities = {0.0, 0.5, 0.95};
  absl::StatusOr<SensitivityAnalysis> analysis =
      ScanSensitivity(trained.model, trained.validation, options);
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  EXPECT_TRUE(FindTensor(trained.model, "fc1.weight")->equal(before));

  EXPECT_GT(analysis->baseline_accuracy, 0.8);
  EXPECT_EQ(analysis->examples, 400);
  ASSERT_EQ(analysis->layers.size(), 2u);
  EXPECT_EQ(analysis->layers[0].layer, "fc1");
  EXPECT_EQ(analysis->layers[0].size, 16 * 32);
  for (const LayerSensitivity& layer : analysis->layers) {
    ASSERT_EQ(layer.points.size(), 3u);
    EXPECT_DOUBLE_EQ(layer.points[0].accuracy, analysis->baseline_accuracy) << layer.layer;
    EXPECT_LT(layer.points[2].accuracy, analysis->baseline_accuracy - 0.05) << layer.layer;
  }
  const std::string table = FormatSensitivityTable(*analysis);
  EXPECT_THAT(table, HasSubstr("fc2"));
  EXPECT_THAT(table, HasSubstr("95%"));
}

TEST(ScanSensitivity, ParallelWorkersGiveTheSameNumbers) {
  Trained trained = TrainedMlp();
  SensitivityOptions options;
  options.sparsities = {0.3, 0.6, 0.9};
  absl::StatusOr<SensitivityAnalysis> serial =
      ScanSensitivity(trained.model, trained.validation, options);
  options.workers = 2;
  absl::StatusOr<SensitivityAnalysis> parallel =
      ScanSensitivity(trained.model, trained.validation, options);
  ASSERT_TRUE(serial.ok() && parallel.ok());
  for (size_t l = 0; l < serial->layers.size(); ++l) {
    for (size_t p = 0; p < serial->layers[l].points.size(); ++p) {
      EXPECT_DOUBLE_EQ(serial->layers[l].points[p].accuracy, parallel->layers[l].points[p].accuracy)
          << serial->layers[l].layer << " point " << p;
    }
  }
}

TEST(ScanSensitivity, ChannelScanCoversPrunableGroups) {
  Trained trained = TrainedMlp();
  SensitivityOptions options;
  options.method = SensitivityMethod::kChannels;
  options.sparsities = {0.0, 0.75};
  absl::StatusOr<SensitivityAnalysis> analysis =
      ScanSensitivity(trained.model, trained.validation, options);
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  // fc2's outputs are the model's outputs, so only fc1's group is scanned.
  ASSERT_EQ(analysis->layers.size(), 1u);
  EXPECT_EQ(analysis->layers[0].layer, "fc1");
  EXPECT_EQ(analysis->layers[0].size, 32);
  EXPECT_DOUBLE_EQ(analysis->layers[0].points[0].accuracy, analysis->baseline_accuracy);
  EXPECT_LT(analysis->layers[0].points[1].accuracy, analysis->baseline_accuracy);
}

TEST(ScanSensitivity, BadOptionsAreInvalidArgument) {
  Trained trained = TrainedMlp();
  SensitivityOptions options;
  options.sparsities = {};
  EXPECT_EQ(ScanSensitivity(trained.model, trained.validation, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.sparsities = {0.5, 1.0};
  EXPECT_THAT(ScanSensitivity(trained.model, trained.validation, options).status().message(),
              HasSubstr("[0, 1)"));
  options.sparsities = {0.5};
  options.workers = 0;
  EXPECT_EQ(ScanSensitivity(trained.model, trained.validation, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MaxSparsityWithinDrop, PicksTheLargestTolerableSparsity) {
  LayerSensitivity layer;
  layer.points = {{0.2, 0.90}, {0.4, 0.895}, {0.6, 0.87}, {0.8, 0.60}};
  EXPECT_DOUBLE_EQ(MaxSparsityWithinDrop(layer, 0.90, 0.01), 0.4);
  EXPECT_DOUBLE_EQ(MaxSparsityWithinDrop(layer, 0.90, 0.05), 0.6);
  EXPECT_DOUBLE_EQ(MaxSparsityWithinDrop(layer, 0.95, 0.01), 0.0);
}

}  // namespace
}  // namespace polaris::pruning
