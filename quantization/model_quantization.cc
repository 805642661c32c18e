#include "quantization/model_quantization.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "quantization/internal/model_calibration.h"
#include "quantization/internal/model_convert.h"
#include "quantization/internal/model_pipeline.h"

namespace polaris::quantization {
namespace {

using internal::Conversion;
using internal::ConvertedLayer;
using internal::FlatModel;
using internal::Int8Plan;
using internal::LayerConversion;
using internal::PreparedModel;

// Examples the per-layer error measurement runs on.
constexpr int64_t kErrorMeasurementExamples = 256;

int64_t FloatLayerBytes(const FlatModel& flat, const internal::WeightLayer& layer) {
  int64_t bytes = 0;
  for (size_t input : {1, 2}) {
    const at::Tensor tensor = internal::TensorValue(flat, layer.node->input(input));
    if (tensor.defined()) bytes += tensor.numel() * tensor.element_size();
  }
  return bytes;
}

// Fills the per-layer reports and byte totals of `result` from `conversion`.
void Report(const PreparedModel& prepared, Conversion& conversion, QuantizationResult& result) {
  std::vector<bool> converted(prepared.layers.size(), false);
  for (ConvertedLayer& layer : conversion.layers) {
    converted[layer.layer] = true;
    result.weight_bytes_after += layer.report.bytes_after;
  }
  std::sort(conversion.layers.begin(), conversion.layers.end(),
            [](const ConvertedLayer& a, const ConvertedLayer& b) { return a.layer < b.layer; });
  for (const ConvertedLayer& layer : conversion.layers) result.layers.push_back(layer.report);
  for (size_t i = 0; i < prepared.layers.size(); ++i) {
    const int64_t bytes = FloatLayerBytes(prepared.flat, prepared.layers[i]);
    result.weight_bytes_before += bytes;
    if (!converted[i]) result.weight_bytes_after += bytes;
  }
}

}  // namespace

absl::StatusOr<QuantizationResult> QuantizeModel(const torch::jit::Module& model,
                                                 const QuantizationOptions& options,
                                                 const LabeledData& calibration_data) {
  POLARIS_RETURN_IF_ERROR(ValidateQuantizationOptions(options));
  POLARIS_RETURN_IF_ERROR(CheckClassifierSignature(model));
  POLARIS_RETURN_IF_ERROR(internal::CheckCalibrationInputs(calibration_data.inputs));
  const at::Tensor inputs = calibration_data.inputs.slice(0, 0, options.calibration_examples);

  POLARIS_ASSIGN_OR_RETURN(PreparedModel prepared,
                           internal::PrepareModel(model, inputs.slice(0, 0, 1)));
  QuantizationResult result;
  result.method = options.method;
  result.folded_batchnorm = prepared.folding.folded;
  result.unfolded_batchnorm = prepared.folding.not_folded;
  POLARIS_ASSIGN_OR_RETURN(std::vector<LayerConversion> conversions,
                           internal::ChooseConversions(prepared, options, &result.skipped));
  result.skipped.insert(result.skipped.end(), prepared.other_layers.begin(),
                        prepared.other_layers.end());

  Int8Plan plan;
  std::vector<QuantParams> site_params;
  switch (options.method) {
    case QuantizationMethod::kStatic: {
      plan = internal::PlanInt8Regions(prepared.flat, prepared.layers, conversions);
      POLARIS_ASSIGN_OR_RETURN(
          site_params,
          internal::CalibrateActivations(prepared.flat, plan.sites, inputs,
                                         internal::ActivationCalibrationOptions(options),
                                         options.calibration_batch_size, options.show_progress));
      break;
    }
    case QuantizationMethod::kDynamic:
    case QuantizationMethod::kWeightOnlyInt4:
      break;
    case QuantizationMethod::kQat:
    case QuantizationMethod::kMixedPrecision:
      return absl::UnimplementedError("not yet");
  }

  POLARIS_ASSIGN_OR_RETURN(
      Conversion conversion,
      internal::ConvertLayers(prepared.flat, prepared.layers, conversions, plan, site_params,
                              internal::MakeConverterOptions(options)));
  POLARIS_ASSIGN_OR_RETURN(
      result.output_sqnr_db,
      internal::MeasureOutputErrors(prepared.flat, conversion,
                                    inputs.slice(0, 0, kErrorMeasurementExamples)));
  Report(prepared, conversion, result);
  POLARIS_ASSIGN_OR_RETURN(result.model, internal::BuildModule(conversion.model, "QuantizedModel"));
  return result;
}

}  // namespace polaris::quantization
