#include "core/runtime.h"

#include "ATen/Parallel.h"
#include "gtest/gtest.h"

extern "C" int openblas_get_num_threads(void);

namespace polaris {
namespace {

TEST(SetThreads, SetsLibTorchAndOpenBlasTogether) {
  ASSERT_TRUE(SetThreads(2).ok());
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(openblas_get_num_threads(), 2);
  ASSERT_TRUE(SetThreads(1).ok());
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

TEST(SetThreads, RejectsOutOfRangeCounts) {
  EXPECT_EQ(SetThreads(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetThreads(-3).code(), absl::StatusCode::kInvalidArgument);
  const absl::Status status = SetThreads(100000);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("100000"), absl::string_view::npos);
}

TEST(RuntimeInfo, DescribesLibrariesAndCpu) {
  ASSERT_TRUE(SetThreads(1).ok());
  const RuntimeInfo info = CurrentRuntimeInfo();
  EXPECT_EQ(info.intra_op_threads, 1);
  EXPECT_EQ(info.libtorch_version.rfind("1.13", 0), 0u) << info.libtorch_version;
  EXPECT_EQ(info.onednn_version.rfind("2.", 0), 0u) << info.onednn_version;
  EXPECT_FALSE(info.cpu_model.empty());
  EXPECT_NE(info.blas_library, "libblas.so.3 not loaded");
}

// The project's wrapper (./bazelw) switches Debian's BLAS alternative to OpenBLAS; every fp32
// baseline is 20x too slow when this fails.
TEST(RuntimeInfo, LibTorchUsesOpenBlas) {
  const RuntimeInfo info = CurrentRuntimeInfo();
  EXPECT_FALSE(ReferenceBlasActive()) << info.blas_library;
  EXPECT_NE(info.blas_library.find("openblas"), std::string::npos) << info.blas_library;
}

TEST(UseOnednnQuantizedEngine, SelectsOnednn) {
  ASSERT_TRUE(UseOnednnQuantizedEngine().ok());
  EXPECT_EQ(CurrentRuntimeInfo().quantized_engine, "ONEDNN");
}

}  // namespace
}  // namespace polaris
