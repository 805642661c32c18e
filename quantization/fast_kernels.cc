#include "quantization/fast_kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>

#include "ATen/Parallel.h"
#include "core/cpu_features.h"
#include "quantization/internal/quantize_avx512.h"
#include "quantization/reference_kernels.h"

namespace polaris::quantization {
namespace {

bool UseAvx512() { return CpuFeatures().avx512; }

// Runs fn(begin, end) over [0, n) on LibTorch's intra-op threads.
template <typename Fn>
void ParallelChunks(int64_t n, Fn&& fn) {
  if (n <= kQuantizeGrainSize) {
    fn(int64_t{0}, n);
    return;
  }
  at::parallel_for(0, n, kQuantizeGrainSize, fn);
}

template <typename Q, typename Avx512Fn>
bool QuantizeDispatch(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                      int32_t qmax, Q* q, Avx512Fn avx512_fn) {
  std::atomic<bool> finite_or_inf{true};
  const bool avx512 = UseAvx512();
  ParallelChunks(n, [&](int64_t begin, int64_t end) {
    const bool ok = avx512 ? avx512_fn(x + begin, end - begin, scale, zero_point, qmin, qmax,
                                       q + begin)
                           : reference::Quantize(x + begin, end - begin, scale, zero_point,
                                                 qmin, qmax, q + begin);
    if (!ok) finite_or_inf.store(false, std::memory_order_relaxed);
  });
  return finite_or_inf.load();
}

}  // namespace

bool QuantizeFast(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                  int32_t qmax, int8_t* q) {
  return QuantizeDispatch(x, n, scale, zero_point, qmin, qmax, q,
                          internal::QuantizeF32ToS8Avx512);
}

bool QuantizeFast(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                  int32_t qmax, uint8_t* q) {
  return QuantizeDispatch(x, n, scale, zero_point, qmin, qmax, q,
                          internal::QuantizeF32ToU8Avx512);
}

void DequantizeFast(const int8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  const bool avx512 = UseAvx512();
  ParallelChunks(n, [&](int64_t begin, int64_t end) {
    if (avx512) {
      internal::DequantizeS8ToF32Avx512(q + begin, end - begin, scale, zero_point, x + begin);
    } else {
      reference::Dequantize(q + begin, end - begin, scale, zero_point, x + begin);
    }
  });
}

void DequantizeFast(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  const bool avx512 = UseAvx512();
  ParallelChunks(n, [&](int64_t begin, int64_t end) {
    if (avx512) {
      internal::DequantizeU8ToF32Avx512(q + begin, end - begin, scale, zero_point, x + begin);
    } else {
      reference::Dequantize(q + begin, end - begin, scale, zero_point, x + begin);
    }
  });
}

void RequantizeFast(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                    int32_t qmin, int32_t qmax, int8_t* q) {
  const bool avx512 = UseAvx512();
  ParallelChunks(n, [&](int64_t begin, int64_t end) {
    if (avx512) {
      internal::RequantizeS32ToS8Avx512(acc + begin, end - begin, multiplier, zero_point, qmin,
                                        qmax, q + begin);
    } else {
      reference::Requantize(acc + begin, end - begin, multiplier, zero_point, qmin, qmax,
                            q + begin);
    }
  });
}

void RequantizeFast(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                    int32_t qmin, int32_t qmax, uint8_t* q) {
  const bool avx512 = UseAvx512();
  ParallelChunks(n, [&](int64_t begin, int64_t end) {
    if (avx512) {
      internal::RequantizeS32ToU8Avx512(acc + begin, end - begin, multiplier, zero_point, qmin,
                                        qmax, q + begin);
    } else {
      reference::Requantize(acc + begin, end - begin, multiplier, zero_point, qmin, qmax,
                            q + begin);
    }
  });
}

bool MinMaxFast(const float* x, int64_t n, float* min, float* max) {
  const bool avx512 = UseAvx512();
  std::mutex mutex;
  bool no_nan = true;
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  ParallelChunks(n, [&](int64_t begin, int64_t end) {
    float chunk_lo = 0.0f;
    float chunk_hi = 0.0f;
    const bool ok = avx512 ? internal::MinMaxF32Avx512(x + begin, end - begin, &chunk_lo, &chunk_hi)
                           : reference::MinMax(x + begin, end - begin, &chunk_lo, &chunk_hi);
    std::lock_guard<std::mutex> lock(mutex);
    no_nan = no_nan && ok;
    lo = std::min(lo, chunk_lo);
    hi = std::max(hi, chunk_hi);
  });
  *min = lo;
  *max = hi;
  return no_nan;
}

}  // namespace polaris::quantization
