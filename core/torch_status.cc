#include "core/torch_status.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace polaris {
namespace {

// LibTorch messages carry a C++ backtrace after the first line, which users do not need. Errors
// raised inside the TorchScript interpreter start with a TorchScript traceback and end with the
// line that names the error ("RuntimeError: ..."), so that last line is kept instead.
std::string ShortTorchMessage(const c10::Error& error) {
  absl::string_view message = error.what_without_backtrace();
  const size_t backtrace = message.find("Exception raised from");
  if (backtrace != absl::string_view::npos) message = message.substr(0, backtrace);
  message = absl::StripAsciiWhitespace(message);

  const bool interpreter_traceback =
      absl::StrContains(message, "The following operation failed in the TorchScript interpreter");
  std::vector<absl::string_view> lines =
      absl::StrSplit(message, '\n', absl::SkipWhitespace());
  if (lines.empty()) return "unknown LibTorch error";
  if (!interpreter_traceback) return std::string(absl::StripAsciiWhitespace(lines.front()));
  return std::string(absl::StripAsciiWhitespace(lines.back()));
}

}  // namespace

absl::Status StatusFromTorchError(const c10::Error& error, absl::string_view context) {
  const std::string message = absl::StrCat(context, ": ", ShortTorchMessage(error));
  if (dynamic_cast<const c10::IndexError*>(&error) != nullptr ||
      dynamic_cast<const c10::ValueError*>(&error) != nullptr ||
      dynamic_cast<const c10::TypeError*>(&error) != nullptr ||
      dynamic_cast<const c10::NotImplementedError*>(&error) != nullptr) {
    return absl::InvalidArgumentError(message);
  }
  return absl::InternalError(message);
}

absl::Status StatusFromException(const std::exception& error, absl::string_view context) {
  return absl::InternalError(absl::StrCat(context, ": ", error.what()));
}

}  // namespace polaris
