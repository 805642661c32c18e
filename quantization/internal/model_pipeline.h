// Steps that QuantizeModel, quantization-aware training and mixed precision share: preparing a
// flat, BatchNorm-folded model, choosing what each layer becomes, and measuring the errors of
// a conversion.
#ifndef POLARIS_QUANTIZATION_INTERNAL_MODEL_PIPELINE_H_
#define POLARIS_QUANTIZATION_INTERNAL_MODEL_PIPELINE_H_

#include <map>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "quantization/calibration.h"
#include "quantization/internal/model_batchnorm_folding.h"
#include "quantization/internal/model_convert.h"
#include "quantization/internal/model_graph.h"
#include "quantization/internal/model_layers.h"
#include "quantization/model_options.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization::internal {

struct PreparedModel {
  // Flat forward graph with BatchNorm folded.
  FlatModel flat;
  std::vector<WeightLayer> layers;
  FoldingReport folding;
  // Other parameterized layers (LayerNorm, unfolded BatchNorm, Embedding, ...), which no
  // conversion touches, with the reason.
  std::vector<SkippedLayer> other_layers;
};

// Flattens `model` (see model_graph.h), folds its BatchNorm layers using `example_input` and
// finds its layers. Errors: those of FlattenModel and FoldBatchNormInGraph.
absl::StatusOr<PreparedModel> PrepareModel(const torch::jit::Module& model,
                                           const at::Tensor& example_input);

// Returns the conversion each layer of `prepared` gets under `options.method` (kFloat32 for
// layers that stay in float, kInt8Static for the int8 layers of kStatic, kQat and
// kMixedPrecision, whose allocation later replaces it) and appends each layer left in float to
// `skipped` with the reason.
// Errors: kInvalidArgument when skip_layers names a layer the model does not have (listing the
// layers it has), when options.group_size does not divide the input size of a Linear layer
// that kWeightOnlyInt4 converts, or when no layer can be converted (listing why each stayed).
absl::StatusOr<std::vector<LayerConversion>> ChooseConversions(
    const PreparedModel& prepared, const QuantizationOptions& options,
    std::vector<SkippedLayer>* skipped);

// The observer options for activations: options.activation_calibration with per-tensor uint8
// and options.activation_scheme.
CalibrationOptions ActivationCalibrationOptions(const QuantizationOptions& options);

// Converter settings from the options.
ConverterOptions MakeConverterOptions(const QuantizationOptions& options);

// Checks that `inputs` has at least one example and only finite values, naming the first bad
// example. Returns kInvalidArgument otherwise.
absl::Status CheckCalibrationInputs(const at::Tensor& inputs);

// Fills each converted layer's output_sqnr_db and returns the SQNR of the model's output, both
// measured by running `reference` and `conversion.model` on `inputs`. Layers inside control
// flow keep NaN.
absl::StatusOr<double> MeasureOutputErrors(const FlatModel& reference, Conversion& conversion,
                                           const at::Tensor& inputs);

// Starts a result for `prepared`: method, BatchNorm folding outcome and the skipped layers
// (`skipped` from ChooseConversions followed by the other parameterized layers).
QuantizationResult StartResult(const PreparedModel& prepared, const QuantizationOptions& options,
                               std::vector<SkippedLayer> skipped);

// Converts `source` (prepared.flat, or a copy with retrained weights and the same graph) with
// ConvertLayers, measures the errors against `source` on `inputs` and fills `result`: layer
// reports in graph order, byte totals, output SQNR and the built module.
absl::Status FinishConversion(const PreparedModel& prepared, const FlatModel& source,
                              const std::vector<LayerConversion>& conversions,
                              const Int8Plan& plan, const std::vector<QuantParams>& site_params,
                              const LayerOverrides& overrides,
                              const QuantizationOptions& options, const at::Tensor& inputs,
                              QuantizationResult& result);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MODEL_PIPELINE_H_
