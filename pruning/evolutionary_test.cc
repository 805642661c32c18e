#include "pruning/evolutionary.h"

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "core/dataset.h"
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/graph_utils.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pruning/internal/nsga2.h"
#include "pruning/sensitivity.h"

namespace polaris::pruning {
namespace {

using ::testing::HasSubstr;

// LeNet trained briefly on 6000 Fashion-MNIST training images; validation comes from other
// training images, never from the test set.
class EvolutionarySearchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LabeledData> all = LoadFashionMnist(DataSplit::kTrain);
    ASSERT_TRUE(all.ok()) << all.status();
    const LabeledData shuffled = RandomSubset(*all, 7000, 3);
    train_ = new LabeledData(Slice(shuffled, 0, 6000));
    validation_ = new LabeledData(Slice(shuffled, 6000, 1000));
    absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 1);
    ASSERT_TRUE(model.ok());
    TrainOptions options;
    options.epochs = 2;
    options.show_progress = false;
    ASSERT_TRUE(Train(*model, *train_, options).ok());
    model_ = new torch::jit::Module(*model);
  }

  static EvolutionarySearchOptions SmallOptions() {
    EvolutionarySearchOptions options;
    options.population_size = 6;
    options.generations = 3;
    options.validation_examples = 400;
    options.calibration_examples = 256;
    options.channel_step = 2;
    options.workers = 2;
    options.show_progress = false;
    return options;
  }

  static LabeledData* train_;
  static LabeledData* validation_;
  static torch::jit::Module* model_;
};

LabeledData* EvolutionarySearchTest::train_ = nullptr;
LabeledData* EvolutionarySearchTest::validation_ = nullptr;
torch::jit::Module* EvolutionarySearchTest::model_ = nullptr;

// A checkpointer that keeps the state in memory.
SearchCheckpointer MemoryCheckpointer(std::shared_ptr<std::optional<SearchState>> store) {
  SearchCheckpointer checkpointer;
  checkpointer.save = [store](const SearchState& state) {
    *store = state;
    return absl::OkStatus();
  };
  checkpointer.load = [store]() -> absl::StatusOr<std::optional<SearchState>> { return *store; };
  return checkpointer;
}

void ExpectSameArchive(const SearchResult& a, const SearchResult& b) {
  ASSERT_EQ(a.evaluated.size(), b.evaluated.size());
  for (size_t i = 0; i < a.evaluated.size(); ++i) {
    EXPECT_EQ(a.evaluated[i].genome, b.evaluated[i].genome) << "candidate " << i;
    EXPECT_EQ(a.evaluated[i].accuracy, b.evaluated[i].accuracy) << "candidate " << i;
    EXPECT_EQ(a.evaluated[i].file_bytes, b.evaluated[i].file_bytes) << "candidate " << i;
  }
  EXPECT_EQ(a.chosen.genome, b.chosen.genome);
}

TEST_F(EvolutionarySearchTest, Nsga2FrontIsMeasuredAndNonDominated) {
  const at::Tensor before = FindTensor(*model_, "conv2.weight")->clone();
  absl::StatusOr<SearchResult> result =
      EvolutionarySearch(*model_, *train_, *validation_, SmallOptions());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(FindTensor(*model_, "conv2.weight")->equal(before));

  EXPECT_TRUE(result->finished);
  EXPECT_EQ(result->generations_completed, 3);
  ASSERT_EQ(result->history.size(), 3u);
  EXPECT_EQ(result->gene_names, std::vector<std::string>({"conv1", "conv2", "fc1", "fc2"}));
  EXPECT_GT(result->baseline.accuracy, 0.6);
  ASSERT_FALSE(result->pareto_front.empty());
  for (size_t i = 0; i < result->pareto_front.size(); ++i) {
    const CandidateEvaluation& a = result->pareto_front[i];
    if (i > 0) {
      EXPECT_GE(a.file_bytes, result->pareto_front[i - 1].file_bytes);
    }
    for (const CandidateEvaluation& b : result->evaluated) {
      const bool dominated = b.accuracy >= a.accuracy && b.file_bytes <= a.file_bytes &&
                             (b.accuracy > a.accuracy || b.file_bytes < a.file_bytes);
      EXPECT_FALSE(dominated) << "front member " << i << " is dominated";
    }
  }

  // The chosen model is the measured candidate: same bytes and the same accuracy.
  absl::StatusOr<std::string> bytes = SerializeModel(result->chosen_model);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(static_cast<int64_t>(bytes->size()), result->chosen.file_bytes);
  absl::StatusOr<EvalResult> eval = Evaluate(result->chosen_model, Slice(*validation_, 0, 400));
  ASSERT_TRUE(eval.ok());
  EXPECT_DOUBLE_EQ(eval->accuracy, result->chosen.accuracy);
  const std::string table = FormatParetoFront(*result);
  EXPECT_THAT(table, HasSubstr("chosen"));
  std::printf("%s", table.c_str());
}

TEST_F(EvolutionarySearchTest, ResumedSearchEndsLikeUninterruptedOne) {
  EvolutionarySearchOptions options = SmallOptions();
  absl::StatusOr<SearchResult> uninterrupted =
      EvolutionarySearch(*model_, *train_, *validation_, options);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  auto store = std::make_shared<std::optional<SearchState>>();
  options.checkpointer = MemoryCheckpointer(store);
  options.max_generations_per_call = 2;
  absl::StatusOr<SearchResult> first = EvolutionarySearch(*model_, *train_, *validation_, options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->finished);
  ASSERT_TRUE(store->has_value());
  EXPECT_EQ((*store)->generations_completed, 2);

  // A different worker count must not change anything either (the intra-op thread count per
  // worker is part of the fingerprint).
  options.workers = 1;
  absl::StatusOr<SearchResult> resumed =
      EvolutionarySearch(*model_, *train_, *validation_, options);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->finished);
  ExpectSameArchive(*uninterrupted, *resumed);
  ASSERT_EQ(resumed->history.size(), 3u);
  EXPECT_EQ(resumed->history[0].evaluated, uninterrupted->history[0].evaluated);

  options.seed = 2;
  absl::StatusOr<SearchResult> other = EvolutionarySearch(*model_, *train_, *validation_, options);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.status().message(), HasSubstr("another model, data or options"));
}

TEST_F(EvolutionarySearchTest, GeneticSearchMeetsSizeConstraintWithElitism) {
  EvolutionarySearchOptions options = SmallOptions();
  options.algorithm = SearchAlgorithm::kGenetic;
  options.generations = 4;
  options.elite_count = 2;
  options.min_size_reduction = 2.0;
  SensitivityOptions scan_options;
  scan_options.method = SensitivityMethod::kChannels;
  scan_options.sparsities = {0.25, 0.5, 0.75};
  absl::StatusOr<SensitivityAnalysis> scan =
      ScanSensitivity(*model_, Slice(*validation_, 0, 400), scan_options);
  ASSERT_TRUE(scan.ok()) << scan.status();
  options.sensitivity = *scan;
  absl::StatusOr<SearchResult> result = EvolutionarySearch(*model_, *train_, *validation_, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->chosen_feasible);
  EXPECT_GE(static_cast<double>(result->baseline.file_bytes) / result->chosen.file_bytes, 2.0);
  // With elitism the best feasible accuracy in the population never falls.
  for (size_t g = 1; g < result->history.size(); ++g) {
    EXPECT_GE(result->history[g].best_feasible_accuracy,
              result->history[g - 1].best_feasible_accuracy)
        << "generation " << g;
  }
}

TEST_F(EvolutionarySearchTest, SparsitySearchMeasuresExportedBytes) {
  EvolutionarySearchOptions options = SmallOptions();
  options.space = SearchSpace::kSparsity;
  options.population_size = 4;
  options.generations = 2;
  options.sparsity_step = 0.1;
  options.max_sparsity = 0.9;
  options.max_accuracy_drop = 0.03;
  absl::StatusOr<SearchResult> result = EvolutionarySearch(*model_, *train_, *validation_, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->gene_names.size(), 5u);
  bool some_smaller = false;
  for (const CandidateEvaluation& candidate : result->evaluated) {
    double mean_sparsity = 0;
    for (const auto& [layer, sparsity] : candidate.sparsity) mean_sparsity += sparsity / 5;
    // The sparse export stores pruned weights compactly: sparser candidates are smaller files.
    if (mean_sparsity > 0.5) {
      EXPECT_LT(candidate.file_bytes, result->baseline.file_bytes);
      some_smaller = true;
    }
    EXPECT_LE(candidate.parameters, result->baseline.parameters);
  }
  EXPECT_TRUE(some_smaller);
  EXPECT_GE(result->chosen.accuracy, result->baseline.accuracy - 0.03);
}

TEST_F(EvolutionarySearchTest, BadOptionsAreInvalidArgument) {
  struct Case {
    std::string name;
    EvolutionarySearchOptions options;
    std::string message;
  };
  std::vector<Case> cases;
  {
    Case c{"elite larger than population", SmallOptions(), "larger than elite_count"};
    c.options.algorithm = SearchAlgorithm::kGenetic;
    c.options.min_size_reduction = 2;
    c.options.population_size = 4;
    c.options.elite_count = 6;
    cases.push_back(c);
  }
  {
    Case c{"genetic without constraint", SmallOptions(), "min_size_reduction or min_speedup"};
    c.options.algorithm = SearchAlgorithm::kGenetic;
    cases.push_back(c);
  }
  {
    Case c{"no objective", SmallOptions(), "at least one objective"};
    c.options.objectives.clear();
    cases.push_back(c);
  }
  {
    Case c{"tiny population", SmallOptions(), "population_size must be at least 2"};
    c.options.population_size = 1;
    cases.push_back(c);
  }
  {
    Case c{"bad probability", SmallOptions(), "crossover_probability"};
    c.options.crossover_probability = 1.5;
    cases.push_back(c);
  }
  {
    Case c{"mismatched scan", SmallOptions(), "does not match the search space"};
    c.options.sensitivity = SensitivityAnalysis{};
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    absl::StatusOr<SearchResult> result =
        EvolutionarySearch(*model_, *train_, *validation_, c.options);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(result.status().message(), HasSubstr(c.message)) << c.name;
  }
}

}  // namespace
}  // namespace polaris::pruning
