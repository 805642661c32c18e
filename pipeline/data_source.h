// The data a pipeline run works on, from the --data flag: Fashion-MNIST (the default), a folder
// of IDX files laid out like Fashion-MNIST, or tensors a user saved from Python.
//
// From training data the pipeline takes three disjoint, seeded parts: examples for fine-tuning,
// a held-out validation set that the accuracy guard decides on (so no decision peeks at the
// test set), and calibration batches for quantization. Reported accuracies are measured on the
// whole evaluation (test) set.
//
//   POLARIS_ASSIGN_OR_RETURN(PipelineData data, LoadPipelineData("fashion-mnist", options));
#ifndef POLARIS_PIPELINE_DATA_SOURCE_H_
#define POLARIS_PIPELINE_DATA_SOURCE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"

namespace polaris::pipeline {

struct DataOptions {
  // Examples held out of the training data for the accuracy guard. They are always drawn with
  // kReferenceSplitSeed (core/model_zoo.h), whatever `seed` is.
  int64_t validation_examples = 5000;
  // Examples drawn from the training data for calibration.
  int64_t calibration_examples = 1024;
  // Seeds the calibration subset.
  uint64_t seed = 1;
};

struct PipelineData {
  // Human-readable origin, e.g. "Fashion-MNIST (/usr/share/datasets/fashion-mnist)".
  std::string description;
  // Training data without the validation examples; absent when the source has none, in which
  // case stages that train are skipped and say so.
  std::optional<LabeledData> train;
  // What the accuracy guard evaluates after each stage.
  LabeledData validation;
  // What quantization calibrates on.
  LabeledData calibration;
  // The full evaluation set behind every reported accuracy.
  LabeledData test;
  int64_t num_classes = 0;
  // Notes on how the parts were formed, e.g. when validation comes from the test set.
  std::string notes;
};

// Loads `source`:
//   "" or "fashion-mnist"  Fashion-MNIST from DefaultFashionMnistDir()
//   a directory            IDX files named like Fashion-MNIST's
//   a file                 a torch.save file (core/tensor_file.h layouts)
// When the source has no training data, validation and calibration are drawn from the test
// set and `notes` says so. Errors: those of the loaders; kInvalidArgument when the parts have
// different example shapes, or when the source is too small for the requested parts.
absl::StatusOr<PipelineData> LoadPipelineData(const std::string& source,
                                              const DataOptions& options);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_DATA_SOURCE_H_
