// The interface every pipeline stage implements, and what a stage gets to work with.
//
// A stage turns one model into another (prune, quantize, fine-tune). It offers one or more
// settings, strongest first (for example "remove 50% of filters", then 37.5%, then 25%); the
// accuracy guard in optimizer.h runs them in order until one keeps the validation accuracy
// within the budget. Stages never modify the model they are given.
#ifndef POLARIS_PIPELINE_STAGE_H_
#define POLARIS_PIPELINE_STAGE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/trainer.h"
#include "pipeline/data_source.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pipeline {

struct StageContext {
  const PipelineData* data = nullptr;
  // Seed for this stage (the run's seed plus the stage's position).
  uint64_t seed = 1;
  int threads = 1;
  // Shape of one example without the batch dimension.
  std::vector<int64_t> example_shape;
  bool show_progress = true;
};

struct StageOutput {
  torch::jit::Module model;
  // One line about what the stage did, e.g. "removed 48 of 96 filters in 5 layers".
  std::string summary;
  // False once the model can no longer be trained (after int8 quantization).
  bool trainable = true;
};

class Stage {
 public:
  virtual ~Stage() = default;

  // The stage kind, e.g. "structured_pruning".
  virtual std::string kind() const = 0;

  // Number of settings, at least 1; setting 0 is the strongest.
  virtual int num_settings() const = 0;

  // Describes a setting in a few words, e.g. "remove 50% of filters".
  virtual std::string DescribeSetting(int setting) const = 0;

  // True when the stage trains and so needs PipelineData::train.
  virtual bool needs_training_data() const = 0;

  // True when the stage trains the model it is given, which must then still be trainable.
  virtual bool trains_model() const = 0;

  // Runs the stage at `setting` on a copy of `model`. Errors are recorded by the pipeline,
  // which keeps the previous model and continues.
  virtual absl::StatusOr<StageOutput> Run(const torch::jit::Module& model, int setting,
                                          const StageContext& context) = 0;
};

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_STAGE_H_
