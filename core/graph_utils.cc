#include "core/graph_utils.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/ir/constants.h"
#include "torch/csrc/jit/passes/constant_propagation.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"
#include "torch/csrc/jit/passes/inliner.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris {
namespace {

// Splits "a.b.c" into the module path "a.b" and the attribute name "c".
std::pair<std::string, std::string> SplitLastComponent(const std::string& path) {
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

}  // namespace

std::shared_ptr<torch::jit::Graph> InlinedForwardGraph(const torch::jit::Module& model) {
  std::shared_ptr<torch::jit::Graph> graph = model.get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  return graph;
}

std::optional<std::string> GetAttrPath(const torch::jit::Value* value) {
  std::vector<std::string> names;
  const torch::jit::Value* current = value;
  while (current->node()->kind() == c10::prim::GetAttr) {
    names.push_back(current->node()->s(c10::attr::name));
    current = current->node()->input(0);
  }
  if (names.empty()) return std::nullopt;
  const torch::jit::Graph* graph = current->owningGraph();
  if (graph->inputs().empty() || current != graph->inputs()[0]) return std::nullopt;
  std::reverse(names.begin(), names.end());
  return absl::StrJoin(names, ".");
}

std::optional<c10::IValue> ConstantInput(const torch::jit::Node* node, size_t index) {
  if (index >= node->inputs().size()) return std::nullopt;
  // Converting the c10::optional directly would wrap an empty result as a None IValue.
  c10::optional<c10::IValue> value = torch::jit::toIValue(node->input(index));
  if (!value.has_value()) return std::nullopt;
  return *value;
}

std::vector<int64_t> ConstantIntList(const torch::jit::Node* node, size_t index) {
  std::optional<c10::IValue> value = ConstantInput(node, index);
  if (value.has_value() && value->isIntList()) return value->toIntVector();
  if (index >= node->inputs().size()) return {};

  // Scripted code builds literal lists such as [1, 1] with prim::ListConstruct until constant
  // propagation folds them.
  const torch::jit::Node* list = node->input(index)->node();
  if (list->kind() != c10::prim::ListConstruct) return {};
  std::vector<int64_t> values;
  for (size_t i = 0; i < list->inputs().size(); ++i) {
    std::optional<c10::IValue> item = ConstantInput(list, i);
    if (!item.has_value() || !item->isInt()) return {};
    values.push_back(item->toInt());
  }
  return values;
}

absl::StatusOr<torch::jit::Module> FindSubmodule(const torch::jit::Module& model,
                                                 const std::string& path) {
  torch::jit::Module current = model;
  if (path.empty()) return current;
  for (absl::string_view name : absl::StrSplit(path, '.')) {
    const std::string key(name);
    if (!current.hasattr(key) || !current.attr(key).isModule()) {
      return absl::NotFoundError(
          absl::StrCat("the model has no submodule '", path, "' (missing '", key, "')"));
    }
    current = current.attr(key).toModule();
  }
  return current;
}

absl::StatusOr<at::Tensor> FindTensor(const torch::jit::Module& model, const std::string& path) {
  const auto [module_path, name] = SplitLastComponent(path);
  absl::StatusOr<torch::jit::Module> owner = FindSubmodule(model, module_path);
  if (!owner.ok()) return owner.status();
  if (!owner->hasattr(name)) {
    return absl::NotFoundError(absl::StrCat("the model has no attribute '", path, "'"));
  }
  const c10::IValue value = owner->attr(name);
  if (!value.isTensor()) {
    return absl::InvalidArgumentError(
        absl::StrCat("attribute '", path, "' is not a tensor but ", value.tagKind()));
  }
  return value.toTensor();
}

absl::Status SetTensor(torch::jit::Module& model, const std::string& path,
                       const at::Tensor& value) {
  const auto [module_path, name] = SplitLastComponent(path);
  absl::StatusOr<torch::jit::Module> owner = FindSubmodule(model, module_path);
  if (!owner.ok()) return owner.status();
  if (!owner->hasattr(name)) {
    return absl::NotFoundError(absl::StrCat("the model has no attribute '", path, "'"));
  }
  return CallTorch(absl::StrCat("setting '", path, "'"), [&] { owner->setattr(name, value); });
}

void FoldTrainingFlag(std::shared_ptr<torch::jit::Graph>& graph) {
  std::vector<torch::jit::Node*> reads;
  torch::jit::DepthFirstGraphNodeIterator it(graph);
  for (torch::jit::Node* node = it.next(); node != nullptr; node = it.next()) {
    if (node->kind() == c10::prim::GetAttr && node->s(c10::attr::name) == "training") {
      reads.push_back(node);
    }
  }
  for (torch::jit::Node* node : reads) {
    torch::jit::WithInsertPoint guard(node);
    torch::jit::Value* constant = graph->insertConstant(false);
    node->output()->replaceAllUsesWith(constant);
  }
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
}

}  // namespace polaris
