#include "pipeline/adapters/fine_tune_stage.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/model_io.h"
#include "core/status_macros.h"

namespace polaris::pipeline {
namespace {

class FineTuneStage : public Stage {
 public:
  explicit FineTuneStage(TrainOptions options) : options_(std::move(options)) {}

  std::string kind() const override { return "fine_tune"; }
  int num_settings() const override { return 1; }
  std::string DescribeSetting(int setting) const override {
    return absl::StrFormat("%d epochs at learning rate %g", options_.epochs,
                           options_.learning_rate);
  }
  bool needs_training_data() const override { return true; }
  bool trains_model() const override { return true; }

  absl::StatusOr<StageOutput> Run(const torch::jit::Module& model, int setting,
                                  const StageContext& context) override {
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
    TrainOptions options = options_;
    options.seed = context.seed;
    options.show_progress = context.show_progress;
    options.name = "fine-tune";
    POLARIS_ASSIGN_OR_RETURN(TrainResult result, Train(copy, *context.data->train, options));
    StageOutput output{copy,
                       absl::StrFormat("fine-tuned %d steps in %.1f s", result.steps,
                                       result.seconds),
                       /*trainable=*/true};
    return output;
  }

 private:
  TrainOptions options_;
};

}  // namespace

absl::StatusOr<TrainOptions> ToTrainOptions(const proto::FineTuneConfig& config) {
  TrainOptions options;
  options.epochs = 1;
  options.learning_rate = 0.01;
  options.weight_decay = 5e-4;
  options.batch_size = 128;
  options.schedule = LearningRateSchedule::kCosine;
  if (config.epochs() < 0 || config.learning_rate() < 0 || config.batch_size() < 0 ||
      config.weight_decay() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fine_tune settings must not be negative (epochs ", config.epochs(), ", learning_rate ",
        config.learning_rate(), ", batch_size ", config.batch_size(), ", weight_decay ",
        config.weight_decay(), ")"));
  }
  if (config.epochs() > 0) options.epochs = config.epochs();
  if (config.learning_rate() > 0) options.learning_rate = config.learning_rate();
  if (config.batch_size() > 0) options.batch_size = config.batch_size();
  if (config.weight_decay() > 0) options.weight_decay = config.weight_decay();
  if (config.optimizer().empty() || config.optimizer() == "sgd") {
    options.optimizer = OptimizerKind::kSgd;
  } else if (config.optimizer() == "adam") {
    options.optimizer = OptimizerKind::kAdam;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown fine_tune optimizer '",
                                                   config.optimizer(), "'; use sgd or adam"));
  }
  return options;
}

absl::StatusOr<std::unique_ptr<Stage>> MakeFineTuneStage(const proto::FineTuneConfig& config) {
  POLARIS_ASSIGN_OR_RETURN(TrainOptions options, ToTrainOptions(config));
  return std::unique_ptr<Stage>(new FineTuneStage(std::move(options)));
}

}  // namespace polaris::pipeline
