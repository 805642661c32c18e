#include "core/dataset.h"

#include <algorithm>

#include "ATen/Functions.h"
#include "ATen/core/Generator.h"
#include "ATen/CPUGeneratorImpl.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

std::string ShapeString(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

at::Tensor SeededPermutation(int64_t n, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randperm(n, generator, at::TensorOptions().dtype(at::kLong));
}

}  // namespace

absl::Status ValidateLabeledData(const LabeledData& data, int64_t num_classes,
                                 absl::string_view name) {
  if (!data.inputs.defined() || !data.labels.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is missing inputs or labels"));
  }
  if (data.labels.dim() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": labels must have shape [N], got ",
                                                   ShapeString(data.labels)));
  }
  if (data.inputs.dim() < 1 || data.inputs.size(0) != data.labels.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": inputs ", ShapeString(data.inputs), " and labels ", ShapeString(data.labels),
        " must have the same number of examples along dimension 0"));
  }
  if (data.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has no examples"));
  }
  if (data.inputs.scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": inputs must be float32, got ",
                                                   c10::toString(data.inputs.scalar_type())));
  }
  if (data.labels.scalar_type() != at::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": labels must be int64, got ",
                                                   c10::toString(data.labels.scalar_type())));
  }
  return CallTorch(absl::StrCat("checking ", name), [&]() -> absl::Status {
    if (!at::isfinite(data.inputs).all().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": inputs contain NaN or infinite values"));
    }
    const int64_t min_label = data.labels.min().item<int64_t>();
    const int64_t max_label = data.labels.max().item<int64_t>();
    if (min_label < 0 || max_label >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": labels must lie in [0, ", num_classes, "), found values from ", min_label,
          " to ", max_label));
    }
    return absl::OkStatus();
  });
}

LabeledData Slice(const LabeledData& data, int64_t start, int64_t count) {
  start = std::clamp<int64_t>(start, 0, data.size());
  const int64_t end = std::clamp<int64_t>(start + count, start, data.size());
  return {data.inputs.slice(0, start, end), data.labels.slice(0, start, end)};
}

LabeledData RandomSubset(const LabeledData& data, int64_t count, uint64_t seed) {
  count = std::clamp<int64_t>(count, 0, data.size());
  const at::Tensor indices = SeededPermutation(data.size(), seed).slice(0, 0, count);
  return {data.inputs.index_select(0, indices), data.labels.index_select(0, indices)};
}

std::pair<LabeledData, LabeledData> SplitHoldOut(const LabeledData& data, double fraction,
                                                 uint64_t seed) {
  const int64_t held = std::clamp<int64_t>(
      static_cast<int64_t>(data.size() * fraction + 0.5), 0, data.size());
  const at::Tensor order = SeededPermutation(data.size(), seed);
  const at::Tensor rest = order.slice(0, 0, data.size() - held);
  const at::Tensor held_out = order.slice(0, data.size() - held, data.size());
  return {{data.inputs.index_select(0, rest), data.labels.index_select(0, rest)},
          {data.inputs.index_select(0, held_out), data.labels.index_select(0, held_out)}};
}

Batcher::Batcher(const LabeledData& data, int64_t batch_size)
    : data_(data), batch_size_(std::max<int64_t>(1, batch_size)) {}

void Batcher::Shuffle(uint64_t seed) { order_ = SeededPermutation(data_.size(), seed); }

LabeledData Batcher::Batch(int64_t index) const {
  const int64_t start = index * batch_size_;
  if (!order_.defined()) return Slice(data_, start, batch_size_);
  const int64_t end = std::min(start + batch_size_, data_.size());
  const at::Tensor indices = order_.slice(0, start, end);
  return {data_.inputs.index_select(0, indices), data_.labels.index_select(0, indices)};
}

}  // namespace polaris
