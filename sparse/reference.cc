#include "sparse/reference.h"

#include <cstdint>
#include <functional>
#include <vector>

#include "ATen/Functions.h"

namespace polaris::sparse {
namespace {

// One stored entry of a sparse matrix.
struct Entry {
  int64_t row;
  int64_t column;
  float value;
};

// Every stored entry of the matrix, row by row in storage order.
std::vector<Entry> Entries(const CsrMatrix& w) {
  std::vector<Entry> entries;
  const int32_t* offsets = w.row_offsets.data_ptr<int32_t>();
  const int32_t* columns = w.column_indices.data_ptr<int32_t>();
  const float* values = w.values.data_ptr<float>();
  for (int64_t row = 0; row < w.rows; ++row) {
    for (int32_t k = offsets[row]; k < offsets[row + 1]; ++k) {
      entries.push_back({row, columns[k], values[k]});
    }
  }
  return entries;
}

std::vector<Entry> Entries(const BsrMatrix& w) {
  std::vector<Entry> entries;
  const int32_t* offsets = w.row_offsets.data_ptr<int32_t>();
  const int32_t* columns = w.column_indices.data_ptr<int32_t>();
  const float* values = w.values.data_ptr<float>();
  for (int64_t block_row = 0; block_row < w.rows / w.block_rows; ++block_row) {
    for (int32_t k = offsets[block_row]; k < offsets[block_row + 1]; ++k) {
      for (int64_t i = 0; i < w.block_rows; ++i) {
        for (int64_t j = 0; j < w.block_columns; ++j) {
          entries.push_back({block_row * w.block_rows + i, columns[k] * w.block_columns + j,
                             values[(k * w.block_rows + i) * w.block_columns + j]});
        }
      }
    }
  }
  return entries;
}

std::vector<Entry> Entries(const NmMatrix& w) {
  std::vector<Entry> entries;
  const int64_t slots = w.columns / w.m * w.n;
  const float* values = w.values.data_ptr<float>();
  const uint8_t* positions = w.indices.data_ptr<uint8_t>();
  for (int64_t row = 0; row < w.rows; ++row) {
    for (int64_t slot = 0; slot < slots; ++slot) {
      entries.push_back(
          {row, slot / w.n * w.m + positions[row * slots + slot], values[row * slots + slot]});
    }
  }
  return entries;
}

at::Tensor LinearFromEntries(const at::Tensor& input, const std::vector<Entry>& entries,
                             int64_t rows, const at::Tensor& bias) {
  const int64_t batch = input.size(0);
  const int64_t columns = input.size(1);
  const float* x = input.data_ptr<float>();
  std::vector<double> sums(batch * rows, 0.0);
  for (int64_t b = 0; b < batch; ++b) {
    for (const Entry& entry : entries) {
      sums[b * rows + entry.row] +=
          static_cast<double>(entry.value) * static_cast<double>(x[b * columns + entry.column]);
    }
  }
  at::Tensor output = at::empty({batch, rows}, at::kFloat);
  float* y = output.data_ptr<float>();
  const float* bias_data = bias.defined() ? bias.data_ptr<float>() : nullptr;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const double initial = bias_data != nullptr ? bias_data[r] : 0.0;
      y[b * rows + r] = static_cast<float>(initial + sums[b * rows + r]);
    }
  }
  return output;
}

}  // namespace

at::Tensor LinearReference(const at::Tensor& input, const CsrMatrix& weight,
                           const at::Tensor& bias) {
  return LinearFromEntries(input, Entries(weight), weight.rows, bias);
}

at::Tensor LinearReference(const at::Tensor& input, const BsrMatrix& weight,
                           const at::Tensor& bias) {
  return LinearFromEntries(input, Entries(weight), weight.rows, bias);
}

at::Tensor LinearReference(const at::Tensor& input, const NmMatrix& weight,
                           const at::Tensor& bias) {
  return LinearFromEntries(input, Entries(weight), weight.rows, bias);
}

at::Tensor Conv2dReference(const at::Tensor& input, const CsrMatrix& weight,
                           const Conv2dParams& params, const at::Tensor& bias) {
  const int64_t batch = input.size(0);
  const int64_t channels = input.size(1);
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  const int64_t kh = params.kernel_height;
  const int64_t kw = params.kernel_width;
  const int64_t out_height =
      (height + 2 * params.padding_height - params.dilation_height * (kh - 1) - 1) /
          params.stride_height +
      1;
  const int64_t out_width =
      (width + 2 * params.padding_width - params.dilation_width * (kw - 1) - 1) /
          params.stride_width +
      1;
  const float* x = input.data_ptr<float>();
  const float* bias_data = bias.defined() ? bias.data_ptr<float>() : nullptr;
  const std::vector<Entry> entries = Entries(weight);

  at::Tensor output = at::empty({batch, weight.rows, out_height, out_width}, at::kFloat);
  float* y = output.data_ptr<float>();
  std::vector<double> sums(weight.rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oh = 0; oh < out_height; ++oh) {
      for (int64_t ow = 0; ow < out_width; ++ow) {
        for (int64_t r = 0; r < weight.rows; ++r) sums[r] = bias_data ? bias_data[r] : 0.0;
        for (const Entry& entry : entries) {
          // Column index = (channel * kh + i) * kw + j, as the weight [out, in, kh, kw] flattens.
          const int64_t channel = entry.column / (kh * kw);
          const int64_t i = entry.column / kw % kh;
          const int64_t j = entry.column % kw;
          const int64_t ih =
              oh * params.stride_height - params.padding_height + i * params.dilation_height;
          const int64_t iw =
              ow * params.stride_width - params.padding_width + j * params.dilation_width;
          if (ih < 0 || ih >= height || iw < 0 || iw >= width) continue;
          sums[entry.row] += static_cast<double>(entry.value) *
                             x[((b * channels + channel) * height + ih) * width + iw];
        }
        for (int64_t r = 0; r < weight.rows; ++r) {
          y[((b * weight.rows + r) * out_height + oh) * out_width + ow] =
              static_cast<float>(sums[r]);
        }
      }
    }
  }
  return output;
}

}  // namespace polaris::sparse
