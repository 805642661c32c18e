#include "core/torch_status.h"

#include "ATen/Functions.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(CallTorch, ReturnsValueOnSuccess) {
  absl::StatusOr<int64_t> numel = CallTorch("making zeros", [] { return at::zeros({3, 4}).numel(); });
  ASSERT_TRUE(numel.ok());
  EXPECT_EQ(*numel, 12);
}

TEST(CallTorch, ConvertsShapeErrorWithoutBacktrace) {
  absl::StatusOr<at::Tensor> product = CallTorch("multiplying", [] {
    return at::mm(at::zeros({2, 3}), at::zeros({4, 5}));
  });
  ASSERT_FALSE(product.ok());
  const std::string message(product.status().message());
  EXPECT_EQ(message.rfind("multiplying: ", 0), 0u) << message;
  EXPECT_NE(message.find("2x3"), std::string::npos) << message;
  EXPECT_EQ(message.find("Exception raised from"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(CallTorch, IndexErrorIsInvalidArgument) {
  absl::Status status = CallTorch("selecting", [] { at::zeros({2}).select(0, 5); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST(CallTorch, PassesThroughStatusResults) {
  absl::Status status = CallTorch("checking", [] { return absl::NotFoundError("gone"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  absl::StatusOr<int> value =
      CallTorch("computing", []() -> absl::StatusOr<int> { return 7; });
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 7);
}

TEST(CallTorch, ConvertsStandardExceptions) {
  absl::Status status = CallTorch("parsing", [] { throw std::runtime_error("bad digit"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "parsing: bad digit");
}

}  // namespace
}  // namespace polaris
