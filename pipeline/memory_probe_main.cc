// Loads a TorchScript model in a fresh process, runs it, and prints the process's peak resident
// memory before and after, so the pipeline can report what running a model really costs:
//   baseline_resident_bytes N   (LibTorch loaded and one tensor run, no model)
//   peak_resident_bytes N       (after loading the model and running it)
#include <cstdio>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "c10/core/InferenceMode.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/runtime.h"

ABSL_FLAG(std::string, model, "", "TorchScript file to run.");
ABSL_FLAG(std::string, shape, "1,28,28", "Shape of one example, comma separated.");
ABSL_FLAG(int64_t, batch_size, 1, "Examples per run.");
ABSL_FLAG(int, threads, 1, "Threads for LibTorch and OpenBLAS.");
ABSL_FLAG(int, runs, 10, "Number of forward runs.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<int64_t> shape = {absl::GetFlag(FLAGS_batch_size)};
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_shape), ',')) {
    int64_t size = 0;
    if (!absl::SimpleAtoi(part, &size) || size < 1) {
      std::fprintf(stderr, "invalid --shape '%s'; expected positive integers\n",
                   absl::GetFlag(FLAGS_shape).c_str());
      return 2;
    }
    shape.push_back(size);
  }
  if (!polaris::SetThreads(absl::GetFlag(FLAGS_threads)).ok() ||
      !polaris::UseOnednnQuantizedEngine().ok()) {
    std::fprintf(stderr, "cannot configure LibTorch\n");
    return 2;
  }

  c10::InferenceMode inference_mode;
  const at::Tensor input = at::randn(shape);
  // Touch LibTorch's allocator and thread pool once so the baseline includes them.
  (void)input.relu().sum().item<float>();
  std::printf("baseline_resident_bytes %lld\n",
              static_cast<long long>(polaris::PeakResidentBytes()));

  absl::StatusOr<torch::jit::Module> model = polaris::LoadModel(absl::GetFlag(FLAGS_model));
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  try {
    model->eval();
    for (int i = 0; i < absl::GetFlag(FLAGS_runs); ++i) model->forward({input});
  } catch (const c10::Error& error) {
    std::fprintf(stderr, "running the model failed: %s\n", error.what_without_backtrace());
    return 1;
  }
  std::printf("peak_resident_bytes %lld\n", static_cast<long long>(polaris::PeakResidentBytes()));
  return 0;
}
