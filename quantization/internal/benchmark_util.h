// Helpers for the quantization benchmarks: timing of baselines and our kernel in one
// benchmark, and boxed calls of LibTorch's quantized operators by name.
#ifndef POLARIS_QUANTIZATION_INTERNAL_BENCHMARK_UTIL_H_
#define POLARIS_QUANTIZATION_INTERNAL_BENCHMARK_UTIL_H_

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ATen/core/dispatch/Dispatcher.h"
#include "ATen/core/ivalue.h"
#include "benchmark/benchmark.h"

namespace polaris::quantization::internal {

struct TimedVariant {
  std::string name;  // counter prefix, such as "fp32"
  std::function<void()> run;
};

inline double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// Median and fastest of repeated timings, in seconds.
struct Timing {
  double median = 0.0;
  double min = 0.0;
};

// Times each variant in its own phase: about 50 ms of untimed warm-up, then repeated timed
// calls for about 200 ms (at least 5). Interleaving the variants call by call would measure
// the hand-over between thread pools instead: OpenBLAS's pthreads and the OpenMP threads of
// LibTorch and oneDNN keep spinning for a while after each call and take the cores from the
// next variant.
inline Timing TimeRepeatedly(const std::function<void()>& run) {
  using Clock = std::chrono::steady_clock;
  const auto warm_up_end = Clock::now() + std::chrono::milliseconds(50);
  do {
    run();
  } while (Clock::now() < warm_up_end);
  std::vector<double> seconds;
  const auto end = Clock::now() + std::chrono::milliseconds(200);
  while (seconds.size() < 5 || Clock::now() < end) {
    const auto start = Clock::now();
    run();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return {Median(seconds), *std::min_element(seconds.begin(), seconds.end())};
}

// Times the baselines and then ours (TimeRepeatedly). Register with
// ->Iterations(1)->UseManualTime(); the iteration time is our median. Counters:
// <name>_us (median) for each variant and polaris_us; speedup_vs_<name> = median baseline /
// median ours; best_speedup_vs_<name> = fastest baseline / fastest ours. On a machine shared
// with other processes, a thread that loses its core for a scheduler tick (about 4 ms here)
// stalls a multithreaded call. The fastest runs then show the undisturbed ratio.
inline void CompareVariants(benchmark::State& state, const std::vector<TimedVariant>& baselines,
                            const std::function<void()>& ours) {
  for (auto _ : state) {
    std::vector<Timing> baseline_timings;
    for (const TimedVariant& variant : baselines) {
      baseline_timings.push_back(TimeRepeatedly(variant.run));
    }
    const Timing ours_timing = TimeRepeatedly(ours);
    state.SetIterationTime(ours_timing.median);
    state.counters["polaris_us"] = ours_timing.median * 1e6;
    for (size_t i = 0; i < baselines.size(); ++i) {
      state.counters[baselines[i].name + "_us"] = baseline_timings[i].median * 1e6;
      state.counters["speedup_vs_" + baselines[i].name] =
          baseline_timings[i].median / ours_timing.median;
      state.counters["best_speedup_vs_" + baselines[i].name] =
          baseline_timings[i].min / ours_timing.min;
    }
  }
}

// Calls a LibTorch operator through the dispatcher with boxed arguments and returns its first
// output; for operators whose packed-parameter types have no public C++ header.
class BoxedOperator {
 public:
  BoxedOperator(const char* name, const char* overload)
      : handle_(c10::Dispatcher::singleton().findSchemaOrThrow(name, overload)) {}

  c10::IValue operator()(std::vector<c10::IValue> arguments) const {
    std::vector<c10::IValue> stack = std::move(arguments);
    handle_.callBoxed(&stack);
    return stack.at(0);
  }

 private:
  c10::OperatorHandle handle_;
};

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_BENCHMARK_UTIL_H_
