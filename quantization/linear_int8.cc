#include "quantization/linear_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "core/torch_status.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "quantization/fast_kernels.h"
#include "quantization/quant_params.h"
#include "quantization/reference_kernels.h"

namespace polaris::quantization {
namespace {

using dnnl::memory;
using Dims = memory::dims;

constexpr int32_t kInputMin = 0;
constexpr int32_t kInputMax = 255;

absl::Status CheckInput(const at::Tensor& input, int64_t in_features) {
  if (!input.defined() || !input.is_floating_point() || input.dim() == 0 ||
      input.size(-1) != in_features) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 linear needs a floating-point input of shape [..., ", in_features, "], got ",
        input.defined() ? absl::StrCat(c10::toString(input.scalar_type()), " ",
                                       c10::str(input.sizes()))
                        : "an undefined tensor"));
  }
  return absl::OkStatus();
}

absl::Status CheckInputQuantization(float scale, int32_t zero_point) {
  if (!std::isfinite(scale) || !(scale > 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input scale ", scale, " is invalid; it must be finite and > 0"));
  }
  if (zero_point < kInputMin || zero_point > kInputMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input zero point ", zero_point, " is outside the uint8 range [0, 255]"));
  }
  return absl::OkStatus();
}

std::vector<int64_t> OutputShape(const at::Tensor& input, int64_t out_features) {
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.back() = out_features;
  return shape;
}

}  // namespace

InputQuantization ChooseDynamicInputQuantization(float min, float max) {
  const double lo = std::min(static_cast<double>(min), 0.0);
  const double hi = std::max(static_cast<double>(max), 0.0);
  InputQuantization quantization;
  if (hi == lo) return quantization;
  quantization.scale =
      std::max(static_cast<float>((hi - lo) / static_cast<double>(kInputMax - kInputMin)),
               kMinScale);
  const double zero_point = static_cast<double>(kInputMin) - std::nearbyint(lo / quantization.scale);
  quantization.zero_point =
      static_cast<int32_t>(std::clamp(zero_point, double{kInputMin}, double{kInputMax}));
  return quantization;
}

struct Int8Linear::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  at::Tensor weight;                // int8 [N, K], contiguous
  std::vector<float> weight_scale;  // [N]
  std::vector<float> bias;          // [N], zeros when the layer has none
  std::vector<float> column_sums;   // sum_k weight[n, k]; exact in float for K < 2^17

  struct Plan {
    dnnl::matmul matmul;
    memory weights;  // in the layout the primitive wants
    std::string implementation;
  };
  std::mutex mutex;
  std::map<int64_t, std::shared_ptr<const Plan>> plans;  // by batch size

  absl::StatusOr<std::shared_ptr<const Plan>> GetPlan(int64_t batch);
};

absl::StatusOr<std::shared_ptr<const Int8Linear::State::Plan>> Int8Linear::State::GetPlan(
    int64_t batch) {
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = plans.find(batch); it != plans.end()) return it->second;

  const int64_t n = weight.size(0);
  const int64_t k = weight.size(1);
  try {
    const memory::desc src_md(Dims{batch, k}, memory::data_type::u8, memory::format_tag::ab);
    const memory::desc weights_md(Dims{k, n}, memory::data_type::s8, memory::format_tag::any);
    const memory::desc dst_md(Dims{batch, n}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc bias_md(Dims{1, n}, memory::data_type::f32, memory::format_tag::ab);

    const memory::desc scalar_md(Dims{1, 1}, memory::data_type::f32, memory::format_tag::ab);

    // The weight scales are constant, one per output column (dimension 1 of dst). The input
    // scale changes per call, so it comes in as a runtime tensor of a binary post-op. With
    // runtime output scales (DNNL_RUNTIME_F32_VAL) oneDNN 2.6 would pick its slower gemm:jit
    // kernel instead of brgemm, as checked here with impl_info_str().
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, weight_scale);
    dnnl::post_ops post_ops;
    post_ops.append_binary(dnnl::algorithm::binary_mul, scalar_md);
    post_ops.append_binary(dnnl::algorithm::binary_add, bias_md);
    attr.set_post_ops(post_ops);
    const dnnl::matmul::primitive_desc primitive_desc(
        dnnl::matmul::desc(src_md, weights_md, dst_md), attr, engine);

    auto plan = std::make_shared<Plan>();
    plan->matmul = dnnl::matmul(primitive_desc);
    plan->implementation = primitive_desc.impl_info_str();
    // Our weight [N, K] row-major is the matrix [K, N] in column-major ("ba") order.
    const memory::desc user_md(Dims{k, n}, memory::data_type::s8, memory::format_tag::ba);
    memory user_weights(user_md, engine, weight.data_ptr());
    // Plans of other batch sizes usually want the same layout: share their packed copy.
    for (const auto& [other_batch, other] : plans) {
      if (other->weights.get_desc() == primitive_desc.weights_desc()) {
        plan->weights = other->weights;
        break;
      }
    }
    if (!plan->weights) {
      if (primitive_desc.weights_desc() == user_md) {
        plan->weights = user_weights;
      } else {
        plan->weights = memory(primitive_desc.weights_desc(), engine);
        dnnl::stream stream(engine);
        dnnl::reorder(user_weights, plan->weights).execute(stream, user_weights, plan->weights);
        stream.wait();
      }
    }
    plans[batch] = plan;
    return std::shared_ptr<const Plan>(plan);
  } catch (const dnnl::error& error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "oneDNN cannot create an int8 matmul for batch ", batch, ", ", k, " -> ", n, ": ",
        error.what()));
  }
}

Int8Linear::~Int8Linear() = default;

absl::StatusOr<std::shared_ptr<Int8Linear>> Int8Linear::Create(const at::Tensor& weight_int8,
                                                               const at::Tensor& weight_scale,
                                                               const at::Tensor& bias) {
  if (!weight_int8.defined() || weight_int8.scalar_type() != at::kChar ||
      weight_int8.dim() != 2 || weight_int8.numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 linear needs a non-empty int8 weight of shape [out_features, in_features], got ",
        weight_int8.defined() ? absl::StrCat(c10::toString(weight_int8.scalar_type()), " ",
                                             c10::str(weight_int8.sizes()))
                              : "an undefined tensor"));
  }
  const int64_t n = weight_int8.size(0);
  const int64_t k = weight_int8.size(1);
  if (k >= (int64_t{1} << 17)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "in_features ", k, " is too large for exact float column sums; split the layer below ",
        int64_t{1} << 17));
  }
  if (!weight_scale.defined() || weight_scale.dim() != 1 || !weight_scale.is_floating_point() ||
      (weight_scale.numel() != n && weight_scale.numel() != 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight_scale must be a float tensor of shape [", n, "] or [1], got ",
        weight_scale.defined() ? c10::str(weight_scale.sizes()) : "an undefined tensor"));
  }
  if (bias.defined() && (bias.dim() != 1 || bias.numel() != n || !bias.is_floating_point())) {
    return absl::InvalidArgumentError(absl::StrCat("bias must be a float tensor of shape [", n,
                                                   "], got ", c10::str(bias.sizes())));
  }

  return CallTorch("packing an int8 linear layer",
                   [&]() -> absl::StatusOr<std::shared_ptr<Int8Linear>> {
    std::shared_ptr<Int8Linear> layer(new Int8Linear());
    layer->in_features_ = k;
    layer->out_features_ = n;
    layer->state_ = std::make_unique<State>();
    State& state = *layer->state_;
    state.weight = weight_int8.contiguous().clone();
    const at::Tensor scales = weight_scale.to(at::kFloat).contiguous().expand({n}).contiguous();
    state.weight_scale.assign(scales.data_ptr<float>(), scales.data_ptr<float>() + n);
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(state.weight_scale[i]) || !(state.weight_scale[i] > 0.0f)) {
        return absl::InvalidArgumentError(absl::StrCat("weight scale ", state.weight_scale[i],
                                                       " of output channel ", i,
                                                       " is invalid; it must be finite and > 0"));
      }
    }
    state.bias.assign(n, 0.0f);
    if (bias.defined()) {
      const at::Tensor b = bias.to(at::kFloat).contiguous();
      state.bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + n);
    }
    state.column_sums.assign(n, 0.0f);
    const int8_t* w = state.weight.data_ptr<int8_t>();
    for (int64_t i = 0; i < n; ++i) {
      int64_t sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += w[i * k + j];
      state.column_sums[i] = static_cast<float>(sum);
    }
    return layer;
  });
}

absl::StatusOr<std::string> Int8Linear::ImplementationName(int64_t batch) const {
  absl::StatusOr<std::shared_ptr<const State::Plan>> plan = state_->GetPlan(batch);
  if (!plan.ok()) return plan.status();
  return (*plan)->implementation;
}

absl::StatusOr<at::Tensor> Int8Linear::Forward(const at::Tensor& input, float input_scale,
                                               int32_t input_zero_point) const {
  if (absl::Status status = CheckInput(input, in_features_); !status.ok()) return status;
  if (absl::Status status = CheckInputQuantization(input_scale, input_zero_point); !status.ok()) {
    return status;
  }

  return CallTorch("running an int8 linear layer", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor x = input.to(at::kFloat).contiguous();
    const int64_t batch = x.numel() / in_features_;
    at::Tensor output = at::empty(OutputShape(input, out_features_), at::kFloat);
    if (batch == 0) return output;

    at::Tensor quantized = at::empty({batch, in_features_}, at::kByte);
    if (!QuantizeFast(x.data_ptr<float>(), x.numel(), input_scale, input_zero_point, kInputMin,
                      kInputMax, quantized.data_ptr<uint8_t>())) {
      return absl::InvalidArgumentError(
          "the input of the int8 linear layer contains NaN; fix what produced it");
    }

    // The bias with the input zero point folded in (header comment).
    const State& state = *state_;
    std::vector<float> effective_bias(out_features_);
    for (int64_t j = 0; j < out_features_; ++j) {
      const float column_scale = input_scale * state.weight_scale[j];
      effective_bias[j] = state.bias[j] - column_scale * static_cast<float>(input_zero_point) *
                                              state.column_sums[j];
    }
    float scale_of_input = input_scale;

    absl::StatusOr<std::shared_ptr<const State::Plan>> plan = state_->GetPlan(batch);
    if (!plan.ok()) return plan.status();
    const dnnl::engine& engine = state.engine;
    const memory src(memory::desc(Dims{batch, in_features_}, memory::data_type::u8,
                                  memory::format_tag::ab),
                     engine, quantized.data_ptr());
    const memory dst(memory::desc(Dims{batch, out_features_}, memory::data_type::f32,
                                  memory::format_tag::ab),
                     engine, output.data_ptr());
    const memory scalar(memory::desc(Dims{1, 1}, memory::data_type::f32, memory::format_tag::ab),
                        engine, &scale_of_input);
    const memory bias(memory::desc(Dims{1, out_features_}, memory::data_type::f32,
                                   memory::format_tag::ab),
                      engine, effective_bias.data());
    dnnl::stream stream(engine);
    (*plan)->matmul.execute(stream,
                            {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_WEIGHTS, (*plan)->weights},
                             {DNNL_ARG_DST, dst},
                             {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, scalar},
                             {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, bias}});
    stream.wait();
    return output;
  });
}

absl::StatusOr<at::Tensor> Int8Linear::ForwardDynamic(const at::Tensor& input) const {
  if (absl::Status status = CheckInput(input, in_features_); !status.ok()) return status;
  if (input.numel() == 0) return Forward(input, 1.0f, 0);

  absl::StatusOr<InputQuantization> quantization =
      CallTorch("measuring the input range", [&]() -> absl::StatusOr<InputQuantization> {
        const at::Tensor x = input.to(at::kFloat).contiguous();
        float min = 0.0f;
        float max = 0.0f;
        if (!MinMaxFast(x.data_ptr<float>(), x.numel(), &min, &max) || !std::isfinite(min) ||
            !std::isfinite(max)) {
          return absl::InvalidArgumentError(
              "the input of the int8 linear layer contains NaN or Inf; fix what produced it");
        }
        return ChooseDynamicInputQuantization(min, max);
      });
  if (!quantization.ok()) return quantization.status();
  return Forward(input, quantization->scale, quantization->zero_point);
}

at::Tensor Int8LinearReference(const at::Tensor& input, const at::Tensor& weight_int8,
                               const at::Tensor& weight_scale, const at::Tensor& bias,
                               float input_scale, int32_t input_zero_point) {
  TORCH_CHECK(input.dim() == 2 && weight_int8.dim() == 2 && input.size(1) == weight_int8.size(1),
              "Int8LinearReference: shapes ", input.sizes(), " and ", weight_int8.sizes());
  const at::Tensor x = input.to(at::kFloat).contiguous();
  const at::Tensor w = weight_int8.contiguous();
  const int64_t m = x.size(0);
  const int64_t k = x.size(1);
  const int64_t n = w.size(0);
  const at::Tensor scales = weight_scale.to(at::kFloat).contiguous().expand({n}).contiguous();
  const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : at::zeros({n});

  std::vector<uint8_t> q(m * k);
  TORCH_CHECK(reference::Quantize(x.data_ptr<float>(), m * k, input_scale, input_zero_point,
                                  kInputMin, kInputMax, q.data()),
              "Int8LinearReference: NaN in the input");
  at::Tensor y = at::empty({m, n}, at::kFloat);
  const int8_t* w_data = w.data_ptr<int8_t>();
  const float* scale_data = scales.data_ptr<float>();
  const float* bias_data = b.data_ptr<float>();
  float* y_data = y.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t l = 0; l < k; ++l) {
        acc += (static_cast<int64_t>(q[i * k + l]) - input_zero_point) *
               static_cast<int64_t>(w_data[j * k + l]);
      }
      const double scale = static_cast<double>(input_scale) * scale_data[j];
      y_data[i * n + j] = static_cast<float>(scale * static_cast<double>(acc) + bias_data[j]);
    }
  }
  return y;
}

at::Tensor Int8LinearDynamicReference(const at::Tensor& input, const at::Tensor& weight_int8,
                                      const at::Tensor& weight_scale, const at::Tensor& bias) {
  const at::Tensor x = input.to(at::kFloat).contiguous();
  float min = 0.0f;
  float max = 0.0f;
  TORCH_CHECK(x.numel() > 0 && reference::MinMax(x.data_ptr<float>(), x.numel(), &min, &max),
              "Int8LinearDynamicReference: empty input or NaN");
  const InputQuantization quantization = ChooseDynamicInputQuantization(min, max);
  return Int8LinearReference(x, weight_int8, weight_scale, bias, quantization.scale,
                             quantization.zero_point);
}

}  // namespace polaris::quantization
