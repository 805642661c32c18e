#include "pipeline/measure.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ATen/Functions.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "pruning/latency_comparison.h"
#include "core/torch_status.h"

namespace polaris::pipeline {
namespace {

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

LatencyOptions ToLatencyOptions(const LatencySettings& latency) {
  LatencyOptions options;
  options.warmup_runs = latency.warmup_runs;
  options.timed_runs = latency.timed_runs;
  options.max_seconds = latency.max_seconds;
  return options;
}

// A batch of real examples, repeated when the batch is larger than the data.
absl::StatusOr<at::Tensor> LatencyInput(const LabeledData& test, int64_t batch) {
  return CallTorch("making a latency input", [&] {
    std::vector<int64_t> shape = test.inputs.sizes().vec();
    shape[0] = batch;
    const at::Tensor index = at::arange(batch, at::kLong).remainder(test.size());
    return test.inputs.index_select(0, index).reshape(shape).contiguous();
  });
}

}  // namespace

absl::StatusOr<ModelMeasurement> MeasureModel(torch::jit::Module& model, const LabeledData& test,
                                              const LatencySettings* latency) {
  ModelMeasurement measurement;
  POLARIS_ASSIGN_OR_RETURN(measurement.accuracy, Evaluate(model, test));
  POLARIS_ASSIGN_OR_RETURN(measurement.size, MeasureModelSize(model));
  measurement.parameters = ParameterCount(model);
  POLARIS_ASSIGN_OR_RETURN(auto bytes_by_type, TensorBytesByType(model));
  for (const auto& [type, bytes] : bytes_by_type) measurement.weight_bytes += bytes;
  if (latency == nullptr) return measurement;

  const LatencyOptions options = ToLatencyOptions(*latency);
  for (int64_t batch : latency->batch_sizes) {
    POLARIS_ASSIGN_OR_RETURN(at::Tensor input, LatencyInput(test, batch));
    POLARIS_ASSIGN_OR_RETURN(LatencyStats stats, MeasureModelLatency(model, input, options));
    measurement.latency[batch] = stats;
  }
  return measurement;
}

absl::StatusOr<std::map<int64_t, double>> MeasureSpeedups(torch::jit::Module& baseline,
                                                          torch::jit::Module& candidate,
                                                          const LabeledData& test,
                                                          const LatencySettings& latency) {
  const LatencyOptions options = ToLatencyOptions(latency);
  std::map<int64_t, double> speedups;
  for (int64_t batch : latency.batch_sizes) {
    POLARIS_ASSIGN_OR_RETURN(at::Tensor input, LatencyInput(test, batch));
    POLARIS_ASSIGN_OR_RETURN(pruning::LatencyComparison comparison,
                             pruning::CompareLatency(baseline, candidate, input, options));
    speedups[batch] = comparison.speedup;
  }
  return speedups;
}

absl::StatusOr<MemoryMeasurement> MeasurePeakMemory(const std::string& memory_probe,
                                                    const std::string& model_path,
                                                    const std::vector<int64_t>& example_shape,
                                                    int64_t batch_size, int threads) {
  const std::string command = absl::StrCat(
      ShellQuote(memory_probe), " --model=", ShellQuote(model_path), " --shape=",
      absl::StrJoin(example_shape, ","), " --batch_size=", batch_size, " --threads=", threads,
      " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return absl::InternalError(absl::StrCat("cannot run the memory probe ", memory_probe));
  }
  std::string output;
  std::array<char, 1024> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);

  MemoryMeasurement memory;
  bool found_peak = false;
  bool found_baseline = false;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2) continue;
    if (parts[0] == "peak_resident_bytes") found_peak = absl::SimpleAtoi(parts[1], &memory.peak_bytes);
    if (parts[0] == "baseline_resident_bytes") {
      found_baseline = absl::SimpleAtoi(parts[1], &memory.baseline_bytes);
    }
  }
  if (status != 0 || !found_peak || !found_baseline) {
    return absl::InternalError(absl::StrCat("the memory probe failed on ", model_path,
                                            " (exit status ", status, "): ", output));
  }
  return memory;
}

absl::StatusOr<std::string> FindRunfile(const std::string& argv0, const std::string& path) {
  std::vector<std::string> roots;
  if (const char* dir = std::getenv("RUNFILES_DIR"); dir != nullptr) roots.push_back(dir);
  if (const char* dir = std::getenv("TEST_SRCDIR"); dir != nullptr) roots.push_back(dir);
  roots.push_back(argv0 + ".runfiles");
  for (const std::string& root : roots) {
    const std::string candidate = absl::StrCat(root, "/polaris/", path);
    if (PathExists(candidate)) return candidate;
  }
  // Tests and `bazel run` start in the runfiles tree of the workspace itself.
  if (PathExists(path)) return path;
  return absl::NotFoundError(absl::StrCat("cannot find '", path, "' in the runfiles of ", argv0,
                                          "; run the program with bazel run"));
}

}  // namespace polaris::pipeline
