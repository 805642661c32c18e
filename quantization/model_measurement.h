// Measured accuracy, file size and latency of models before and after quantization, for the
// quantize command, the demo and reports. Latencies of several variants are measured in
// rounds: each round times every variant in a block of consecutive runs, in a rotating order,
// so that load from other processes on a shared machine affects all variants alike. Blocks
// rather than single interleaved runs, because the thread pools of OpenBLAS, OpenMP and oneDNN
// keep spinning for a while after a call and would slow down whichever variant runs next.
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
  // Rounds; in each, every variant runs warmup_runs untimed, then runs_per_round timed runs.
  int rounds = 5;
  int warmup_runs = 3;
  int runs_per_round = 20;
  // Stops after the round in which this many seconds have passed (0: no limit), but not
  // before 2 rounds.
  double max_seconds = 30;
};

// Times model.forward(input) for every model in rounds as described above, in eval mode under
// c10::InferenceMode; the statistics cover all timed runs of a model. Returns one LatencyStats per model, in order. The models' training flags
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
