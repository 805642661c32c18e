// Runs Debian's Python 3 with PyTorch (python3-torch) from C++ tests, to make TorchScript and
// torch.save files the way users do and to check that polaris's files load back in Python.
#ifndef POLARIS_CORE_TESTING_PYTHON_TEST_UTIL_H_
#define POLARIS_CORE_TESTING_PYTHON_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace polaris::testing {

// The interpreter that has Debian's python3-torch: /usr/bin/python3, not a python3 earlier on
// PATH (such as a pyenv shim) that lacks torch.
inline constexpr char kPython[] = "/usr/bin/python3";

// Runs `kPython script args...` and returns its standard output. Returns kInternal with the
// exit status and standard error when it fails.
absl::StatusOr<std::string> RunPython(const std::string& script,
                                      const std::vector<std::string>& args);

struct CommandResult {
  // -1 when the command did not exit normally.
  int exit_code = -1;
  // Standard output and standard error, interleaved.
  std::string output;
};

// Runs `binary` (a path relative to the runfiles tree, e.g. "pipeline/optimize") with `args`
// as bazel run does, with BUILD_WORKING_DIRECTORY set to $TEST_TMPDIR so that relative paths in
// the arguments resolve there.
CommandResult RunInTestDirectory(const std::string& binary, const std::vector<std::string>& args);

// Returns a fresh path inside the test's temporary directory ($TEST_TMPDIR under Bazel).
std::string TempPath(const std::string& name);

}  // namespace polaris::testing

#endif  // POLARIS_CORE_TESTING_PYTHON_TEST_UTIL_H_
