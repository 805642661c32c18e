// Small file helpers shared by every command: whole-file reads, atomic writes, the user's cache
// folder, and paths as the user typed them under `bazel run`.
#ifndef POLARIS_CORE_FILE_UTIL_H_
#define POLARIS_CORE_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace polaris {

// Reads a whole file. Returns kNotFound when it does not exist, kPermissionDenied or
// kFailedPrecondition when it cannot be read or is a directory.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to `path` so that `path` holds either its old contents or all of the new
// ones, never a part: the bytes go to a temporary file in the same directory, which is flushed
// to disk and then renamed over `path`. Returns kNotFound when the directory does not exist.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Returns true when `path` names an existing file or directory.
bool PathExists(const std::string& path);

// Returns "$XDG_CACHE_HOME/polaris" or "$HOME/.cache/polaris", creating it if needed.
// Returns kFailedPrecondition when neither variable is set or the folder cannot be created.
absl::StatusOr<std::string> UserCacheDir();

// Creates `path` and missing parents (like `mkdir -p`).
absl::Status MakeDirectories(const std::string& path);

// Resolves a path typed by the user. `bazel run` starts programs inside Bazel's runfiles tree
// and sets BUILD_WORKING_DIRECTORY to the directory the user ran it from; relative paths are
// taken relative to that directory, as the user expects. Absolute paths are returned unchanged.
std::string ResolveUserPath(const std::string& path);

}  // namespace polaris

#endif  // POLARIS_CORE_FILE_UTIL_H_
