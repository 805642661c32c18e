#include "core/latency.h"

#include <chrono>
#include <thread>

#include "ATen/Functions.h"
#include "core/models.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(MeasureLatency, ReportsMedianOfSleeps) {
  LatencyOptions options;
  options.warmup_runs = 1;
  options.timed_runs = 7;
  int calls = 0;
  absl::StatusOr<LatencyStats> stats = MeasureLatency(
      [&] {
        ++calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return absl::OkStatus();
      },
      options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(calls, 8);
  EXPECT_EQ(stats->runs, 7);
  // A 2 ms sleep takes at least 2 ms; scheduling adds a little.
  EXPECT_GE(stats->median_ms, 2.0);
  EXPECT_LT(stats->median_ms, 50.0);
  EXPECT_GE(stats->p90_ms, stats->median_ms);
  EXPECT_LE(stats->min_ms, stats->median_ms);
}

TEST(MeasureLatency, StopsAtFirstErrorAndRejectsBadCounts) {
  LatencyOptions options;
  int calls = 0;
  absl::StatusOr<LatencyStats> stats = MeasureLatency(
      [&] { return ++calls == 3 ? absl::InternalError("third run failed") : absl::OkStatus(); },
      options);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(calls, 3);
  options.timed_runs = 0;
  EXPECT_EQ(MeasureLatency([] { return absl::OkStatus(); }, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MeasureModelLatency, TimesModelAndKeepsTrainingFlag) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  model->train(true);
  LatencyOptions options;
  options.warmup_runs = 2;
  options.timed_runs = 5;
  absl::StatusOr<LatencyStats> stats =
      MeasureModelLatency(*model, at::randn({4, 1, 28, 28}), options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->median_ms, 0);
  EXPECT_TRUE(model->is_training());

  const absl::Status bad = MeasureModelLatency(*model, at::randn({4, 3}), options).status();
  EXPECT_FALSE(bad.ok());
}

TEST(OptimizeForInference, MatchesOriginalOutputs) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kResidualCnn, 1);
  ASSERT_TRUE(model.ok());
  model->eval();
  absl::StatusOr<torch::jit::Module> optimized = OptimizeForInference(*model);
  ASSERT_TRUE(optimized.ok()) << optimized.status();
  const at::Tensor x = at::randn({3, 1, 28, 28});
  const at::Tensor expected = model->forward({x}).toTensor();
  const at::Tensor actual = optimized->forward({x}).toTensor();
  EXPECT_TRUE(at::allclose(expected, actual, 1e-4, 1e-4))
      << expected.sub(actual).abs().max().item<float>();
}

TEST(Median, HandlesOddAndEvenCounts) {
  std::vector<double> odd = {5, 1, 3};
  std::vector<double> even = {4, 1, 3, 2};
  EXPECT_EQ(Median(odd), 3);
  EXPECT_EQ(Median(even), 2.5);
}

}  // namespace
}  // namespace polaris
