// One place that sets how many threads polaris and the libraries under it use, and that records
// the software and hardware every measurement ran on.
//
// LibTorch 1.13 on Debian starts with one intra-op thread even on a multi-core machine, and
// OpenBLAS keeps its own pthread pool. Letting the two disagree oversubscribes the cores (one
// PINN step measured here went from 5.1 ms to 19.5 ms), so SetThreads sets both together.
//
//   POLARIS_RETURN_IF_ERROR(polaris::SetThreads(2));
//   RuntimeInfo info = polaris::CurrentRuntimeInfo();  // for a report
#ifndef POLARIS_CORE_RUNTIME_H_
#define POLARIS_CORE_RUNTIME_H_

#include <string>

#include "absl/status/status.h"

namespace polaris {

// Returns the number of hardware threads (std::thread::hardware_concurrency, at least 1).
int HardwareThreads();

// Sets LibTorch's intra-op threads and OpenBLAS's threads to `threads`, and LibTorch's
// inter-op threads to 1 (first call only: LibTorch allows it once per process).
// Returns kInvalidArgument when `threads` is below 1 or above 4x the hardware threads.
absl::Status SetThreads(int threads);

// Makes LibTorch's ONEDNN engine the quantized engine, which int8 models need on x86 here
// (LibTorch 1.13 on Debian has no FBGEMM). Returns kFailedPrecondition when the build lacks it.
absl::Status UseOnednnQuantizedEngine();

// The environment a measurement ran in; reports store it.
struct RuntimeInfo {
  int intra_op_threads = 0;
  int openblas_threads = 0;
  int hardware_threads = 0;
  std::string cpu_model;
  std::string cpu_features;
  std::string libtorch_version;
  std::string onednn_version;
  std::string openblas_config;
  // Library file that provides the BLAS `sgemm_` LibTorch calls; a path under ".../blas/"
  // means Debian's reference BLAS, about 20x slower than OpenBLAS.
  std::string blas_library;
  std::string protobuf_version;
  std::string quantized_engine;
};

RuntimeInfo CurrentRuntimeInfo();

// Returns true when LibTorch's BLAS calls reach Debian's slow reference BLAS.
bool ReferenceBlasActive();

}  // namespace polaris

#endif  // POLARIS_CORE_RUNTIME_H_
