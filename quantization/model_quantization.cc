#include "quantization/model_quantization.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "quantization/internal/model_calibration.h"
#include "quantization/internal/model_convert.h"
#include "quantization/internal/model_pipeline.h"
#include "quantization/internal/mixed_precision.h"
#include "quantization/qat.h"

namespace polaris::quantization {
namespace {

using internal::Int8Plan;
using internal::LayerConversion;
using internal::PreparedModel;

absl::StatusOr<QuantizationResult> RunQat(const torch::jit::Module& model,
                                          const QuantizationOptions& options,
                                          const LabeledData& data) {
  POLARIS_ASSIGN_OR_RETURN(QatModel qat, PrepareQat(model, options, data));
  TrainOptions train;
  train.epochs = options.qat.epochs;
  train.max_steps = options.qat.max_steps;
  train.batch_size = options.qat.batch_size;
  train.optimizer = OptimizerKind::kSgd;
  train.learning_rate = options.qat.learning_rate;
  train.momentum = 0.9;
  train.weight_decay = options.qat.weight_decay;
  train.schedule = LearningRateSchedule::kCosine;
  train.seed = options.qat.seed;
  train.name = "qat";
  train.show_progress = options.show_progress;
  train.after_step = QatAfterStepHook(qat);
  POLARIS_ASSIGN_OR_RETURN(const TrainResult trained, Train(qat.module, data, train));

  POLARIS_ASSIGN_OR_RETURN(QuantizationResult result, ConvertQat(qat, data));
  result.qat.steps = trained.steps;
  result.qat.seconds = trained.seconds;
  result.qat.last_epoch_loss = trained.last_epoch_loss;
  result.qat.last_epoch_accuracy = trained.last_epoch_accuracy;
  return result;
}

}  // namespace

absl::StatusOr<QuantizationResult> QuantizeModel(const torch::jit::Module& model,
                                                 const QuantizationOptions& options,
                                                 const LabeledData& calibration_data) {
  POLARIS_RETURN_IF_ERROR(ValidateQuantizationOptions(options));
  POLARIS_RETURN_IF_ERROR(CheckClassifierSignature(model));
  POLARIS_RETURN_IF_ERROR(internal::CheckCalibrationInputs(calibration_data.inputs));
  if (options.method == QuantizationMethod::kQat) return RunQat(model, options, calibration_data);
  const at::Tensor inputs = calibration_data.inputs.slice(0, 0, options.calibration_examples);

  POLARIS_ASSIGN_OR_RETURN(PreparedModel prepared,
                           internal::PrepareModel(model, inputs.slice(0, 0, 1)));
  std::vector<SkippedLayer> skipped;
  POLARIS_ASSIGN_OR_RETURN(std::vector<LayerConversion> conversions,
                           internal::ChooseConversions(prepared, options, &skipped));
  QuantizationResult result = internal::StartResult(prepared, options, std::move(skipped));

  Int8Plan plan;
  std::vector<QuantParams> site_params;
  if (options.method == QuantizationMethod::kMixedPrecision) {
    POLARIS_ASSIGN_OR_RETURN(
        internal::MixedPrecisionAllocation allocation,
        internal::AllocateMixedPrecision(prepared, conversions, options, calibration_data));
    conversions = std::move(allocation.conversions);
    plan = std::move(allocation.plan);
    site_params = std::move(allocation.site_params);
    result.mixed_precision = std::move(allocation.report);
  } else if (options.method == QuantizationMethod::kStatic) {
    plan = internal::PlanInt8Regions(prepared.flat, prepared.layers, conversions);
    POLARIS_ASSIGN_OR_RETURN(
        site_params,
        internal::CalibrateActivations(prepared.flat, plan.sites, inputs,
                                       internal::ActivationCalibrationOptions(options),
                                       options.calibration_batch_size, options.show_progress));
  }
  internal::LayerOverrides overrides;
  if (options.bias_correction) {
    POLARIS_ASSIGN_OR_RETURN(
        overrides.bias_corrections,
        internal::MeasureBiasCorrections(prepared.flat, prepared.layers, conversions, inputs,
                                         options.calibration_batch_size,
                                         internal::MakeConverterOptions(options)));
  }
  POLARIS_RETURN_IF_ERROR(internal::FinishConversion(prepared, prepared.flat, conversions, plan,
                                                     site_params, overrides, options, inputs,
                                                     result));
  if (options.method == QuantizationMethod::kMixedPrecision) {
    POLARIS_RETURN_IF_ERROR(
        internal::MeasureMixedPrecisionAccuracy(model, result, calibration_data));
  }
  return result;
}

}  // namespace polaris::quantization
