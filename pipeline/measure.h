// Measurements the pipeline takes of a model after each stage and at the end: accuracy on the
// full evaluation set, serialized size, latency at each configured batch size, and (for the
// final comparison) peak resident memory of a separate process running the model.
#ifndef POLARIS_PIPELINE_MEASURE_H_
#define POLARIS_PIPELINE_MEASURE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/evaluate.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pipeline {

struct LatencySettings {
  std::vector<int64_t> batch_sizes = {1, 64};
  int warmup_runs = 10;
  int timed_runs = 100;
  // Upper bound on timed seconds per model and batch size; at least 5 runs are always timed.
  double max_seconds = 3.0;
};

struct ModelMeasurement {
  EvalResult accuracy;
  ModelSize size;
  int64_t parameters = 0;
  // Bytes of all tensors the model holds (weights, packed weights, buffers), by dtype summed.
  int64_t weight_bytes = 0;
  // Batch size -> latency.
  std::map<int64_t, LatencyStats> latency;
};

// Evaluates `model` on `test`, measures its serialized size and tensor bytes, and, when
// `latency` is given, times it at each batch size on inputs shaped like the test examples.
absl::StatusOr<ModelMeasurement> MeasureModel(torch::jit::Module& model, const LabeledData& test,
                                              const LatencySettings* latency);

// Times `baseline` and `candidate` alternately, one call of each per round (see
// pruning/latency_comparison.h), at each batch size of `latency`, and returns baseline median /
// candidate median per batch size. Alternating makes load from other processes slow both alike,
// so the ratio stays valid where separately timed medians drift apart.
absl::StatusOr<std::map<int64_t, double>> MeasureSpeedups(torch::jit::Module& baseline,
                                                          torch::jit::Module& candidate,
                                                          const LabeledData& test,
                                                          const LatencySettings& latency);

// Runs `memory_probe` (the //pipeline:memory_probe binary) on a saved model and returns the
// peak resident bytes of that process while it loads the model and runs `batch_size` examples
// shaped like `example_shape` `runs` times, together with the same process's peak before
// loading any model (`baseline_bytes`), so the difference is what the model costs.
struct MemoryMeasurement {
  int64_t peak_bytes = 0;
  int64_t baseline_bytes = 0;
};
absl::StatusOr<MemoryMeasurement> MeasurePeakMemory(const std::string& memory_probe,
                                                    const std::string& model_path,
                                                    const std::vector<int64_t>& example_shape,
                                                    int64_t batch_size, int threads);

// Finds a binary that Bazel placed in this program's runfiles, e.g.
// "pipeline/memory_probe". Returns kNotFound when it is not there.
absl::StatusOr<std::string> FindRunfile(const std::string& argv0, const std::string& path);

}  // namespace polaris::pipeline

#endif  // POLARIS_PIPELINE_MEASURE_H_
