// Measured accuracy, file size and latency of models before and after quantization, for the
// quantize command, the demo and reports. Latencies of several variants are measured
// interleaved (each round runs every variant once), so that load from other processes on a
// shared machine affects all variants alike.
//
//   POLARIS_ASSIGN_OR_RETURN(std::vector<LatencyStats> latencies,
//                            CompareLatencies({&fp32, &int8}, input, options));
#ifndef POLARIS_QUANTIZATION_MODEL_MEASUREMENT_H_
#define POLARIS_QUANTIZATION_MODEL_MEASUREMENT_H_

#include <cstdint>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/evaluate.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {

struct ModelMeasurement {
  EvalResult evaluation;
  ModelSize size;
  // Elements of float parameters left in the model (packed int8 weights are not parameters).
  int64_t parameters = 0;
  // One entry per batch size measured, in the order requested.
  std::vector<int64_t> batch_sizes;
  std::vector<LatencyStats> latencies;
};

struct MeasurementOptions {
  std::vector<int64_t> batch_sizes = {1, 64};
  // Warm-up runs per variant, then `rounds` rounds that time each variant once.
  int warmup_runs = 10;
  int rounds = 100;
  // Stops after this many seconds of timed rounds (0: no limit), after at least 5 rounds.
  double max_seconds = 20;
};

// Times model.forward(input) for every model, interleaved round by round, in eval mode under
// c10::InferenceMode. Returns one LatencyStats per model, in order. The models' training flags
// are restored. Errors: kInvalidArgument for an empty list or invalid counts; the first error a
// model returns.
absl::StatusOr<std::vector<LatencyStats>> CompareLatencies(
    const std::vector<torch::jit::Module*>& models, const at::Tensor& input,
    const MeasurementOptions& options);

// Measures each model's accuracy on `data` and serialized size, and their latencies at every
// options.batch_sizes (inputs: the first examples of `data`, repeated when it has fewer) with
// CompareLatencies. Returns one measurement per model, in order.
absl::StatusOr<std::vector<ModelMeasurement>> MeasureModels(
    const std::vector<torch::jit::Module*>& models, const LabeledData& data,
    const MeasurementOptions& options);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_MODEL_MEASUREMENT_H_
