// Quantization-aware training (QAT): fine-tuning a float model through fake quantization, so
// that its weights adapt to int8 rounding, then conversion to the same int8 model as
// post-training static quantization.
//
// PrepareQat folds BatchNorm, plans the int8 regions exactly as static quantization does,
// calibrates the activation ranges, and inserts fake quantization (quantize, then dequantize,
// in float) at every place the int8 model quantizes:
//  - each int8 layer's weight, per output channel, symmetric int8 [-127, 127];
//  - each activation the int8 model quantizes (region inputs and the outputs of int8 layers and
//    residual adds), per tensor, uint8 [0, 255].
// Gradients pass through rounding unchanged inside the clipping range and are zero outside it
// (the straight-through estimator, LibTorch's aten::fake_quantize_* operators). With
// learnable_scales, the scales are parameters trained with LSQ's gradient (Esser et al.,
// "Learned Step Size Quantization", ICLR 2020), scaled by 1 / sqrt(elements * qmax) as that
// paper recommends; otherwise weight scales follow the weights' current range and activation
// scales stay at their calibrated values. ConvertQat quantizes the trained weights with the
// scales the training used.
//
//   POLARIS_ASSIGN_OR_RETURN(QatModel qat, PrepareQat(model, options, calibration_data));
//   TrainOptions train;                               // a small learning rate: fine-tuning
//   train.after_step = QatAfterStepHook(qat);
//   POLARIS_RETURN_IF_ERROR(Train(qat.module, training_data, train).status());
//   POLARIS_ASSIGN_OR_RETURN(QuantizationResult int8, ConvertQat(qat, calibration_data));
//
// QuantizeModel with QuantizationMethod::kQat runs these steps with core's Train and
// options.qat. In the QAT module, BatchNorm is already folded (its statistics are frozen) and
// dropout runs in eval mode.
#ifndef POLARIS_QUANTIZATION_QAT_H_
#define POLARIS_QUANTIZATION_QAT_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "quantization/model_options.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {

namespace internal {
struct QatState;
}  // namespace internal

struct QatModel {
  // A trainable float module with fake quantization; its parameters are the layers' weights
  // and biases, plus the scales when learnable_scales is set. It owns its tensors.
  torch::jit::Module module;
  std::shared_ptr<const internal::QatState> state;
};

// Prepares QAT for a copy of `model` with `options` (method kQat; skip_layers, granularity,
// activation calibration and options.qat.learnable_scales apply), calibrating activations on
// the first options.calibration_examples inputs of `calibration_data`.
// Errors: those of QuantizeModel before training (invalid options, data or model).
absl::StatusOr<QatModel> PrepareQat(const torch::jit::Module& model,
                                    const QuantizationOptions& options,
                                    const LabeledData& calibration_data);

// Returns a TrainOptions::after_step hook that keeps learned scales positive (LSQ can push a
// scale through zero). It does nothing when the scales are not learned.
std::function<absl::Status(int64_t step)> QatAfterStepHook(const QatModel& qat);

// Converts the trained QAT module to the int8 model, with the same structure and report as
// QuantizeModel's kStatic result, measuring errors against the trained float weights on the
// first calibration inputs. Errors: kInvalidArgument when training left NaN or Inf in a weight
// or scale, naming it.
absl::StatusOr<QuantizationResult> ConvertQat(const QatModel& qat,
                                              const LabeledData& calibration_data);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_QAT_H_
