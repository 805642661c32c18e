#include "pruning/internal/parallel.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "ATen/Parallel.h"
#include "absl/strings/str_cat.h"
#include "core/torch_status.h"

// OpenBLAS's own thread controls (libopenblas.so.0).
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace polaris::pruning::internal {

absl::Status ParallelFor(int workers, int threads_per_worker, int64_t tasks,
                         const std::function<absl::Status(int worker, int64_t task)>& fn) {
  if (workers < 1 || threads_per_worker < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers and threads per worker must be at least 1, got ", workers, " and ",
                     threads_per_worker));
  }
  const int saved_torch_threads = at::get_num_threads();
  const int saved_blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(threads_per_worker);

  std::atomic<int64_t> next{0};
  std::mutex mutex;
  absl::Status first_error;
  auto work = [&](int worker) {
    at::set_num_threads(threads_per_worker);
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (!first_error.ok()) return;
      }
      const int64_t task = next.fetch_add(1);
      if (task >= tasks) return;
      absl::Status status = CallTorch("evaluating a candidate", [&] { return fn(worker, task); });
      if (!status.ok()) {
        std::lock_guard<std::mutex> lock(mutex);
        if (first_error.ok()) first_error = status;
        return;
      }
    }
  };
  if (workers == 1) {
    work(0);
  } else {
    std::vector<std::thread> threads;
    for (int worker = 0; worker < workers; ++worker) threads.emplace_back(work, worker);
    for (std::thread& thread : threads) thread.join();
  }

  // OpenBLAS's OpenMP build sets the calling thread's OpenMP thread count too, which is what
  // LibTorch reads back, so OpenBLAS is restored first and LibTorch last.
  openblas_set_num_threads(saved_blas_threads);
  at::set_num_threads(saved_torch_threads);
  return first_error;
}

}  // namespace polaris::pruning::internal
