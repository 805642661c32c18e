#include "quantization/mixed_precision.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "core/fashion_mnist.h"
#include "core/models.h"
#include "core/testing/test_seed.h"
#include "core/trainer.h"
#include "gtest/gtest.h"
#include "quantization/model_quantization.h"

namespace polaris::quantization {
namespace {

// Exhaustive search, the reference for the dynamic program.
AllocationSolution BruteForce(const AllocationProblem& problem) {
  AllocationSolution best;
  best.total_cost = std::numeric_limits<double>::infinity();
  std::vector<int> choices(problem.layers.size(), 0);
  while (true) {
    double cost = 0;
    double resource = 0;
    for (size_t i = 0; i < choices.size(); ++i) {
      cost += problem.layers[i][choices[i]].cost;
      resource += problem.layers[i][choices[i]].resource;
    }
    if (resource <= problem.budget &&
        (cost < best.total_cost || (cost == best.total_cost && resource < best.total_resource))) {
      best.choices = choices;
      best.total_cost = cost;
      best.total_resource = resource;
    }
    size_t i = 0;
    while (i < choices.size() && ++choices[i] == static_cast<int>(problem.layers[i].size())) {
      choices[i++] = 0;
    }
    if (i == choices.size()) break;
  }
  return best;
}

TEST(SolveBitAllocation, MatchesExhaustiveSearch) {
  std::mt19937_64 random(polaris::testing::TestSeed());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    AllocationProblem problem;
    const int layers = 1 + trial % 7;
    double max_total = 0;
    double min_total = 0;
    for (int i = 0; i < layers; ++i) {
      std::vector<AllocationChoice> choices;
      const int count = 1 + (trial + i) % 4;
      double largest = 0;
      double smallest = std::numeric_limits<double>::infinity();
      for (int c = 0; c < count; ++c) {
        // Integer resources in some trials, as bytes are, so that ties occur.
        const double resource = trial % 2 == 0 ? std::floor(uniform(random) * 8)
                                               : uniform(random) * 10;
        choices.push_back({std::floor(uniform(random) * 5), resource});
        largest = std::max(largest, resource);
        smallest = std::min(smallest, resource);
      }
      max_total += largest;
      min_total += smallest;
      problem.layers.push_back(choices);
    }
    problem.budget = min_total + uniform(random) * (max_total - min_total);

    absl::StatusOr<AllocationSolution> solution = SolveBitAllocation(problem);
    ASSERT_TRUE(solution.ok()) << "trial " << trial << ": " << solution.status();
    const AllocationSolution expected = BruteForce(problem);
    EXPECT_DOUBLE_EQ(solution->total_cost, expected.total_cost) << "trial " << trial;
    EXPECT_DOUBLE_EQ(solution->total_resource, expected.total_resource) << "trial " << trial;
    double cost = 0;
    double resource = 0;
    for (int i = 0; i < layers; ++i) {
      cost += problem.layers[i][solution->choices[i]].cost;
      resource += problem.layers[i][solution->choices[i]].resource;
    }
    EXPECT_DOUBLE_EQ(cost, solution->total_cost) << "trial " << trial;
    EXPECT_LE(resource, problem.budget) << "trial " << trial;
  }
}

TEST(SolveBitAllocation, RejectsInfeasibleAndInvalidProblems) {
  AllocationProblem problem;
  problem.layers = {{{1, 5}, {0, 9}}, {{2, 3}, {1, 4}}};
  problem.budget = 7;
  absl::Status status = SolveBitAllocation(problem).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("smallest possible total is 8"), absl::string_view::npos)
      << status;

  problem.budget = 8;
  absl::StatusOr<AllocationSolution> solution = SolveBitAllocation(problem);
  ASSERT_TRUE(solution.ok()) << solution.status();
  EXPECT_EQ(solution->choices, (std::vector<int>{0, 0}));

  problem.layers[1][0].cost = -1;
  EXPECT_EQ(SolveBitAllocation(problem).status().code(), absl::StatusCode::kInvalidArgument);
  problem.layers[1][0].cost = std::nan("");
  EXPECT_EQ(SolveBitAllocation(problem).status().code(), absl::StatusCode::kInvalidArgument);
  problem.layers[1].clear();
  EXPECT_EQ(SolveBitAllocation(problem).status().code(), absl::StatusCode::kInvalidArgument);
}

const LabeledData& Images() {
  static const LabeledData* data = [] {
    absl::StatusOr<LabeledData> train = LoadFashionMnist(DataSplit::kTrain);
    EXPECT_TRUE(train.ok()) << train.status();
    return new LabeledData(RandomSubset(*train, 1024, /*seed=*/5));
  }();
  return *data;
}

torch::jit::Module TrainedLeNet() {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 13);
  EXPECT_TRUE(model.ok()) << model.status();
  TrainOptions train;
  train.max_steps = 100;
  train.batch_size = 64;
  train.optimizer = OptimizerKind::kAdam;
  train.learning_rate = 2e-3;
  train.show_progress = false;
  EXPECT_TRUE(Train(*model, Images(), train).ok());
  return *model;
}

QuantizationOptions MixedOptions(SensitivityMetric metric) {
  QuantizationOptions options;
  options.method = QuantizationMethod::kMixedPrecision;
  options.use_polaris_ops = false;
  options.show_progress = false;
  options.calibration_examples = 512;
  options.mixed_precision.metric = metric;
  options.mixed_precision.candidates = {LayerPrecision::kFloat32, LayerPrecision::kBFloat16,
                                        LayerPrecision::kInt8};
  options.mixed_precision.sensitivity_examples = 128;
  options.mixed_precision.hutchinson_samples = 4;
  return options;
}

// Checks the report against an exhaustive search over its own numbers.
void ExpectOptimalUnderSizeBudget(const MixedPrecisionReport& report, double budget,
                                  int64_t fixed_bytes) {
  AllocationProblem problem;
  problem.budget = budget - fixed_bytes;
  for (const MixedPrecisionLayer& layer : report.layers) {
    std::vector<AllocationChoice> choices;
    for (size_t c = 0; c < layer.candidates.size(); ++c) {
      choices.push_back({layer.sensitivity[c], static_cast<double>(layer.bytes[c])});
    }
    problem.layers.push_back(choices);
  }
  const AllocationSolution best = BruteForce(problem);
  EXPECT_DOUBLE_EQ(report.total_sensitivity, best.total_cost);
  EXPECT_LE(report.total_bytes, budget);
}

TEST(QuantizeModel, MixedPrecisionUnderSizeBudget) {
  at::manual_seed(polaris::testing::TestSeed());
  torch::jit::Module model = TrainedLeNet();
  for (SensitivityMetric metric : {SensitivityMetric::kOutputSqnr,
                                   SensitivityMetric::kHessianTrace, SensitivityMetric::kFisher}) {
    QuantizationOptions options = MixedOptions(metric);
    // About 40% of the float32 weight bytes: some layers must leave float32 and bf16.
    options.mixed_precision.max_weight_bytes = 0.4 * 4 * 61706;
    absl::StatusOr<QuantizationResult> result = QuantizeModel(model, options, Images());
    ASSERT_TRUE(result.ok()) << static_cast<int>(metric) << ": " << result.status();
    const MixedPrecisionReport& report = result->mixed_precision;
    ASSERT_EQ(report.layers.size(), 5u);
    for (const MixedPrecisionLayer& layer : report.layers) {
      ASSERT_EQ(layer.candidates.size(), 3u) << layer.name;
      EXPECT_EQ(layer.sensitivity[0], 0) << layer.name;  // float32
      // int8 loses more than bf16 on every layer.
      EXPECT_GT(layer.sensitivity[2], layer.sensitivity[1]) << layer.name;
      EXPECT_GT(layer.bytes[0], layer.bytes[1]) << layer.name;
      EXPECT_FALSE(layer.reason.empty()) << layer.name;
    }
    ExpectOptimalUnderSizeBudget(report, options.mixed_precision.max_weight_bytes, 0);
    EXPECT_LE(result->weight_bytes_after, options.mixed_precision.max_weight_bytes);
    // Measured, not predicted: the converted model classifies nearly as the float one does.
    EXPECT_GT(report.float_calibration_accuracy, 0.3);
    EXPECT_NEAR(report.calibration_accuracy, report.float_calibration_accuracy, 0.05);
    EXPECT_GT(result->output_sqnr_db, 10);
  }
}

TEST(QuantizeModel, MixedPrecisionUnderLatencyBudget) {
  torch::jit::Module model = TrainedLeNet();
  QuantizationOptions options = MixedOptions(SensitivityMetric::kOutputSqnr);
  options.mixed_precision.budget = BudgetKind::kLatency;
  options.mixed_precision.latency_batch_size = 16;
  // A budget large enough for float32 everywhere: nothing loses accuracy then.
  options.mixed_precision.max_latency_ms = 1e6;
  absl::StatusOr<QuantizationResult> result = QuantizeModel(model, options, Images());
  ASSERT_TRUE(result.ok()) << result.status();
  for (const MixedPrecisionLayer& layer : result->mixed_precision.layers) {
    EXPECT_EQ(layer.chosen, LayerPrecision::kFloat32) << layer.name;
    for (double latency : layer.latency_ms) EXPECT_GT(latency, 0) << layer.name;
  }

  // The smallest achievable total forces the fastest candidate of every layer.
  double fastest_total = 0;
  for (const MixedPrecisionLayer& layer : result->mixed_precision.layers) {
    fastest_total += *std::min_element(layer.latency_ms.begin(), layer.latency_ms.end());
  }
  options.mixed_precision.max_latency_ms = fastest_total * 0.5;
  const absl::Status status = QuantizeModel(model, options, Images()).status();
  // Latencies are measured again, so half the earlier minimum is out of reach.
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("latency budget"), absl::string_view::npos) << status;
}

TEST(QuantizeModel, MixedPrecisionRejectsImpossibleSizeBudget) {
  torch::jit::Module model = TrainedLeNet();
  QuantizationOptions options = MixedOptions(SensitivityMetric::kOutputSqnr);
  options.mixed_precision.max_weight_bytes = 1000;
  const absl::Status status = QuantizeModel(model, options, Images()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("smallest possible total"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace polaris::quantization
