#include "core/metrics.h"

#include "ATen/Functions.h"
#include "core/model_io.h"
#include "core/models.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(MeasureModelSize, CountsTensorRecordsExactly) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<ModelSize> size = MeasureModelSize(*model);
  ASSERT_TRUE(size.ok()) << size.status();
  // Four float32 tensors are stored: 784x256, 256, 256x10, 10.
  EXPECT_EQ(size->tensor_data_bytes, 4 * (784 * 256 + 256 + 256 * 10 + 10));
  EXPECT_GT(size->other_bytes, 0);
  absl::StatusOr<std::string> bytes = SerializeModel(*model);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(size->file_bytes, static_cast<int64_t>(bytes->size()));
}

TEST(MeasureModelSize, SeesSmallerDtypes) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<ModelSize> before = MeasureModelSize(*model);
  torch::jit::Module fc1 = model->attr("fc1").toModule();
  fc1.setattr("weight", fc1.attr("weight").toTensor().to(at::kHalf));
  absl::StatusOr<ModelSize> after = MeasureModelSize(*model);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(before->tensor_data_bytes - after->tensor_data_bytes, 2 * 784 * 256);
}

TEST(TensorBytesByType, GroupsByDtypeAndCountsSharedStorageOnce) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  model->register_attribute("codes", c10::TensorType::get(), at::zeros({100}, at::kByte));
  const at::Tensor shared = model->attr("fc2").toModule().attr("bias").toTensor();
  model->register_attribute("alias", c10::TensorType::get(), shared.view({2, 5}));
  absl::StatusOr<std::map<std::string, int64_t>> bytes = TensorBytesByType(*model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->at("unsigned char"), 100);
  EXPECT_EQ(bytes->at("float"), 4 * (784 * 256 + 256 + 256 * 10 + 10));
}

TEST(ResidentMemory, IsPositiveAndPeakAtLeastCurrent) {
  const int64_t current = CurrentResidentBytes();
  const int64_t peak = PeakResidentBytes();
  EXPECT_GT(current, 0);
  EXPECT_GE(peak, current);
}

TEST(FormatBytes, UsesDecimalUnits) {
  EXPECT_EQ(FormatBytes(999), "999 B");
  EXPECT_EQ(FormatBytes(522000), "522.0 KB");
  EXPECT_EQ(FormatBytes(4560000), "4.56 MB");
}

}  // namespace
}  // namespace polaris
