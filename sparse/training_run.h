// One complete sparse training run, as //sparse:train_sparse and //sparse:demo perform it:
// optional dense baseline, dynamic sparse training, evaluation, sparse export, evaluation of
// the exported model, file sizes and whole-model latency, all collected in a SparseResult.
//
//   POLARIS_ASSIGN_OR_RETURN(SparseTrainingRun run,
//                            RunSparseTraining(model, train, test, config, defaults, "mlp"));
//   std::cout << FormatSparseResult(run.result);
#ifndef POLARIS_SPARSE_TRAINING_RUN_H_
#define POLARIS_SPARSE_TRAINING_RUN_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/trainer.h"
#include "sparse/sparse.pb.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::sparse {

struct SparseTrainingRun {
  proto::SparseResult result;
  // The sparse-trained model before export (masked weights are zeros) and the exported one.
  torch::jit::Module trained;
  torch::jit::Module exported;
};

// Trains a copy of `model` on `train` with the settings of `config` (unset training fields take
// `defaults`), exports it and measures everything on `test`. `model_name` is recorded in the
// result. `model` is not modified.
// Errors: kInvalidArgument for an invalid config or data; those of training, export and
// evaluation, with the stage named.
absl::StatusOr<SparseTrainingRun> RunSparseTraining(
    const torch::jit::Module& model, const LabeledData& train, const LabeledData& test,
    const proto::SparseConfig& config, const TrainOptions& defaults, const std::string& model_name);

// Formats the result as a short report: accuracies, sizes, latency and a table of layers.
std::string FormatSparseResult(const proto::SparseResult& result);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_TRAINING_RUN_H_
