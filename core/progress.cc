#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace polaris {
namespace {

constexpr double kTerminalInterval = 0.1;
constexpr double kLogInterval = 10.0;

}  // namespace

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t total = static_cast<int64_t>(seconds + 0.5);
  const int64_t hours = total / 3600;
  const int64_t minutes = (total / 60) % 60;
  const int64_t secs = total % 60;
  if (hours > 0) return absl::StrFormat("%d:%02d:%02d", hours, minutes, secs);
  return absl::StrFormat("%d:%02d", minutes, secs);
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      enabled_(enabled),
      terminal_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

double Progress::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::FormatLine(int64_t done, absl::string_view detail) const {
  const double elapsed = ElapsedSeconds();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  std::string line = absl::StrCat("[", label_, "] ", done);
  if (total_ > 0) {
    absl::StrAppend(&line, "/", total_, " ", unit_, "s",
                    absl::StrFormat(" (%.0f%%)", 100.0 * done / total_));
  } else {
    absl::StrAppend(&line, " ", unit_, "s");
  }
  absl::StrAppend(&line, absl::StrFormat("  %.1f %s/s", rate, unit_));
  if (total_ > 0 && rate > 0 && done < total_) {
    absl::StrAppend(&line, "  ETA ", FormatDuration((total_ - done) / rate));
  }
  if (!detail.empty()) absl::StrAppend(&line, "  ", detail);
  return line;
}

void Progress::Update(int64_t done, absl::string_view detail) {
  if (!enabled_ || finished_) return;
  last_done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (since_print < (terminal_ ? kTerminalInterval : kLogInterval)) return;
  last_print_ = now;
  if (terminal_) {
    // \33[K clears what a longer previous line left behind.
    std::fprintf(stderr, "\r%s\33[K", FormatLine(done, detail).c_str());
  } else {
    std::fprintf(stderr, "%s\n", FormatLine(done, detail).c_str());
  }
  std::fflush(stderr);
}

void Progress::Finish(absl::string_view detail) {
  if (!enabled_ || finished_) return;
  finished_ = true;
  const double elapsed = ElapsedSeconds();
  const double rate = elapsed > 0 ? last_done_ / elapsed : 0.0;
  std::string line = absl::StrCat("[", label_, "] done: ", last_done_, " ", unit_, "s in ",
                                  FormatDuration(elapsed),
                                  absl::StrFormat(" (%.1f %s/s)", rate, unit_));
  if (!detail.empty()) absl::StrAppend(&line, "  ", detail);
  std::fprintf(stderr, terminal_ ? "\r%s\33[K\n" : "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace polaris
