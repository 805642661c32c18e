#include "pruning/schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace polaris::pruning {
namespace {

GradualSchedule Schedule() {
  GradualSchedule schedule;
  schedule.initial_sparsity = 0.1;
  schedule.final_sparsity = 0.9;
  schedule.begin_step = 100;
  schedule.end_step = 500;
  schedule.frequency = 30;
  return schedule;
}

TEST(ScheduledSparsity, FollowsTheCubicCurve) {
  const GradualSchedule schedule = Schedule();
  EXPECT_DOUBLE_EQ(ScheduledSparsity(schedule, 0), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledSparsity(schedule, 100), 0.1);
  // Halfway: s_f + (s_i - s_f) * 0.5^3.
  EXPECT_DOUBLE_EQ(ScheduledSparsity(schedule, 300), 0.9 - 0.8 * 0.125);
  EXPECT_DOUBLE_EQ(ScheduledSparsity(schedule, 500), 0.9);
  EXPECT_DOUBLE_EQ(ScheduledSparsity(schedule, 10000), 0.9);
}

TEST(ScheduledSparsity, RisesFastThenSlowly) {
  const GradualSchedule schedule = Schedule();
  double previous_sparsity = ScheduledSparsity(schedule, 100);
  double previous_increase = 1.0;
  for (int64_t step = 150; step <= 500; step += 50) {
    const double sparsity = ScheduledSparsity(schedule, step);
    const double increase = sparsity - previous_sparsity;
    EXPECT_GT(increase, 0) << "step " << step;
    EXPECT_LT(increase, previous_increase) << "step " << step;
    previous_sparsity = sparsity;
    previous_increase = increase;
  }
}

TEST(IsPruningStep, EveryFrequencyStepsAndAtTheEnd) {
  const GradualSchedule schedule = Schedule();
  EXPECT_FALSE(IsPruningStep(schedule, 99));
  EXPECT_TRUE(IsPruningStep(schedule, 100));
  EXPECT_FALSE(IsPruningStep(schedule, 101));
  EXPECT_TRUE(IsPruningStep(schedule, 130));
  EXPECT_TRUE(IsPruningStep(schedule, 490));
  // 500 is not a multiple of 30 steps after 100, but the final sparsity must be reached.
  EXPECT_TRUE(IsPruningStep(schedule, 500));
  EXPECT_FALSE(IsPruningStep(schedule, 520));
}

TEST(ValidateSchedule, RejectsBadValues) {
  GradualSchedule schedule = Schedule();
  EXPECT_TRUE(ValidateSchedule(schedule).ok());
  schedule.final_sparsity = 1.0;
  EXPECT_EQ(ValidateSchedule(schedule).code(), absl::StatusCode::kInvalidArgument);
  schedule = Schedule();
  schedule.initial_sparsity = 0.95;
  EXPECT_EQ(ValidateSchedule(schedule).code(), absl::StatusCode::kInvalidArgument);
  schedule = Schedule();
  schedule.end_step = schedule.begin_step;
  EXPECT_EQ(ValidateSchedule(schedule).code(), absl::StatusCode::kInvalidArgument);
  schedule = Schedule();
  schedule.frequency = 0;
  EXPECT_EQ(ValidateSchedule(schedule).code(), absl::StatusCode::kInvalidArgument);
  schedule = Schedule();
  schedule.initial_sparsity = NAN;
  EXPECT_EQ(ValidateSchedule(schedule).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace polaris::pruning
