#include "quantization/ops.h"

#include <cmath>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "quantization/conv_int8.h"
#include "quantization/fast_kernels.h"
#include "quantization/linear_int4.h"
#include "quantization/linear_int8.h"
#include "torch/library.h"

namespace polaris::quantization {
namespace {

// Raises a failed status as c10::Error, which TorchScript and Python report as RuntimeError.
void ThrowIfError(const absl::Status& status, const char* op) {
  TORCH_CHECK(status.ok(), "polaris::", op, ": ", std::string(status.message()));
}

template <typename T>
T ValueOrThrow(absl::StatusOr<T> result, const char* op) {
  ThrowIfError(result.status(), op);
  return *std::move(result);
}

// Identifies the current contents of a tensor: the same storage, shape and version counter.
struct TensorKey {
  const void* data = nullptr;
  std::vector<int64_t> sizes;
  int64_t version = -1;

  static TensorKey Of(const at::Tensor& t) {
    if (!t.defined()) return {};
    // Tensors created under c10::InferenceMode (a model loaded inside it) have no version
    // counter, and reading it throws. Their storage and shape still identify them; an in-place
    // change of such a weight inside InferenceMode would go unnoticed by the cache.
    if (t.is_inference()) return {t.data_ptr(), t.sizes().vec(), -2};
    return {t.data_ptr(), t.sizes().vec(), static_cast<int64_t>(t._version())};
  }
  bool operator==(const TensorKey& other) const {
    return data == other.data && sizes == other.sizes && version == other.version;
  }
};

// Least-recently-used cache of packed layers. Each entry keeps references to the tensors it
// was packed from, so their memory cannot be reused by other tensors while the entry lives.
class PackedCache {
 public:
  template <typename Packed, typename MakeFn>
  std::shared_ptr<Packed> GetOrCreate(int kind, const std::vector<at::Tensor>& tensors,
                                      const std::string& extra, MakeFn make) {
    std::vector<TensorKey> keys;
    for (const at::Tensor& t : tensors) keys.push_back(TensorKey::Of(t));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->kind == kind && it->extra == extra && it->keys == keys) {
          entries_.splice(entries_.begin(), entries_, it);
          return std::static_pointer_cast<Packed>(it->packed);
        }
      }
    }
    // Packing runs outside the lock; two threads may pack the same layer once each.
    std::shared_ptr<Packed> packed = make();
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_front(Entry{kind, extra, keys, tensors, packed});
    if (entries_.size() > static_cast<size_t>(kPackedCacheEntries)) entries_.pop_back();
    return packed;
  }

  int64_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(entries_.size());
  }

 private:
  struct Entry {
    int kind;
    std::string extra;  // the non-tensor arguments that packing depends on
    std::vector<TensorKey> keys;
    std::vector<at::Tensor> tensors;
    std::shared_ptr<void> packed;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
};

PackedCache& Cache() {
  static PackedCache* cache = new PackedCache();
  return *cache;
}

enum CacheKind { kInt8Linear = 1, kInt4Linear = 2, kInt8Conv2d = 3 };

std::shared_ptr<Int8Linear> PackedInt8(const at::Tensor& weight_int8, const at::Tensor& weight_scale,
                                       const c10::optional<at::Tensor>& bias, const char* op) {
  const at::Tensor b = bias.has_value() ? *bias : at::Tensor();
  return Cache().GetOrCreate<Int8Linear>(kInt8Linear, {weight_int8, weight_scale, b}, "", [&] {
    return ValueOrThrow(Int8Linear::Create(weight_int8, weight_scale, b), op);
  });
}

}  // namespace

at::Tensor QuantLinearInt8Op(const at::Tensor& input, const at::Tensor& weight_int8,
                             const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                             double input_scale, int64_t input_zero_point) {
  constexpr char kOp[] = "quant_linear_int8";
  TORCH_CHECK(input_zero_point >= 0 && input_zero_point <= 255, "polaris::", kOp,
              ": input zero point ", input_zero_point, " is outside the uint8 range [0, 255]");
  std::shared_ptr<Int8Linear> layer = PackedInt8(weight_int8, weight_scale, bias, kOp);
  return ValueOrThrow(layer->Forward(input, static_cast<float>(input_scale),
                                     static_cast<int32_t>(input_zero_point)),
                      kOp);
}

at::Tensor QuantLinearInt8DynamicOp(const at::Tensor& input, const at::Tensor& weight_int8,
                                    const at::Tensor& weight_scale,
                                    const c10::optional<at::Tensor>& bias) {
  constexpr char kOp[] = "quant_linear_int8_dynamic";
  std::shared_ptr<Int8Linear> layer = PackedInt8(weight_int8, weight_scale, bias, kOp);
  return ValueOrThrow(layer->ForwardDynamic(input), kOp);
}

at::Tensor QuantLinearInt4Op(const at::Tensor& input, const at::Tensor& packed,
                             const at::Tensor& scale, const at::Tensor& zero_point,
                             int64_t group_size, const c10::optional<at::Tensor>& bias) {
  constexpr char kOp[] = "quant_linear_int4";
  TORCH_CHECK(input.defined() && input.dim() >= 1, "polaris::", kOp,
              ": input must have at least one dimension");
  const at::Tensor b = bias.has_value() ? *bias : at::Tensor();
  const int64_t in_features = input.size(-1);
  std::shared_ptr<Int4Linear> layer = Cache().GetOrCreate<Int4Linear>(
      kInt4Linear, {packed, scale, zero_point, b}, absl::StrCat(group_size, ",", in_features),
      [&] {
        Int4Weight weight{packed, scale, zero_point, group_size, in_features};
        return ValueOrThrow(Int4Linear::Create(weight, b), kOp);
      });
  return ValueOrThrow(layer->Forward(input), kOp);
}

at::Tensor QuantConv2dInt8Op(const at::Tensor& input, const at::Tensor& weight_int8,
                             const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t groups, double output_scale,
                             int64_t output_zero_point, bool relu) {
  constexpr char kOp[] = "quant_conv2d_int8";
  TORCH_CHECK(input.defined() && input.scalar_type() == at::kQUInt8 &&
                  input.qscheme() == at::kPerTensorAffine,
              "polaris::", kOp, ": input must be a per-tensor quint8 tensor");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, "polaris::", kOp,
              ": stride, padding and dilation need two values each");
  Conv2dGeometry geometry;
  geometry.stride = {stride[0], stride[1]};
  geometry.padding = {padding[0], padding[1]};
  geometry.dilation = {dilation[0], dilation[1]};
  geometry.groups = groups;
  Conv2dQuantization quantization;
  quantization.input_scale = static_cast<float>(input.q_scale());
  quantization.input_zero_point = static_cast<int32_t>(input.q_zero_point());
  quantization.output_scale = static_cast<float>(output_scale);
  quantization.output_zero_point = static_cast<int32_t>(output_zero_point);
  quantization.relu = relu;
  TORCH_CHECK(output_zero_point >= 0 && output_zero_point <= 255, "polaris::", kOp,
              ": output zero point ", output_zero_point, " is outside the quint8 range [0, 255]");

  const at::Tensor b = bias.has_value() ? *bias : at::Tensor();
  // Input and output quantization are fixed in the packed primitive, so they are part of the
  // key. Hexadecimal float formatting (%a) keeps the scales exact.
  const std::string key = absl::StrCat(
      absl::StrJoin(stride, ","), ";", absl::StrJoin(padding, ","), ";",
      absl::StrJoin(dilation, ","), ";", groups, ";",
      absl::StrFormat("%a,%d,%a,%d,%d", quantization.input_scale, quantization.input_zero_point,
                      quantization.output_scale, quantization.output_zero_point, relu ? 1 : 0));
  std::shared_ptr<Int8Conv2d> conv = Cache().GetOrCreate<Int8Conv2d>(
      kInt8Conv2d, {weight_int8, weight_scale, b}, key, [&] {
        return ValueOrThrow(
            Int8Conv2d::Create(weight_int8, weight_scale, b, geometry, quantization), kOp);
      });
  return ValueOrThrow(conv->Forward(input), kOp);
}

at::Tensor QuantQuantizePerTensorOp(const at::Tensor& input, double scale, int64_t zero_point) {
  TORCH_CHECK(input.defined() && input.is_floating_point(),
              "polaris::quant_quantize_per_tensor: input must be a floating-point tensor");
  TORCH_CHECK(std::isfinite(scale) && scale > 0.0,
              "polaris::quant_quantize_per_tensor: scale ", scale, " must be finite and > 0");
  TORCH_CHECK(zero_point >= 0 && zero_point <= 255, "polaris::quant_quantize_per_tensor: zero point ",
              zero_point, " is outside the quint8 range [0, 255]");
  const at::Tensor x = input.to(at::kFloat).contiguous();
  at::Tensor q = at::_empty_affine_quantized(x.sizes(), at::device(at::kCPU).dtype(at::kQUInt8),
                                             scale, zero_point);
  // LibTorch keeps the scale as a double. The kernel multiplies by 1 / scale in float32, like
  // every other quantize step here.
  const bool no_nan = QuantizeFast(x.data_ptr<float>(), x.numel(), static_cast<float>(scale),
                                   static_cast<int32_t>(zero_point), 0, 255,
                                   reinterpret_cast<uint8_t*>(q.data_ptr()));
  TORCH_CHECK(no_nan, "polaris::quant_quantize_per_tensor: the input contains NaN");
  return q;
}

at::Tensor QuantDequantizeOp(const at::Tensor& input) {
  TORCH_CHECK(input.defined() && input.is_quantized(),
              "polaris::quant_dequantize: input must be a quantized tensor");
  const bool per_tensor = input.qscheme() == at::kPerTensorAffine;
  const at::ScalarType type = input.scalar_type();
  if (!per_tensor || (type != at::kQUInt8 && type != at::kQInt8)) return at::dequantize(input);

  const at::Tensor q = input.contiguous();
  at::Tensor x = at::empty(q.sizes(), at::kFloat);
  const float scale = static_cast<float>(q.q_scale());
  const int32_t zero_point = static_cast<int32_t>(q.q_zero_point());
  if (type == at::kQUInt8) {
    DequantizeFast(reinterpret_cast<const uint8_t*>(q.data_ptr()), q.numel(), scale, zero_point,
                   x.data_ptr<float>());
  } else {
    DequantizeFast(reinterpret_cast<const int8_t*>(q.data_ptr()), q.numel(), scale, zero_point,
                   x.data_ptr<float>());
  }
  return x;
}

int64_t PackedCacheSize() { return Cache().size(); }

// Registered without a dispatch key (catch-all kernels), so the ops run for plain CPU tensors
// and LibTorch's quantized tensors alike. They are inference ops and record no gradients.
TORCH_LIBRARY_FRAGMENT(polaris, m) {
  m.def(
      "quant_linear_int8(Tensor input, Tensor weight_int8, Tensor weight_scale, Tensor? bias, "
      "float input_scale, int input_zero_point) -> Tensor",
      QuantLinearInt8Op);
  m.def(
      "quant_linear_int8_dynamic(Tensor input, Tensor weight_int8, Tensor weight_scale, "
      "Tensor? bias) -> Tensor",
      QuantLinearInt8DynamicOp);
  m.def(
      "quant_linear_int4(Tensor input, Tensor packed, Tensor scale, Tensor zero_point, "
      "int group_size, Tensor? bias) -> Tensor",
      QuantLinearInt4Op);
  m.def(
      "quant_conv2d_int8(Tensor input, Tensor weight_int8, Tensor weight_scale, Tensor? bias, "
      "int[] stride, int[] padding, int[] dilation, int groups, float output_scale, "
      "int output_zero_point, bool relu) -> Tensor",
      QuantConv2dInt8Op);
  m.def("quant_quantize_per_tensor(Tensor input, float scale, int zero_point) -> Tensor",
        QuantQuantizePerTensorOp);
  m.def("quant_dequantize(Tensor input) -> Tensor", QuantDequantizeOp);
}

}  // namespace polaris::quantization
