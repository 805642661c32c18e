#include "core/tensor_file.h"

#include <string>

#include "core/testing/python_test_util.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

constexpr char kScript[] = "core/testing/make_python_files.py";

std::string MakeFile(const std::string& kind) {
  const std::string path = polaris::testing::TempPath(kind + ".pt");
  absl::StatusOr<std::string> output = polaris::testing::RunPython(kScript, {kind, path});
  EXPECT_TRUE(output.ok()) << output.status();
  return path;
}

TEST(LoadSavedDataSets, ReadsPairFromPython) {
  absl::StatusOr<SavedDataSets> sets = LoadSavedDataSets(MakeFile("labeled-pair"));
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_FALSE(sets->train.has_value());
  EXPECT_EQ(sets->test.inputs.sizes(), at::IntArrayRef({32, 1, 28, 28}));
  EXPECT_EQ(sets->test.labels.scalar_type(), at::kLong);
  EXPECT_TRUE(ValidateLabeledData(sets->test, 10, "test").ok());
}

TEST(LoadSavedDataSets, ReadsTrainAndTestLayouts) {
  absl::StatusOr<SavedDataSets> four = LoadSavedDataSets(MakeFile("labeled-four"));
  ASSERT_TRUE(four.ok()) << four.status();
  ASSERT_TRUE(four->train.has_value());
  EXPECT_EQ(four->train->size(), 48);
  EXPECT_EQ(four->test.size(), 16);

  absl::StatusOr<SavedDataSets> dict = LoadSavedDataSets(MakeFile("labeled-dict"));
  ASSERT_TRUE(dict.ok()) << dict.status();
  ASSERT_TRUE(dict->train.has_value());
  EXPECT_EQ(dict->train->size(), 40);
  EXPECT_EQ(dict->test.size(), 8);
}

TEST(LoadSavedDataSets, RejectsFloatLabels) {
  absl::StatusOr<SavedDataSets> sets = LoadSavedDataSets(MakeFile("labeled-bad"));
  ASSERT_EQ(sets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(sets.status().message().find(".long()"), absl::string_view::npos) << sets.status();
}

TEST(LoadSavedDataSets, RejectsStateDictAndNonZipFiles) {
  absl::StatusOr<SavedDataSets> state_dict = LoadSavedDataSets(MakeFile("state-dict"));
  EXPECT_EQ(state_dict.status().code(), absl::StatusCode::kInvalidArgument)
      << state_dict.status();

  absl::StatusOr<SavedDataSets> script = LoadSavedDataSets(kScript);
  EXPECT_EQ(script.status().code(), absl::StatusCode::kDataLoss) << script.status();

  EXPECT_EQ(LoadSavedDataSets("/nonexistent.pt").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace polaris
