// Loading, saving, copying and signature checks of TorchScript models, with errors a user can
// act on instead of LibTorch exceptions.
//
//   POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model, LoadModel("model.pt"));
//   POLARIS_RETURN_IF_ERROR(CheckClassifierSignature(model));
//   POLARIS_ASSIGN_OR_RETURN(torch::jit::Module copy, CloneModel(model));
//   ... change copy ...
//   POLARIS_RETURN_IF_ERROR(SaveModel(copy, "optimized.pt"));
#ifndef POLARIS_CORE_MODEL_IO_H_
#define POLARIS_CORE_MODEL_IO_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris {

// Loads a TorchScript file (torch.jit.save in Python, Module::save in C++) onto the CPU.
// Errors: kNotFound for a missing file; kDataLoss when the file is empty, not a zip archive
// (for example a torch.save state dict saved with the legacy format, or a text file), or
// truncated; kInvalidArgument when it is a zip archive but not a TorchScript module (a
// torch.save of a state dict, which needs the model's Python class), naming the file.
absl::StatusOr<torch::jit::Module> LoadModel(const std::string& path);

// The same for the bytes of a TorchScript file; `name` is used in messages.
absl::StatusOr<torch::jit::Module> LoadModelFromBytes(const std::string& bytes,
                                                      const std::string& name);

// Serializes `model` to TorchScript bytes (what SaveModel writes).
absl::StatusOr<std::string> SerializeModel(const torch::jit::Module& model);

// Saves `model` to `path` atomically: after an error or an interrupted run, `path` holds its
// old contents (or does not exist), never a partial file.
absl::Status SaveModel(const torch::jit::Module& model, const std::string& path);

// Returns a deep copy with its own class types, so that adding attributes or methods to the
// copy, or changing its tensors, never changes `model`.
absl::StatusOr<torch::jit::Module> CloneModel(const torch::jit::Module& model);

// Checks that forward takes exactly one tensor (besides self) and returns one tensor, the
// interface every polaris optimization expects. Returns kInvalidArgument describing the
// actual signature otherwise.
absl::Status CheckClassifierSignature(const torch::jit::Module& model);

}  // namespace polaris

#endif  // POLARIS_CORE_MODEL_IO_H_
