#include "quantization/quantize.h"

#include <cstdint>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/fast_kernels.h"

namespace polaris::quantization {
namespace {

// The layout [outer, channels, inner] of a contiguous tensor quantized along `axis`; per-tensor
// parameters use one channel.
struct ChannelLayout {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
};

ChannelLayout LayoutOf(const at::Tensor& x, int64_t axis) {
  ChannelLayout layout;
  if (axis < 0) {
    layout.inner = x.numel();
    return layout;
  }
  for (int64_t d = 0; d < axis; ++d) layout.outer *= x.size(d);
  layout.channels = x.size(axis);
  for (int64_t d = axis + 1; d < x.dim(); ++d) layout.inner *= x.size(d);
  return layout;
}

absl::Status NanError(const at::Tensor& x) {
  const at::Tensor nan_index = at::isnan(x).reshape({-1}).nonzero();
  const int64_t first = nan_index.numel() > 0 ? nan_index[0][0].item<int64_t>() : -1;
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot quantize NaN (first at flat index ", first, " of a tensor of shape ",
      c10::str(x.sizes()), "); remove NaN from the input or fix what produced it"));
}

template <typename Q>
absl::StatusOr<at::Tensor> QuantizeAs(const at::Tensor& x, const QuantParams& params) {
  const at::Tensor input = x.to(at::kFloat).contiguous();
  const ChannelLayout layout = LayoutOf(input, params.axis);
  const QuantRange range = RangeOf(params.dtype);
  at::Tensor q = at::empty(input.sizes(), at::TensorOptions().dtype(StorageTypeOf(params.dtype)));
  const float* x_data = input.data_ptr<float>();
  Q* q_data = static_cast<Q*>(q.data_ptr());
  const at::Tensor scales = params.scale.contiguous();
  const at::Tensor zero_points = params.zero_point.contiguous();
  const float* scale = scales.data_ptr<float>();
  const int64_t* zero_point = zero_points.data_ptr<int64_t>();

  bool no_nan = true;
  for (int64_t o = 0; o < layout.outer; ++o) {
    for (int64_t c = 0; c < layout.channels; ++c) {
      const int64_t offset = (o * layout.channels + c) * layout.inner;
      no_nan &= QuantizeFast(x_data + offset, layout.inner, scale[c],
                             static_cast<int32_t>(zero_point[c]), static_cast<int32_t>(range.min),
                             static_cast<int32_t>(range.max), q_data + offset);
    }
  }
  if (!no_nan) return NanError(input);
  return q;
}

template <typename Q>
at::Tensor DequantizeAs(const at::Tensor& q, const QuantParams& params) {
  const at::Tensor input = q.contiguous();
  const ChannelLayout layout = LayoutOf(input, params.axis);
  at::Tensor x = at::empty(input.sizes(), at::TensorOptions().dtype(at::kFloat));
  const Q* q_data = static_cast<const Q*>(input.data_ptr());
  float* x_data = x.data_ptr<float>();
  const at::Tensor scales = params.scale.contiguous();
  const at::Tensor zero_points = params.zero_point.contiguous();
  const float* scale = scales.data_ptr<float>();
  const int64_t* zero_point = zero_points.data_ptr<int64_t>();
  for (int64_t o = 0; o < layout.outer; ++o) {
    for (int64_t c = 0; c < layout.channels; ++c) {
      const int64_t offset = (o * layout.channels + c) * layout.inner;
      DequantizeFast(q_data + offset, layout.inner, scale[c],
                     static_cast<int32_t>(zero_point[c]), x_data + offset);
    }
  }
  return x;
}

absl::Status CheckFloatingPoint(const at::Tensor& x, absl::string_view operation) {
  if (!x.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(operation, ": the input tensor is undefined"));
  }
  if (!x.is_floating_point()) {
    return absl::InvalidArgumentError(
        absl::StrCat(operation, " needs a floating-point tensor, got ",
                     c10::toString(x.scalar_type())));
  }
  return absl::OkStatus();
}

// Converts a nibble (0..15) to its value.
inline int32_t NibbleValue(uint8_t nibble, bool is_signed) {
  return is_signed && nibble >= 8 ? static_cast<int32_t>(nibble) - 16 : nibble;
}

}  // namespace

absl::StatusOr<at::Tensor> Quantize(const at::Tensor& x, const QuantParams& params) {
  POLARIS_RETURN_IF_ERROR(CheckFloatingPoint(x, "Quantize"));
  POLARIS_RETURN_IF_ERROR(ValidateQuantParams(params, x, "the tensor to quantize"));
  return CallTorch("quantizing a tensor", [&]() -> absl::StatusOr<at::Tensor> {
    if (IsSigned(params.dtype)) return QuantizeAs<int8_t>(x, params);
    return QuantizeAs<uint8_t>(x, params);
  });
}

absl::StatusOr<at::Tensor> Dequantize(const at::Tensor& q, const QuantParams& params) {
  if (!q.defined() || q.scalar_type() != StorageTypeOf(params.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Dequantize of ", QuantDtypeName(params.dtype), " values needs a ",
        c10::toString(StorageTypeOf(params.dtype)), " tensor, got ",
        q.defined() ? c10::toString(q.scalar_type()) : "an undefined tensor"));
  }
  POLARIS_RETURN_IF_ERROR(ValidateQuantParams(params, q, "the tensor to dequantize"));
  return CallTorch("dequantizing a tensor", [&] {
    return IsSigned(params.dtype) ? DequantizeAs<int8_t>(q, params)
                                  : DequantizeAs<uint8_t>(q, params);
  });
}

absl::StatusOr<at::Tensor> FakeQuantize(const at::Tensor& x, const QuantParams& params) {
  POLARIS_ASSIGN_OR_RETURN(at::Tensor q, Quantize(x, params));
  return Dequantize(q, params);
}

absl::StatusOr<at::Tensor> PackInt4(const at::Tensor& values) {
  if (!values.defined() ||
      (values.scalar_type() != at::kChar && values.scalar_type() != at::kByte)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PackInt4 needs int8 values in [-8, 7] or uint8 values in [0, 15], got ",
        values.defined() ? c10::toString(values.scalar_type()) : "an undefined tensor"));
  }
  return CallTorch("packing INT4 values", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor input = values.dim() == 0 ? values.reshape({1}) : values.contiguous();
    const bool is_signed = input.scalar_type() == at::kChar;
    const int64_t count = input.size(-1);
    const int64_t rows = count == 0 ? 0 : input.numel() / count;
    const int64_t bytes = (count + 1) / 2;
    std::vector<int64_t> packed_shape(input.sizes().begin(), input.sizes().end());
    packed_shape.back() = bytes;
    at::Tensor packed = at::zeros(packed_shape, at::TensorOptions().dtype(at::kByte));
    uint8_t* out = packed.data_ptr<uint8_t>();
    const int32_t lo = is_signed ? -8 : 0;
    const int32_t hi = is_signed ? 7 : 15;

    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < count; ++i) {
        const int64_t flat = r * count + i;
        const int32_t value = is_signed ? input.data_ptr<int8_t>()[flat]
                                        : input.data_ptr<uint8_t>()[flat];
        if (value < lo || value > hi) {
          return absl::InvalidArgumentError(absl::StrCat(
              "value ", value, " at flat index ", flat, " is outside the ",
              is_signed ? "int4" : "uint4", " range [", lo, ", ", hi, "]; quantize to 4 bits first"));
        }
        const uint8_t nibble = static_cast<uint8_t>(value) & 0x0F;
        out[r * bytes + i / 2] |= (i % 2 == 0) ? nibble : static_cast<uint8_t>(nibble << 4);
      }
    }
    return packed;
  });
}

absl::StatusOr<at::Tensor> UnpackInt4(const at::Tensor& packed, int64_t count, bool is_signed) {
  if (!packed.defined() || packed.scalar_type() != at::kByte || packed.dim() == 0) {
    return absl::InvalidArgumentError("UnpackInt4 needs a uint8 tensor of packed nibbles");
  }
  if (count < 0 || (count + 1) / 2 != packed.size(-1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UnpackInt4: ", count, " values per row do not fit ", packed.size(-1),
        " packed bytes per row; expected count of ", 2 * packed.size(-1) - 1, " or ",
        2 * packed.size(-1)));
  }
  return CallTorch("unpacking INT4 values", [&] {
    const at::Tensor input = packed.contiguous();
    const int64_t bytes = input.size(-1);
    const int64_t rows = bytes == 0 ? 0 : input.numel() / bytes;
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape.back() = count;
    at::Tensor values =
        at::empty(shape, at::TensorOptions().dtype(is_signed ? at::kChar : at::kByte));
    const uint8_t* in = input.data_ptr<uint8_t>();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < count; ++i) {
        const uint8_t byte = in[r * bytes + i / 2];
        const uint8_t nibble = (i % 2 == 0) ? (byte & 0x0F) : (byte >> 4);
        const int32_t value = NibbleValue(nibble, is_signed);
        if (is_signed) {
          values.data_ptr<int8_t>()[r * count + i] = static_cast<int8_t>(value);
        } else {
          values.data_ptr<uint8_t>()[r * count + i] = static_cast<uint8_t>(value);
        }
      }
    }
    return values;
  });
}

absl::StatusOr<at::Tensor> CastToFloat16(const at::Tensor& x) {
  POLARIS_RETURN_IF_ERROR(CheckFloatingPoint(x, "CastToFloat16"));
  // LibTorch converts float to c10::Half with round-to-nearest-even (IEEE 754 conversion).
  return CallTorch("casting to float16", [&] { return x.to(at::kHalf); });
}

absl::StatusOr<at::Tensor> CastToBFloat16(const at::Tensor& x) {
  POLARIS_RETURN_IF_ERROR(CheckFloatingPoint(x, "CastToBFloat16"));
  // c10::BFloat16's constructor rounds float32 to nearest even (and keeps NaN a NaN).
  return CallTorch("casting to bfloat16", [&] { return x.to(at::kBFloat16); });
}

absl::StatusOr<at::Tensor> CastToFloat32(const at::Tensor& x) {
  POLARIS_RETURN_IF_ERROR(CheckFloatingPoint(x, "CastToFloat32"));
  return CallTorch("casting to float32", [&] { return x.to(at::kFloat); });
}

}  // namespace polaris::quantization
