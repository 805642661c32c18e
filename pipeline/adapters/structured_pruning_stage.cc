#include "pipeline/adapters/structured_pruning_stage.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "pipeline/adapters/fine_tune_stage.h"
#include "pruning/proto_conversion.h"
#include "pruning/structured.h"

namespace polaris::pipeline {
namespace {

class StructuredPruningStage : public Stage {
 public:
  StructuredPruningStage(pruning::StructuredPruningOptions options, std::vector<double> fractions,
                         TrainOptions fine_tune, bool fine_tune_enabled)
      : options_(std::move(options)),
        fractions_(std::move(fractions)),
        fine_tune_(std::move(fine_tune)),
        fine_tune_enabled_(fine_tune_enabled) {}

  std::string kind() const override { return "structured_pruning"; }
  int num_settings() const override { return static_cast<int>(fractions_.size()); }
  std::string DescribeSetting(int setting) const override {
    std::string text = absl::StrFormat("remove %.1f%% of channels (%s)", 100 * fractions_[setting],
                                       pruning::ChannelCriterionName(options_.criterion));
    if (fine_tune_enabled_) {
      absl::StrAppend(&text, absl::StrFormat(", then fine-tune %d epochs", fine_tune_.epochs));
    }
    return text;
  }
  bool needs_training_data() const override {
    return fine_tune_enabled_ || options_.criterion == pruning::ChannelCriterion::kTaylor;
  }
  bool trains_model() const override { return fine_tune_enabled_; }

  absl::StatusOr<StageOutput> Run(const torch::jit::Module& model, int setting,
                                  const StageContext& context) override {
    pruning::StructuredPruningOptions options = options_;
    options.fraction = fractions_[setting];
    options.example_shape = context.example_shape;
    options.seed = context.seed;
    const LabeledData* importance =
        context.data->train.has_value() ? &*context.data->train : nullptr;
    POLARIS_ASSIGN_OR_RETURN(pruning::StructuredPruningResult pruned,
                             pruning::PruneChannels(model, options, importance));

    int64_t channels_before = 0;
    int64_t channels_after = 0;
    for (const pruning::ChannelGroupReport& group : pruned.groups) {
      channels_before += group.channels_before;
      channels_after += group.channels_after;
    }
    std::string summary = absl::StrFormat(
        "kept %d of %d channels; parameters %d -> %d", channels_after, channels_before,
        pruned.parameters_before, pruned.parameters_after);

    if (fine_tune_enabled_) {
      TrainOptions train = fine_tune_;
      train.seed = context.seed;
      train.show_progress = context.show_progress;
      train.name = "fine-tune pruned";
      POLARIS_ASSIGN_OR_RETURN(TrainResult result,
                               Train(pruned.model, *context.data->train, train));
      absl::StrAppend(&summary, absl::StrFormat("; fine-tuned %d steps in %.0f s", result.steps,
                                                result.seconds));
    }
    return StageOutput{pruned.model, summary, /*trainable=*/true};
  }

 private:
  pruning::StructuredPruningOptions options_;
  std::vector<double> fractions_;
  TrainOptions fine_tune_;
  bool fine_tune_enabled_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Stage>> MakeStructuredPruningStage(
    const proto::StructuredPruningStage& config) {
  POLARIS_ASSIGN_OR_RETURN(pruning::StructuredPruningOptions options,
                           pruning::ToStructuredPruningOptions(config.pruning()));
  std::vector<double> fractions = {config.pruning().has_fraction() ? config.pruning().fraction()
                                                                   : 0.5};
  for (double fraction : config.fallback_fractions()) fractions.push_back(fraction);
  for (size_t i = 0; i < fractions.size(); ++i) {
    if (fractions[i] < 0 || fractions[i] >= 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "structured pruning fractions must lie in [0, 1), got ", fractions[i]));
    }
    if (i > 0 && fractions[i] >= fractions[i - 1]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fallback_fractions must decrease (weaker settings after stronger ones), but ",
          fractions[i], " follows ", fractions[i - 1]));
    }
  }
  const bool fine_tune_enabled = config.has_fine_tune();
  TrainOptions fine_tune;
  if (fine_tune_enabled) {
    POLARIS_ASSIGN_OR_RETURN(fine_tune, ToTrainOptions(config.fine_tune()));
  }
  return std::unique_ptr<Stage>(new StructuredPruningStage(std::move(options), std::move(fractions),
                                                           std::move(fine_tune),
                                                           fine_tune_enabled));
}

}  // namespace polaris::pipeline
