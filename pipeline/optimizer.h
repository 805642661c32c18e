// The unified optimizer: runs a model through a plan of stages (pruning, fine-tuning,
// quantization, ...) under an accuracy guard, and measures everything it reports.
//
//   POLARIS_ASSIGN_OR_RETURN(PipelineData data, LoadPipelineData("fashion-mnist", {}));
//   POLARIS_ASSIGN_OR_RETURN(OptimizeOutput out, Optimize(model, config, data));
//   SaveModel(out.model, "optimized.pt");
//
// The accuracy guard: after each stage the model is evaluated on the validation data (held out
// from training, never the test set). When the drop against the original exceeds the budget,
// the stage's next, weaker setting is tried; when none fits, the stage is rolled back and the
// previous model kept. A stage that fails is recorded and skipped. The caller's model is never
// modified.
#ifndef POLARIS_PIPELINE_OPTIMIZER_H_
#define POLARIS_PIPELINE_OPTIMIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pipeline/data_source.h"
#include "pipeline/pipeline.pb.h"
#include "pipeline/stage.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pipeline {

struct OptimizeOptions {
  // Show training progress lines and per-stage log lines on stderr.
  bool verbose = true;
  // Path of the //pipeline:memory_probe binary; empty skips the peak-memory comparison (the
  // result then says so).
  std::string memory_probe;
  // Where to save temporary model files for the memory probe; empty means $TMPDIR or /tmp.
  std::string scratch_dir;
};

struct OptimizeOutput {
  torch::jit::Module model;
  proto::PipelineResult result;
};

// Optimizes a copy of `model` as `config` says (stages empty: the target's plan, see plan.h).
// Errors (nothing is changed or written): kInvalidArgument for an invalid config, a model whose
// forward does not map one tensor to one tensor, data whose example shape the model rejects,
// or labels beyond the model's classes. Stage failures are not errors: they are recorded in the
// result (had_failures) and the run continues with the previous model.
absl::StatusOr<OptimizeOutput> Optimize(const torch::jit::Module& model,
                                        const proto::PipelineConfig& config,
                                        const PipelineData& data,
                                        const OptimizeOptions& options = {});

// The same with stages built by the caller (custom Stage implementations): `resolved` must come
// from ResolveConfig, and `stages` must match its stage list one to one (their labels and the
// report come from the config).
absl::StatusOr<OptimizeOutput> RunStages(const torch::jit::Module& model,
                                         const proto::PipelineConfig& resolved,
                                         const std::vector<std::unique_ptr<Stage>>& stages,
                                         const PipelineData& data,
                                         const OptimizeOptions& options = {});

// One call with sensible defaults: the target's plan and budget, Fashion-MNIST from the default
// location, all hardware threads, seed 1.
absl::StatusOr<OptimizeOutput> QuickOptimize(const torch::jit::Module& model,
                                             proto::Target target);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_OPTIMIZER_H_
