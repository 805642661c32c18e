#include "core/dataset.h"

#include <set>

#include "ATen/Functions.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

LabeledData Numbered(int64_t n) {
  // Example i has every input equal to i and label i % 10, so order is visible.
  at::Tensor inputs = at::arange(n, at::kFloat).view({n, 1}).expand({n, 3}).contiguous();
  at::Tensor labels = at::arange(n, at::kLong).remainder(10);
  return {inputs, labels};
}

TEST(ValidateLabeledData, AcceptsValidData) {
  EXPECT_TRUE(ValidateLabeledData(Numbered(20), 10, "data").ok());
}

TEST(ValidateLabeledData, RejectsEachViolation) {
  LabeledData data = Numbered(20);
  LabeledData wrong_count{data.inputs.slice(0, 0, 19), data.labels};
  EXPECT_EQ(ValidateLabeledData(wrong_count, 10, "data").code(),
            absl::StatusCode::kInvalidArgument);

  LabeledData out_of_range = {data.inputs, data.labels.clone()};
  out_of_range.labels[3] = 10;
  const absl::Status range = ValidateLabeledData(out_of_range, 10, "calibration data");
  EXPECT_EQ(range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(range.message().find("calibration data"), absl::string_view::npos) << range;
  EXPECT_NE(range.message().find("10"), absl::string_view::npos) << range;

  LabeledData with_nan = {data.inputs.clone(), data.labels};
  with_nan.inputs[2][1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(ValidateLabeledData(with_nan, 10, "data").code(), absl::StatusCode::kInvalidArgument);

  LabeledData empty = {at::zeros({0, 3}), at::zeros({0}, at::kLong)};
  EXPECT_EQ(ValidateLabeledData(empty, 10, "data").code(), absl::StatusCode::kInvalidArgument);

  LabeledData double_inputs = {data.inputs.to(at::kDouble), data.labels};
  EXPECT_EQ(ValidateLabeledData(double_inputs, 10, "data").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Batcher, UnshuffledBatchesCoverDataInOrder) {
  const LabeledData data = Numbered(10);
  Batcher batcher(data, 4);
  ASSERT_EQ(batcher.num_batches(), 3);
  EXPECT_EQ(batcher.Batch(2).size(), 2);
  EXPECT_EQ(batcher.Batch(1).inputs[0][0].item<float>(), 4.0f);
}

TEST(Batcher, ShuffleIsSeededPermutation) {
  const LabeledData data = Numbered(37);
  Batcher first(data, 8);
  Batcher second(data, 8);
  first.Shuffle(polaris::testing::TestSeed());
  second.Shuffle(polaris::testing::TestSeed());
  std::set<int> seen;
  bool reordered = false;
  for (int64_t b = 0; b < first.num_batches(); ++b) {
    const LabeledData x = first.Batch(b);
    const LabeledData y = second.Batch(b);
    ASSERT_TRUE(at::equal(x.inputs, y.inputs)) << "batch " << b;
    for (int64_t i = 0; i < x.size(); ++i) {
      const int value = static_cast<int>(x.inputs[i][0].item<float>());
      seen.insert(value);
      // Labels travel with their inputs.
      EXPECT_EQ(x.labels[i].item<int64_t>(), value % 10);
      if (value != b * 8 + i) reordered = true;
    }
  }
  EXPECT_EQ(seen.size(), 37u);
  EXPECT_TRUE(reordered);
}

TEST(SplitHoldOut, PartitionsData) {
  const LabeledData data = Numbered(100);
  auto [rest, held] = SplitHoldOut(data, 0.2, 3);
  EXPECT_EQ(rest.size(), 80);
  EXPECT_EQ(held.size(), 20);
  std::set<float> values;
  for (int64_t i = 0; i < rest.size(); ++i) values.insert(rest.inputs[i][0].item<float>());
  for (int64_t i = 0; i < held.size(); ++i) values.insert(held.inputs[i][0].item<float>());
  EXPECT_EQ(values.size(), 100u);
}

TEST(RandomSubset, ClampsCount) {
  const LabeledData data = Numbered(10);
  EXPECT_EQ(RandomSubset(data, 4, 1).size(), 4);
  EXPECT_EQ(RandomSubset(data, 40, 1).size(), 10);
}

}  // namespace
}  // namespace polaris
