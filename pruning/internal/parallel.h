// A small pool of worker threads for evaluating pruning candidates side by side, each worker
// with its own LibTorch intra-op thread count.
//
// LibTorch here runs its intra-op parallelism on OpenMP, whose thread count is a per-thread
// setting: a new std::thread would start with one OpenMP thread per core and oversubscribe the
// machine when several workers run at once. Each worker therefore calls at::set_num_threads
// first. OpenBLAS has one global thread count, which is set to the per-worker count for the
// duration of the call and restored afterwards. Written here because neither Abseil (20220623)
// nor LibTorch offers a pool whose workers own their intra-op settings.
#ifndef POLARIS_PRUNING_INTERNAL_PARALLEL_H_
#define POLARIS_PRUNING_INTERNAL_PARALLEL_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace polaris::pruning::internal {

// Runs fn(worker, task) for every task in [0, tasks) on `workers` threads (worker in
// [0, workers)), each using `threads_per_worker` intra-op threads. Tasks are handed out in
// order; after the first error no new task starts, and that error is returned. With one worker
// the tasks run on the calling thread. The calling thread's LibTorch and OpenBLAS thread
// counts are restored before returning.
absl::Status ParallelFor(int workers, int threads_per_worker, int64_t tasks,
                         const std::function<absl::Status(int worker, int64_t task)>& fn);

}  // namespace polaris::pruning::internal

#endif  // POLARIS_PRUNING_INTERNAL_PARALLEL_H_
