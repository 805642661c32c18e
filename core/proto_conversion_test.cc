#include "core/proto_conversion.h"

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

TEST(ToEnvironmentProto, CopiesRuntimeFieldsAndStampsTime) {
  RuntimeInfo info;
  info.intra_op_threads = 2;
  info.cpu_model = "Test CPU";
  info.libtorch_version = "1.13.1";
  const proto::Environment environment = ToEnvironmentProto(info, "abc123");
  EXPECT_EQ(environment.threads(), 2);
  EXPECT_EQ(environment.cpu_model(), "Test CPU");
  EXPECT_EQ(environment.git_commit(), "abc123");
  // RFC 3339, e.g. 2026-12-04T20:06:18Z.
  EXPECT_EQ(environment.timestamp().size(), 20u) << environment.timestamp();
  EXPECT_EQ(environment.timestamp().back(), 'Z') << environment.timestamp();
}

TEST(ToLatencyProto, KeepsStatistics) {
  LatencyStats stats;
  stats.median_ms = 1.5;
  stats.p90_ms = 2.5;
  stats.runs = 40;
  stats.threads = 2;
  const proto::Latency latency = ToLatencyProto(stats, 64);
  EXPECT_EQ(latency.batch_size(), 64);
  EXPECT_DOUBLE_EQ(latency.median_ms(), 1.5);
  EXPECT_DOUBLE_EQ(latency.p90_ms(), 2.5);
  EXPECT_EQ(latency.runs(), 40);
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(latency, &text));
  EXPECT_NE(text.find("median_ms: 1.5"), std::string::npos) << text;
}

TEST(ToModelSizeProto, KeepsByteCounts) {
  ModelSize size{.file_bytes = 1000, .tensor_data_bytes = 800, .other_bytes = 200};
  const proto::ModelSize message = ToModelSizeProto(size, 200);
  EXPECT_EQ(message.file_bytes(), 1000);
  EXPECT_EQ(message.tensor_data_bytes(), 800);
  EXPECT_EQ(message.parameters(), 200);
}

TEST(DescribeGitCommit, UnknownOutsideRepository) {
  EXPECT_EQ(DescribeGitCommit("/"), "unknown");
}

}  // namespace
}  // namespace polaris
