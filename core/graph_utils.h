// Helpers for reading a TorchScript module's computation graph: the inlined forward graph,
// the module path behind a prim::GetAttr chain, constant arguments of a node, and tensors
// addressed by dotted paths ("layer1.conv1.weight").
//
// Scripted and traced PyTorch models call a submodule's forward through prim::CallMethod;
// after inlining, a layer's weight reaches its aten::conv2d or aten::linear node through a
// chain of prim::GetAttr nodes starting at `self`, which names the parameter:
//
//   %4 = prim::GetAttr[name="layer1"](%self)
//   %5 = prim::GetAttr[name="conv1"](%4)
//   %6 = prim::GetAttr[name="weight"](%5)        GetAttrPath(%6) == "layer1.conv1.weight"
#ifndef POLARIS_CORE_GRAPH_UTILS_H_
#define POLARIS_CORE_GRAPH_UTILS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"
#include "torch/csrc/jit/ir/ir.h"

namespace polaris {

// Returns a copy of the module's forward graph with every method and function call inlined.
// The copy may be changed freely. Throws c10::Error (call inside CallTorch).
std::shared_ptr<torch::jit::Graph> InlinedForwardGraph(const torch::jit::Module& model);

// Replaces every read of a module's `training` flag in `graph` with false and folds the
// branches that depend on it, so that the graph shows the layers as they run in eval mode (a
// scripted BatchNorm otherwise shows `if self.training` branches).
void FoldTrainingFlag(std::shared_ptr<torch::jit::Graph>& graph);

// Returns the dotted attribute path of `value` when it is produced by a chain of prim::GetAttr
// nodes starting at the graph's first input (self), for example "layer1.conv1.weight";
// std::nullopt otherwise.
std::optional<std::string> GetAttrPath(const torch::jit::Value* value);

// Returns the value of a constant node input, or std::nullopt when it is not constant.
std::optional<c10::IValue> ConstantInput(const torch::jit::Node* node, size_t index);

// Returns a constant int list input ([1, 1] for stride), given as a constant or as a
// prim::ListConstruct of constants, or an empty vector when it is not constant.
std::vector<int64_t> ConstantIntList(const torch::jit::Node* node, size_t index);

// Returns the submodule at dotted `path` ("" is the model itself). Returns kNotFound naming
// the missing part.
absl::StatusOr<torch::jit::Module> FindSubmodule(const torch::jit::Module& model,
                                                 const std::string& path);

// Returns the tensor attribute (parameter, buffer or plain attribute) at dotted `path`.
// Returns kNotFound when it does not exist, kInvalidArgument when it is not a tensor (for
// example a bias that is None).
absl::StatusOr<at::Tensor> FindTensor(const torch::jit::Module& model, const std::string& path);

// Replaces the tensor attribute at dotted `path` with `value`, which may have another shape or
// dtype. Errors as FindTensor.
absl::Status SetTensor(torch::jit::Module& model, const std::string& path,
                       const at::Tensor& value);

}  // namespace polaris

#endif  // POLARIS_CORE_GRAPH_UTILS_H_
