// Progress reporting for long work: on a terminal, one line rewritten in place with the count,
// the rate and the time left; otherwise (logs, CI) a plain line every few seconds.
//
//   Progress progress("train cnn", total_steps, "step");
//   for (...) { ...; progress.Update(step + 1, absl::StrFormat("loss %.3f", loss)); }
//   progress.Finish("accuracy 91.2%");
#ifndef POLARIS_CORE_PROGRESS_H_
#define POLARIS_CORE_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"

namespace polaris {

class Progress {
 public:
  // `total` units of work named `unit` ("step", "image"); total 0 means unknown. Writes to
  // stderr; `enabled` false makes every call a no-op.
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);

  // Reports that `done` units are complete; `detail` is appended (loss, accuracy, ...).
  // On a terminal redraws at most 10 times a second; otherwise logs every 10 seconds.
  void Update(int64_t done, absl::string_view detail = "");

  // Ends the line and prints the total time, the mean rate and `detail`.
  void Finish(absl::string_view detail = "");

  double ElapsedSeconds() const;

 private:
  std::string FormatLine(int64_t done, absl::string_view detail) const;

  std::string label_;
  int64_t total_;
  std::string unit_;
  bool enabled_;
  bool terminal_;
  bool finished_ = false;
  int64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

// Formats seconds as "1:05" or "1:02:03".
std::string FormatDuration(double seconds);

}  // namespace polaris

#endif  // POLARIS_CORE_PROGRESS_H_
