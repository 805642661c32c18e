// Model-level quantization of TorchScript classifiers: the entry point the pipeline calls.
//
//   QuantizationOptions options;                       // static int8, per-channel weights
//   POLARIS_ASSIGN_OR_RETURN(QuantizationResult result,
//                            QuantizeModel(model, options, calibration_data));
//   POLARIS_RETURN_IF_ERROR(SaveModel(result.model, "model_int8.pt"));
//   for (const LayerReport& layer : result.layers) ...  // precision, scales, SQNR, bytes
//   for (const SkippedLayer& layer : result.skipped) ... // what stayed float, and why
//
// What QuantizeModel does, in order:
//  1. Copies the model's forward into one flat graph (model's submodules inlined, `training`
//     read as false), so the caller's module is never changed.
//  2. Folds BatchNorm into the convolution or Linear layer before it (model_batchnorm_folding.h).
//  3. Chooses each layer's format from options.method; layers it cannot convert, and layers of
//     other types that have parameters (LayerNorm, unfolded BatchNorm, ...), stay float32 and
//     are listed in `skipped` with the reason. Nothing is converted silently: every Linear and
//     convolution layer appears either in `layers` or in `skipped`.
//  4. kStatic: observes activation ranges on the calibration inputs and rewrites int8 regions to
//     LibTorch's quantized::conv2d / conv2d_relu / linear / linear_relu / add / add_relu on the
//     ONEDNN engine, with per-channel weights prepacked by quantized::conv2d_prepack and
//     linear_prepack, and biases corrected for the mean error of the int8 weights
//     (options.bias_correction). ReLU, pooling, flatten and residual adds between int8 layers
//     run on int8 tensors; values are quantized and dequantized only at the edges of the int8
//     regions. With use_polaris_ops, those edges use polaris's vectorized operators, and a
//     Linear layer that ends a region runs as polaris::quant_linear_int8, which returns float
//     outputs instead of requantized ones. kDynamic and kWeightOnlyInt4 replace Linear layers
//     with polaris's operators. kQat trains with fake quantization first (qat.h);
//     kMixedPrecision allocates a format per layer first (mixed_precision.h).
//  5. Measures each converted layer's output SQNR and the model's output SQNR against the float
//     model on the first calibration examples.
//
// The result's forward is that flat graph: a module of class __torch__.polaris.QuantizedModel
// whose attributes are the packed weights, scales and remaining float tensors (named after
// their module paths with '.' replaced by '_'). It saves as TorchScript. To run it elsewhere:
// LibTorch's packed int8 weights repack when loaded, so select the ONEDNN quantized engine first
// (core UseOnednnQuantizedEngine(); in Python torch.backends.quantized.engine = 'onednn'); and a
// model that calls polaris::quant_* operators needs //quantization:ops linked in C++ or
// torch.ops.load_library("libpolaris_quantization_ops.so") in Python. A kStatic model with
// use_polaris_ops = false calls only LibTorch's operators.
//
// Composing it in a pipeline:
//  - After structured pruning: any channel counts work (odd and prime counts included),
//    because every layer is quantized with its own per-channel parameters from its own shape.
//  - Before fine-tuning: the quantized model is not trainable; fine-tune the float model first,
//    or use kQat, which fine-tunes with fake quantization and returns the int8 model.
//  - After fine-tuning: quantize the fine-tuned float model; calibration needs no labels except
//    for kQat and kMixedPrecision (labels drive training and the loss-based sensitivities).
//  - LibTorch's intra-op thread count applies to the quantized operators as to float ones.
#ifndef POLARIS_QUANTIZATION_MODEL_QUANTIZATION_H_
#define POLARIS_QUANTIZATION_MODEL_QUANTIZATION_H_

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "quantization/model_options.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {

// Quantizes a copy of `model`, a TorchScript classifier whose forward takes one tensor and
// returns one tensor, with `options`, using `calibration_data` (the first
// options.calibration_examples inputs for activation ranges and error measurements; for kQat
// all of it is the training data, for kMixedPrecision its labels also score sensitivities and
// the chosen configuration's accuracy).
// Errors:
//  - kInvalidArgument: invalid options (ValidateQuantizationOptions), a model signature other
//    than one tensor in and out, empty calibration data, NaN or Inf in the calibration inputs
//    or in a converted layer's weights (naming the example or the layer), a group size that
//    does not divide a Linear layer's input size, unknown names in skip_layers, a model with
//    no layer the method can convert, labels outside the model's classes (kQat,
//    kMixedPrecision), a mixed-precision budget no assignment meets.
//  - kUnimplemented: a forward that assigns module attributes or calls interface methods.
//  - kFailedPrecondition: the polaris::quant_* operators are needed but not linked, or the
//    LibTorch build has no ONEDNN quantized engine.
//  - The model's own error (kInvalidArgument with LibTorch's reason) when it cannot run on the
//    calibration inputs.
absl::StatusOr<QuantizationResult> QuantizeModel(const torch::jit::Module& model,
                                                 const QuantizationOptions& options,
                                                 const LabeledData& calibration_data);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_MODEL_QUANTIZATION_H_
