#include "pruning/schedule.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace polaris::pruning {

absl::Status ValidateSchedule(const GradualSchedule& schedule) {
  const bool sparsities_ok =
      std::isfinite(schedule.initial_sparsity) && std::isfinite(schedule.final_sparsity) &&
      schedule.initial_sparsity >= 0 && schedule.initial_sparsity <= schedule.final_sparsity &&
      schedule.final_sparsity < 1;
  if (!sparsities_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("the schedule needs 0 <= initial_sparsity <= final_sparsity < 1, got ",
                     schedule.initial_sparsity, " and ", schedule.final_sparsity));
  }
  if (schedule.begin_step < 0 || schedule.end_step <= schedule.begin_step) {
    return absl::InvalidArgumentError(
        absl::StrCat("the schedule needs 0 <= begin_step < end_step, got ", schedule.begin_step,
                     " and ", schedule.end_step));
  }
  if (schedule.frequency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the pruning frequency must be at least 1 step, got ", schedule.frequency));
  }
  return absl::OkStatus();
}

double ScheduledSparsity(const GradualSchedule& schedule, int64_t step) {
  if (step < schedule.begin_step) return schedule.initial_sparsity;
  if (step >= schedule.end_step) return schedule.final_sparsity;
  const double progress = static_cast<double>(step - schedule.begin_step) /
                          static_cast<double>(schedule.end_step - schedule.begin_step);
  const double remaining = 1.0 - progress;
  return schedule.final_sparsity +
         (schedule.initial_sparsity - schedule.final_sparsity) * remaining * remaining * remaining;
}

bool IsPruningStep(const GradualSchedule& schedule, int64_t step) {
  if (step < schedule.begin_step || step > schedule.end_step) return false;
  return step == schedule.end_step || (step - schedule.begin_step) % schedule.frequency == 0;
}

}  // namespace polaris::pruning
