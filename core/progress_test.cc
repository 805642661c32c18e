#include "core/progress.h"

#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(FormatDuration, FormatsMinutesAndHours) {
  EXPECT_EQ(FormatDuration(0), "0:00");
  EXPECT_EQ(FormatDuration(65), "1:05");
  EXPECT_EQ(FormatDuration(3723), "1:02:03");
  EXPECT_EQ(FormatDuration(-1), "?");
}

TEST(Progress, PrintsFinalLineWithRate) {
  ::testing::internal::CaptureStderr();
  Progress progress("unit test", 100, "item");
  progress.Update(50, "half");
  progress.Update(100);
  progress.Finish("all good");
  const std::string output = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(output.find("[unit test] done: 100 items"), std::string::npos) << output;
  EXPECT_NE(output.find("item/s"), std::string::npos) << output;
  EXPECT_NE(output.find("all good"), std::string::npos) << output;
}

TEST(Progress, DisabledPrintsNothing) {
  ::testing::internal::CaptureStderr();
  Progress progress("quiet", 10, "step", /*enabled=*/false);
  progress.Update(10);
  progress.Finish();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace polaris
