#include "core/model_io.h"

#include <sstream>
#include <string>

#include "ATen/core/grad_mode.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/serialization/import.h"

namespace polaris {

absl::StatusOr<torch::jit::Module> LoadModelFromBytes(const std::string& bytes,
                                                      const std::string& name) {
  if (bytes.empty()) {
    return absl::DataLossError(absl::StrCat("model file '", name, "' is empty"));
  }
  if (bytes.size() < 4 || bytes.compare(0, 2, "PK") != 0) {
    return absl::DataLossError(absl::StrCat(
        "'", name, "' is not a TorchScript file (no zip header); save the model with "
        "torch.jit.save(torch.jit.script(model), path)"));
  }
  std::istringstream stream(bytes);
  absl::StatusOr<torch::jit::Module> model = CallTorch(
      absl::StrCat("loading TorchScript file '", name, "'"),
      [&] { return torch::jit::load(stream, c10::Device(c10::kCPU)); });
  if (model.ok()) return model;

  const std::string message(model.status().message());
  if (absl::StrContains(message, "Unknown builtin op")) {
    // The file is fine, but it calls an operator library this program does not link.
    return absl::FailedPreconditionError(absl::StrCat(
        "'", name, "' calls an operator this program does not have; link the library that "
        "registers it (polaris's operators: //tools:libpolaris_ops.so, or //quantization:ops "
        "and //sparse:ops), or in Python call torch.ops.load_library on it first. ", message));
  }
  if (absl::StrContains(message, "constants.pkl") || absl::StrContains(message, "code/") ||
      absl::StrContains(message, "PytorchStreamReader failed locating file")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", name, "' is a zip archive but not a TorchScript module (a torch.save of a state "
        "dict or tensors?); save the model with torch.jit.save(torch.jit.script(model), path). ",
        message));
  }
  return absl::DataLossError(absl::StrCat(message, " (is the file truncated or damaged?)"));
}

absl::StatusOr<torch::jit::Module> LoadModel(const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return LoadModelFromBytes(bytes, path);
}

absl::StatusOr<std::string> SerializeModel(const torch::jit::Module& model) {
  return CallTorch("serializing the model", [&] {
    std::ostringstream stream;
    model.save(stream);
    return stream.str();
  });
}

absl::Status SaveModel(const torch::jit::Module& model, const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(std::string bytes, SerializeModel(model));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<torch::jit::Module> CloneModel(const torch::jit::Module& model) {
  return CallTorch("copying the model", [&] {
    torch::jit::Module copy;
    {
      // Module::clone copies tensors with Tensor::clone; with autograd on, parameters that
      // require gradients would come back as non-leaf tensors that no optimizer accepts.
      at::NoGradGuard no_grad;
      copy = model.clone();
    }
    auto original = model.named_parameters(/*recurse=*/true).begin();
    for (const auto& parameter : copy.named_parameters(/*recurse=*/true)) {
      parameter.value.set_requires_grad((*original).value.requires_grad());
      ++original;
    }
    return copy;
  });
}

absl::Status CheckClassifierSignature(const torch::jit::Module& model) {
  return CallTorch("checking the model's forward signature", [&]() -> absl::Status {
    const auto method = model.find_method("forward");
    if (!method.has_value()) {
      return absl::InvalidArgumentError("the model has no forward method");
    }
    const c10::FunctionSchema& schema = method->function().getSchema();
    const auto& arguments = schema.arguments();
    // arguments[0] is self.
    if (arguments.size() != 2 ||
        !arguments[1].type()->isSubtypeOf(*c10::TensorType::get())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model's forward must take exactly one tensor, but its signature is ",
          schema.name(), c10::toString(schema).substr(schema.name().size()),
          "; wrap it in a module whose forward takes one tensor"));
    }
    const auto& returns = schema.returns();
    if (returns.size() != 1 || !returns[0].type()->isSubtypeOf(*c10::TensorType::get())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model's forward must return one tensor, but its signature is ",
          c10::toString(schema), "; wrap it in a module that returns only the logits"));
    }
    return absl::OkStatus();
  });
}

}  // namespace polaris
