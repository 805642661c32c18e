// A TorchScript model reduced to one forward graph over attributes of one module, which the
// model-level quantization passes rewrite and then turn back into a module.
//
// FlattenModel inlines every method call of `forward` and turns the non-tensor attributes it
// reads (the `training` flag, BatchNorm's momentum, a padding mode) into constants, which
// removes the control flow they decided. Every tensor or object attribute it reads gets a flat
// name on the root: "layer1.conv1.weight" becomes "layer1_conv1_weight". Passes then edit
// `graph` and `attributes`, and BuildModule makes a fresh module that holds only the attributes
// the final graph reads, so weights a pass replaced do not travel into the saved file.
//
//   POLARIS_ASSIGN_OR_RETURN(FlatModel flat, FlattenModel(user_model));
//   ... rewrite flat.graph, add packed weights with flat.attributes.AddUnique(...) ...
//   POLARIS_ASSIGN_OR_RETURN(torch::jit::Module quantized, BuildModule(flat, "QuantizedModel"));
#ifndef POLARIS_QUANTIZATION_INTERNAL_MODEL_GRAPH_H_
#define POLARIS_QUANTIZATION_INTERNAL_MODEL_GRAPH_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "ATen/core/Tensor.h"
#include "ATen/core/ivalue.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"
#include "torch/csrc/jit/ir/ir.h"

namespace polaris::quantization::internal {

// The attributes a flat graph reads through prim::GetAttr on its `self` input.
class AttributeTable {
 public:
  struct Entry {
    c10::IValue value;
    // Registered as a parameter (trained by core's Train) rather than a buffer or attribute.
    bool is_parameter = false;
    // Dotted path in the model the caller gave ("layer1.conv1.weight"); empty for attributes
    // that a pass created.
    std::string original_path;
  };

  // Returns the entry named `name`, or nullptr.
  const Entry* Find(const std::string& name) const;
  Entry* FindMutable(const std::string& name);

  // Adds `value` under `base_name`, or under `base_name` plus "_1", "_2", ... when the name is
  // taken, and returns the name used. `base_name` must be a Python identifier.
  std::string AddUnique(const std::string& base_name, c10::IValue value, bool is_parameter,
                        const std::string& original_path = "");

  // Replaces the value of an existing entry, keeping its other fields. Returns kInternal when
  // there is no entry `name`.
  absl::Status Replace(const std::string& name, c10::IValue value);

  // Removes the entries whose names are not in `names`.
  void RetainOnly(const std::set<std::string>& names);

  const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  std::map<std::string, Entry> entries_;
};

struct FlatModel {
  // Forward graph: input 0 is `self`, input 1.. the model's inputs. Every prim::GetAttr on
  // `self` names an entry of `attributes`; there are no other GetAttr chains and no method
  // calls. Passes may leave entries that the graph no longer reads; BuildModule drops them.
  std::shared_ptr<torch::jit::Graph> graph;
  AttributeTable attributes;
};

// Returns a flat copy of `model`'s forward in inference mode (the `training` flags of all
// submodules read as false). `model` is not changed, and the flat model holds copies of its
// tensors.
// Errors: kInvalidArgument when the model has no forward method. kUnimplemented, naming the
// attribute, when forward assigns to a module attribute (prim::SetAttr), calls a method
// through an interface, or uses a submodule as a value in another way.
absl::StatusOr<FlatModel> FlattenModel(const torch::jit::Module& model);

// Maps the values and nodes of a FlatModel's graph to those of a copy.
struct GraphCopyMap {
  std::unordered_map<const torch::jit::Value*, torch::jit::Value*> values;
  std::unordered_map<const torch::jit::Node*, torch::jit::Node*> nodes;

  torch::jit::Value* operator()(const torch::jit::Value* value) const { return values.at(value); }
  torch::jit::Node* operator()(const torch::jit::Node* node) const { return nodes.at(node); }
};

// Returns a copy of `flat` with its own graph (the attribute table shares tensors) and fills
// `map` with where every value and node of `flat.graph`, nested blocks included, went. Passes
// plan on one FlatModel and rewrite copies of it, so one prepared model serves many
// conversions.
FlatModel CopyFlatModel(const FlatModel& flat, GraphCopyMap* map);

// Builds a new module of class `__torch__.polaris.<class_name>` whose forward is a copy of
// `flat.graph`, holding the attributes that graph reads plus `training` (false). The module is
// in eval mode. Returns kInternal when the graph reads an attribute missing from the table.
absl::StatusOr<torch::jit::Module> BuildModule(const FlatModel& flat,
                                               const std::string& class_name);

// Builds a module like BuildModule whose forward returns a tuple: the model's output followed
// by `probes`, values of `flat.graph` (top-level node outputs or graph inputs). Calibration and
// error measurement run it to read intermediate activations. Returns kInvalidArgument when a
// probe is not a top-level value of the graph.
absl::StatusOr<torch::jit::Module> BuildProbeModule(const FlatModel& flat,
                                                    const std::vector<torch::jit::Value*>& probes);

// Runs a probe module on `input` without gradients and returns its tuple as tensors: [0] is
// the model output, [1 + i] probe i. A probe that is a quantized tensor is dequantized.
// Errors: kInvalidArgument with LibTorch's reason when the model cannot run on `input`.
absl::StatusOr<std::vector<at::Tensor>> RunProbeModule(torch::jit::Module& probe_module,
                                                       const at::Tensor& input);

// Returns a prim::GetAttr node reading `name` from the graph's `self` input, inserted at the
// graph's current insertion point, with output type `type`.
torch::jit::Value* InsertSelfGetAttr(torch::jit::Graph& graph, const std::string& name,
                                     const c10::TypePtr& type);

// Returns the name of the attribute `value` reads when it is produced by prim::GetAttr on the
// graph's `self`; std::nullopt otherwise.
std::optional<std::string> SelfAttributeName(const torch::jit::Value* value);

// Returns the tensor attribute `value` reads, or an undefined tensor when `value` is not a
// GetAttr of a tensor entry of `table`.
at::Tensor AttributeTensor(const AttributeTable& table, const torch::jit::Value* value);

// Makes a flat attribute name from a dotted path: "layer1.conv1.weight" ->
// "layer1_conv1_weight".
std::string FlatName(const std::string& dotted_path);

// Returns the names of the attributes the graph reads from `self`, nested blocks included.
std::set<std::string> ReadAttributeNames(std::shared_ptr<torch::jit::Graph>& graph);

// Runs the simplifications FlattenModel ends with: constant propagation, in-place activations
// made functional where no alias sees the difference, dead code elimination.
void SimplifyGraph(std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MODEL_GRAPH_H_
