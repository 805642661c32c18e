#include "pipeline/config.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "pipeline/plan.h"
#include "pipeline/stage.h"

namespace polaris::pipeline {
namespace {

TEST(ParseConfigText, ReadsTextFormat) {
  absl::StatusOr<proto::PipelineConfig> config = ParseConfigText(R"(
    target: SPEED
    max_accuracy_drop: 1.5
    seed: 7
    stages { name: "tune" fine_tune { epochs: 2 learning_rate: 0.01 } }
    latency { batch_sizes: [1, 32] }
  )", "inline");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->target(), proto::SPEED);
  EXPECT_EQ(config->stages(0).fine_tune().epochs(), 2);
  EXPECT_EQ(config->latency().batch_sizes(1), 32);
}

TEST(ParseConfigText, ReportsLineOfFirstError) {
  const absl::Status unknown_field =
      ParseConfigText("target: SPEED\nspeed_up: 3\n", "my.textproto").status();
  EXPECT_EQ(unknown_field.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown_field.message().find("my.textproto: line 2"), absl::string_view::npos)
      << unknown_field;
  EXPECT_NE(unknown_field.message().find("speed_up"), absl::string_view::npos) << unknown_field;

  const absl::Status bad_enum = ParseConfigText("target: FASTEST\n", "x").status();
  EXPECT_EQ(bad_enum.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_enum.message().find("FASTEST"), absl::string_view::npos) << bad_enum;
}

TEST(ParseTarget, AcceptsAnyCaseAndRejectsUnknown) {
  EXPECT_EQ(*ParseTarget("balanced"), proto::BALANCED);
  EXPECT_EQ(*ParseTarget("Extreme"), proto::EXTREME);
  const absl::Status status = ParseTarget("fastest").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("accuracy, balanced, speed, memory or extreme"),
            absl::string_view::npos);
  EXPECT_FALSE(ParseTarget("target_unspecified").ok());
}

TEST(ResolveConfig, FillsTargetDefaults) {
  absl::StatusOr<proto::PipelineConfig> resolved = ResolveConfig(proto::PipelineConfig());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->target(), proto::BALANCED);
  EXPECT_DOUBLE_EQ(resolved->max_accuracy_drop(), DefaultAccuracyBudget(proto::BALANCED));
  EXPECT_EQ(resolved->stages_size(), static_cast<int>(DefaultPlan(proto::BALANCED).size()));
  EXPECT_EQ(resolved->seed(), 1u);
  EXPECT_GE(resolved->threads(), 1);
  EXPECT_EQ(resolved->data().source(), "fashion-mnist");
  ASSERT_EQ(resolved->latency().batch_sizes_size(), 2);
  EXPECT_EQ(resolved->latency().batch_sizes(1), 64);
}

TEST(ResolveConfig, RejectsInvalidValues) {
  proto::PipelineConfig negative_budget;
  negative_budget.set_max_accuracy_drop(-1);
  EXPECT_EQ(ResolveConfig(negative_budget).status().code(), absl::StatusCode::kInvalidArgument);

  proto::PipelineConfig empty_stage;
  empty_stage.add_stages()->set_name("mystery");
  const absl::Status no_kind = ResolveConfig(empty_stage).status();
  EXPECT_EQ(no_kind.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_kind.message().find("mystery"), absl::string_view::npos) << no_kind;

  proto::PipelineConfig bad_batch;
  bad_batch.mutable_latency()->add_batch_sizes(0);
  EXPECT_EQ(ResolveConfig(bad_batch).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MakeStages, RejectsUnknownOptimizer) {
  proto::PipelineConfig config;
  config.add_stages()->mutable_fine_tune()->set_optimizer("lion");
  absl::StatusOr<proto::PipelineConfig> resolved = ResolveConfig(config);
  ASSERT_TRUE(resolved.ok());
  const absl::Status status = MakeStages(*resolved).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("lion"), absl::string_view::npos) << status;
}

TEST(ResolveConfig, RejectsTrainingAfterQuantization) {
  absl::StatusOr<proto::PipelineConfig> config = ParseConfigText(R"(
    stages { quantization { quantization { method: STATIC } } }
    stages { fine_tune { epochs: 1 } }
  )", "inline");
  ASSERT_TRUE(config.ok()) << config.status();
  const absl::Status status = ResolveConfig(*config).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("move training stages before quantization"),
            absl::string_view::npos)
      << status;
}

TEST(DefaultPlan, EveryTargetMakesValidStagesEndingInQuantization) {
  for (proto::Target target :
       {proto::ACCURACY, proto::BALANCED, proto::SPEED, proto::MEMORY, proto::EXTREME}) {
    proto::PipelineConfig config;
    config.set_target(target);
    absl::StatusOr<proto::PipelineConfig> resolved = ResolveConfig(config);
    ASSERT_TRUE(resolved.ok()) << proto::Target_Name(target) << ": " << resolved.status();
    ASSERT_GE(resolved->stages_size(), 1);
    EXPECT_TRUE(resolved->stages(resolved->stages_size() - 1).has_quantization())
        << proto::Target_Name(target);
    absl::StatusOr<std::vector<std::unique_ptr<Stage>>> stages = MakeStages(*resolved);
    ASSERT_TRUE(stages.ok()) << proto::Target_Name(target) << ": " << stages.status();
    // Every stage offers weaker settings for the accuracy guard to fall back to.
    for (const std::unique_ptr<Stage>& stage : *stages) {
      EXPECT_GE(stage->num_settings(), 2) << proto::Target_Name(target) << " " << stage->kind();
    }
  }
  // Only ACCURACY keeps every channel.
  EXPECT_EQ(DefaultPlan(proto::ACCURACY).size(), 1u);
  EXPECT_TRUE(DefaultPlan(proto::BALANCED)[0].has_structured_pruning());
}

TEST(MakeStages, QuantizationStageChecksItsSettings) {
  absl::StatusOr<proto::PipelineConfig> config = ParseConfigText(R"(
    stages { quantization {
      quantization { method: STATIC }
      fallbacks { method: WEIGHT_ONLY_INT4 weight_bits: 8 }
    } }
  )", "inline");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<proto::PipelineConfig> resolved = ResolveConfig(*config);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const absl::Status status = MakeStages(*resolved).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("fallbacks[0]"), absl::string_view::npos) << status;

  proto::PipelineConfig fraction;
  proto::QuantizationStage* stage = fraction.add_stages()->mutable_quantization();
  stage->mutable_quantization()->set_method(proto::QuantizationConfig::MIXED_PRECISION);
  stage->set_max_weight_fraction(1.5);
  absl::StatusOr<proto::PipelineConfig> resolved_fraction = ResolveConfig(fraction);
  ASSERT_TRUE(resolved_fraction.ok()) << resolved_fraction.status();
  const absl::Status fraction_status = MakeStages(*resolved_fraction).status();
  EXPECT_NE(fraction_status.message().find("max_weight_fraction"), absl::string_view::npos)
      << fraction_status;
  stage->set_max_weight_fraction(0.25);
  absl::StatusOr<std::vector<std::unique_ptr<Stage>>> stages = MakeStages(fraction);
  ASSERT_TRUE(stages.ok()) << stages.status();
  EXPECT_NE((*stages)[0]->DescribeSetting(0).find("25% of the float32 weight bytes"),
            std::string::npos)
      << (*stages)[0]->DescribeSetting(0);
}

TEST(MakeStages, QuantizationNeedsTrainingDataOnlyForQatAlone) {
  absl::StatusOr<proto::PipelineConfig> config = ParseConfigText(R"(
    stages { quantization { quantization { method: STATIC } fallbacks { method: QAT } } }
    stages { quantization { quantization { method: QAT } } }
  )", "inline");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::vector<std::unique_ptr<Stage>>> stages = MakeStages(*config);
  ASSERT_TRUE(stages.ok()) << stages.status();
  // Static int8 calibrates without training data, so the stage runs and QAT fails alone.
  EXPECT_FALSE((*stages)[0]->needs_training_data());
  EXPECT_TRUE((*stages)[1]->needs_training_data());
}

TEST(ConfigHash, StableAndSensitive) {
  proto::PipelineConfig a;
  a.set_seed(1);
  proto::PipelineConfig b = a;
  EXPECT_EQ(ConfigHash(a), ConfigHash(b));
  b.set_seed(2);
  EXPECT_NE(ConfigHash(a), ConfigHash(b));
  EXPECT_EQ(ConfigHash(a).size(), 16u);
}

}  // namespace
}  // namespace polaris::pipeline
