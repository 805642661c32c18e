#include "quantization/linear_int4.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "ATen/TensorOperators.h"
#include "absl/strings/str_cat.h"
#include "core/cpu_features.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "oneapi/dnnl/dnnl.h"
#include "quantization/internal/linear_int4_avx512.h"
#include "quantization/quant_params.h"
#include "quantization/quantize.h"

namespace polaris::quantization {
namespace {

// Weight rows each thread unpacks at a time. For small batches the AVX-512 dot-product kernel
// runs on 16 rows (64 KiB of floats for 1024 inputs). From kGemmBatch rows of input on,
// oneDNN's sgemm multiplies blocks of 64 rows (256 KiB), so that its packing of the input is
// amortized. Both block sizes fit in a 1 MiB L2 cache.
constexpr int64_t kRowBlock = 16;
constexpr int64_t kGemmRowBlock = 64;
constexpr int64_t kGemmBatch = 8;

inline float Nibble(const uint8_t* row, int64_t column) {
  const uint8_t byte = row[column / 2];
  return static_cast<float>(column % 2 == 0 ? (byte & 0x0F) : (byte >> 4));
}

void DequantizeRowsPortable(const uint8_t* packed, int64_t bytes_per_row, const float* scale,
                            const float* offset, int64_t group_size, int64_t rows, int64_t k,
                            float* out) {
  const int64_t groups = k / group_size;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = r * groups + c / group_size;
      out[r * k + c] = std::fma(Nibble(packed + r * bytes_per_row, c), scale[g], offset[g]);
    }
  }
}

void GemmRowsPortable(const float* x, int64_t m, int64_t k, const float* w, int64_t rows,
                      const float* bias, float* y, int64_t ldy) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      float sum = 0.0f;
      for (int64_t l = 0; l < k; ++l) sum += x[i * k + l] * w[r * k + l];
      y[i * ldy + r] = sum + bias[r];
    }
  }
}

std::atomic<bool> force_portable{false};

}  // namespace

namespace internal {
void UsePortableInt4KernelsForTesting(bool portable) { force_portable.store(portable); }
}  // namespace internal

absl::Status ValidateInt4Weight(const Int4Weight& weight) {
  const int64_t k = weight.in_features;
  if (weight.group_size <= 0 || k <= 0 || k % weight.group_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group size ", weight.group_size, " does not divide in_features ", k,
        "; choose a group size that divides the input dimension"));
  }
  if (!weight.packed.defined() || weight.packed.scalar_type() != at::kByte ||
      weight.packed.dim() != 2 || weight.packed.size(1) != (k + 1) / 2 ||
      weight.packed.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "packed INT4 weight must be uint8 [out_features, ", (k + 1) / 2, "] for ", k,
        " input features, got ",
        weight.packed.defined() ? absl::StrCat(c10::toString(weight.packed.scalar_type()), " ",
                                               c10::str(weight.packed.sizes()))
                                : "an undefined tensor"));
  }
  const int64_t n = weight.packed.size(0);
  const std::vector<int64_t> group_shape = {n, k / weight.group_size};
  if (!weight.scale.defined() || weight.scale.sizes() != at::IntArrayRef(group_shape) ||
      !weight.scale.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "INT4 scale must be float [", n, ", ", k / weight.group_size, "], got ",
        weight.scale.defined() ? c10::str(weight.scale.sizes()) : "an undefined tensor"));
  }
  if (!weight.zero_point.defined() ||
      weight.zero_point.sizes() != at::IntArrayRef(group_shape)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "INT4 zero_point must have shape [", n, ", ", k / weight.group_size, "], got ",
        weight.zero_point.defined() ? c10::str(weight.zero_point.sizes()) : "an undefined tensor"));
  }
  return CallTorch("checking an INT4 weight", [&]() -> absl::Status {
    const at::Tensor scale = weight.scale.to(at::kFloat);
    if (!at::isfinite(scale).all().item<bool>() || !(scale > 0).all().item<bool>()) {
      return absl::InvalidArgumentError("INT4 scales must be finite and > 0");
    }
    const at::Tensor zero_point = weight.zero_point.to(at::kFloat);
    if (!(zero_point >= 0).all().item<bool>() || !(zero_point <= 15).all().item<bool>() ||
        !at::equal(zero_point, zero_point.round())) {
      return absl::InvalidArgumentError("INT4 zero points must be integers in [0, 15]");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Int4Weight> QuantizeWeightInt4(const at::Tensor& weight, int64_t group_size) {
  if (!weight.defined() || weight.dim() != 2 || !weight.is_floating_point() ||
      weight.numel() == 0) {
    return absl::InvalidArgumentError(
        "INT4 quantization needs a non-empty float weight [out_features, in_features]");
  }
  const int64_t n = weight.size(0);
  const int64_t k = weight.size(1);
  if (group_size <= 0 || k % group_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group size ", group_size, " does not divide in_features ", k,
        "; choose a group size that divides the input dimension"));
  }
  const int64_t groups = k / group_size;

  POLARIS_ASSIGN_OR_RETURN(
      const at::Tensor grouped,
      CallTorch("grouping the weight", [&] {
        return weight.to(at::kFloat).contiguous().reshape({n * groups, group_size});
      }));
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor min, CallTorch("measuring group ranges", [&] {
                             return grouped.amin(1);
                           }));
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor max, CallTorch("measuring group ranges", [&] {
                             return grouped.amax(1);
                           }));
  POLARIS_ASSIGN_OR_RETURN(
      QuantParams params,
      ChooseQuantParams(min, max, QuantDtype::kUInt4, QuantScheme::kAsymmetric, /*axis=*/0));
  POLARIS_ASSIGN_OR_RETURN(at::Tensor q, Quantize(grouped, params));
  POLARIS_ASSIGN_OR_RETURN(at::Tensor packed, PackInt4(q.reshape({n, k})));

  Int4Weight result;
  result.packed = packed;
  result.scale = params.scale.reshape({n, groups});
  result.zero_point = params.zero_point.to(at::kByte).reshape({n, groups});
  result.group_size = group_size;
  result.in_features = k;
  return result;
}

absl::StatusOr<std::shared_ptr<Int4Linear>> Int4Linear::Create(const Int4Weight& weight,
                                                               const at::Tensor& bias) {
  POLARIS_RETURN_IF_ERROR(ValidateInt4Weight(weight));
  const int64_t n = weight.packed.size(0);
  if (bias.defined() && (bias.dim() != 1 || bias.numel() != n || !bias.is_floating_point())) {
    return absl::InvalidArgumentError(absl::StrCat("bias must be a float tensor of shape [", n,
                                                   "], got ", c10::str(bias.sizes())));
  }
  return CallTorch("preparing an INT4 linear layer", [&] {
    std::shared_ptr<Int4Linear> layer(new Int4Linear());
    layer->in_features_ = weight.in_features;
    layer->out_features_ = n;
    layer->group_size_ = weight.group_size;
    layer->packed_ = weight.packed.contiguous().clone();
    layer->zero_point_ = weight.zero_point.to(at::kByte).contiguous().clone();
    const at::Tensor scale = weight.scale.to(at::kFloat).contiguous();
    const at::Tensor zero_point = weight.zero_point.to(at::kFloat).contiguous();
    layer->scale_.assign(scale.data_ptr<float>(), scale.data_ptr<float>() + scale.numel());
    layer->offset_.resize(layer->scale_.size());
    for (size_t i = 0; i < layer->scale_.size(); ++i) {
      layer->offset_[i] = -zero_point.data_ptr<float>()[i] * layer->scale_[i];
    }
    layer->bias_.assign(n, 0.0f);
    if (bias.defined()) {
      const at::Tensor b = bias.to(at::kFloat).contiguous();
      layer->bias_.assign(b.data_ptr<float>(), b.data_ptr<float>() + n);
    }
    return layer;
  });
}

int64_t Int4Linear::weight_bytes() const {
  return packed_.numel() + zero_point_.numel() +
         static_cast<int64_t>(scale_.size() * sizeof(float));
}

absl::StatusOr<at::Tensor> Int4Linear::Forward(const at::Tensor& input) const {
  if (!input.defined() || !input.is_floating_point() || input.dim() == 0 ||
      input.size(-1) != in_features_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "INT4 linear needs a floating-point input of shape [..., ", in_features_, "], got ",
        input.defined() ? c10::str(input.sizes()) : "an undefined tensor"));
  }
  return CallTorch("running an INT4 linear layer", [&] {
    const at::Tensor x = input.to(at::kFloat).contiguous();
    const int64_t k = in_features_;
    const int64_t n = out_features_;
    const int64_t m = x.numel() / k;
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape.back() = n;
    at::Tensor y = at::empty(shape, at::kFloat);
    if (m == 0) return y;

    const bool avx512 = CpuFeatures().avx512 && !force_portable.load();
    const bool vector_unpack = avx512 && group_size_ % 16 == 0;
    const bool use_sgemm = avx512 && m >= kGemmBatch;
    const int64_t row_block = use_sgemm ? kGemmRowBlock : kRowBlock;
    const int64_t blocks = (n + row_block - 1) / row_block;
    const float* x_data = x.data_ptr<float>();
    float* y_data = y.data_ptr<float>();
    const uint8_t* packed = packed_.data_ptr<uint8_t>();
    const int64_t bytes_per_row = packed_.size(1);
    const int64_t groups = k / group_size_;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> rows_buffer(row_block * k);
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * row_block;
        const int64_t rows = std::min(row_block, n - first);
        const uint8_t* block_packed = packed + first * bytes_per_row;
        const float* block_scale = scale_.data() + first * groups;
        const float* block_offset = offset_.data() + first * groups;
        if (vector_unpack) {
          internal::DequantizeU4RowsAvx512(block_packed, bytes_per_row, block_scale,
                                           block_offset, group_size_, rows, k,
                                           rows_buffer.data());
        } else {
          DequantizeRowsPortable(block_packed, bytes_per_row, block_scale, block_offset,
                                 group_size_, rows, k, rows_buffer.data());
        }
        if (use_sgemm) {
          // y[:, first:first + rows] = bias + x @ rows_buffer^T. Inside this parallel region
          // oneDNN's sgemm runs on the calling thread only.
          for (int64_t i = 0; i < m; ++i) {
            std::copy(bias_.data() + first, bias_.data() + first + rows, y_data + i * n + first);
          }
          const dnnl_status_t status =
              dnnl_sgemm('N', 'T', m, rows, k, 1.0f, x_data, k, rows_buffer.data(), k, 1.0f,
                         y_data + first, n);
          TORCH_CHECK(status == dnnl_success, "oneDNN sgemm failed with status ", status);
        } else if (avx512) {
          internal::GemmF32RowsAvx512(x_data, m, k, rows_buffer.data(), rows,
                                      bias_.data() + first, y_data + first, n);
        } else {
          GemmRowsPortable(x_data, m, k, rows_buffer.data(), rows, bias_.data() + first,
                           y_data + first, n);
        }
      }
    });
    return y;
  });
}

at::Tensor Int4LinearReference(const at::Tensor& input, const Int4Weight& weight,
                               const at::Tensor& bias) {
  const absl::Status status = ValidateInt4Weight(weight);
  TORCH_CHECK(status.ok(), std::string(status.message()));
  TORCH_CHECK(input.dim() == 2 && input.size(1) == weight.in_features,
              "Int4LinearReference: input shape ", input.sizes());
  const at::Tensor x = input.to(at::kFloat).contiguous();
  const at::Tensor packed = weight.packed.contiguous();
  const at::Tensor scale = weight.scale.to(at::kFloat).contiguous();
  const at::Tensor zero_point = weight.zero_point.to(at::kFloat).contiguous();
  const int64_t m = x.size(0);
  const int64_t k = weight.in_features;
  const int64_t n = packed.size(0);
  const int64_t groups = k / weight.group_size;
  const int64_t bytes_per_row = packed.size(1);

  const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : at::zeros({n});
  const float* x_data = x.data_ptr<float>();
  const uint8_t* packed_data = packed.data_ptr<uint8_t>();
  const float* scale_data = scale.data_ptr<float>();
  const float* zero_data = zero_point.data_ptr<float>();
  at::Tensor y = at::empty({m, n}, at::kFloat);
  float* y_data = y.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = b.data_ptr<float>()[j];
      for (int64_t c = 0; c < k; ++c) {
        const uint8_t byte = packed_data[j * bytes_per_row + c / 2];
        const float q = static_cast<float>(c % 2 == 0 ? (byte & 0x0F) : (byte >> 4));
        const int64_t g = j * groups + c / weight.group_size;
        const float w = (q - zero_data[g]) * scale_data[g];
        sum += static_cast<double>(x_data[i * k + c]) * w;
      }
      y_data[i * n + j] = static_cast<float>(sum);
    }
  }
  return y;
}

}  // namespace polaris::quantization
