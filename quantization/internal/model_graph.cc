#include "quantization/internal/model_graph.h"

#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/graph_utils.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/api/compilation_unit.h"
#include "torch/csrc/jit/ir/constants.h"
#include "torch/csrc/jit/passes/constant_propagation.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"
#include "torch/csrc/jit/passes/inliner.h"
#include "torch/csrc/jit/passes/remove_mutation.h"
#include "torch/csrc/jit/runtime/graph_iterator.h"

namespace polaris::quantization::internal {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

std::vector<Node*> AllNodes(std::shared_ptr<Graph>& graph) {
  std::vector<Node*> nodes;
  torch::jit::DepthFirstGraphNodeIterator it(graph);
  for (Node* node = it.next(); node != nullptr; node = it.next()) nodes.push_back(node);
  return nodes;
}

bool IsModuleType(const c10::TypePtr& type) {
  const auto class_type = type->cast<c10::ClassType>();
  return class_type != nullptr && class_type->is_module();
}

// The value of a dotted attribute path and whether its owner registered it as a parameter.
struct AttributeValue {
  c10::IValue value;
  bool is_parameter = false;
};

absl::StatusOr<AttributeValue> ReadAttributePath(const torch::jit::Module& model,
                                                 const std::string& path) {
  const size_t dot = path.rfind('.');
  const std::string owner_path = dot == std::string::npos ? "" : path.substr(0, dot);
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  absl::StatusOr<torch::jit::Module> owner = FindSubmodule(model, owner_path);
  if (!owner.ok()) return owner.status();
  if (!owner->hasattr(name)) {
    return absl::NotFoundError(absl::StrCat("the model has no attribute '", path, "'"));
  }
  AttributeValue result;
  result.value = owner->attr(name);
  const auto slot = owner->type()->findAttributeSlot(name);
  result.is_parameter = slot.has_value() && owner->type()->is_parameter(*slot);
  return result;
}

// Makes a fresh module whose forward is `graph` (taken over, not copied).
absl::StatusOr<torch::jit::Module> BuildModuleFromGraph(std::shared_ptr<Graph> graph,
                                                        const AttributeTable& attributes,
                                                        const std::string& class_name) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module module(c10::QualifiedName(absl::StrCat("__torch__.polaris.", class_name)),
                            unit, /*shouldMangle=*/true);
  module.register_attribute("training", c10::BoolType::get(), false);

  Value* self = graph->inputs()[0];
  std::set<std::string> registered;
  for (Node* node : AllNodes(graph)) {
    if (node->kind() != c10::prim::GetAttr || node->input(0) != self) continue;
    const std::string name = node->s(c10::attr::name);
    if (!registered.insert(name).second) continue;
    const AttributeTable::Entry* entry = attributes.Find(name);
    if (entry == nullptr) {
      return absl::InternalError(
          absl::StrCat("the rewritten graph reads attribute '", name, "', which no pass added"));
    }
    const bool is_tensor = entry->value.isTensor();
    const c10::TypePtr type = is_tensor ? c10::TensorType::get() : entry->value.type();
    module.register_attribute(name, type, entry->value, is_tensor && entry->is_parameter);
  }
  self->setType(module.type());
  torch::jit::Function* forward = unit->create_function(
      c10::QualifiedName(*module.type()->name(), "forward"), std::move(graph));
  module.type()->addMethod(forward);
  module.eval();
  return module;
}

}  // namespace

const AttributeTable::Entry* AttributeTable::Find(const std::string& name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

AttributeTable::Entry* AttributeTable::FindMutable(const std::string& name) {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string AttributeTable::AddUnique(const std::string& base_name, c10::IValue value,
                                      bool is_parameter, const std::string& original_path) {
  std::string name = base_name;
  // `training` is registered on every built module, so no entry may take that name.
  for (int suffix = 1; entries_.count(name) > 0 || name == "training"; ++suffix) {
    name = absl::StrCat(base_name, "_", suffix);
  }
  entries_[name] = Entry{std::move(value), is_parameter, original_path};
  return name;
}

absl::Status AttributeTable::Replace(const std::string& name, c10::IValue value) {
  Entry* entry = FindMutable(name);
  if (entry == nullptr) {
    return absl::InternalError(absl::StrCat("no attribute '", name, "' to replace"));
  }
  entry->value = std::move(value);
  return absl::OkStatus();
}

void AttributeTable::RetainOnly(const std::set<std::string>& names) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = names.count(it->first) > 0 ? std::next(it) : entries_.erase(it);
  }
}

std::set<std::string> ReadAttributeNames(std::shared_ptr<Graph>& graph) {
  std::set<std::string> names;
  for (Node* node : AllNodes(graph)) {
    if (node->kind() == c10::prim::GetAttr && node->input(0) == graph->inputs()[0]) {
      names.insert(node->s(c10::attr::name));
    }
  }
  return names;
}

std::string FlatName(const std::string& dotted_path) {
  return absl::StrReplaceAll(dotted_path, {{".", "_"}});
}

void SimplifyGraph(std::shared_ptr<Graph>& graph) {
  torch::jit::ConstantPropagation(graph);
  // Scripted models often use in-place activations (F.relu(x, inplace=True) is aten::relu_);
  // the functional form lets later passes match and fuse them.
  torch::jit::RemoveTensorMutation(graph);
  torch::jit::EliminateDeadCode(graph);
}

Value* InsertSelfGetAttr(Graph& graph, const std::string& name, const c10::TypePtr& type) {
  Node* node = graph.create(c10::prim::GetAttr, {graph.inputs()[0]}, 1);
  node->s_(c10::attr::name, name);
  node->output()->setType(type);
  graph.insertNode(node);
  return node->output();
}

std::optional<std::string> SelfAttributeName(const Value* value) {
  const Node* node = value->node();
  if (node->kind() != c10::prim::GetAttr) return std::nullopt;
  if (node->input(0) != node->owningGraph()->inputs()[0]) return std::nullopt;
  return node->s(c10::attr::name);
}

at::Tensor AttributeTensor(const AttributeTable& table, const Value* value) {
  const std::optional<std::string> name = SelfAttributeName(value);
  if (!name.has_value()) return at::Tensor();
  const AttributeTable::Entry* entry = table.Find(*name);
  if (entry == nullptr || !entry->value.isTensor()) return at::Tensor();
  return entry->value.toTensor();
}

absl::StatusOr<FlatModel> FlattenModel(const torch::jit::Module& model) {
  return CallTorch("flattening the model's forward graph", [&]() -> absl::StatusOr<FlatModel> {
    if (!model.find_method("forward").has_value()) {
      return absl::InvalidArgumentError("the model has no forward method");
    }
    FlatModel flat;
    flat.graph = model.get_method("forward").graph()->copy();
    torch::jit::Inline(*flat.graph);

    std::vector<Node*> leaves;
    for (Node* node : AllNodes(flat.graph)) {
      if (node->kind() == c10::prim::SetAttr) {
        return absl::UnimplementedError(absl::StrCat(
            "the model's forward assigns attribute '", node->s(c10::attr::name),
            "'; quantization needs a forward without side effects on the module"));
      }
      if (node->kind() == c10::prim::CallMethod) {
        return absl::UnimplementedError(absl::StrCat(
            "the model's forward calls method '", node->s(c10::attr::name),
            "' through an interface, which cannot be inlined; script the model without "
            "module interfaces"));
      }
      if (node->kind() == c10::prim::GetAttr && !IsModuleType(node->output()->type())) {
        leaves.push_back(node);
      }
    }

    std::unordered_map<std::string, std::string> name_of_path;
    for (Node* node : leaves) {
      const std::optional<std::string> path = GetAttrPath(node->output());
      // A GetAttr on something other than the module (an object returned by a call) stays.
      if (!path.has_value()) continue;
      torch::jit::WithInsertPoint insert_point(node);
      const std::string leaf = node->s(c10::attr::name);
      if (leaf == "training") {
        // Quantization builds an inference model, whatever mode the caller's module is in.
        node->output()->replaceAllUsesWith(flat.graph->insertConstant(false));
        continue;
      }
      POLARIS_ASSIGN_OR_RETURN(AttributeValue attribute, ReadAttributePath(model, *path));
      if (!attribute.value.isTensor() && !attribute.value.isObject()) {
        c10::optional<Value*> constant =
            torch::jit::tryInsertConstant(*flat.graph, attribute.value);
        if (constant.has_value()) {
          node->output()->replaceAllUsesWith(*constant);
          continue;
        }
      }
      auto [it, inserted] = name_of_path.emplace(*path, "");
      if (inserted) {
        // Tensors are copied so that nothing built from the flat model shares storage with
        // the caller's model, which may change its own tensors later.
        c10::IValue value = attribute.value.isTensor()
                                ? c10::IValue(attribute.value.toTensor().detach().clone())
                                : attribute.value;
        it->second =
            flat.attributes.AddUnique(FlatName(*path), value, attribute.is_parameter, *path);
      }
      const c10::TypePtr type =
          attribute.value.isTensor() ? c10::TensorType::get() : node->output()->type();
      node->output()->replaceAllUsesWith(InsertSelfGetAttr(*flat.graph, it->second, type));
    }
    SimplifyGraph(flat.graph);
    flat.attributes.RetainOnly(ReadAttributeNames(flat.graph));

    for (Node* node : AllNodes(flat.graph)) {
      if (node->kind() == c10::prim::GetAttr && IsModuleType(node->output()->type())) {
        return absl::UnimplementedError(absl::StrCat(
            "the model's forward uses submodule '",
            GetAttrPath(node->output()).value_or(node->s(c10::attr::name)),
            "' as a value (not only through its attributes and methods)"));
      }
    }
    return flat;
  });
}

FlatModel CopyFlatModel(const FlatModel& flat, GraphCopyMap* map) {
  FlatModel copy{flat.graph->copy(), flat.attributes};
  // Graph::copy keeps the order of inputs, nodes, blocks and outputs, so walking both graphs in
  // step pairs every value with its copy.
  for (size_t i = 0; i < flat.graph->inputs().size(); ++i) {
    map->values[flat.graph->inputs()[i]] = copy.graph->inputs()[i];
  }
  std::shared_ptr<Graph> original_graph = flat.graph;
  std::vector<Node*> originals = AllNodes(original_graph);
  std::vector<Node*> copies = AllNodes(copy.graph);
  for (size_t n = 0; n < originals.size(); ++n) {
    const Node* original = originals[n];
    Node* mirror = copies[n];
    map->nodes[original] = mirror;
    for (size_t i = 0; i < original->outputs().size(); ++i) {
      map->values[original->outputs()[i]] = mirror->outputs()[i];
    }
    for (size_t b = 0; b < original->blocks().size(); ++b) {
      const torch::jit::Block* block = original->blocks()[b];
      for (size_t i = 0; i < block->inputs().size(); ++i) {
        map->values[block->inputs()[i]] = mirror->blocks()[b]->inputs()[i];
      }
    }
  }
  return copy;
}

absl::StatusOr<torch::jit::Module> BuildModule(const FlatModel& flat,
                                               const std::string& class_name) {
  return CallTorch("building the rewritten module", [&] {
    return BuildModuleFromGraph(flat.graph->copy(), flat.attributes, class_name);
  });
}

absl::StatusOr<torch::jit::Module> BuildProbeModule(const FlatModel& flat,
                                                    const std::vector<Value*>& probes) {
  return CallTorch("building a probe of intermediate values",
                   [&]() -> absl::StatusOr<torch::jit::Module> {
    GraphCopyMap map;
    FlatModel copy_model = CopyFlatModel(flat, &map);
    std::shared_ptr<Graph> copy = copy_model.graph;
    const auto& copied = map.values;
    std::vector<Value*> returned{copy->outputs()[0]};
    for (Value* probe : probes) {
      const auto it = copied.find(probe);
      if (it == copied.end() || probe->node()->owningBlock() != flat.graph->block()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "value %", probe->debugName(), " is not a top-level value of the graph"));
      }
      returned.push_back(it->second);
    }
    Node* tuple = copy->createTuple(returned);
    copy->appendNode(tuple);
    copy->eraseOutput(0);
    copy->registerOutput(tuple->output());
    return BuildModuleFromGraph(copy, flat.attributes, "Probe");
  });
}

absl::StatusOr<std::vector<at::Tensor>> RunProbeModule(torch::jit::Module& probe_module,
                                                       const at::Tensor& input) {
  absl::StatusOr<std::vector<at::Tensor>> result =
      CallTorch("running the model", [&]() -> absl::StatusOr<std::vector<at::Tensor>> {
        at::NoGradGuard no_grad;
        const c10::IValue output = probe_module.forward({input});
        std::vector<at::Tensor> tensors;
        for (const c10::IValue& item : output.toTupleRef().elements()) {
          if (!item.isTensor()) {
            return absl::InvalidArgumentError(
                absl::StrCat("an observed value is a ", item.tagKind(), ", not a tensor"));
          }
          at::Tensor tensor = item.toTensor();
          tensors.push_back(tensor.is_quantized() ? tensor.dequantize() : tensor);
        }
        return tensors;
      });
  if (!result.ok() && result.status().code() == absl::StatusCode::kInternal) {
    return absl::InvalidArgumentError(result.status().message());
  }
  return result;
}

}  // namespace polaris::quantization::internal
