#include "core/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace polaris {
namespace {

absl::Status ErrnoToStatus(int error, absl::string_view what, absl::string_view path) {
  const std::string message = absl::StrCat(what, " '", path, "': ", strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::FailedPreconditionError(message);
  }
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return ErrnoToStatus(errno, "cannot open", path);
  if (S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is a directory; expected a file"));
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return ErrnoToStatus(errno, "cannot open", path);
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return ErrnoToStatus(errno, "cannot read", path);
  return contents.str();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  const std::string directory = DirectoryOf(path);
  struct stat info;
  if (stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::NotFoundError(absl::StrCat("cannot write '", path, "': directory '", directory,
                                            "' does not exist; create it first"));
  }

  std::string temp_path = absl::StrCat(path, ".tmp-XXXXXX");
  const int fd = mkstemp(temp_path.data());
  if (fd < 0) return ErrnoToStatus(errno, "cannot create a temporary file beside", path);
  // mkstemp creates the file with mode 0600; give it the usual mode for a new file.
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);

  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      close(fd);
      unlink(temp_path.c_str());
      return ErrnoToStatus(error, "cannot write", temp_path);
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const int error = errno;
    unlink(temp_path.c_str());
    return ErrnoToStatus(error, "cannot flush", temp_path);
  }
  if (rename(temp_path.c_str(), path.c_str()) != 0) {
    const int error = errno;
    unlink(temp_path.c_str());
    return ErrnoToStatus(error, "cannot rename the temporary file onto", path);
  }
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

absl::Status MakeDirectories(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("cannot create a directory with no name");
  std::string prefix;
  size_t position = 0;
  while (position != std::string::npos) {
    position = path.find('/', position + 1);
    prefix = path.substr(0, position);
    if (prefix.empty() || PathExists(prefix)) continue;
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, "cannot create directory", prefix);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> UserCacheDir() {
  std::string base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    base = absl::StrCat(home, "/.cache");
  } else {
    return absl::FailedPreconditionError(
        "cannot find a cache directory: set HOME or XDG_CACHE_HOME");
  }
  const std::string directory = absl::StrCat(base, "/polaris");
  absl::Status status = MakeDirectories(directory);
  if (!status.ok()) return status;
  return directory;
}

std::string ResolveUserPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const char* working_directory = std::getenv("BUILD_WORKING_DIRECTORY");
  if (working_directory == nullptr || working_directory[0] == '\0') return path;
  return absl::StrCat(working_directory, "/", path);
}

}  // namespace polaris
