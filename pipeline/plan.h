// The stage plan and default accuracy budget of each optimization target.
#ifndef POLARIS_PIPELINE_PLAN_H_
#define POLARIS_PIPELINE_PLAN_H_

#include <vector>

#include "pipeline/pipeline.pb.h"

namespace polaris::pipeline {

// Default maximum accuracy drop of a target, in points.
double DefaultAccuracyBudget(proto::Target target);

// The stages a target runs when the config lists none.
std::vector<proto::StageConfig> DefaultPlan(proto::Target target);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_PLAN_H_
