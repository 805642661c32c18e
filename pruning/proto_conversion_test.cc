#include "pruning/proto_conversion.h"

#include <string>
#include <vector>

#include "core/file_util.h"
#include "core/testing/python_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParsePruningConfig, ReadsStructuredConfig) {
  absl::StatusOr<proto::PruningConfig> config = ParsePruningConfig(R"(
    structured {
      criterion: PRUNING_CRITERION_TAYLOR
      fraction: 0.4
      scope: PRUNING_SCOPE_GLOBAL
      layer_channels { key: "conv1" value: 8 }
      excluded_layers: "fc"
    }
    fine_tune { epochs: 2 optimizer: "adam" learning_rate_schedule: "constant" }
  )",
                                                                   "test.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<StructuredPruningOptions> options =
      ToStructuredPruningOptions(config->structured());
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->criterion, ChannelCriterion::kTaylor);
  EXPECT_DOUBLE_EQ(options->fraction, 0.4);
  EXPECT_EQ(options->scope, PruningScope::kGlobal);
  EXPECT_EQ(options->layer_channels.at("conv1"), 8);
  EXPECT_THAT(options->excluded_layers, ElementsAre("fc"));
  // Unset fields keep the struct's defaults.
  EXPECT_EQ(options->min_channels, 1);

  absl::StatusOr<TrainOptions> train = ToTrainOptions(config->fine_tune(), TrainOptions());
  ASSERT_TRUE(train.ok());
  EXPECT_EQ(train->epochs, 2);
  EXPECT_EQ(train->optimizer, OptimizerKind::kAdam);
  EXPECT_EQ(train->schedule, LearningRateSchedule::kConstant);
  EXPECT_DOUBLE_EQ(train->learning_rate, TrainOptions().learning_rate);
}

TEST(ParsePruningConfig, SyntaxErrorNamesTheFileAndLine) {
  absl::StatusOr<proto::PruningConfig> config =
      ParsePruningConfig("structured {\n  fraction: oops\n}\n", "bad.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("bad.textproto"));
  EXPECT_THAT(config.status().message(), HasSubstr("line 2"));
}

TEST(ToTrainOptions, UnknownNamesAreInvalidArgument) {
  proto::TrainingSchedule schedule;
  schedule.set_optimizer("lbfgs");
  EXPECT_THAT(ToTrainOptions(schedule, {}).status().message(), HasSubstr("sgd or adam"));
  schedule.Clear();
  schedule.set_learning_rate_schedule("step");
  EXPECT_THAT(ToTrainOptions(schedule, {}).status().message(), HasSubstr("cosine or constant"));
}

TEST(ToUnstructuredPruningOptions, ReadsNmPattern) {
  proto::PruningMagnitudeConfig config;
  config.mutable_nm()->set_n(1);
  config.mutable_nm()->set_m(4);
  (*config.mutable_layer_sparsity())["fc1"] = 0.7;
  absl::StatusOr<UnstructuredPruningOptions> options = ToUnstructuredPruningOptions(config);
  ASSERT_TRUE(options.ok());
  ASSERT_TRUE(options->nm.has_value());
  EXPECT_EQ(options->nm->n, 1);
  EXPECT_EQ(options->nm->m, 4);
  EXPECT_DOUBLE_EQ(options->layer_sparsity.at("fc1"), 0.7);
}

TEST(ToEvolutionarySearchOptions, ReadsObjectivesAndCheckpoint) {
  proto::PruningSearchConfig config;
  config.set_algorithm(proto::PRUNING_SEARCH_GENETIC);
  config.add_objectives(proto::PRUNING_OBJECTIVE_LATENCY);
  config.set_elite_count(3);
  config.set_checkpoint(testing::TempPath("search.checkpoint"));
  absl::StatusOr<EvolutionarySearchOptions> options = ToEvolutionarySearchOptions(config, {});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->algorithm, SearchAlgorithm::kGenetic);
  ASSERT_EQ(options->objectives.size(), 1u);
  EXPECT_EQ(options->objectives[0], SearchObjective::kLatency);
  EXPECT_EQ(options->elite_count, 3);
  EXPECT_TRUE(static_cast<bool>(options->checkpointer.save));

  config.set_space(static_cast<proto::PruningSearchSpace>(17));
  EXPECT_EQ(ToEvolutionarySearchOptions(config, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SensitivityProto, RoundTrips) {
  SensitivityAnalysis analysis;
  analysis.method = SensitivityMethod::kChannels;
  analysis.baseline_accuracy = 0.91;
  analysis.examples = 2000;
  analysis.layers = {{"conv1", 32, {{0.25, 0.9, 0.3}, {0.5, 0.85, 0.4}}}};
  const SensitivityAnalysis back = FromSensitivityProto(ToSensitivityProto(analysis));
  EXPECT_EQ(back.method, SensitivityMethod::kChannels);
  EXPECT_DOUBLE_EQ(back.baseline_accuracy, 0.91);
  EXPECT_EQ(back.examples, 2000);
  ASSERT_EQ(back.layers.size(), 1u);
  EXPECT_EQ(back.layers[0].layer, "conv1");
  EXPECT_EQ(back.layers[0].size, 32);
  ASSERT_EQ(back.layers[0].points.size(), 2u);
  EXPECT_DOUBLE_EQ(back.layers[0].points[1].accuracy, 0.85);
}

TEST(FileCheckpointer, SavesAndLoadsAtomically) {
  const std::string path = testing::TempPath("state.checkpoint");
  SearchCheckpointer checkpointer = FileCheckpointer(path);
  absl::StatusOr<std::optional<SearchState>> nothing = checkpointer.load();
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(nothing->has_value());

  SearchState state;
  state.fingerprint = "0123456789abcdef";
  state.generations_completed = 3;
  state.rng_state = "1 2 3";
  state.population = {{1, 2, 3}, {0, 0, 4}};
  CandidateEvaluation candidate;
  candidate.genome = {1, 2, 3};
  candidate.channels = {{"conv1", 8}};
  candidate.accuracy = 0.875;
  candidate.file_bytes = 123456;
  candidate.violation = 0.25;
  candidate.generation = 2;
  state.archive = {candidate};
  GenerationSummary summary;
  summary.generation = 2;
  summary.best_feasible_accuracy = 0.8;
  state.history = {summary};
  ASSERT_TRUE(checkpointer.save(state).ok());

  absl::StatusOr<std::optional<SearchState>> loaded = checkpointer.load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  const SearchState& back = **loaded;
  EXPECT_EQ(back.fingerprint, state.fingerprint);
  EXPECT_EQ(back.generations_completed, 3);
  EXPECT_EQ(back.rng_state, "1 2 3");
  EXPECT_EQ(back.population, state.population);
  ASSERT_EQ(back.archive.size(), 1u);
  EXPECT_EQ(back.archive[0].genome, candidate.genome);
  EXPECT_EQ(back.archive[0].channels.at("conv1"), 8);
  EXPECT_DOUBLE_EQ(back.archive[0].accuracy, 0.875);
  EXPECT_EQ(back.archive[0].file_bytes, 123456);
  EXPECT_DOUBLE_EQ(back.archive[0].violation, 0.25);
  ASSERT_EQ(back.history.size(), 1u);
  EXPECT_EQ(back.history[0].generation, 2);
  EXPECT_DOUBLE_EQ(back.history[0].best_feasible_accuracy, 0.8);

  ASSERT_TRUE(WriteFileAtomically(path, "not a checkpoint \xff\xff\xff").ok());
  EXPECT_EQ(checkpointer.load().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(FileCheckpointer("/nonexistent/dir/state").save(state).ok());
}

// The example configs beside the prune command must parse and convert.
TEST(ExampleConfigs, ParseAndConvert) {
  for (const std::string name :
       {"mlp_gradual_90", "cnn_channels_50", "cnn_search_3x", "lenet_nm_2_4", "cnn_sensitivity"}) {
    const std::string path = "pruning/configs/" + name + ".textproto";
    absl::StatusOr<std::string> text = ReadFileToString(path);
    ASSERT_TRUE(text.ok()) << text.status();
    absl::StatusOr<proto::PruningConfig> config = ParsePruningConfig(*text, path);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_NE(config->method_case(), proto::PruningConfig::METHOD_NOT_SET) << name;
    EXPECT_TRUE(ToTrainOptions(config->fine_tune(), {}).ok()) << name;
    if (config->has_structured()) {
      EXPECT_TRUE(ToStructuredPruningOptions(config->structured()).ok()) << name;
    }
    if (config->has_gradual()) {
      EXPECT_TRUE(ToGradualPruningOptions(config->gradual(), {}).ok()) << name;
    }
    if (config->has_magnitude()) {
      EXPECT_TRUE(ToUnstructuredPruningOptions(config->magnitude()).ok()) << name;
    }
    if (config->has_sensitivity()) {
      EXPECT_TRUE(ToSensitivityOptions(config->sensitivity()).ok()) << name;
    }
    if (config->has_search()) {
      proto::PruningSearchConfig search = config->search();
      search.clear_checkpoint();
      EXPECT_TRUE(ToEvolutionarySearchOptions(search, {}).ok()) << name;
    }
  }
}

}  // namespace
}  // namespace polaris::pruning
