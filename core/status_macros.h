// Early-return macros for absl::Status and absl::StatusOr, which Abseil 20220623 (Debian 12)
// does not ship.
//
//   absl::Status Load(const std::string& path) {
//     POLARIS_RETURN_IF_ERROR(CheckReadable(path));
//     POLARIS_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
//     ...
//   }
#ifndef POLARIS_CORE_STATUS_MACROS_H_
#define POLARIS_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function unless it is OK.
#define POLARIS_RETURN_IF_ERROR(expr)                      \
  do {                                                     \
    ::absl::Status polaris_status_ = (expr);               \
    if (!polaris_status_.ok()) return polaris_status_;     \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status from the enclosing function when
// it is an error, otherwise moves the value into `lhs`, which may be a declaration.
#define POLARIS_ASSIGN_OR_RETURN(lhs, rexpr)                                        \
  POLARIS_ASSIGN_OR_RETURN_IMPL_(POLARIS_STATUS_CONCAT_(polaris_statusor_, __LINE__), \
                                 lhs, rexpr)

#define POLARIS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#define POLARIS_STATUS_CONCAT_INNER_(a, b) a##b
#define POLARIS_STATUS_CONCAT_(a, b) POLARIS_STATUS_CONCAT_INNER_(a, b)

namespace polaris {

// Returns `status` with `context` and ": " put in front of its message, keeping its code.
// An OK status stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace polaris

#endif  // POLARIS_CORE_STATUS_MACROS_H_
