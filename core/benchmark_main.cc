// main() for polaris's Google Benchmark binaries. It sets the thread count for LibTorch,
// OpenBLAS and polaris kernels together (--threads=N, default: all hardware threads), so the
// baseline and polaris's variant run on the same threads, and records the environment in the
// benchmark context: CPU, threads, library versions and which BLAS LibTorch uses.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  int threads = polaris::HardwareThreads();
  std::vector<char*> remaining;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      if (!absl::SimpleAtoi(argv[i] + 10, &threads)) {
        std::fprintf(stderr, "invalid --threads value '%s'; expected a positive integer\n",
                     argv[i] + 10);
        return 2;
      }
      continue;
    }
    remaining.push_back(argv[i]);
  }
  if (absl::Status status = polaris::SetThreads(threads); !status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return 2;
  }
  if (absl::Status status = polaris::UseOnednnQuantizedEngine(); !status.ok()) {
    std::fprintf(stderr, "warning: %s\n", std::string(status.message()).c_str());
  }

  const polaris::RuntimeInfo info = polaris::CurrentRuntimeInfo();
  benchmark::AddCustomContext("polaris_threads", absl::StrCat(info.intra_op_threads));
  benchmark::AddCustomContext("openblas_threads", absl::StrCat(info.openblas_threads));
  benchmark::AddCustomContext("cpu", info.cpu_model);
  benchmark::AddCustomContext("cpu_features", info.cpu_features);
  benchmark::AddCustomContext("libtorch", info.libtorch_version);
  benchmark::AddCustomContext("onednn", info.onednn_version);
  benchmark::AddCustomContext("blas", info.blas_library);
  if (polaris::ReferenceBlasActive()) {
    std::fprintf(stderr,
                 "warning: LibTorch uses Debian's reference BLAS (%s), about 20x slower than "
                 "OpenBLAS; fp32 baselines would be meaningless. Run ./bazelw once, or: "
                 "update-alternatives --set libblas.so.3-x86_64-linux-gnu "
                 "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3\n",
                 info.blas_library.c_str());
  }

  int remaining_argc = static_cast<int>(remaining.size());
  benchmark::Initialize(&remaining_argc, remaining.data());
  if (benchmark::ReportUnrecognizedArguments(remaining_argc, remaining.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
