#include "quantization/conv_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/core/dispatch/Dispatcher.h"
#include "absl/strings/str_cat.h"
#include "core/torch_status.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace polaris::quantization {
namespace {

using dnnl::memory;
using Dims = memory::dims;

int64_t OutputSize(int64_t input, int64_t kernel, int64_t stride, int64_t padding,
                   int64_t dilation) {
  return (input + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

c10::IValue CallBoxed(const char* name, const char* overload, std::vector<c10::IValue> stack) {
  const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
  op.callBoxed(&stack);
  return stack.at(0);
}

std::vector<int64_t> Pair(const std::array<int64_t, 2>& values) {
  return {values[0], values[1]};
}

}  // namespace

at::Tensor Conv2dInt8Reference(const at::Tensor& input, const at::Tensor& weight,
                               const at::Tensor& weight_scale, const at::Tensor& bias,
                               const Conv2dGeometry& geometry,
                               const Conv2dQuantization& quantization) {
  TORCH_CHECK(input.scalar_type() == at::kByte && input.dim() == 4, "input must be uint8 NCHW");
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.dim() == 4, "weight must be int8 OIHW");
  const at::Tensor x = input.contiguous();
  const at::Tensor w = weight.contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t o = w.size(0), kh = w.size(2), kw = w.size(3);
  const int64_t groups = geometry.groups;
  TORCH_CHECK(c % groups == 0 && o % groups == 0 && w.size(1) == c / groups,
              "channels do not match the groups");
  const int64_t oh = OutputSize(h, kh, geometry.stride[0], geometry.padding[0], geometry.dilation[0]);
  const int64_t ow = OutputSize(wd, kw, geometry.stride[1], geometry.padding[1], geometry.dilation[1]);
  const at::Tensor scales = weight_scale.to(at::kFloat).contiguous();
  const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : at::zeros({o});

  at::Tensor y = at::empty({n, o, oh, ow}, at::kByte);
  const uint8_t* x_data = x.data_ptr<uint8_t>();
  const int8_t* w_data = w.data_ptr<int8_t>();
  uint8_t* y_data = y.data_ptr<uint8_t>();
  const int64_t c_per_group = c / groups;
  const int64_t o_per_group = o / groups;
  for (int64_t b_i = 0; b_i < n; ++b_i) {
    for (int64_t oc = 0; oc < o; ++oc) {
      const int64_t g = oc / o_per_group;
      const double scale = static_cast<double>(quantization.input_scale) * scales.data_ptr<float>()[oc];
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          int64_t acc = 0;
          for (int64_t ic = 0; ic < c_per_group; ++ic) {
            for (int64_t ky = 0; ky < kh; ++ky) {
              const int64_t iy = oy * geometry.stride[0] - geometry.padding[0] + ky * geometry.dilation[0];
              if (iy < 0 || iy >= h) continue;
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t ix = ox * geometry.stride[1] - geometry.padding[1] + kx * geometry.dilation[1];
                if (ix < 0 || ix >= wd) continue;
                const int64_t channel = g * c_per_group + ic;
                const int64_t q = x_data[((b_i * c + channel) * h + iy) * wd + ix];
                acc += (q - quantization.input_zero_point) *
                       w_data[((oc * c_per_group + ic) * kh + ky) * kw + kx];
              }
            }
          }
          double value = scale * static_cast<double>(acc) + b.data_ptr<float>()[oc];
          if (quantization.relu) value = std::max(value, 0.0);
          const double q = std::nearbyint(value / quantization.output_scale) + quantization.output_zero_point;
          y_data[((b_i * o + oc) * oh + oy) * ow + ox] = static_cast<uint8_t>(std::clamp(q, 0.0, 255.0));
        }
      }
    }
  }
  return y;
}

absl::StatusOr<std::shared_ptr<LibTorchInt8Conv2d>> LibTorchInt8Conv2d::Create(
    const at::Tensor& weight, const at::Tensor& bias, const Conv2dGeometry& geometry) {
  return CallTorch("prepacking a LibTorch quantized convolution", [&] {
    auto conv = std::make_shared<LibTorchInt8Conv2d>();
    conv->packed_ = CallBoxed("quantized::conv2d_prepack", "",
                              {weight, bias.defined() ? c10::IValue(bias) : c10::IValue(),
                               Pair(geometry.stride), Pair(geometry.padding),
                               Pair(geometry.dilation), geometry.groups});
    return conv;
  });
}

absl::StatusOr<at::Tensor> LibTorchInt8Conv2d::Forward(const at::Tensor& input,
                                                       float output_scale,
                                                       int32_t output_zero_point,
                                                       bool relu) const {
  return CallTorch("running LibTorch's quantized convolution", [&] {
    return CallBoxed(relu ? "quantized::conv2d_relu" : "quantized::conv2d", "new",
                     {input, packed_, static_cast<double>(output_scale),
                      static_cast<int64_t>(output_zero_point)})
        .toTensor();
  });
}

struct Int8Conv2d::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  at::Tensor weight;  // int8 [O, C / groups, KH, KW], contiguous
  std::vector<float> output_scale;  // s_x * s_w[o] / s_y
  std::vector<float> bias;          // b[o] / (s_x * s_w[o]): oneDNN adds it before scaling
  Conv2dGeometry geometry;
  Conv2dQuantization quantization;

  struct Plan {
    dnnl::convolution_forward conv;
    memory weights;
    std::string implementation;
    std::vector<int64_t> output_shape;
  };
  std::mutex mutex;
  std::map<std::vector<int64_t>, std::shared_ptr<const Plan>> plans;  // by N, C, H, W, layout

  absl::StatusOr<std::shared_ptr<const Plan>> GetPlan(const std::vector<int64_t>& shape,
                                                      bool channels_last);
};

absl::StatusOr<std::shared_ptr<const Int8Conv2d::State::Plan>> Int8Conv2d::State::GetPlan(
    const std::vector<int64_t>& shape, bool channels_last) {
  std::vector<int64_t> key = shape;
  key.push_back(channels_last);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = plans.find(key); it != plans.end()) return it->second;

  const int64_t n = shape[0], c = shape[1], h = shape[2], w = shape[3];
  const int64_t o = weight.size(0), kh = weight.size(2), kw = weight.size(3);
  const int64_t g = geometry.groups;
  const int64_t oh = OutputSize(h, kh, geometry.stride[0], geometry.padding[0], geometry.dilation[0]);
  const int64_t ow = OutputSize(w, kw, geometry.stride[1], geometry.padding[1], geometry.dilation[1]);
  try {
    const memory::desc src_md(Dims{n, c, h, w}, memory::data_type::u8,
                              channels_last ? memory::format_tag::nhwc : memory::format_tag::nchw);
    const Dims weight_dims = g == 1 ? Dims{o, c, kh, kw} : Dims{g, o / g, c / g, kh, kw};
    const memory::desc weights_md(weight_dims, memory::data_type::s8, memory::format_tag::any);
    const memory::desc bias_md(Dims{o}, memory::data_type::f32, memory::format_tag::a);
    const memory::desc dst_md(Dims{n, o, oh, ow}, memory::data_type::u8, memory::format_tag::nhwc);

    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, output_scale);
    attr.set_zero_points(DNNL_ARG_SRC, 0, {quantization.input_zero_point});
    attr.set_zero_points(DNNL_ARG_DST, 0, {quantization.output_zero_point});
    if (quantization.relu) {
      dnnl::post_ops post_ops;
      post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(post_ops);
    }
    // oneDNN takes dilation as the number of skipped elements (PyTorch's dilation - 1) and the
    // right padding explicitly; PyTorch pads both sides equally.
    const dnnl::convolution_forward::primitive_desc primitive_desc(
        dnnl::convolution_forward::desc(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
            weights_md, bias_md, dst_md, Dims{geometry.stride[0], geometry.stride[1]},
            Dims{geometry.dilation[0] - 1, geometry.dilation[1] - 1},
            Dims{geometry.padding[0], geometry.padding[1]},
            Dims{geometry.padding[0], geometry.padding[1]}),
        attr, engine);

    auto plan = std::make_shared<Plan>();
    plan->conv = dnnl::convolution_forward(primitive_desc);
    plan->implementation = primitive_desc.impl_info_str();
    plan->output_shape = {n, o, oh, ow};
    const memory::desc user_md(weight_dims, memory::data_type::s8,
                               g == 1 ? memory::format_tag::oihw : memory::format_tag::goihw);
    memory user_weights(user_md, engine, weight.data_ptr());
    plan->weights = memory(primitive_desc.weights_desc(), engine);
    dnnl::stream stream(engine);
    dnnl::reorder(user_weights, plan->weights).execute(stream, user_weights, plan->weights);
    stream.wait();
    plans[key] = plan;
    return std::shared_ptr<const Plan>(plan);
  } catch (const dnnl::error& error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "oneDNN cannot create an int8 convolution for input [", n, ", ", c, ", ", h, ", ", w,
        "]: ", error.what()));
  }
}

Int8Conv2d::~Int8Conv2d() = default;

absl::StatusOr<std::shared_ptr<Int8Conv2d>> Int8Conv2d::Create(
    const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& bias,
    const Conv2dGeometry& geometry, const Conv2dQuantization& quantization) {
  if (!weight.defined() || weight.scalar_type() != at::kChar || weight.dim() != 4 ||
      weight.numel() == 0) {
    return absl::InvalidArgumentError("int8 convolution needs an int8 weight [O, C / groups, KH, KW]");
  }
  const int64_t o = weight.size(0);
  if (geometry.groups < 1 || o % geometry.groups != 0) {
    return absl::InvalidArgumentError(absl::StrCat("groups ", geometry.groups,
                                                   " does not divide the ", o, " output channels"));
  }
  for (int i = 0; i < 2; ++i) {
    if (geometry.stride[i] < 1 || geometry.dilation[i] < 1 || geometry.padding[i] < 0) {
      return absl::InvalidArgumentError(
          "convolution strides and dilations must be >= 1 and padding >= 0");
    }
  }
  if (!weight_scale.defined() || weight_scale.numel() != o) {
    return absl::InvalidArgumentError(absl::StrCat("weight_scale must have ", o, " entries"));
  }
  if (bias.defined() && bias.numel() != o) {
    return absl::InvalidArgumentError(absl::StrCat("bias must have ", o, " entries"));
  }
  const Conv2dQuantization& q = quantization;
  if (!(q.input_scale > 0.0f) || !std::isfinite(q.input_scale) || !(q.output_scale > 0.0f) ||
      !std::isfinite(q.output_scale) || q.input_zero_point < 0 || q.input_zero_point > 255 ||
      q.output_zero_point < 0 || q.output_zero_point > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid convolution quantization: input scale ", q.input_scale, ", zero point ",
        q.input_zero_point, ", output scale ", q.output_scale, ", zero point ",
        q.output_zero_point, "; scales must be finite and > 0, zero points in [0, 255]"));
  }

  return CallTorch("preparing an int8 convolution", [&]() -> absl::StatusOr<std::shared_ptr<Int8Conv2d>> {
    std::shared_ptr<Int8Conv2d> conv(new Int8Conv2d());
    conv->state_ = std::make_unique<State>();
    State& state = *conv->state_;
    state.weight = weight.contiguous().clone();
    state.geometry = geometry;
    state.quantization = quantization;
    const at::Tensor scales = weight_scale.to(at::kFloat).contiguous();
    const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : at::zeros({o});
    for (int64_t i = 0; i < o; ++i) {
      const float s_w = scales.data_ptr<float>()[i];
      if (!(s_w > 0.0f) || !std::isfinite(s_w)) {
        return absl::InvalidArgumentError(absl::StrCat("weight scale ", s_w, " of output channel ",
                                                       i, " must be finite and > 0"));
      }
      const float accumulator_scale = q.input_scale * s_w;
      state.output_scale.push_back(accumulator_scale / q.output_scale);
      state.bias.push_back(b.data_ptr<float>()[i] / accumulator_scale);
    }
    return conv;
  });
}

absl::StatusOr<std::string> Int8Conv2d::ImplementationName(const at::Tensor& input) const {
  absl::StatusOr<std::shared_ptr<const State::Plan>> plan =
      state_->GetPlan(input.sizes().vec(), /*channels_last=*/true);
  if (!plan.ok()) return plan.status();
  return (*plan)->implementation;
}

absl::StatusOr<at::Tensor> Int8Conv2d::Forward(const at::Tensor& input) const {
  const State& state = *state_;
  if (!input.defined() || input.scalar_type() != at::kQUInt8 || input.dim() != 4 ||
      input.size(1) != state.weight.size(1) * state.geometry.groups) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 convolution needs a quint8 input [N, ", state.weight.size(1) * state.geometry.groups,
        ", H, W], got ",
        input.defined() ? absl::StrCat(c10::toString(input.scalar_type()), " ", c10::str(input.sizes()))
                        : "an undefined tensor"));
  }
  if (static_cast<float>(input.q_scale()) != state.quantization.input_scale ||
      input.q_zero_point() != state.quantization.input_zero_point) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input quantization (scale ", input.q_scale(), ", zero point ", input.q_zero_point(),
        ") differs from the calibrated one (", state.quantization.input_scale, ", ",
        state.quantization.input_zero_point, ")"));
  }

  return CallTorch("running an int8 convolution", [&]() -> absl::StatusOr<at::Tensor> {
    // oneDNN 2.6 has fast int8 kernels only for channels-last (NHWC) activations. For NCHW it
    // picks its reference implementation (ref_int8), which is far slower than one reorder.
    const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
    absl::StatusOr<std::shared_ptr<const State::Plan>> plan =
        state_->GetPlan(x.sizes().vec(), /*channels_last=*/true);
    if (!plan.ok()) return plan.status();
    at::Tensor y = at::_empty_affine_quantized(
        (*plan)->output_shape, at::device(at::kCPU).dtype(at::kQUInt8),
        state.quantization.output_scale, state.quantization.output_zero_point,
        at::MemoryFormat::ChannelsLast);

    const std::vector<int64_t>& out = (*plan)->output_shape;
    const dnnl::engine& engine = state.engine;
    const memory src(memory::desc(Dims(x.sizes().begin(), x.sizes().end()), memory::data_type::u8,
                                  memory::format_tag::nhwc),
                     engine, x.data_ptr());
    const memory dst(memory::desc(Dims(out.begin(), out.end()), memory::data_type::u8,
                                  memory::format_tag::nhwc),
                     engine, y.data_ptr());
    const memory bias(memory::desc(Dims{static_cast<int64_t>(state.bias.size())},
                                   memory::data_type::f32, memory::format_tag::a),
                      engine, const_cast<float*>(state.bias.data()));
    dnnl::stream stream(engine);
    (*plan)->conv.execute(stream, {{DNNL_ARG_SRC, src},
                                   {DNNL_ARG_WEIGHTS, (*plan)->weights},
                                   {DNNL_ARG_BIAS, bias},
                                   {DNNL_ARG_DST, dst}});
    stream.wait();
    return y;
  });
}

}  // namespace polaris::quantization
