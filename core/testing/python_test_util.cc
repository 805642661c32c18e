#include "core/testing/python_test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace polaris::testing {
namespace {

// Quotes an argument for /bin/sh.
std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

}  // namespace

absl::StatusOr<std::string> RunPython(const std::string& script,
                                      const std::vector<std::string>& args) {
  std::string command = absl::StrCat(kPython, " ", ShellQuote(script));
  for (const std::string& arg : args) absl::StrAppend(&command, " ", ShellQuote(arg));
  const std::string stderr_path = TempPath("python_stderr.txt");
  absl::StrAppend(&command, " 2>", ShellQuote(stderr_path));

  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run ", command));
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  if (status != 0) {
    std::string errors;
    if (FILE* file = fopen(stderr_path.c_str(), "r"); file != nullptr) {
      while ((n = fread(buffer.data(), 1, buffer.size(), file)) > 0) errors.append(buffer.data(), n);
      fclose(file);
    }
    return absl::InternalError(absl::StrCat("'", command, "' failed with status ",
                                            WEXITSTATUS(status), ":\n", output, errors));
  }
  return output;
}

CommandResult RunInTestDirectory(const std::string& binary,
                                 const std::vector<std::string>& args) {
  const char* directory = std::getenv("TEST_TMPDIR");
  const std::string log = TempPath("command_log.txt");
  std::string command = absl::StrCat("BUILD_WORKING_DIRECTORY=",
                                     ShellQuote(directory == nullptr ? "/tmp" : directory), " ",
                                     ShellQuote(binary));
  for (const std::string& arg : args) absl::StrAppend(&command, " ", ShellQuote(arg));
  absl::StrAppend(&command, " >", ShellQuote(log), " 2>&1");
  CommandResult result;
  const int status = std::system(command.c_str());
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (FILE* file = fopen(log.c_str(), "r"); file != nullptr) {
    std::array<char, 4096> buffer;
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), file)) > 0) {
      result.output.append(buffer.data(), n);
    }
    fclose(file);
  }
  return result;
}

std::string TempPath(const std::string& name) {
  static int counter = 0;
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string base = dir != nullptr ? dir : "/tmp";
  return absl::StrCat(base, "/", getpid(), "_", counter++, "_", name);
}

}  // namespace polaris::testing
