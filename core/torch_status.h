// Conversion of LibTorch exceptions into absl::Status at polaris's API boundaries.
//
// LibTorch reports errors by throwing c10::Error (and, from TorchScript, its subclasses). Public
// polaris functions never let these escape: they wrap LibTorch calls in CallTorch, which returns
// the result or a status that keeps the first line of LibTorch's message.
//
//   absl::StatusOr<at::Tensor> Forward(torch::jit::Module& m, const at::Tensor& x) {
//     return CallTorch("running the model", [&] { return m.forward({x}).toTensor(); });
//   }
#ifndef POLARIS_CORE_TORCH_STATUS_H_
#define POLARIS_CORE_TORCH_STATUS_H_

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "c10/util/Exception.h"

namespace polaris {

// Returns a status for a caught c10::Error: kInvalidArgument for index, type and value errors
// (they come from bad input), kInternal otherwise. The message is "<context>: <first line of
// LibTorch's message>", without LibTorch's C++ backtrace.
absl::Status StatusFromTorchError(const c10::Error& error, absl::string_view context);

// Returns kInternal for an unexpected std::exception, "<context>: <what()>".
absl::Status StatusFromException(const std::exception& error, absl::string_view context);

// Calls `fn` and converts any c10::Error or std::exception it throws into a status.
// `fn` may return void (the result is absl::Status), absl::Status, absl::StatusOr<T>, or a
// plain value T (the result is absl::StatusOr<T>).
template <typename Fn>
auto CallTorch(absl::string_view context, Fn&& fn);

// Implementation details below.
namespace internal_torch_status {

template <typename T>
struct IsStatusOr : std::false_type {};
template <typename T>
struct IsStatusOr<absl::StatusOr<T>> : std::true_type {};

}  // namespace internal_torch_status

template <typename Fn>
auto CallTorch(absl::string_view context, Fn&& fn) {
  using Result = std::invoke_result_t<Fn>;
  if constexpr (std::is_void_v<Result>) {
    try {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } catch (const c10::Error& error) {
      return StatusFromTorchError(error, context);
    } catch (const std::exception& error) {
      return StatusFromException(error, context);
    }
  } else if constexpr (std::is_same_v<Result, absl::Status> ||
                       internal_torch_status::IsStatusOr<Result>::value) {
    try {
      return Result(std::forward<Fn>(fn)());
    } catch (const c10::Error& error) {
      return Result(StatusFromTorchError(error, context));
    } catch (const std::exception& error) {
      return Result(StatusFromException(error, context));
    }
  } else {
    try {
      return absl::StatusOr<Result>(std::forward<Fn>(fn)());
    } catch (const c10::Error& error) {
      return absl::StatusOr<Result>(StatusFromTorchError(error, context));
    } catch (const std::exception& error) {
      return absl::StatusOr<Result>(StatusFromException(error, context));
    }
  }
}

}  // namespace polaris

#endif  // POLARIS_CORE_TORCH_STATUS_H_
