#include "sparse/export.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/Parallel.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/substitute.h"
#include "core/graph_utils.h"
#include "core/layer_analysis.h"
#include "core/model_io.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "sparse/formats.h"
#include "sparse/kernels.h"
#include "torch/csrc/jit/frontend/resolver.h"
#include "torch/csrc/jit/frontend/sugared_value.h"
#include "torch/csrc/jit/ir/ir.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"
#include "torch/csrc/jit/passes/inliner.h"

namespace polaris::sparse {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Resolves the name `polaris` in TorchScript source to the polaris operator namespace, so
// helper methods can call polaris.sparse_linear_csr(...). Other names resolve as usual, because
// Module::define's default resolver finds only builtins.
class PolarisResolver : public torch::jit::Resolver {
 public:
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(
      const std::string& name, torch::jit::GraphFunction& function,
      const torch::jit::SourceRange& location) override {
    if (name == "polaris") return std::make_shared<torch::jit::BuiltinModule>("polaris");
    return torch::jit::nativeResolver()->resolveValue(name, function, location);
  }

  c10::TypePtr resolveType(const std::string& name,
                           const torch::jit::SourceRange& location) override {
    return torch::jit::nativeResolver()->resolveType(name, location);
  }
};

absl::Status ValidateOptions(const SparseExportOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be at least 1, got ", options.batch_size));
  }
  if (!(options.min_sparsity >= 0 && options.min_sparsity < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_sparsity must lie in [0, 1), got ", options.min_sparsity));
  }
  if (options.block_rows < 1 || options.block_columns < 1) {
    return absl::InvalidArgumentError(absl::StrCat("block size must be at least 1 x 1, got ",
                                                   options.block_rows, " x ",
                                                   options.block_columns));
  }
  if (options.n < 1 || options.n > options.m || options.m > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "N:M export needs 1 <= N <= M <= 255, got N = ", options.n, ", M = ", options.m));
  }
  if (!(options.min_speedup > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_speedup must be positive, got ", options.min_speedup));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threads must be 0 (keep the current setting) or positive, got ", options.threads));
  }
  if (options.example_shape.empty()) {
    return absl::InvalidArgumentError(
        "example_shape is empty; give the shape of one input example, e.g. {1, 28, 28}");
  }
  return absl::OkStatus();
}

// A Linear or Conv2d node of the inlined forward graph whose weight is a module attribute.
struct LayerSite {
  Node* node = nullptr;
  bool is_conv = false;
  std::string weight_path;
  std::string layer;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  // The convolution's arguments are constants (always true for Linear).
  bool constant_arguments = true;
};

std::vector<LayerSite> FindLayerSites(Graph& graph) {
  std::vector<LayerSite> sites;
  for (Node* node : graph.nodes()) {
    const bool linear = node->kind() == c10::aten::linear;
    const bool conv = node->kind() == c10::aten::conv2d;
    const bool convolution = node->kind() == c10::aten::_convolution;
    if (!linear && !conv && !convolution) continue;
    std::optional<std::string> path = GetAttrPath(node->input(1));
    if (!path.has_value()) continue;
    LayerSite site;
    site.node = node;
    site.is_conv = !linear;
    site.weight_path = *path;
    const size_t dot = path->rfind('.');
    site.layer = dot == std::string::npos ? *path : path->substr(0, dot);
    if (site.is_conv) {
      site.stride = ConstantIntList(node, 3);
      site.padding = ConstantIntList(node, 4);
      site.dilation = ConstantIntList(node, 5);
      // aten::_convolution(input, weight, bias, stride, padding, dilation, transposed,
      // output_padding, groups, ...); only untransposed convolutions qualify.
      const size_t groups_index = conv ? 6 : 8;
      std::optional<c10::IValue> groups = ConstantInput(node, groups_index);
      bool transposed = false;
      if (convolution) {
        std::optional<c10::IValue> flag = ConstantInput(node, 6);
        transposed = !flag.has_value() || !flag->isBool() || flag->toBool();
      }
      site.constant_arguments = site.stride.size() == 2 && site.padding.size() == 2 &&
                                site.dilation.size() == 2 && groups.has_value() &&
                                groups->isInt() && !transposed;
      if (groups.has_value() && groups->isInt()) site.groups = groups->toInt();
    }
    sites.push_back(site);
  }
  return sites;
}

// Counts, for each attribute path, the nodes other than prim::GetAttr that use it, anywhere in
// the graph (nested blocks included).
void CountAttributeUses(torch::jit::Block* block, std::map<std::string, int>& uses) {
  for (Node* node : block->nodes()) {
    if (node->kind() != c10::prim::GetAttr) {
      for (Value* input : node->inputs()) {
        if (std::optional<std::string> path = GetAttrPath(input)) ++uses[*path];
      }
    }
    for (torch::jit::Block* nested : node->blocks()) CountAttributeUses(nested, uses);
  }
  for (Value* output : block->outputs()) {
    if (std::optional<std::string> path = GetAttrPath(output)) ++uses[*path];
  }
}

// A fresh attribute-name prefix for `layer`: "polaris_layer1_conv2", with a number appended if
// the model already has attributes of that name.
std::string AttributePrefix(const torch::jit::Module& model, const std::string& layer) {
  const std::string base = absl::StrCat("polaris_", absl::StrReplaceAll(layer, {{".", "_"}}));
  std::string prefix = base;
  for (int suffix = 2; model.type()->hasAttribute(prefix + "_values") ||
                       model.type()->findMethod(prefix) != nullptr;
       ++suffix) {
    prefix = absl::StrCat(base, "_", suffix);
  }
  return prefix;
}

std::string FormatList(const std::vector<int64_t>& values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

// Median milliseconds of `run`, under InferenceMode like deployed inference.
absl::StatusOr<double> MedianMs(const std::function<at::Tensor()>& run,
                                const LatencyOptions& options) {
  POLARIS_ASSIGN_OR_RETURN(LatencyStats stats, MeasureLatency(
                                                   [&]() -> absl::Status {
                                                     return CallTorch("timing a layer", [&] {
                                                       c10::InferenceMode guard;
                                                       run();
                                                     });
                                                   },
                                                   options));
  return stats.median_ms;
}

// One way to run a layer, with the tensors it stores.
struct Variant {
  std::string format;
  std::function<at::Tensor(const at::Tensor&)> run;
  int64_t bytes = 0;
  // TorchScript expression of the call, with $input and $bias for the layer's input and bias,
  // and the tensors it reads as attributes named <prefix>_<name>.
  std::string call;
  std::vector<std::pair<std::string, at::Tensor>> attributes;
  double ms = 0;
};

// The sparse variants the options allow for a layer.
std::vector<Variant> SparseVariants(const LayerSite& site, const at::Tensor& weight,
                                    const at::Tensor& bias, const SparseExportOptions& options,
                                    std::string& note) {
  std::vector<Variant> variants;
  const bool want_csr =
      std::count(options.formats.begin(), options.formats.end(), SparseFormat::kCsr) > 0;
  const bool want_bsr =
      std::count(options.formats.begin(), options.formats.end(), SparseFormat::kBsr) > 0;
  const bool want_nm =
      std::count(options.formats.begin(), options.formats.end(), SparseFormat::kNm) > 0;
  const int64_t columns = weight.numel() / weight.size(0);
  absl::StatusOr<CsrMatrix> csr = ToCsr(weight);
  if (!csr.ok()) {
    note = std::string(csr.status().message());
    return variants;
  }

  if (site.is_conv) {
    if (!want_csr) return variants;
    Conv2dParams params;
    params.kernel_height = weight.size(2);
    params.kernel_width = weight.size(3);
    params.stride_height = site.stride[0];
    params.stride_width = site.stride[1];
    params.padding_height = site.padding[0];
    params.padding_width = site.padding[1];
    params.dilation_height = site.dilation[0];
    params.dilation_width = site.dilation[1];
    const CsrMatrix matrix = *csr;
    for (ConvMethod method : {ConvMethod::kIm2col, ConvMethod::kDirect}) {
      const bool direct = method == ConvMethod::kDirect;
      Variant variant;
      variant.format = direct ? "csr-direct" : "csr";
      variant.run = [matrix, params, bias, method](const at::Tensor& x) {
        return internal::CsrConv2d(x, matrix, params, bias, internal::BestKernelIsa(), method);
      };
      variant.bytes = StorageBytes(matrix);
      variant.call = absl::StrCat(
          direct ? "polaris.sparse_conv2d_csr_direct" : "polaris.sparse_conv2d_csr",
          "($input, self.$prefix_row_offsets, self.$prefix_column_indices, self.$prefix_values, "
          "$bias, ",
          FormatList({params.kernel_height, params.kernel_width}), ", ", FormatList(site.stride),
          ", ", FormatList(site.padding), ", ", FormatList(site.dilation), ")");
      variant.attributes = {{"row_offsets", matrix.row_offsets},
                            {"column_indices", matrix.column_indices},
                            {"values", matrix.values}};
      variants.push_back(variant);
    }
    return variants;
  }

  if (want_csr) {
    const CsrMatrix matrix = *csr;
    Variant variant;
    variant.format = "csr";
    variant.run = [matrix, bias](const at::Tensor& x) {
      return internal::CsrLinear(x, matrix, bias, internal::BestKernelIsa());
    };
    variant.bytes = StorageBytes(matrix);
    variant.call = absl::StrCat(
        "polaris.sparse_linear_csr($input, self.$prefix_row_offsets, "
        "self.$prefix_column_indices, self.$prefix_values, $bias, ",
        columns, ")");
    variant.attributes = {{"row_offsets", matrix.row_offsets},
                          {"column_indices", matrix.column_indices},
                          {"values", matrix.values}};
    variants.push_back(variant);
  }
  if (want_bsr && weight.size(0) % options.block_rows == 0 &&
      columns % options.block_columns == 0) {
    absl::StatusOr<BsrMatrix> bsr = ToBsr(weight, options.block_rows, options.block_columns);
    // Blocks that store more than twice the nonzeros cannot beat CSR; do not time them.
    const int64_t stored =
        bsr.ok() ? bsr->blocks() * options.block_rows * options.block_columns : 0;
    if (bsr.ok() && stored <= 2 * std::max<int64_t>(1, csr->nnz())) {
      const BsrMatrix matrix = *bsr;
      Variant variant;
      variant.format = absl::StrCat("bsr", options.block_rows, "x", options.block_columns);
      variant.run = [matrix, bias](const at::Tensor& x) {
        return internal::BsrLinear(x, matrix, bias, internal::BestKernelIsa());
      };
      variant.bytes = StorageBytes(matrix);
      variant.call = absl::StrCat(
          "polaris.sparse_linear_bsr($input, self.$prefix_row_offsets, "
          "self.$prefix_column_indices, self.$prefix_values, $bias, ",
          columns, ")");
      variant.attributes = {{"row_offsets", matrix.row_offsets},
                            {"column_indices", matrix.column_indices},
                            {"values", matrix.values}};
      variants.push_back(variant);
    }
  }
  if (want_nm && columns % options.m == 0) {
    absl::StatusOr<NmMatrix> nm = ToNm(weight, options.n, options.m);
    if (nm.ok()) {
      const NmMatrix matrix = *nm;
      Variant variant;
      variant.format = absl::StrCat("nm", options.n, ":", options.m);
      variant.run = [matrix, bias](const at::Tensor& x) {
        return internal::NmLinear(x, matrix, bias, internal::BestKernelIsa());
      };
      variant.bytes = StorageBytes(matrix);
      variant.call = absl::StrCat(
          "polaris.sparse_linear_nm($input, self.$prefix_values, "
          "self.$prefix_indices, $bias, ",
          columns, ", ", options.n, ", ", options.m, ")");
      variant.attributes = {{"values", matrix.values}, {"indices", matrix.indices}};
      variants.push_back(variant);
    }
  }
  return variants;
}

// The input of a layer at the options' batch size, from the shape the analysis probe saw.
std::optional<at::Tensor> LayerInput(const LayerSite& site, const LayerInfo* info,
                                     const at::Tensor& weight, int64_t batch) {
  std::vector<int64_t> shape;
  if (info != nullptr && !info->input_shape.empty()) {
    shape = info->input_shape;
  } else if (!site.is_conv) {
    shape = {1, weight.size(1)};
  } else {
    return std::nullopt;
  }
  shape[0] = batch;
  return at::randn(shape);
}

// Replaces `site`'s node by a call of the helper method `method` on self with the node's
// input and bias.
void ReplaceWithMethodCall(Graph& graph, const LayerSite& site, const std::string& method) {
  Node* node = site.node;
  Node* call =
      graph.create(c10::prim::CallMethod, {graph.inputs()[0], node->input(0), node->input(2)}, 1);
  call->s_(c10::attr::name, method);
  call->output()->setType(c10::TensorType::get());
  call->insertBefore(node);
  node->output()->replaceAllUsesWith(call->output());
  node->destroy();
}

// Replaces the weight input of `site`'s node by a call of the weight method `method` on self.
void ReplaceWeightWithMethodCall(Graph& graph, const LayerSite& site, const std::string& method) {
  Node* call = graph.create(c10::prim::CallMethod, {graph.inputs()[0]}, 1);
  call->s_(c10::attr::name, method);
  call->output()->setType(c10::TensorType::get());
  call->insertBefore(site.node);
  site.node->replaceInput(1, call->output());
}

// Decides, times and rewrites one layer. Returns its decision.
absl::StatusOr<LayerExportDecision> ExportLayer(torch::jit::Module& exported, Graph& graph,
                                                const LayerSite& site, const LayerInfo* info,
                                                int uses, const SparseExportOptions& options) {
  LayerExportDecision decision;
  decision.layer = site.layer;
  decision.kind = site.is_conv ? "conv2d" : "linear";
  decision.format = "dense";
  POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(exported, site.weight_path));
  weight = weight.detach();
  decision.bytes_before = static_cast<int64_t>(weight.nbytes());
  decision.bytes_after = decision.bytes_before;
  if (weight.scalar_type() != at::kFloat || weight.dim() < 2 || weight.numel() == 0) {
    decision.note = "weight is not a non-empty float32 matrix; left unchanged";
    return decision;
  }
  decision.sparsity = Sparsity(weight);
  if (uses != 1) {
    decision.note =
        absl::StrCat("the weight is used by ", uses, " operations in the graph; left unchanged");
    return decision;
  }
  if (decision.sparsity < options.min_sparsity) {
    decision.note = absl::StrFormat("sparsity %.3f is below min_sparsity %.3f; left unchanged",
                                    decision.sparsity, options.min_sparsity);
    return decision;
  }

  const c10::optional<c10::IValue> bias_value = torch::jit::toIValue(site.node->input(2));
  at::Tensor bias;
  if (std::optional<std::string> bias_path = GetAttrPath(site.node->input(2))) {
    POLARIS_ASSIGN_OR_RETURN(bias, FindTensor(exported, *bias_path));
    bias = bias.detach().contiguous();
  } else if (!bias_value.has_value() || !bias_value->isNone()) {
    decision.note = "the bias is computed in the graph; only the weight storage was compacted";
  }
  const bool bias_known = bias.defined() || (bias_value.has_value() && bias_value->isNone());

  std::vector<Variant> variants;
  std::optional<at::Tensor> input;
  if (!bias_known) {
    // Timing needs the bias value; keep the layer dense.
  } else if (site.is_conv && (!site.constant_arguments || site.groups != 1)) {
    decision.note =
        "convolution with groups != 1, transposed or non-constant arguments has "
        "no sparse kernel; weight storage compacted only";
  } else if (!(input = LayerInput(site, info, weight, options.batch_size)).has_value()) {
    decision.note = "the layer was not reached by the example input, so it was not timed";
  } else {
    variants = SparseVariants(site, weight, bias, options, decision.note);
  }

  if (!variants.empty()) {
    const at::Tensor x = *input;
    const std::vector<int64_t> stride = site.stride;
    const std::vector<int64_t> padding = site.padding;
    const std::vector<int64_t> dilation = site.dilation;
    const bool is_conv = site.is_conv;
    POLARIS_ASSIGN_OR_RETURN(
        decision.dense_ms, MedianMs(
                               [&] {
                                 return is_conv
                                            ? at::conv2d(x, weight, bias, stride, padding, dilation)
                                            : at::linear(x, weight, bias);
                               },
                               options.timing));
    for (Variant& variant : variants) {
      POLARIS_ASSIGN_OR_RETURN(variant.ms,
                               MedianMs([&] { return variant.run(x); }, options.timing));
    }
    const Variant& fastest =
        *std::min_element(variants.begin(), variants.end(),
                          [](const Variant& a, const Variant& b) { return a.ms < b.ms; });
    decision.sparse_ms = fastest.ms;
    if (decision.dense_ms >= options.min_speedup * fastest.ms) {
      const std::string prefix = AttributePrefix(exported, site.layer);
      for (const auto& [name, tensor] : fastest.attributes) {
        exported.register_buffer(absl::StrCat(prefix, "_", name), tensor);
      }
      const std::string call = absl::StrReplaceAll(
          fastest.call, {{"$input", "input"}, {"$bias", "bias"}, {"$prefix", prefix}});
      exported.define(absl::StrCat("def ", prefix,
                                   "(self, input: Tensor, bias: Optional[Tensor]) -> Tensor:\n"
                                   "    return ",
                                   call, "\n"),
                      std::make_shared<PolarisResolver>());
      ReplaceWithMethodCall(graph, site, prefix);
      decision.format = fastest.format;
      decision.uses_sparse_kernel = true;
      decision.bytes_after = fastest.bytes;
      return decision;
    }
    decision.note = absl::StrFormat("dense was faster (%.3f ms) than %s (%.3f ms)",
                                    decision.dense_ms, fastest.format, fastest.ms);
  }

  // Dense layer: store the weight as bitmap plus values, expanded once on first use.
  POLARIS_ASSIGN_OR_RETURN(BitmapMatrix bitmap, ToBitmap(weight));
  if (StorageBytes(bitmap) >= decision.bytes_before) return decision;
  const std::string prefix = AttributePrefix(exported, site.layer);
  exported.register_buffer(prefix + "_bitmap", bitmap.bitmap);
  exported.register_buffer(prefix + "_values", bitmap.values);
  exported.register_attribute(prefix + "_weight_cache", c10::OptionalType::ofTensor(),
                              c10::IValue());
  exported.define(absl::Substitute(R"(
def $0(self) -> Tensor:
    cached = self.$0_weight_cache
    if cached is None:
        weight = polaris.sparse_densify_bitmap(self.$0_values, self.$0_bitmap, $1)
        self.$0_weight_cache = weight
        return weight
    else:
        return cached
)",
                                   prefix, FormatList(bitmap.shape)),
                  std::make_shared<PolarisResolver>());
  ReplaceWeightWithMethodCall(graph, site, prefix);
  decision.format = "dense-bitmap";
  decision.bytes_after = StorageBytes(bitmap);
  return decision;
}

// Returns the tensor at the attribute path of `value`, or an undefined tensor when `value` is
// not a tensor attribute.
at::Tensor AttributeTensor(const torch::jit::Module& model, const Value* value) {
  std::optional<std::string> path = GetAttrPath(value);
  if (!path.has_value()) return at::Tensor();
  absl::StatusOr<at::Tensor> tensor = FindTensor(model, *path);
  return tensor.ok() ? tensor->detach() : at::Tensor();
}

// Returns true when the boolean graph input `value` is false in inference: a constant false,
// or a `training` attribute (false after eval()).
bool IsInferenceFlag(const torch::jit::Module& model, const Value* value) {
  // torch::jit::toIValue returns c10::optional. Keep that type: converting it to std::optional
  // would wrap an empty result in a None IValue, because IValue converts from c10::optional.
  if (c10::optional<c10::IValue> constant = torch::jit::toIValue(value)) {
    return constant->isBool() && !constant->toBool();
  }
  std::optional<std::string> path = GetAttrPath(value);
  if (!path.has_value()) return false;
  const size_t dot = path->rfind('.');
  const std::string name = dot == std::string::npos ? *path : path->substr(dot + 1);
  if (name != "training") return false;
  absl::StatusOr<torch::jit::Module> owner =
      FindSubmodule(model, dot == std::string::npos ? "" : path->substr(0, dot));
  return owner.ok() && !owner->is_training();
}

// Folds every aten::batch_norm that runs in inference mode on the output of a convolution
// (used by nothing else) into that convolution: W' = W * s and b' = (b - mean) * s + beta per
// output channel, with s = gamma / sqrt(running_var + eps). The folded weight replaces the
// convolution's weight attribute; the folded bias becomes a new attribute of `model`. Layers
// whose parameters are not plain attributes are left alone.
absl::Status FoldBatchNorms(torch::jit::Module& model, Graph& graph) {
  std::vector<Node*> norms;
  for (Node* node : graph.nodes()) {
    if (node->kind() == c10::aten::batch_norm) norms.push_back(node);
  }
  for (Node* norm : norms) {
    Node* conv = norm->input(0)->node();
    const bool is_conv =
        conv->kind() == c10::aten::conv2d || conv->kind() == c10::aten::_convolution;
    if (!is_conv || conv->output()->uses().size() != 1) continue;
    // aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum,
    // eps, cudnn_enabled)
    c10::optional<c10::IValue> eps = torch::jit::toIValue(norm->input(7));
    const at::Tensor gamma = AttributeTensor(model, norm->input(1));
    const at::Tensor beta = AttributeTensor(model, norm->input(2));
    const at::Tensor mean = AttributeTensor(model, norm->input(3));
    const at::Tensor variance = AttributeTensor(model, norm->input(4));
    std::optional<std::string> weight_path = GetAttrPath(conv->input(1));
    if (!eps.has_value() || !eps->isDouble() || !mean.defined() || !variance.defined() ||
        !weight_path.has_value() || !IsInferenceFlag(model, norm->input(5))) {
      continue;
    }
    POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, *weight_path));
    weight = weight.detach();
    at::Tensor bias = AttributeTensor(model, conv->input(2));
    if (!bias.defined() && !conv->input(2)->type()->cast<c10::NoneType>()) continue;

    const at::Tensor scale =
        (gamma.defined() ? gamma : at::ones_like(mean)) / at::sqrt(variance + eps->toDouble());
    const at::Tensor folded_weight = weight * scale.reshape({-1, 1, 1, 1}).to(weight.scalar_type());
    const at::Tensor folded_bias = ((bias.defined() ? bias : at::zeros_like(mean)) - mean) * scale +
                                   (beta.defined() ? beta : at::zeros_like(mean));
    POLARIS_RETURN_IF_ERROR(SetTensor(model, *weight_path, folded_weight));
    const size_t dot = weight_path->rfind('.');
    const std::string layer = dot == std::string::npos ? *weight_path : weight_path->substr(0, dot);
    const std::string bias_name = AttributePrefix(model, layer) + "_folded_bias";
    model.register_buffer(bias_name, folded_bias.contiguous());

    torch::jit::WithInsertPoint guard(conv);
    conv->replaceInput(2, graph.insertGetAttr(graph.inputs()[0], bias_name));
    norm->output()->replaceAllUsesWith(conv->output());
    // Dead-code elimination keeps batch_norm, whose schema lets it update the running
    // statistics, so the folded node is removed here.
    norm->destroy();
  }
  return absl::OkStatus();
}

// Largest absolute difference between the outputs of copies of `model` and `exported` on a
// random batch, both in eval mode without gradients.
absl::StatusOr<double> MaxOutputDifference(const torch::jit::Module& model,
                                           const torch::jit::Module& exported,
                                           const at::Tensor& input, double& output_scale) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module original, CloneModel(model));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module rewritten, CloneModel(exported));
  return CallTorch("comparing the exported model with the input model", [&] {
    c10::InferenceMode guard;
    original.eval();
    rewritten.eval();
    const at::Tensor expected = original.forward({input}).toTensor();
    const at::Tensor actual = rewritten.forward({input}).toTensor();
    output_scale = expected.abs().max().item<double>();
    return (expected - actual).abs().max().item<double>();
  });
}

// Restores LibTorch's and OpenBLAS's thread counts when it goes out of scope.
class ThreadScope {
 public:
  ThreadScope() : previous_(at::get_num_threads()) {}
  ~ThreadScope() { SetThreads(previous_).IgnoreError(); }

 private:
  int previous_;
};

}  // namespace

std::string SparseFormatName(SparseFormat format) {
  switch (format) {
    case SparseFormat::kCsr:
      return "csr";
    case SparseFormat::kBsr:
      return "bsr";
    case SparseFormat::kNm:
      return "nm";
  }
  return "unknown";
}

absl::StatusOr<SparseExportResult> ExportSparseModel(const torch::jit::Module& model,
                                                     const SparseExportOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  ThreadScope restore_threads;
  if (options.threads > 0) POLARIS_RETURN_IF_ERROR(SetThreads(options.threads));

  std::vector<int64_t> example_shape = {1};
  example_shape.insert(example_shape.end(), options.example_shape.begin(),
                       options.example_shape.end());
  const at::Tensor example = at::randn(example_shape);
  absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(model, example);
  if (!analysis.ok()) {
    return Annotate(analysis.status(),
                    absl::StrCat("sparse export: running the model on an example of shape ",
                                 FormatList(example_shape)));
  }
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module exported, CloneModel(model));

  SparseExportResult result;
  result.threads = at::get_num_threads();
  POLARIS_ASSIGN_OR_RETURN(result.size_before, MeasureModelSize(model));
  POLARIS_RETURN_IF_ERROR(CallTorch("rewriting the forward graph", [&]() -> absl::Status {
    std::shared_ptr<Graph> graph = exported.get_method("forward").graph();
    torch::jit::Inline(*graph);
    exported.eval();
    if (options.fold_batch_norm) {
      POLARIS_RETURN_IF_ERROR(FoldBatchNorms(exported, *graph));
      torch::jit::EliminateDeadCode(graph);
    }
    const std::vector<LayerSite> sites = FindLayerSites(*graph);
    if (sites.empty()) {
      return absl::InvalidArgumentError(
          "the model has no Linear or Conv2d layer whose weight is a module attribute "
          "(an empty model); there is nothing to export");
    }
    std::map<std::string, int> uses;
    CountAttributeUses(graph->block(), uses);
    std::map<std::string, const LayerInfo*> infos;
    for (const LayerInfo& info : analysis->layers) infos.emplace(info.weight_path, &info);

    std::vector<std::string> replaced_weights;
    for (const LayerSite& site : sites) {
      const auto info = infos.find(site.weight_path);
      absl::StatusOr<LayerExportDecision> decision =
          ExportLayer(exported, *graph, site, info == infos.end() ? nullptr : info->second,
                      uses[site.weight_path], options);
      if (!decision.ok()) {
        return Annotate(decision.status(), absl::StrCat("exporting layer ", site.layer));
      }
      if (decision->format != "dense") replaced_weights.push_back(site.weight_path);
      result.layers.push_back(*decision);
    }
    torch::jit::EliminateDeadCode(graph);

    // Forward no longer reads the replaced weights. They become empty tensors, so the
    // submodules' types stay intact while the file drops their data.
    std::map<std::string, int> remaining;
    CountAttributeUses(graph->block(), remaining);
    for (const std::string& path : replaced_weights) {
      if (remaining[path] != 0) {
        return absl::InternalError(absl::StrCat("the rewritten graph still reads ", path));
      }
      POLARIS_RETURN_IF_ERROR(SetTensor(exported, path, at::empty({0})));
    }
    exported.eval();
    return absl::OkStatus();
  }));

  const at::Tensor check_input = at::randn([&] {
    std::vector<int64_t> shape = example_shape;
    shape[0] = std::min<int64_t>(options.batch_size, 8);
    return shape;
  }());
  double output_scale = 0;
  POLARIS_ASSIGN_OR_RETURN(result.max_output_difference,
                           MaxOutputDifference(model, exported, check_input, output_scale));
  // Sparse kernels sum in another order than dense GEMM; a relative 1e-3 is far above float
  // rounding for these depths and far below any real error.
  if (!(result.max_output_difference <= 1e-3 * std::max(1.0, output_scale))) {
    return absl::InternalError(absl::StrFormat(
        "the exported model's outputs differ from the input model's by up to %g (output scale "
        "%g); this is a bug in the sparse export",
        result.max_output_difference, output_scale));
  }
  POLARIS_ASSIGN_OR_RETURN(result.size_after, MeasureModelSize(exported));
  result.model = exported;
  return result;
}

}  // namespace polaris::sparse
