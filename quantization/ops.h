// TorchScript operators of the quantization package, registered in the `polaris` namespace by
// the library //quantization:ops (alwayslink) and by the shared library
// libpolaris_quantization_ops.so, which Python loads with torch.ops.load_library.
// Weights are plain int8/uint8/float tensors stored as module attributes. Each op packs them
// on first use and keeps the packed form in a process-wide cache keyed by the tensors' data
// pointers and version counters (in-place changes invalidate it). The cache keeps at most
// kPackedCacheEntries layers, dropping the least recently used one.
//
// Schemas (stable: quantized TorchScript files call them by these names):
//
// polaris::quant_linear_int8(Tensor input, Tensor weight_int8, Tensor weight_scale,
//     Tensor? bias, float input_scale, int input_zero_point) -> Tensor
//   Static int8 Linear (linear_int8.h). input float [..., K]; weight_int8 int8 [N, K],
//   symmetric; weight_scale float [N] or [1]; bias float [N]; input quantized to uint8 with
//   the given scale and zero point in [0, 255]. Returns float [..., N]:
//   input_scale * weight_scale[n] * sum_k (q_x - input_zero_point) q_w + bias[n].
//
// polaris::quant_linear_int8_dynamic(Tensor input, Tensor weight_int8, Tensor weight_scale,
//     Tensor? bias) -> Tensor
//   The same with the input's range measured on each call (asymmetric uint8 over
//   [min(x, 0), max(x, 0)]). It never calls LibTorch's quantized::linear_dynamic, whose
//   ONEDNN-engine version returns wrong values in LibTorch 1.13.
//
// polaris::quant_linear_int4(Tensor input, Tensor packed, Tensor scale, Tensor zero_point,
//     int group_size, Tensor? bias) -> Tensor
//   Weight-only INT4 Linear (linear_int4.h). packed uint8 [N, ceil(K / 2)] (PackInt4 of uint4
//   values, low nibble first); scale float [N, K / group_size]; zero_point [N, K / group_size]
//   of any integer or float dtype holding integers in [0, 15]; group_size must divide K.
//   Returns float [..., N] = input @ ((q - zero_point) * scale)^T + bias.
//
// polaris::quant_conv2d_int8(Tensor input, Tensor weight_int8, Tensor weight_scale,
//     Tensor? bias, int[] stride, int[] padding, int[] dilation, int groups,
//     float output_scale, int output_zero_point, bool relu) -> Tensor
//   Static int8 Conv2d through oneDNN directly (Int8Conv2d in conv_int8.h). input is a
//   per-tensor quint8 tensor [N, C, H, W] whose scale and zero point the packed primitive
//   keeps; weight_int8 int8 [O, C / groups, KH, KW], symmetric; weight_scale float [O]; bias
//   float [O]. Returns quint8 [N, O, OH, OW] in channels-last layout, with the numerics of
//   Conv2dInt8Reference: round_half_even((s_x s_w[o] acc + b[o], ReLU optional) / s_y) + z_y.
//
// polaris::quant_quantize_per_tensor(Tensor input, float scale, int zero_point) -> Tensor
//   Quantizes float input to a LibTorch quint8 tensor (per-tensor affine) with the vectorized
//   kernel of fast_kernels.h, for LibTorch's quantized::conv2d and friends:
//   q = clamp(round_half_even(x * (1 / scale)) + zero_point, 0, 255). NaN is an error.
//
// polaris::quant_dequantize(Tensor input) -> Tensor
//   Dequantizes a LibTorch quantized tensor to float32: per-tensor quint8 and qint8 with the
//   vectorized kernel, (q - zero_point) * scale; other quantization schemes with
//   at::dequantize.
//
// Invalid arguments raise c10::Error (a RuntimeError in Python) with the absl::Status message
// of the function underneath.
#ifndef POLARIS_QUANTIZATION_OPS_H_
#define POLARIS_QUANTIZATION_OPS_H_

#include <cstdint>

#include "ATen/core/Tensor.h"
#include "c10/util/Optional.h"

namespace polaris::quantization {

inline constexpr int kPackedCacheEntries = 256;

// The C++ functions behind the operators, for callers that do not go through the dispatcher.
at::Tensor QuantLinearInt8Op(const at::Tensor& input, const at::Tensor& weight_int8,
                             const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                             double input_scale, int64_t input_zero_point);
at::Tensor QuantLinearInt8DynamicOp(const at::Tensor& input, const at::Tensor& weight_int8,
                                    const at::Tensor& weight_scale,
                                    const c10::optional<at::Tensor>& bias);
at::Tensor QuantLinearInt4Op(const at::Tensor& input, const at::Tensor& packed,
                             const at::Tensor& scale, const at::Tensor& zero_point,
                             int64_t group_size, const c10::optional<at::Tensor>& bias);
at::Tensor QuantConv2dInt8Op(const at::Tensor& input, const at::Tensor& weight_int8,
                             const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t groups, double output_scale,
                             int64_t output_zero_point, bool relu);
at::Tensor QuantQuantizePerTensorOp(const at::Tensor& input, double scale, int64_t zero_point);
at::Tensor QuantDequantizeOp(const at::Tensor& input);

// Number of packed layers in the cache, for tests.
int64_t PackedCacheSize();

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_OPS_H_
