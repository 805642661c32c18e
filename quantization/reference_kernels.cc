#include "quantization/reference_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace polaris::quantization::reference {
namespace {

template <typename Q>
bool QuantizeImpl(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                  int32_t qmax, Q* q) {
  const float inverse_scale = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) return false;
    // Clamping in float first keeps the conversion to an integer defined for huge values.
    const float scaled = std::nearbyint(x[i] * inverse_scale);
    const float shifted =
        std::clamp(scaled + static_cast<float>(zero_point), static_cast<float>(qmin),
                   static_cast<float>(qmax));
    q[i] = static_cast<Q>(static_cast<int32_t>(shifted));
  }
  return true;
}

template <typename Q>
void DequantizeImpl(const Q* q, int64_t n, float scale, int32_t zero_point, float* x) {
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zero_point) * scale;
  }
}

template <typename Q>
void RequantizeImpl(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                    int32_t qmin, int32_t qmax, Q* q) {
  for (int64_t i = 0; i < n; ++i) {
    const float scaled = std::nearbyint(static_cast<float>(acc[i]) * multiplier);
    const float shifted =
        std::clamp(scaled + static_cast<float>(zero_point), static_cast<float>(qmin),
                   static_cast<float>(qmax));
    q[i] = static_cast<Q>(static_cast<int32_t>(shifted));
  }
}

}  // namespace

bool Quantize(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
              int32_t qmax, int8_t* q) {
  return QuantizeImpl(x, n, scale, zero_point, qmin, qmax, q);
}

bool Quantize(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
              int32_t qmax, uint8_t* q) {
  return QuantizeImpl(x, n, scale, zero_point, qmin, qmax, q);
}

void Dequantize(const int8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  DequantizeImpl(q, n, scale, zero_point, x);
}

void Dequantize(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  DequantizeImpl(q, n, scale, zero_point, x);
}

void Requantize(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                int32_t qmin, int32_t qmax, int8_t* q) {
  RequantizeImpl(acc, n, multiplier, zero_point, qmin, qmax, q);
}

void Requantize(const int32_t* acc, int64_t n, float multiplier, int32_t zero_point,
                int32_t qmin, int32_t qmax, uint8_t* q) {
  RequantizeImpl(acc, n, multiplier, zero_point, qmin, qmax, q);
}

bool MinMax(const float* x, int64_t n, float* min, float* max) {
  float lo = x[0];
  float hi = x[0];
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) return false;
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  *min = lo;
  *max = hi;
  return true;
}

}  // namespace polaris::quantization::reference
