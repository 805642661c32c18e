#include "core/file_util.h"

#include <dirent.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace polaris {
namespace {

std::string TestDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

int CountEntries(const std::string& dir) {
  int count = 0;
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) return -1;
  while (dirent* entry = readdir(handle)) {
    if (std::string(entry->d_name) != "." && std::string(entry->d_name) != "..") ++count;
  }
  closedir(handle);
  return count;
}

TEST(WriteFileAtomically, WritesAndReplaces) {
  const std::string dir = TestDir() + "/atomic";
  ASSERT_TRUE(MakeDirectories(dir).ok());
  const std::string path = dir + "/out.bin";
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, std::string("second\0x", 8)).ok());
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(*contents, std::string("second\0x", 8));
  // No temporary file is left behind.
  EXPECT_EQ(CountEntries(dir), 1);
}

TEST(WriteFileAtomically, MissingDirectoryIsNotFound) {
  const absl::Status status = WriteFileAtomically(TestDir() + "/no/such/dir/file", "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("no/such/dir"), absl::string_view::npos) << status;
}

TEST(ReadFileToString, ReportsMissingFileAndDirectory) {
  EXPECT_EQ(ReadFileToString(TestDir() + "/missing.txt").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFileToString(TestDir()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ResolveUserPath, UsesBazelWorkingDirectory) {
  setenv("BUILD_WORKING_DIRECTORY", "/home/user/project", 1);
  EXPECT_EQ(ResolveUserPath("model.pt"), "/home/user/project/model.pt");
  EXPECT_EQ(ResolveUserPath("/abs/model.pt"), "/abs/model.pt");
  unsetenv("BUILD_WORKING_DIRECTORY");
  EXPECT_EQ(ResolveUserPath("model.pt"), "model.pt");
}

TEST(UserCacheDir, FollowsXdgCacheHome) {
  const std::string cache = TestDir() + "/xdg";
  setenv("XDG_CACHE_HOME", cache.c_str(), 1);
  absl::StatusOr<std::string> dir = UserCacheDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, cache + "/polaris");
  EXPECT_TRUE(PathExists(*dir));
  unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace polaris
