// Int8 Conv2d: a plain-loop reference (the specification), LibTorch's quantized::conv2d and
// conv2d_relu as the model-level conversion runs them, and a kernel that calls oneDNN's int8
// convolution directly.
//
// Numerics, for uint8 input q_x (scale s_x, zero point z_x), int8 weights q_w symmetric per
// output channel (scales s_w[o]), float bias b and uint8 output (s_y, z_y):
//   acc[o] = sum over c, kh, kw of (q_x - z_x) * q_w     (padding contributes 0)
//   y = s_x * s_w[o] * acc[o] + b[o], then max(y, 0) with ReLU,
//   q_y = clamp(round_half_even(y / s_y) + z_y, 0, 255)
//
//   POLARIS_ASSIGN_OR_RETURN(std::shared_ptr<Int8Conv2d> conv, Int8Conv2d::Create(...));
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor q_out, conv->Forward(q_in));  // LibTorch quint8
#ifndef POLARIS_QUANTIZATION_CONV_INT8_H_
#define POLARIS_QUANTIZATION_CONV_INT8_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "ATen/core/Tensor.h"
#include "ATen/core/ivalue.h"
#include "absl/status/statusor.h"

namespace polaris::quantization {

struct Conv2dGeometry {
  std::array<int64_t, 2> stride = {1, 1};
  std::array<int64_t, 2> padding = {0, 0};
  std::array<int64_t, 2> dilation = {1, 1};
  int64_t groups = 1;
};

// The static quantization of a convolution's input and output.
struct Conv2dQuantization {
  float input_scale = 1.0f;
  int32_t input_zero_point = 0;
  float output_scale = 1.0f;
  int32_t output_zero_point = 0;
  bool relu = false;
};

// Plain-loop specification. `input` uint8 [N, C, H, W] (plain, not a LibTorch quantized
// tensor), `weight` int8 [O, C / groups, KH, KW], `weight_scale` float [O], `bias` float [O] or
// undefined. Returns uint8 [N, O, OH, OW]. Throws c10::Error on inconsistent shapes.
at::Tensor Conv2dInt8Reference(const at::Tensor& input, const at::Tensor& weight,
                               const at::Tensor& weight_scale, const at::Tensor& bias,
                               const Conv2dGeometry& geometry,
                               const Conv2dQuantization& quantization);

// LibTorch's quantized::conv2d / conv2d_relu (the `.new` overloads) on the current quantized
// engine, with the weight prepacked once by quantized::conv2d_prepack.
class LibTorchInt8Conv2d {
 public:
  // `weight` is a LibTorch qint8 tensor quantized per output channel (axis 0), `bias` float.
  static absl::StatusOr<std::shared_ptr<LibTorchInt8Conv2d>> Create(
      const at::Tensor& weight, const at::Tensor& bias, const Conv2dGeometry& geometry);

  // `input` is a LibTorch quint8 tensor; returns quint8 with the given output quantization.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input, float output_scale,
                                     int32_t output_zero_point, bool relu) const;

 private:
  c10::IValue packed_;
};

// Int8 convolution through oneDNN's convolution primitive, u8 x s8 -> u8, with the input and
// output zero points, the per-channel output scales, the bias and an optional ReLU fused. All
// quantization parameters are fixed at creation (static quantization); the primitive is
// created per input shape and cached. The output is a LibTorch quint8 tensor in channels-last
// layout (oneDNN's fast int8 layout), so chained layers avoid reorders.
class Int8Conv2d {
 public:
  // `weight` int8 [O, C / groups, KH, KW], symmetric; `weight_scale` float [O]; `bias` float
  // [O] or undefined. Returns kInvalidArgument for inconsistent arguments.
  static absl::StatusOr<std::shared_ptr<Int8Conv2d>> Create(const at::Tensor& weight,
                                                            const at::Tensor& weight_scale,
                                                            const at::Tensor& bias,
                                                            const Conv2dGeometry& geometry,
                                                            const Conv2dQuantization& quantization);
  ~Int8Conv2d();

  // `input` is a LibTorch quint8 tensor [N, C, H, W] whose scale and zero point equal the ones
  // given at creation. Channels-last input is used as it is; other layouts are copied to
  // channels-last first. Returns kInvalidArgument for another dtype, channel count or
  // quantization, and kFailedPrecondition when oneDNN rejects the shape.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input) const;

  // oneDNN's implementation name for an input shape, such as "jit_int8:avx512_core_vnni".
  absl::StatusOr<std::string> ImplementationName(const at::Tensor& input) const;

 private:
  struct State;
  Int8Conv2d() = default;
  std::unique_ptr<State> state_;
};

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_CONV_INT8_H_
