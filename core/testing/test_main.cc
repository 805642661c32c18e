// main() for polaris's GoogleTest tests: runs LibTorch on one thread (Bazel runs tests in
// parallel on the machine's cores) and, when a test fails, prints the seed its random data
// came from and how to rerun it.
#include <cstdio>

#include "ATen/Parallel.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::testing {

uint64_t TestSeed() {
  const int32_t flag = GTEST_FLAG_GET(random_seed);
  return flag != 0 ? static_cast<uint64_t>(flag) : kDefaultTestSeed;
}

namespace {

class SeedReporter : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result() == nullptr || !info.result()->Failed()) return;
    std::printf("%s.%s used random seed %llu; rerun it with --gtest_filter=%s.%s "
                "--gtest_random_seed=%llu\n",
                info.test_suite_name(), info.name(),
                static_cast<unsigned long long>(TestSeed()), info.test_suite_name(),
                info.name(), static_cast<unsigned long long>(TestSeed()));
  }
};

}  // namespace
}  // namespace polaris::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  at::set_num_threads(1);
  ::testing::UnitTest::GetInstance()->listeners().Append(new polaris::testing::SeedReporter);
  return RUN_ALL_TESTS();
}
