#include "pruning/internal/parallel.h"

#include <atomic>
#include <mutex>
#include <set>
#include <vector>

#include "ATen/Parallel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace polaris::pruning::internal {
namespace {

using ::testing::HasSubstr;

TEST(ParallelFor, RunsEveryTaskOnceWithWorkerThreadCount) {
  for (int workers : {1, 2, 3}) {
    std::vector<std::atomic<int>> runs(37);
    std::mutex mutex;
    std::set<int> seen_workers;
    std::set<int> seen_threads;
    const int saved = at::get_num_threads();
    absl::Status status = ParallelFor(workers, 1, 37, [&](int worker, int64_t task) {
      runs[task].fetch_add(1);
      std::lock_guard<std::mutex> lock(mutex);
      seen_workers.insert(worker);
      seen_threads.insert(at::get_num_threads());
      return absl::OkStatus();
    });
    ASSERT_TRUE(status.ok()) << status;
    for (int task = 0; task < 37; ++task) EXPECT_EQ(runs[task].load(), 1) << "task " << task;
    for (int worker : seen_workers) EXPECT_LT(worker, workers);
    EXPECT_EQ(seen_threads, std::set<int>({1}));
    EXPECT_EQ(at::get_num_threads(), saved);
  }
}

TEST(ParallelFor, ReturnsTheFirstErrorAndStops) {
  std::atomic<int> started{0};
  absl::Status status = ParallelFor(2, 1, 1000, [&](int worker, int64_t task) {
    started.fetch_add(1);
    if (task == 5) return absl::InvalidArgumentError("candidate 5 failed");
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("candidate 5"));
  EXPECT_LT(started.load(), 1000);
}

TEST(ParallelFor, BadWorkerCountIsInvalidArgument) {
  auto nothing = [](int, int64_t) { return absl::OkStatus(); };
  EXPECT_EQ(ParallelFor(0, 1, 3, nothing).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParallelFor(1, 0, 3, nothing).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris::pruning::internal
