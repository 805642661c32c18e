#include "pipeline/data_source.h"

#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/model_zoo.h"
#include "core/status_macros.h"
#include "core/tensor_file.h"
#include "core/torch_status.h"

namespace polaris::pipeline {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::string ExampleShape(const LabeledData& data) {
  return absl::StrCat("[", absl::StrJoin(data.inputs.sizes().slice(1), ", "), "]");
}

absl::StatusOr<int64_t> CountClasses(const LabeledData& train, const LabeledData& test) {
  return CallTorch("counting classes", [&] {
    int64_t max_label = test.labels.max().item<int64_t>();
    if (train.size() > 0) max_label = std::max(max_label, train.labels.max().item<int64_t>());
    return max_label + 1;
  });
}

// Splits `train` into fine-tuning, validation and calibration parts.
absl::StatusOr<PipelineData> SplitTraining(LabeledData train, LabeledData test,
                                           const DataOptions& options, std::string description) {
  const int64_t needed = options.validation_examples + 1;
  if (train.size() < needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        description, " has ", train.size(), " training examples; at least ", needed,
        " are needed to hold out ", options.validation_examples,
        " for validation. Hold out fewer with data { validation_examples: N } in --config, or "
        "pass only (inputs, labels) to skip training stages"));
  }
  PipelineData data;
  data.description = std::move(description);
  const double fraction = static_cast<double>(options.validation_examples) / train.size();
  // The split does not follow the run's seed: it is the one the reference models were trained
  // without (core/model_zoo.h), so their validation accuracy is not inflated by memory.
  auto [rest, validation] = SplitHoldOut(train, fraction, kReferenceSplitSeed);
  data.calibration = RandomSubset(rest, options.calibration_examples, options.seed + 1);
  data.validation = std::move(validation);
  data.train = std::move(rest);
  data.test = std::move(test);
  return data;
}

// Without training data, validation and calibration come from the evaluation data itself.
PipelineData FromTestOnly(LabeledData test, const DataOptions& options, std::string description) {
  PipelineData data;
  data.description = std::move(description);
  data.validation = test;
  data.calibration = RandomSubset(test, options.calibration_examples, options.seed + 1);
  data.test = std::move(test);
  data.notes =
      "the data has no training part: stages that train are skipped, and the accuracy guard and "
      "calibration use the evaluation data itself";
  return data;
}

}  // namespace

absl::StatusOr<PipelineData> LoadPipelineData(const std::string& source,
                                              const DataOptions& options) {
  if (options.validation_examples < 1 || options.calibration_examples < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "validation and calibration example counts must be positive, got ",
        options.validation_examples, " and ", options.calibration_examples));
  }

  PipelineData data;
  if (source.empty() || source == "fashion-mnist" || IsDirectory(source)) {
    const std::string dir =
        (source.empty() || source == "fashion-mnist") ? DefaultFashionMnistDir() : source;
    POLARIS_ASSIGN_OR_RETURN(LabeledData train, LoadFashionMnist(DataSplit::kTrain, dir));
    POLARIS_ASSIGN_OR_RETURN(LabeledData test, LoadFashionMnist(DataSplit::kTest, dir));
    POLARIS_ASSIGN_OR_RETURN(
        data, SplitTraining(std::move(train), std::move(test), options,
                            absl::StrCat("Fashion-MNIST-format IDX files in ", dir)));
  } else {
    if (!PathExists(source)) {
      return absl::NotFoundError(absl::StrCat(
          "data '", source, "' not found: use fashion-mnist, a folder of IDX files, or a file "
          "saved with torch.save((inputs, labels), path)"));
    }
    POLARIS_ASSIGN_OR_RETURN(SavedDataSets sets, LoadSavedDataSets(source));
    const std::string description = absl::StrCat("tensors saved from Python in ", source);
    // Check both parts before any indexing: a training part with fewer inputs than labels
    // would otherwise fail deep inside LibTorch while splitting.
    if (sets.test.size() == 0 || (sets.train.has_value() && sets.train->size() == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          description, " has no examples in its ", sets.test.size() == 0 ? "evaluation" : "training",
          " part; save at least one labeled example"));
    }
    const LabeledData no_training;
    POLARIS_ASSIGN_OR_RETURN(
        const int64_t classes,
        CountClasses(sets.train.has_value() ? *sets.train : no_training, sets.test));
    if (sets.train.has_value()) {
      POLARIS_RETURN_IF_ERROR(ValidateLabeledData(*sets.train, classes, "training data"));
    }
    POLARIS_RETURN_IF_ERROR(ValidateLabeledData(sets.test, classes, "evaluation data"));
    if (sets.train.has_value()) {
      POLARIS_ASSIGN_OR_RETURN(data, SplitTraining(std::move(*sets.train), std::move(sets.test),
                                                   options, description));
    } else {
      data = FromTestOnly(std::move(sets.test), options, description);
    }
  }

  if (data.train.has_value() &&
      data.train->inputs.sizes().slice(1) != data.test.inputs.sizes().slice(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        data.description, ": training examples have shape ", ExampleShape(*data.train),
        " but evaluation examples ", ExampleShape(data.test)));
  }
  const LabeledData empty;
  POLARIS_ASSIGN_OR_RETURN(data.num_classes,
                           CountClasses(data.train.has_value() ? *data.train : empty, data.test));
  POLARIS_RETURN_IF_ERROR(ValidateLabeledData(data.test, data.num_classes, "evaluation data"));
  return data;
}

}  // namespace polaris::pipeline
