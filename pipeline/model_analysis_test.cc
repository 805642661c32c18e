#include "pipeline/model_analysis.h"

#include "ATen/Functions.h"
#include "core/models.h"
#include "gtest/gtest.h"

namespace polaris::pipeline {
namespace {

struct Case {
  ReferenceModel model;
  ArchitectureKind kind;
};

TEST(AnalyzeForPipeline, ClassifiesReferenceModels) {
  for (const Case& test : {Case{ReferenceModel::kMlp, ArchitectureKind::kMlp},
                           Case{ReferenceModel::kLeNet, ArchitectureKind::kCnn},
                           Case{ReferenceModel::kResidualCnn, ArchitectureKind::kResidualCnn}}) {
    absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(test.model, 1);
    ASSERT_TRUE(model.ok());
    absl::StatusOr<ModelReport> report = AnalyzeForPipeline(*model, at::zeros({1, 1, 28, 28}));
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->kind, test.kind) << ReferenceModelName(test.model) << ": "
                                       << report->kind_reason;
  }
}

TEST(AnalyzeForPipeline, CountsLayersAndParametersByKind) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<ModelReport> report = AnalyzeForPipeline(*model, at::zeros({1, 1, 28, 28}));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->layers_by_kind["Conv2d"], 6);
  EXPECT_EQ(report->layers_by_kind["BatchNorm"], 6);
  EXPECT_EQ(report->layers_by_kind["Linear"], 1);
  EXPECT_EQ(report->parameters_by_kind["Linear"], 64 * 49 * 10 + 10);
  EXPECT_EQ(report->parameters, 108010);

  // Every convolution and the Linear layer can be quantized; the channel groups tied by the
  // residual adds can still be pruned together.
  ASSERT_EQ(report->coverage.size(), 2u);
  EXPECT_EQ(report->coverage[0].stage, "structured_pruning");
  EXPECT_FALSE(report->coverage[0].supported_layers.empty());
  EXPECT_EQ(report->coverage[1].stage, "quantization");
  EXPECT_EQ(report->coverage[1].supported_layers.size(), 7u);
  EXPECT_TRUE(report->coverage[1].unsupported_layers.empty());

  const std::string text = FormatModelReport(*report);
  EXPECT_NE(text.find("residual CNN"), std::string::npos) << text;
  EXPECT_NE(text.find("layer2.shortcut_conv"), std::string::npos) << text;
  EXPECT_NE(text.find("[1,64,14,14]"), std::string::npos) << text;
}

}  // namespace
}  // namespace polaris::pipeline
