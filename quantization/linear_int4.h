// Weight-only INT4 Linear with group-wise scales: y = x W^T + b, where
//   W[n, k] = (q[n, k] - zero_point[n, g]) * scale[n, g],  g = k / group_size,
// q are unsigned 4-bit values stored two per byte (PackInt4 order: element 2j in the low
// nibble of byte j of its row), and x, y and b are float32. The weights stay packed in memory,
// at half a byte each. Each thread unpacks a block of 16 weight rows into a cache-resident
// float buffer right before multiplying with it.
// Int4LinearReference is the plain-loop specification.
//
//   POLARIS_ASSIGN_OR_RETURN(Int4Weight w, QuantizeWeightInt4(fc_weight, /*group_size=*/64));
//   POLARIS_ASSIGN_OR_RETURN(std::shared_ptr<Int4Linear> fc, Int4Linear::Create(w, bias));
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor y, fc->Forward(x));
#ifndef POLARIS_QUANTIZATION_LINEAR_INT4_H_
#define POLARIS_QUANTIZATION_LINEAR_INT4_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace polaris::quantization {

// A group-wise INT4 weight of shape [out_features, in_features].
struct Int4Weight {
  at::Tensor packed;      // uint8 [out_features, ceil(in_features / 2)]
  at::Tensor scale;       // float32 [out_features, in_features / group_size], > 0
  at::Tensor zero_point;  // uint8 [out_features, in_features / group_size], in [0, 15]
  int64_t group_size = 0;
  int64_t in_features = 0;
};

// Quantizes a float weight [out_features, in_features] to asymmetric UINT4 per group of
// `group_size` consecutive input features, with each group's range [min, max] widened to
// contain 0 (ChooseQuantParams with kUInt4, kAsymmetric).
// Returns kInvalidArgument when group_size is not positive or does not divide in_features, or
// when the weight is not a finite 2-D float tensor.
absl::StatusOr<Int4Weight> QuantizeWeightInt4(const at::Tensor& weight, int64_t group_size);

// Checks the shapes, dtypes and value ranges documented on Int4Weight, naming what is wrong.
absl::Status ValidateInt4Weight(const Int4Weight& weight);

class Int4Linear {
 public:
  // Copies and prepares `weight` (ValidateInt4Weight's errors); `bias` is float
  // [out_features] or undefined.
  static absl::StatusOr<std::shared_ptr<Int4Linear>> Create(const Int4Weight& weight,
                                                            const at::Tensor& bias);

  // `input` is float [..., in_features]; returns float [..., out_features].
  // Returns kInvalidArgument for another shape or dtype.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input) const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  // Bytes of packed weights, scales and zero points held, for size reports.
  int64_t weight_bytes() const;

 private:
  Int4Linear() = default;

  int64_t in_features_ = 0;
  int64_t out_features_ = 0;
  int64_t group_size_ = 0;
  at::Tensor packed_;           // uint8 [N, ceil(K / 2)]
  at::Tensor zero_point_;       // uint8 [N, groups], kept for weight_bytes
  std::vector<float> scale_;    // [N * groups]
  std::vector<float> offset_;   // -zero_point * scale, [N * groups]
  std::vector<float> bias_;     // [N], zeros when the layer has none
};

namespace internal {
// Makes Int4Linear use its portable loops even on AVX-512 CPUs, so tests cover the fallback.
void UsePortableInt4KernelsForTesting(bool portable);
}  // namespace internal

// Plain-loop specification: unpacks each weight, dequantizes it as (q - zero_point) * scale in
// float32 and accumulates the products in double. Throws c10::Error on invalid arguments.
at::Tensor Int4LinearReference(const at::Tensor& input, const Int4Weight& weight,
                               const at::Tensor& bias);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_LINEAR_INT4_H_
