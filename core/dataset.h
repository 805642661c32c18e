// Labeled examples held as two tensors, with validation, subsets, seeded shuffling and
// batching. Every polaris library trains and evaluates on this type.
//
//   Batcher batcher(train, /*batch_size=*/128);
//   batcher.Shuffle(seed + epoch);
//   for (int64_t b = 0; b < batcher.num_batches(); ++b) {
//     LabeledData batch = batcher.Batch(b);
//     ...
//   }
#ifndef POLARIS_CORE_DATASET_H_
#define POLARIS_CORE_DATASET_H_

#include <cstdint>
#include <string>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace polaris {

// `inputs` is float32 with the examples along dimension 0; `labels` is int64 of shape [N]
// holding class indices.
struct LabeledData {
  at::Tensor inputs;
  at::Tensor labels;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Checks the invariants above, that there is at least one example, that inputs are finite and
// that labels lie in [0, num_classes). `name` goes into error messages ("calibration data").
// Returns kInvalidArgument naming the first violation.
absl::Status ValidateLabeledData(const LabeledData& data, int64_t num_classes,
                                 absl::string_view name);

// Returns examples [start, start + count) of `data`, clamped to its size, sharing memory.
LabeledData Slice(const LabeledData& data, int64_t start, int64_t count);

// Returns the first `count` examples after a shuffle with `seed` (a stratification-free random
// subset), copied. `count` larger than the data returns all of it, shuffled.
LabeledData RandomSubset(const LabeledData& data, int64_t count, uint64_t seed);

// Splits off the last `fraction` of a seeded permutation as held-out data:
// returns {rest, held_out}. Used to tune on validation data instead of the test set.
std::pair<LabeledData, LabeledData> SplitHoldOut(const LabeledData& data, double fraction,
                                                 uint64_t seed);

// Iterates over mini-batches in order or in a seeded random order. The last batch may be
// smaller. Batches share memory with the data when unshuffled and are copies when shuffled.
class Batcher {
 public:
  // `batch_size` must be positive.
  Batcher(const LabeledData& data, int64_t batch_size);

  // Reorders the examples with a permutation drawn from `seed`; the same seed gives the same
  // order on every machine (LibTorch's CPU generator is deterministic).
  void Shuffle(uint64_t seed);

  int64_t num_batches() const { return (data_.size() + batch_size_ - 1) / batch_size_; }
  int64_t batch_size() const { return batch_size_; }

  LabeledData Batch(int64_t index) const;

 private:
  LabeledData data_;
  int64_t batch_size_;
  at::Tensor order_;  // undefined when unshuffled
};

}  // namespace polaris

#endif  // POLARIS_CORE_DATASET_H_
