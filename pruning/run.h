// One pruning run as a PruningConfig describes it. The run prunes (magnitude, N:M, structured,
// gradual or by evolutionary search) or scans sensitivity, fine-tunes and exports through the
// sparse format if asked, and measures the model before and after in the same process: test
// accuracy, serialized size, parameters and latency (both after optimize_for_inference, timed
// alternately). //pruning:prune is this function behind command-line flags.
//
//   PruningRunInput input{model, "cnn", ReferenceModel::kResidualCnn, train, test, "..."};
//   POLARIS_ASSIGN_OR_RETURN(PruningRunOutput output, RunPruning(input, config));
//   output.result;   // proto::PruningResult with every measured number
#ifndef POLARIS_PRUNING_RUN_H_
#define POLARIS_PRUNING_RUN_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/models.h"
#include "pruning/pruning.pb.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

struct PruningRunInput {
  torch::jit::Module model;
  // A reference model name or a file path, for the result.
  std::string model_name;
  // Set for reference models: their default training recipe is the fine-tuning default.
  std::optional<ReferenceModel> reference;
  // Training data (may be empty when no method needs it); validation is held out from it.
  LabeledData train;
  // Accuracy before and after is measured on all of it.
  LabeledData test;
  std::string data_name;
};

struct PruningRunOutput {
  // The model to write; empty for a sensitivity scan, which changes no model.
  std::optional<torch::jit::Module> model;
  proto::PruningResult result;
  // Human-readable tables (per layer or group, sensitivity, Pareto front) and a summary.
  std::string report;
};

// Runs `config` on a copy of `input.model`. Sets LibTorch and OpenBLAS threads to
// config.threads (default: all hardware threads) for the whole run.
// Errors: kInvalidArgument for a config without a method, a method that needs training data
// when there is none, or invalid options (the message of the function that rejects them);
// errors of pruning, training, export and measurement.
absl::StatusOr<PruningRunOutput> RunPruning(const PruningRunInput& input,
                                            const proto::PruningConfig& config);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_RUN_H_
