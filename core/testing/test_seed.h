// The seed every polaris test draws its random data from. It is GoogleTest's
// --gtest_random_seed when given (non-zero), else a fixed default, so that runs are repeatable
// and a failure can be reproduced or varied from the command line:
//
//   bazel test //sparse:kernels_test --test_arg=--gtest_random_seed=1234
#ifndef POLARIS_CORE_TESTING_TEST_SEED_H_
#define POLARIS_CORE_TESTING_TEST_SEED_H_

#include <cstdint>

namespace polaris::testing {

inline constexpr uint64_t kDefaultTestSeed = 20261204;

uint64_t TestSeed();

}  // namespace polaris::testing

#endif  // POLARIS_CORE_TESTING_TEST_SEED_H_
