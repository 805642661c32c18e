// The steps of mixed-precision quantization (quantization/mixed_precision.h describes them):
// sensitivities, per-layer costs, allocation, and the measured accuracy of the result.
#ifndef POLARIS_QUANTIZATION_INTERNAL_MIXED_PRECISION_H_
#define POLARIS_QUANTIZATION_INTERNAL_MIXED_PRECISION_H_

#include <unordered_map>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "quantization/internal/model_convert.h"
#include "quantization/internal/model_pipeline.h"
#include "quantization/model_options.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization::internal {

struct MixedPrecisionAllocation {
  std::vector<LayerConversion> conversions;
  Int8Plan plan;
  std::vector<QuantParams> site_params;
  MixedPrecisionReport report;
};

// Chooses a conversion for every layer whose entry in `eligible` is kInt8Static (the others
// stay as they are) among options.mixed_precision.candidates, as mixed_precision.h describes,
// and returns it with the int8 plan and calibrated activation parameters it needs.
// Errors: kInvalidArgument when no assignment meets the budget (naming the smallest possible
// total), when the labels of `data` do not fit the model (kHessianTrace, kFisher), or when a
// layer has no candidate it can take; the errors of calibration and conversion.
absl::StatusOr<MixedPrecisionAllocation> AllocateMixedPrecision(
    const PreparedModel& prepared, const std::vector<LayerConversion>& eligible,
    const QuantizationOptions& options, const LabeledData& data);

// Calibrated activation parameters of values of a prepared model's graph.
using SiteParamsMap = std::unordered_map<const torch::jit::Value*, QuantParams>;

// Returns the parameters of every site of `plan` from `calibrated`. Returns kInternal naming a
// site that was not calibrated.
absl::StatusOr<std::vector<QuantParams>> ParamsForPlan(const Int8Plan& plan,
                                                       const SiteParamsMap& calibrated);

// Returns per-layer, per-candidate sensitivities for mixed_precision.h's metrics.
// `candidates[i]` lists the conversions layer i may take (empty for layers not allocated); the
// result has the same shape, with 0 for kFloat32. `data` contains the examples (and labels for the
// loss-based metrics); `calibrated` has the activation parameters of every site a single-layer
// int8 conversion needs.
absl::StatusOr<std::vector<std::vector<double>>> MeasureSensitivities(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates,
    const QuantizationOptions& options, const LabeledData& data,
    const SiteParamsMap& calibrated);

// Fills result.mixed_precision's accuracies: `model` (the float model) and result.model on
// `data`.
absl::Status MeasureMixedPrecisionAccuracy(const torch::jit::Module& model,
                                           QuantizationResult& result, const LabeledData& data);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MIXED_PRECISION_H_
