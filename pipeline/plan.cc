#include "pipeline/plan.h"

namespace polaris::pipeline {

double DefaultAccuracyBudget(proto::Target target) {
  switch (target) {
    case proto::ACCURACY: return 0.2;
    case proto::BALANCED: return 1.0;
    case proto::SPEED: return 2.0;
    case proto::MEMORY: return 1.5;
    case proto::EXTREME: return 3.0;
    default: return 1.0;
  }
}

std::vector<proto::StageConfig> DefaultPlan(proto::Target target) {
  // TODO: the plans for each target arrive with the pruning and quantization stages.
  proto::StageConfig fine_tune;
  fine_tune.mutable_fine_tune()->set_epochs(1);
  return {fine_tune};
}

}  // namespace polaris::pipeline
