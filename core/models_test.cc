#include "core/models.h"

#include "ATen/Functions.h"
#include "core/layer_analysis.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(ParseReferenceModel, KnowsEveryName) {
  for (ReferenceModel model : {ReferenceModel::kMlp, ReferenceModel::kLeNet,
                               ReferenceModel::kResidualCnn}) {
    absl::StatusOr<ReferenceModel> parsed = ParseReferenceModel(ReferenceModelName(model));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, model);
  }
  const absl::Status status = ParseReferenceModel("resnet50").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("mlp, lenet or cnn"), absl::string_view::npos);
}

struct Expected {
  ReferenceModel model;
  int64_t parameters;
  int64_t layers;
};

TEST(MakeReferenceModel, BuildsDocumentedArchitectures) {
  // Parameter counts follow from the architectures in models.h (BatchNorm running statistics
  // are buffers, not parameters).
  const Expected expected[] = {
      {ReferenceModel::kMlp, 784 * 256 + 256 + 256 * 10 + 10, 2},
      {ReferenceModel::kLeNet,
       (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10),
       5},
      {ReferenceModel::kResidualCnn,
       32 * 9 + 2 * 32 + 2 * (32 * 32 * 9 + 2 * 32) + (64 * 32 * 9 + 2 * 64) +
           (64 * 64 * 9 + 2 * 64) + (64 * 32 + 2 * 64) + (64 * 49 * 10 + 10),
       13},
  };
  for (const Expected& e : expected) {
    absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(e.model, 1);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(ParameterCount(*model), e.parameters) << ReferenceModelName(e.model);
    const at::Tensor logits = model->forward({at::randn({3, 1, 28, 28})}).toTensor();
    EXPECT_EQ(logits.sizes(), at::IntArrayRef({3, 10})) << ReferenceModelName(e.model);
    absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(*model, at::zeros({1, 1, 28, 28}));
    ASSERT_TRUE(analysis.ok()) << analysis.status();
    EXPECT_EQ(static_cast<int64_t>(analysis->layers.size()), e.layers)
        << ReferenceModelName(e.model);
  }
}

TEST(MakeReferenceModel, ResidualCnnHasDocumentedMacs) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(*model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  int64_t conv_and_linear = 0;
  for (const LayerInfo& layer : analysis->layers) {
    if (layer.kind != LayerKind::kBatchNorm) conv_and_linear += layer.macs;
  }
  const int64_t expected = 28 * 28 * 32 * 9 + 2 * 28 * 28 * 32 * 32 * 9 + 14 * 14 * 64 * 32 * 9 +
                           14 * 14 * 64 * 64 * 9 + 14 * 14 * 64 * 32 + 64 * 49 * 10;
  EXPECT_EQ(conv_and_linear, expected);
  EXPECT_TRUE(analysis->has_residual_add);
}

TEST(MakeReferenceModel, SameSeedSameWeights) {
  absl::StatusOr<torch::jit::Module> a = MakeReferenceModel(ReferenceModel::kLeNet, 7);
  absl::StatusOr<torch::jit::Module> b = MakeReferenceModel(ReferenceModel::kLeNet, 7);
  absl::StatusOr<torch::jit::Module> c = MakeReferenceModel(ReferenceModel::kLeNet, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const at::Tensor wa = *a->parameters().begin();
  const at::Tensor wb = *b->parameters().begin();
  const at::Tensor wc = *c->parameters().begin();
  EXPECT_TRUE(at::equal(wa, wb));
  EXPECT_FALSE(at::equal(wa, wc));
}

TEST(MakeReferenceModel, SurvivesSaveAndLoad) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 3);
  ASSERT_TRUE(model.ok());
  model->eval();
  absl::StatusOr<std::string> bytes = SerializeModel(*model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<torch::jit::Module> loaded = LoadModelFromBytes(*bytes, "cnn.pt");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  loaded->eval();
  const at::Tensor x = at::randn({2, 1, 28, 28});
  EXPECT_TRUE(at::allclose(model->forward({x}).toTensor(), loaded->forward({x}).toTensor()));
}

}  // namespace
}  // namespace polaris
