// The gradual pruning schedule of Zhu and Gupta (2017, "To prune, or not to prune: exploring
// the efficacy of pruning for model compression"): sparsity rises from s_i to s_f along a
// cubic curve, fast at first while many redundant weights remain and slowly near the end,
//
//   s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0))^3   for t_0 <= t <= t_end,
//
// with masks recomputed every `frequency` steps from t_0 and at t_end itself.
#ifndef POLARIS_PRUNING_SCHEDULE_H_
#define POLARIS_PRUNING_SCHEDULE_H_

#include <cstdint>

#include "absl/status/status.h"

namespace polaris::pruning {

struct GradualSchedule {
  double initial_sparsity = 0.0;
  double final_sparsity = 0.9;
  // Optimizer steps (0-based) of the first and last mask update.
  int64_t begin_step = 0;
  int64_t end_step = 1000;
  // Steps between mask updates.
  int64_t frequency = 100;
};

// Returns kInvalidArgument unless 0 <= initial_sparsity <= final_sparsity < 1,
// 0 <= begin_step < end_step and frequency >= 1, naming the values.
absl::Status ValidateSchedule(const GradualSchedule& schedule);

// Returns s_t: initial_sparsity before begin_step, final_sparsity after end_step, the cubic
// curve between.
double ScheduledSparsity(const GradualSchedule& schedule, int64_t step);

// True at begin_step, every `frequency` steps after it, and at end_step.
bool IsPruningStep(const GradualSchedule& schedule, int64_t step);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_SCHEDULE_H_
