// End-to-end int8 Linear, float in and float out: y = x W^T + b with W stored as int8.
//
// The input is quantized to uint8 by the vectorized kernel of fast_kernels.h, multiplied with
// the int8 weights by a oneDNN matmul (u8 x s8 -> s32, VNNI `vpdpbusd` on CPUs that have it),
// and oneDNN writes float32 directly: it scales each output column by
// input_scale * weight_scale[n] and adds an effective bias that folds in both the layer's bias
// and the input zero point:
//   y[m, n] = input_scale * weight_scale[n] * (sum_k q_x[m, k] q_w[n, k]
//                                               - input_zero_point * sum_k q_w[n, k]) + b[n]
// Int8LinearReference computes the same with plain loops and is the specification.
//
// Static use passes a calibrated input scale and zero point. Dynamic use measures the input's
// range on every call and quantizes to asymmetric uint8 over [min(x, 0), max(x, 0)], as
// ChooseQuantParams does.
//
//   POLARIS_ASSIGN_OR_RETURN(std::shared_ptr<Int8Linear> layer,
//                            Int8Linear::Create(weight_int8, weight_scale, bias));
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor y, layer->ForwardDynamic(x));
//
// Prepacking reorders the weights once into oneDNN's blocked layout; the matmul primitive for
// each batch size is created on first use and cached, so later calls only quantize and run.
//
// NOTE: on CPUs with AVX-512 but without VNNI, oneDNN computes u8 x s8 products with
// `vpmaddubsw`, whose 16-bit intermediate sums can saturate for inputs near 255 and weights
// near +-127. The tests run on VNNI hardware only.
#ifndef POLARIS_QUANTIZATION_LINEAR_INT8_H_
#define POLARIS_QUANTIZATION_LINEAR_INT8_H_

#include <cstdint>
#include <memory>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"

namespace polaris::quantization {

// Scale and zero point of an input quantized to uint8 per tensor.
struct InputQuantization {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// Chooses the dynamic input quantization of a range [min, max]: asymmetric uint8 with 0
// exactly representable. The fast path and the reference share it.
InputQuantization ChooseDynamicInputQuantization(float min, float max);

class Int8Linear {
 public:
  // `weight_int8` is int8 [out_features, in_features], symmetric (zero point 0);
  // `weight_scale` float [out_features] (per output channel) or [1]; `bias` float
  // [out_features] or undefined. The tensors are copied.
  // Returns kInvalidArgument for other dtypes or shapes, or non-finite or non-positive scales,
  // and kFailedPrecondition when oneDNN cannot create the matmul.
  static absl::StatusOr<std::shared_ptr<Int8Linear>> Create(const at::Tensor& weight_int8,
                                                            const at::Tensor& weight_scale,
                                                            const at::Tensor& bias);
  ~Int8Linear();

  // Static quantization: `input` is float [..., in_features]; the result is float
  // [..., out_features]. Returns kInvalidArgument for a wrong shape or dtype, an invalid
  // scale or a zero point outside [0, 255], or NaN in the input.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input, float input_scale,
                                     int32_t input_zero_point) const;

  // Dynamic quantization with the input's own range; errors as Forward, plus Inf in the input.
  absl::StatusOr<at::Tensor> ForwardDynamic(const at::Tensor& input) const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  // oneDNN's name for the matmul implementation chosen for `batch` rows, such as
  // "brg:avx512_core_vnni"; creates and caches the primitive if needed.
  absl::StatusOr<std::string> ImplementationName(int64_t batch) const;

 private:
  struct State;
  Int8Linear() = default;

  int64_t in_features_ = 0;
  int64_t out_features_ = 0;
  std::unique_ptr<State> state_;
};

// Plain-loop specification of Int8Linear: quantizes `input` with reference::Quantize, sums
// products in int32 and applies the formula in the header comment in double precision.
// `input` float [M, K], `weight_int8` int8 [N, K], `weight_scale` float [N] or [1], `bias`
// float [N] or undefined. Preconditions as Int8Linear::Create and Forward (checked with
// TORCH_CHECK, so it throws c10::Error).
at::Tensor Int8LinearReference(const at::Tensor& input, const at::Tensor& weight_int8,
                               const at::Tensor& weight_scale, const at::Tensor& bias,
                               float input_scale, int32_t input_zero_point);

// Dynamic variant of the reference: min and max by reference::MinMax, then
// ChooseDynamicInputQuantization.
at::Tensor Int8LinearDynamicReference(const at::Tensor& input, const at::Tensor& weight_int8,
                                      const at::Tensor& weight_scale, const at::Tensor& bias);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_LINEAR_INT8_H_
