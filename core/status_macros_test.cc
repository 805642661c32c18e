#include "core/status_macros.h"

#include "gtest/gtest.h"

namespace polaris {
namespace {

absl::StatusOr<int> Half(int value) {
  if (value % 2 != 0) return absl::InvalidArgumentError("odd value");
  return value / 2;
}

absl::Status CheckEven(int value) { return Half(value).status(); }

absl::StatusOr<int> Quarter(int value) {
  POLARIS_ASSIGN_OR_RETURN(int half, Half(value));
  POLARIS_ASSIGN_OR_RETURN(const int quarter, Half(half));
  return quarter;
}

absl::Status CheckBoth(int a, int b) {
  POLARIS_RETURN_IF_ERROR(CheckEven(a));
  POLARIS_RETURN_IF_ERROR(CheckEven(b));
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturnPassesValues) {
  absl::StatusOr<int> result = Quarter(12);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 3);
}

TEST(StatusMacros, AssignOrReturnReturnsFirstError) {
  absl::StatusOr<int> result = Quarter(6);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "odd value");
}

TEST(StatusMacros, ReturnIfErrorStopsAtError) {
  EXPECT_TRUE(CheckBoth(2, 4).ok());
  EXPECT_EQ(CheckBoth(2, 3).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Annotate, KeepsCodeAndPrefixesContext) {
  const absl::Status status = Annotate(absl::NotFoundError("no file"), "loading model.pt");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "loading model.pt: no file");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "anything").ok());
}

}  // namespace
}  // namespace polaris
