#include "core/model_zoo.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/status_macros.h"

namespace polaris {
namespace {

// Changes whenever a reference model's architecture or recipe changes, so stale cached files
// are not reused.
// 2: trains without the held-out validation images (kReferenceValidationExamples).
constexpr int kRecipeVersion = 2;

}  // namespace

TrainOptions DefaultTrainOptions(ReferenceModel model) {
  TrainOptions options;
  options.optimizer = OptimizerKind::kSgd;
  options.schedule = LearningRateSchedule::kCosine;
  options.momentum = 0.9;
  options.batch_size = 128;
  options.name = absl::StrCat("train ", ReferenceModelName(model));
  switch (model) {
    case ReferenceModel::kMlp:
      options.epochs = 10;
      options.learning_rate = 0.05;
      options.weight_decay = 1e-4;
      break;
    case ReferenceModel::kLeNet:
      options.epochs = 10;
      options.learning_rate = 0.05;
      options.weight_decay = 5e-4;
      break;
    case ReferenceModel::kResidualCnn:
      options.epochs = 2;
      options.learning_rate = 0.1;
      options.weight_decay = 5e-4;
      options.warmup_steps = 100;
      break;
  }
  return options;
}

absl::StatusOr<TrainedModel> GetTrainedModel(ReferenceModel model, const ZooOptions& options) {
  TrainOptions train_options = DefaultTrainOptions(model);
  if (options.epochs > 0) train_options.epochs = options.epochs;
  train_options.seed = options.seed;
  train_options.show_progress = options.show_progress;

  std::string cache_dir = options.cache_dir;
  if (cache_dir.empty()) {
    POLARIS_ASSIGN_OR_RETURN(std::string user_cache, UserCacheDir());
    cache_dir = absl::StrCat(user_cache, "/models");
  }
  POLARIS_RETURN_IF_ERROR(MakeDirectories(cache_dir));
  const std::string data_dir =
      options.data_dir.empty() ? DefaultFashionMnistDir() : options.data_dir;

  TrainedModel trained;
  trained.path = absl::StrCat(cache_dir, "/", ReferenceModelName(model), "-v", kRecipeVersion,
                              "-e", train_options.epochs, "-s", options.seed, ".pt");
  if (!options.retrain && PathExists(trained.path)) {
    absl::StatusOr<torch::jit::Module> cached = LoadModel(trained.path);
    if (cached.ok()) {
      trained.model = *cached;
      trained.loaded_from_cache = true;
    } else {
      std::fprintf(stderr, "ignoring unreadable cached model (%s); training again\n",
                   std::string(cached.status().message()).c_str());
    }
  }

  if (!trained.loaded_from_cache) {
    POLARIS_ASSIGN_OR_RETURN(LabeledData all_train,
                             LoadFashionMnist(DataSplit::kTrain, data_dir));
    LabeledData train =
        SplitHoldOut(all_train,
                     static_cast<double>(kReferenceValidationExamples) / all_train.size(),
                     kReferenceSplitSeed)
            .first;
    POLARIS_ASSIGN_OR_RETURN(trained.model, MakeReferenceModel(model, options.seed));
    POLARIS_ASSIGN_OR_RETURN(TrainResult result, Train(trained.model, train, train_options));
    trained.train_seconds = result.seconds;
    absl::Status saved = SaveModel(trained.model, trained.path);
    if (!saved.ok()) return Annotate(saved, "saving the trained model to the cache");
  }

  POLARIS_ASSIGN_OR_RETURN(LabeledData test, LoadFashionMnist(DataSplit::kTest, data_dir));
  POLARIS_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(trained.model, test));
  trained.test_accuracy = eval.accuracy;
  trained.model.eval();
  return trained;
}

}  // namespace polaris
