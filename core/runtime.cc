#include "core/runtime.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <thread>

#include "ATen/Context.h"
#include "ATen/Parallel.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/cpu_features.h"
#include "core/torch_status.h"
#include "google/protobuf/stubs/common.h"
#include "oneapi/dnnl/dnnl.h"
#include "torch/version.h"

extern "C" {
// OpenBLAS's own controls (libopenblas.so.0); Debian's libblas.so.3 from the OpenBLAS
// alternative forwards to the same library and thread pool.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
}

namespace polaris {
namespace {

// Resolves which file Debian's BLAS alternative points libblas.so.3 (the BLAS LibTorch links)
// at, following the /etc/alternatives symbolic links.
std::string LibTorchBlasPath() {
  void* handle = dlopen("libblas.so.3", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return "libblas.so.3 not loaded";
  void* sgemm = dlsym(handle, "sgemm_");
  Dl_info symbol_info;
  std::string path = "unknown";
  if (sgemm != nullptr && dladdr(sgemm, &symbol_info) != 0 && symbol_info.dli_fname != nullptr) {
    char resolved[PATH_MAX];
    path = realpath(symbol_info.dli_fname, resolved) != nullptr ? resolved
                                                                : symbol_info.dli_fname;
  }
  dlclose(handle);
  return path;
}

}  // namespace

int HardwareThreads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

absl::Status SetThreads(int threads) {
  const int limit = 4 * HardwareThreads();
  if (threads < 1 || threads > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid thread count ", threads, ": use 1 to ", limit,
                     " (this machine has ", HardwareThreads(), " hardware threads)"));
  }

  static std::once_flag interop_once;
  absl::Status status = CallTorch("setting LibTorch threads", [&] {
    std::call_once(interop_once, [] {
      // Inter-op parallelism would compete with intra-op threads on a small machine.
      at::set_num_interop_threads(1);
    });
    at::set_num_threads(threads);
  });
  if (!status.ok()) return status;

  openblas_set_num_threads(threads);
  return absl::OkStatus();
}

absl::Status UseOnednnQuantizedEngine() {
  return CallTorch("selecting the ONEDNN quantized engine", [] {
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) {
      return absl::FailedPreconditionError(
          "this LibTorch build has no ONEDNN quantized engine; int8 models cannot run");
    }
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    return absl::OkStatus();
  });
}

bool ReferenceBlasActive() {
  const std::string path = CurrentRuntimeInfo().blas_library;
  return absl::StrContains(path, "/blas/");
}

RuntimeInfo CurrentRuntimeInfo() {
  RuntimeInfo info;
  info.intra_op_threads = at::get_num_threads();
  info.openblas_threads = openblas_get_num_threads();
  info.hardware_threads = HardwareThreads();
  info.cpu_model = CpuModelName();
  info.cpu_features = CpuFeatureString();
  info.libtorch_version = TORCH_VERSION;

  const dnnl_version_t* dnnl = dnnl_version();
  info.onednn_version = absl::StrCat(dnnl->major, ".", dnnl->minor, ".", dnnl->patch);

  const char* config = openblas_get_config();
  info.openblas_config = config == nullptr ? "" : config;

  info.blas_library = LibTorchBlasPath();

  info.protobuf_version = google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION);
  info.quantized_engine = c10::toString(at::globalContext().qEngine());
  return info;
}

}  // namespace polaris
