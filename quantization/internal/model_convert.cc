#include "quantization/internal/model_convert.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/dispatch/Dispatcher.h"
#include "ATen/core/grad_mode.h"
#include "ATen/core/stack.h"
#include "ATen/ops/conv2d.h"
#include "ATen/ops/linear.h"
#include "absl/strings/str_cat.h"
#include "core/graph_utils.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/error_metrics.h"
#include "quantization/linear_int4.h"
#include "quantization/quantize.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"

namespace polaris::quantization::internal {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Use;
using torch::jit::Value;

c10::Symbol Op(const char* qualified_name) { return c10::Symbol::fromQualString(qualified_name); }

constexpr char kPolarisQuantize[] = "polaris::quant_quantize_per_tensor";
constexpr char kPolarisDequantize[] = "polaris::quant_dequantize";
constexpr char kPolarisLinearDynamic[] = "polaris::quant_linear_int8_dynamic";
constexpr char kPolarisLinearInt4[] = "polaris::quant_linear_int4";
constexpr char kPolarisLinearInt8[] = "polaris::quant_linear_int8";

bool IsRelu(const Node* node) { return node->kind() == c10::aten::relu; }

// aten::add(Tensor self, Tensor other, Scalar alpha) with alpha 1, the residual connection.
bool IsTensorAdd(const Node* node) {
  if (node->kind() != c10::aten::add || node->inputs().size() != 3) return false;
  for (size_t i = 0; i < 2; ++i) {
    if (node->input(i)->type()->cast<c10::TensorType>() == nullptr) return false;
  }
  const std::optional<c10::IValue> alpha = ConstantInput(node, 2);
  return alpha.has_value() && ((alpha->isInt() && alpha->toInt() == 1) ||
                               (alpha->isDouble() && alpha->toDouble() == 1.0));
}

// Operators that LibTorch runs on quantized tensors and whose output keeps the input's scale
// and zero point.
bool IsPassthrough(const Node* node) {
  const c10::Symbol kind = node->kind();
  if (kind == c10::aten::dropout) {
    const std::optional<c10::IValue> train = ConstantInput(node, 2);
    return train.has_value() && train->isBool() && !train->toBool();
  }
  return kind == c10::aten::relu || kind == c10::aten::max_pool2d ||
         kind == c10::aten::avg_pool2d || kind == c10::aten::adaptive_avg_pool2d ||
         kind == c10::aten::flatten || kind == c10::aten::reshape || kind == c10::aten::view ||
         kind == c10::aten::contiguous;
}

// The ReLU that is the only element-reading consumer of `value` in the top-level block.
Node* FusableRelu(const Value* value) {
  const std::vector<Use> uses = ValueUses(value);
  if (uses.size() != 1) return nullptr;
  Node* user = uses[0].user;
  if (!IsRelu(user) || uses[0].offset != 0) return nullptr;
  if (user->owningBlock() != value->node()->owningBlock()) return nullptr;
  return user;
}

std::string LayerType(const WeightLayer& layer) {
  return layer.kind == WeightLayerKind::kLinear ? "Linear" : "Conv2d";
}

ScaleSummary Summarize(const at::Tensor& scale) {
  const at::Tensor values = scale.to(at::kDouble);
  ScaleSummary summary;
  summary.min = values.min().item<double>();
  summary.max = values.max().item<double>();
  summary.mean = values.mean().item<double>();
  summary.count = values.numel();
  return summary;
}

int64_t Bytes(const at::Tensor& tensor) {
  return tensor.defined() ? static_cast<int64_t>(tensor.numel() * tensor.element_size()) : 0;
}

// Bytes a quantized weight tensor stores: its int8 values plus its scales and zero points.
int64_t QuantizedBytes(const at::Tensor& qweight) {
  int64_t bytes = qweight.numel();
  if (qweight.qscheme() == at::kPerChannelAffine) {
    bytes += Bytes(qweight.q_per_channel_scales()) + Bytes(qweight.q_per_channel_zero_points());
  } else {
    bytes += 8 + 8;  // one double scale and one int64 zero point
  }
  return bytes;
}

absl::Status CheckFinite(const at::Tensor& tensor, const std::string& what) {
  if (!tensor.defined() || at::isfinite(tensor).all().item<bool>()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, " contains NaN or Inf; fix the model's weights (retrain or reload them) before "
            "quantizing"));
}

c10::IValue CallOperator(const char* name, std::vector<c10::IValue> arguments) {
  const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  torch::jit::Stack stack(std::move(arguments));
  op.callBoxed(&stack);
  return stack.back();
}

double WeightSqnr(const at::Tensor& weight, const at::Tensor& effective) {
  absl::StatusOr<QuantizationError> error =
      MeasureQuantizationError(weight.to(at::kFloat), effective.to(at::kFloat));
  return error.ok() ? error->sqnr_db : std::nan("");
}

// Rewrites a copy of a flat model; see ConvertLayers.
class Converter {
 public:
  Converter(const FlatModel& flat, const std::vector<WeightLayer>& layers,
            const ConverterOptions& options, const LayerOverrides& overrides)
      : layers_(layers), options_(options), overrides_(overrides) {
    conversion_.model = CopyFlatModel(flat, &map_);
    graph_ = conversion_.model.graph.get();
  }

  absl::Status ConvertCompute(const Int8Plan::Compute& compute,
                              const std::vector<QuantParams>& site_params);
  absl::Status ConvertFloatOutputLinear(const Int8Plan::Compute& compute,
                                        const std::vector<QuantParams>& site_params,
                                        const at::Tensor& weight, const at::Tensor& bias,
                                        const QuantParams& params);
  absl::Status ConvertAdd(const Int8Plan::Add& add, const std::vector<QuantParams>& site_params);
  void MarkPassthrough(const Node* original);
  absl::Status ConvertFloatLayer(size_t index, LayerConversion conversion);
  void InsertDequantizes();

  Conversion Finish() {
    torch::jit::EliminateDeadCode(conversion_.model.graph);
    conversion_.model.attributes.RetainOnly(ReadAttributeNames(conversion_.model.graph));
    return std::move(conversion_);
  }

 private:
  Value* Quantize(Value* value, const QuantParams& params);
  Value* InsertAfter(Node* position, c10::Symbol op, std::vector<torch::jit::NamedValue> args);
  absl::StatusOr<at::Tensor> LayerWeight(const WeightLayer& layer, Node* node);
  at::Tensor LayerBias(Node* node);

  absl::StatusOr<QuantParams> WeightParams(size_t index, const at::Tensor& weight);

  const std::vector<WeightLayer>& layers_;
  ConverterOptions options_;
  const LayerOverrides& overrides_;
  Conversion conversion_;
  GraphCopyMap map_;
  Graph* graph_ = nullptr;
  // Values of the converted graph that hold int8 tensors, and the nodes that read them as such.
  std::unordered_set<Value*> int8_values_;
  std::unordered_set<Node*> int8_consumers_;
  std::unordered_map<Value*, Value*> quantized_inputs_;
};

Value* Converter::InsertAfter(Node* position, c10::Symbol op,
                              std::vector<torch::jit::NamedValue> args) {
  torch::jit::WithInsertPoint insert_point(position->next());
  return graph_->insert(op, args);
}

Value* Converter::Quantize(Value* value, const QuantParams& params) {
  const auto cached = quantized_inputs_.find(value);
  if (cached != quantized_inputs_.end()) return cached->second;
  const double scale = params.scale.item<double>();
  const int64_t zero_point = params.zero_point.item<int64_t>();
  Node* position = value->node();
  if (position->kind() == c10::prim::Param) position = graph_->param_node();
  Value* quantized =
      options_.use_polaris_ops
          ? InsertAfter(position, Op(kPolarisQuantize), {value, scale, zero_point})
          : InsertAfter(position, c10::aten::quantize_per_tensor,
                        {value, scale, zero_point, static_cast<int64_t>(at::kQUInt8)});
  int8_values_.insert(quantized);
  quantized_inputs_[value] = quantized;
  return quantized;
}

absl::StatusOr<at::Tensor> Converter::LayerWeight(const WeightLayer& layer, Node* node) {
  at::Tensor weight = AttributeTensor(conversion_.model.attributes, node->input(1));
  if (!weight.defined()) {
    return absl::InternalError(absl::StrCat("layer '", layer.name, "' lost its weight"));
  }
  weight = weight.detach().to(at::kFloat).contiguous();
  POLARIS_RETURN_IF_ERROR(CheckFinite(weight, absl::StrCat("the weight of '", layer.name, "'")));
  return weight;
}

absl::StatusOr<QuantParams> Converter::WeightParams(size_t index, const at::Tensor& weight) {
  const auto learned = overrides_.weight_params.find(index);
  if (learned == overrides_.weight_params.end()) {
    return ChooseWeightParams(weight, options_.weight_granularity, layers_[index].name);
  }
  POLARIS_RETURN_IF_ERROR(ValidateQuantParams(
      learned->second, weight, absl::StrCat("the weight of '", layers_[index].name, "'")));
  return learned->second;
}

at::Tensor Converter::LayerBias(Node* node) {
  at::Tensor bias = TensorValue(conversion_.model, node->input(2));
  // A copy, so that the converted model never shares storage with the caller's.
  return bias.defined() ? bias.detach().to(at::kFloat).clone() : bias;
}

absl::Status Converter::ConvertCompute(const Int8Plan::Compute& compute,
                                       const std::vector<QuantParams>& site_params) {
  const WeightLayer& layer = layers_[compute.layer];
  Node* node = map_(layer.node);
  Node* last = compute.relu != nullptr ? map_(compute.relu) : node;
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor weight, LayerWeight(layer, node));
  at::Tensor bias = LayerBias(node);
  POLARIS_RETURN_IF_ERROR(CheckFinite(bias, absl::StrCat("the bias of '", layer.name, "'")));
  const auto correction = overrides_.bias_corrections.find(compute.layer);
  if (correction != overrides_.bias_corrections.end()) {
    bias = (bias.defined() ? bias : at::zeros({weight.size(0)})) + correction->second;
  }
  POLARIS_ASSIGN_OR_RETURN(const QuantParams params, WeightParams(compute.layer, weight));
  if (HasFloatOutput(compute, layer, options_)) {
    return ConvertFloatOutputLinear(compute, site_params, weight, bias, params);
  }

  const at::Tensor qweight =
      params.per_channel()
          ? at::quantize_per_channel(weight, params.scale.to(at::kDouble),
                                     params.zero_point.to(at::kLong), 0, at::kQInt8)
          : at::quantize_per_tensor(weight, params.scale.item<double>(),
                                    params.zero_point.item<int64_t>(), at::kQInt8);
  const c10::IValue bias_value = bias.defined() ? c10::IValue(bias) : c10::IValue();
  const bool is_linear = layer.kind == WeightLayerKind::kLinear;
  const c10::IValue packed =
      is_linear ? CallOperator("quantized::linear_prepack", {qweight, bias_value})
                : CallOperator("quantized::conv2d_prepack",
                               {qweight, bias_value, layer.stride, layer.padding,
                                layer.dilation, layer.groups});
  const std::string attribute = conversion_.model.attributes.AddUnique(
      FlatName(layer.name) + "_packed_params", packed, /*is_parameter=*/false, layer.name);

  Value* input = node->input(0);
  if (compute.input_site.has_value()) input = Quantize(input, site_params[*compute.input_site]);
  const QuantParams& output_params = site_params[compute.output_site];
  const double output_scale = output_params.scale.item<double>();
  const int64_t output_zero_point = output_params.zero_point.item<int64_t>();
  const bool relu = compute.relu != nullptr;
  const char* op = is_linear ? (relu ? "quantized::linear_relu" : "quantized::linear")
                             : (relu ? "quantized::conv2d_relu" : "quantized::conv2d");
  Value* output;
  {
    // At the layer's own position: a fused ReLU may come later, after shape checks that read
    // the layer's output and now read the int8 output instead.
    torch::jit::WithInsertPoint insert_point(node);
    Value* packed_value = InsertSelfGetAttr(*graph_, attribute, packed.type());
    output = graph_->insert(Op(op), {input, packed_value, output_scale, output_zero_point});
  }
  last->output()->replaceAllUsesWith(output);
  node->output()->replaceAllUsesWith(output);
  if (relu) last->destroy();
  node->destroy();
  int8_values_.insert(output);
  int8_consumers_.insert(output->node());

  ConvertedLayer converted;
  converted.layer = compute.layer;
  converted.output = output;
  converted.reference_output =
      relu ? compute.relu->output() : layer.node->output();
  LayerReport& report = converted.report;
  report.name = layer.name;
  report.type = LayerType(layer);
  report.precision = LayerPrecision::kInt8;
  report.op = op;
  report.reason = "int8 with calibrated activations";
  report.weight_scales = Summarize(params.scale);
  report.output_scale = output_scale;
  report.output_zero_point = output_zero_point;
  report.weight_sqnr_db = WeightSqnr(weight, qweight.dequantize());
  report.bytes_before = Bytes(weight) + Bytes(bias);
  report.bytes_after = QuantizedBytes(qweight) + Bytes(bias);
  conversion_.layers.push_back(std::move(converted));
  return absl::OkStatus();
}

absl::Status Converter::ConvertFloatOutputLinear(const Int8Plan::Compute& compute,
                                                 const std::vector<QuantParams>& site_params,
                                                 const at::Tensor& weight, const at::Tensor& bias,
                                                 const QuantParams& params) {
  const WeightLayer& layer = layers_[compute.layer];
  Node* node = map_(layer.node);
  Node* last = compute.relu != nullptr ? map_(compute.relu) : node;
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor weight_int8, quantization::Quantize(weight, params));
  const at::Tensor weight_scale = params.scale.to(at::kFloat).clone();
  AttributeTable& attributes = conversion_.model.attributes;
  const std::string base = FlatName(layer.name);
  const std::string weight_name =
      attributes.AddUnique(base + "_weight_int8", weight_int8, false, layer.name + ".weight");
  const std::string scale_name =
      attributes.AddUnique(base + "_weight_scale", weight_scale, false, layer.name);
  const QuantParams& input_params = site_params[compute.input_params_site];

  Value* output;
  {
    torch::jit::WithInsertPoint insert_point(node);
    // The operator quantizes its float input with the input's parameters, so an int8 input is
    // dequantized first; quantizing it again gives back the same integers.
    Value* input = node->input(0);
    if (!compute.input_site.has_value()) {
      input = graph_->insert(Op(kPolarisDequantize), {input});
      int8_consumers_.insert(input->node());
    }
    Value* bias_value = graph_->insertConstant(c10::IValue());
    if (bias.defined()) {
      const std::string bias_name =
          attributes.AddUnique(base + "_bias", bias, false, layer.name + ".bias");
      bias_value = InsertSelfGetAttr(*graph_, bias_name, c10::TensorType::get());
    }
    output = graph_->insert(
        Op(kPolarisLinearInt8),
        {input, InsertSelfGetAttr(*graph_, weight_name, c10::TensorType::get()),
         InsertSelfGetAttr(*graph_, scale_name, c10::TensorType::get()), bias_value,
         input_params.scale.item<double>(), input_params.zero_point.item<int64_t>()});
    if (compute.relu != nullptr) output = graph_->insert(c10::aten::relu, {output});
  }
  last->output()->replaceAllUsesWith(output);
  node->output()->replaceAllUsesWith(output);
  if (compute.relu != nullptr) last->destroy();
  node->destroy();

  ConvertedLayer converted;
  converted.layer = compute.layer;
  converted.output = output;
  converted.reference_output =
      compute.relu != nullptr ? compute.relu->output() : layer.node->output();
  LayerReport& report = converted.report;
  report.name = layer.name;
  report.type = LayerType(layer);
  report.precision = LayerPrecision::kInt8;
  report.op = kPolarisLinearInt8;
  report.reason = "int8 with calibrated activations; float output, as the int8 region ends here";
  report.weight_scales = Summarize(params.scale);
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor dequantized, Dequantize(weight_int8, params));
  report.weight_sqnr_db = WeightSqnr(weight, dequantized);
  report.bytes_before = Bytes(weight) + Bytes(bias);
  report.bytes_after = Bytes(weight_int8) + Bytes(weight_scale) + Bytes(bias);
  conversion_.layers.push_back(std::move(converted));
  return absl::OkStatus();
}

absl::Status Converter::ConvertAdd(const Int8Plan::Add& add,
                                   const std::vector<QuantParams>& site_params) {
  Node* node = map_(add.node);
  Node* last = add.relu != nullptr ? map_(add.relu) : node;
  Value* operands[2];
  for (size_t i = 0; i < 2; ++i) {
    operands[i] = node->input(i);
    if (add.input_sites[i].has_value()) {
      operands[i] = Quantize(operands[i], site_params[*add.input_sites[i]]);
    }
  }
  const QuantParams& output_params = site_params[add.output_site];
  Value* output;
  {
    torch::jit::WithInsertPoint insert_point(node);
    output = graph_->insert(Op(add.relu != nullptr ? "quantized::add_relu" : "quantized::add"),
                            {operands[0], operands[1], output_params.scale.item<double>(),
                             output_params.zero_point.item<int64_t>()});
  }
  last->output()->replaceAllUsesWith(output);
  node->output()->replaceAllUsesWith(output);
  if (add.relu != nullptr) last->destroy();
  node->destroy();
  int8_values_.insert(output);
  int8_consumers_.insert(output->node());
  return absl::OkStatus();
}

void Converter::MarkPassthrough(const Node* original) {
  Node* node = map_(original);
  if (node->kind() == c10::aten::view) {
    // A view of an int8 tensor in LibTorch's channels-last layout is not always possible;
    // reshape gives the same values and copies only when it must.
    Value* reshaped = InsertAfter(node, c10::aten::reshape, {node->input(0), node->input(1)});
    node->output()->replaceAllUsesWith(reshaped);
    node->destroy();
    node = reshaped->node();
  }
  int8_values_.insert(node->output());
  int8_consumers_.insert(node);
}

absl::Status Converter::ConvertFloatLayer(size_t index, LayerConversion conversion) {
  const WeightLayer& layer = layers_[index];
  Node* node = map_(layer.node);
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor weight, LayerWeight(layer, node));
  const at::Tensor bias = LayerBias(node);
  POLARIS_RETURN_IF_ERROR(CheckFinite(bias, absl::StrCat("the bias of '", layer.name, "'")));
  const bool is_linear = layer.kind == WeightLayerKind::kLinear;
  const std::string base = FlatName(layer.name);
  AttributeTable& attributes = conversion_.model.attributes;

  ConvertedLayer converted;
  converted.layer = index;
  converted.reference_output = layer.node->output();
  LayerReport& report = converted.report;
  report.name = layer.name;
  report.type = LayerType(layer);
  report.precision = PrecisionOf(conversion);
  report.bytes_before = Bytes(weight) + Bytes(bias);

  if (conversion == LayerConversion::kBFloat16) {
    const at::Tensor weight_bf16 = weight.to(at::kBFloat16);
    const at::Tensor bias_bf16 = bias.defined() ? bias.to(at::kBFloat16) : bias;
    torch::jit::WithInsertPoint insert_point(node);
    Value* input = graph_->insert(c10::aten::to,
                                  {node->input(0), static_cast<int64_t>(at::kBFloat16)});
    node->replaceInput(0, input);
    const std::string weight_name =
        attributes.AddUnique(base + "_weight_bf16", weight_bf16, false, layer.name + ".weight");
    node->replaceInput(1, InsertSelfGetAttr(*graph_, weight_name, c10::TensorType::get()));
    if (bias.defined()) {
      const std::string bias_name =
          attributes.AddUnique(base + "_bias_bf16", bias_bf16, false, layer.name + ".bias");
      node->replaceInput(2, InsertSelfGetAttr(*graph_, bias_name, c10::TensorType::get()));
    }
    Value* output = InsertAfter(node, c10::aten::to,
                                {node->output(), static_cast<int64_t>(at::kFloat)});
    node->output()->replaceAllUsesAfterNodeWith(output->node(), output);
    converted.output = output;
    report.op = std::string(node->kind().toQualString()) + " (bfloat16)";
    report.reason = "bf16 weights and arithmetic";
    report.weight_sqnr_db = WeightSqnr(weight, weight_bf16.to(at::kFloat));
    report.bytes_after = Bytes(weight_bf16) + Bytes(bias_bf16);
  } else if (conversion == LayerConversion::kInt8Dynamic) {
    if (!is_linear) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dynamic int8 conversion covers Linear layers only, but '", layer.name,
          "' is a convolution"));
    }
    POLARIS_ASSIGN_OR_RETURN(const QuantParams params,
                             ChooseWeightParams(weight, options_.weight_granularity, layer.name));
    POLARIS_ASSIGN_OR_RETURN(at::Tensor weight_int8, quantization::Quantize(weight, params));
    at::Tensor weight_scale = params.scale.to(at::kFloat);
    if (!params.per_channel()) weight_scale = weight_scale.expand({weight.size(0)}).contiguous();
    const std::string weight_name = attributes.AddUnique(base + "_weight_int8", weight_int8,
                                                         false, layer.name + ".weight");
    const std::string scale_name =
        attributes.AddUnique(base + "_weight_scale", weight_scale, false, layer.name);
    Value* output;
    {
      torch::jit::WithInsertPoint insert_point(node);
      Value* bias_value = node->input(2);
      output = graph_->insert(
          Op(kPolarisLinearDynamic),
          {node->input(0), InsertSelfGetAttr(*graph_, weight_name, c10::TensorType::get()),
           InsertSelfGetAttr(*graph_, scale_name, c10::TensorType::get()), bias_value});
    }
    node->output()->replaceAllUsesWith(output);
    node->destroy();
    converted.output = output;
    POLARIS_ASSIGN_OR_RETURN(const at::Tensor dequantized, Dequantize(weight_int8, params));
    report.op = kPolarisLinearDynamic;
    report.reason = "int8 weights, input quantized at run time";
    report.weight_scales = Summarize(params.scale);
    report.weight_sqnr_db = WeightSqnr(weight, dequantized);
    report.bytes_after = Bytes(weight_int8) + Bytes(weight_scale) + Bytes(bias);
  } else if (conversion == LayerConversion::kInt4) {
    if (!is_linear) {
      return absl::InvalidArgumentError(absl::StrCat(
          "INT4 conversion covers Linear layers only, but '", layer.name, "' is a convolution"));
    }
    const int64_t group_size = options_.GroupSizeOf(layer.name);
    POLARIS_ASSIGN_OR_RETURN(const Int4Weights int4,
                             QuantizeInt4Groups(weight, group_size, layer.name));
    const std::string packed_name = attributes.AddUnique(base + "_weight_int4", int4.packed,
                                                         false, layer.name + ".weight");
    const std::string scale_name =
        attributes.AddUnique(base + "_weight_scale", int4.scale, false, layer.name);
    const std::string zero_point_name =
        attributes.AddUnique(base + "_weight_zero_point", int4.zero_point, false, layer.name);
    Value* output;
    {
      torch::jit::WithInsertPoint insert_point(node);
      output = graph_->insert(
          Op(kPolarisLinearInt4),
          {node->input(0), InsertSelfGetAttr(*graph_, packed_name, c10::TensorType::get()),
           InsertSelfGetAttr(*graph_, scale_name, c10::TensorType::get()),
           InsertSelfGetAttr(*graph_, zero_point_name, c10::TensorType::get()),
           group_size, node->input(2)});
    }
    node->output()->replaceAllUsesWith(output);
    node->destroy();
    converted.output = output;
    report.op = kPolarisLinearInt4;
    report.reason = absl::StrCat("group-wise INT4 weights (groups of ", group_size,
                                 "), float32 activations");
    report.weight_scales = Summarize(int4.scale);
    report.weight_sqnr_db = WeightSqnr(weight, int4.dequantized);
    report.bytes_after =
        Bytes(int4.packed) + Bytes(int4.scale) + Bytes(int4.zero_point) + Bytes(bias);
  } else {
    return absl::InternalError(absl::StrCat("layer '", layer.name, "' has no float conversion"));
  }
  conversion_.layers.push_back(std::move(converted));
  return absl::OkStatus();
}

void Converter::InsertDequantizes() {
  std::vector<Value*> values;
  for (Node* node : graph_->nodes()) {
    for (Value* output : node->outputs()) {
      if (int8_values_.count(output) > 0) values.push_back(output);
    }
  }
  for (Value* value : values) {
    std::vector<Use> float_uses;
    for (const Use& use : value->uses()) {
      if (int8_consumers_.count(use.user) > 0 || IsShapeQuery(use.user)) continue;
      float_uses.push_back(use);
    }
    if (float_uses.empty()) continue;
    Value* dequantized =
        options_.use_polaris_ops
            ? InsertAfter(value->node(), Op(kPolarisDequantize), {value})
            : InsertAfter(value->node(), c10::aten::dequantize, {value});
    for (const Use& use : float_uses) use.user->replaceInput(use.offset, dequantized);
  }
}

}  // namespace

LayerPrecision PrecisionOf(LayerConversion conversion) {
  switch (conversion) {
    case LayerConversion::kFloat32: return LayerPrecision::kFloat32;
    case LayerConversion::kBFloat16: return LayerPrecision::kBFloat16;
    case LayerConversion::kInt8Static:
    case LayerConversion::kInt8Dynamic: return LayerPrecision::kInt8;
    case LayerConversion::kInt4: return LayerPrecision::kInt4;
  }
  return LayerPrecision::kFloat32;
}

bool PolarisOpsAvailable() {
  return c10::Dispatcher::singleton().findSchema({kPolarisQuantize, ""}).has_value();
}

Int8Plan PlanInt8Regions(const FlatModel& flat, const std::vector<WeightLayer>& layers,
                         const std::vector<LayerConversion>& conversions) {
  Int8Plan plan;
  std::unordered_map<const Node*, size_t> int8_layer;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (conversions[i] == LayerConversion::kInt8Static) int8_layer[layers[i].node] = i;
  }
  // Every int8 value, with the site whose quantization parameters it has.
  std::unordered_map<const Value*, size_t> int8_values;
  std::unordered_map<const Value*, size_t> site_of_value;
  std::unordered_set<const Node*> fused;
  const auto site = [&](Value* value, std::string description) {
    const auto [it, inserted] = site_of_value.emplace(value, plan.sites.size());
    if (inserted) plan.sites.push_back({value, std::move(description)});
    return it->second;
  };

  for (Node* node : flat.graph->nodes()) {
    if (fused.count(node) > 0) continue;
    const auto layer = int8_layer.find(node);
    if (layer != int8_layer.end()) {
      const std::string& name = layers[layer->second].name;
      Int8Plan::Compute compute;
      compute.layer = layer->second;
      const auto int8_input = int8_values.find(node->input(0));
      if (int8_input == int8_values.end()) {
        compute.input_site = site(node->input(0), absl::StrCat("input of ", name));
        compute.input_params_site = *compute.input_site;
      } else {
        compute.input_params_site = int8_input->second;
      }
      compute.relu = FusableRelu(node->output());
      Value* output = compute.relu != nullptr ? compute.relu->output() : node->output();
      if (compute.relu != nullptr) fused.insert(compute.relu);
      compute.output_site = site(
          output, absl::StrCat("output of ", name, compute.relu != nullptr ? " + relu" : ""));
      int8_values[output] = compute.output_site;
      plan.computes.push_back(compute);
      continue;
    }
    if (IsTensorAdd(node) &&
        (int8_values.count(node->input(0)) > 0 || int8_values.count(node->input(1)) > 0)) {
      Int8Plan::Add add;
      add.node = node;
      const std::string name = absl::StrCat("add %", node->output()->debugName());
      for (size_t i = 0; i < 2; ++i) {
        if (int8_values.count(node->input(i)) == 0) {
          add.input_sites[i] = site(node->input(i), absl::StrCat("operand ", i + 1, " of ", name));
        }
      }
      add.relu = FusableRelu(node->output());
      Value* output = add.relu != nullptr ? add.relu->output() : node->output();
      if (add.relu != nullptr) fused.insert(add.relu);
      add.output_site = site(
          output, absl::StrCat("output of ", name, add.relu != nullptr ? " + relu" : ""));
      int8_values[output] = add.output_site;
      plan.adds.push_back(add);
      continue;
    }
    if (!IsPassthrough(node)) continue;
    const auto int8_input = int8_values.find(node->input(0));
    if (int8_input != int8_values.end()) {
      plan.passthroughs.push_back(node);
      int8_values[node->output()] = int8_input->second;
    }
  }

  std::unordered_set<const Node*> int8_consumers(plan.passthroughs.begin(),
                                                 plan.passthroughs.end());
  for (const Int8Plan::Compute& compute : plan.computes) {
    int8_consumers.insert(layers[compute.layer].node);
  }
  for (const Int8Plan::Add& add : plan.adds) int8_consumers.insert(add.node);
  for (Int8Plan::Compute& compute : plan.computes) {
    const Value* output = plan.sites[compute.output_site].value;
    compute.exits_region = true;
    for (const torch::jit::Use& use : ValueUses(output)) {
      if (int8_consumers.count(use.user) > 0) compute.exits_region = false;
    }
  }
  return plan;
}

bool HasFloatOutput(const Int8Plan::Compute& compute, const WeightLayer& layer,
                    const ConverterOptions& options) {
  return compute.exits_region && options.use_polaris_ops &&
         layer.kind == WeightLayerKind::kLinear;
}

absl::StatusOr<std::map<size_t, at::Tensor>> MeasureBiasCorrections(
    const FlatModel& flat, const std::vector<WeightLayer>& layers,
    const std::vector<LayerConversion>& conversions, const at::Tensor& inputs,
    int64_t batch_size, const ConverterOptions& options) {
  std::vector<size_t> corrected;
  std::vector<Value*> layer_inputs;
  std::map<size_t, at::Tensor> perturbations;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (conversions[i] != LayerConversion::kInt8Static) continue;
    const at::Tensor weight = AttributeTensor(flat.attributes, layers[i].node->input(1));
    POLARIS_ASSIGN_OR_RETURN(const at::Tensor effective,
                             EffectiveWeight(weight, conversions[i], options, layers[i].name));
    perturbations[i] = weight.detach().to(at::kFloat) - effective;
    corrected.push_back(i);
    layer_inputs.push_back(layers[i].node->input(0));
  }
  std::map<size_t, at::Tensor> corrections;
  if (corrected.empty()) return corrections;
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module probe, BuildProbeModule(flat, layer_inputs));

  std::map<size_t, at::Tensor> sums;
  std::map<size_t, int64_t> counts;
  const int64_t examples = inputs.size(0);
  for (int64_t start = 0; start < examples; start += batch_size) {
    POLARIS_ASSIGN_OR_RETURN(
        std::vector<at::Tensor> values,
        RunProbeModule(probe, inputs.slice(0, start, std::min(examples, start + batch_size))));
    const absl::Status status = CallTorch("measuring bias corrections", [&] {
      at::NoGradGuard no_grad;
      for (size_t k = 0; k < corrected.size(); ++k) {
        const size_t i = corrected[k];
        const WeightLayer& layer = layers[i];
        const at::Tensor& x = values[1 + k];
        // The layers are linear in their weight, so W x - Q(W) x = (W - Q(W)) x.
        at::Tensor shift;
        if (layer.kind == WeightLayerKind::kLinear) {
          shift = at::linear(x, perturbations[i]).reshape({-1, perturbations[i].size(0)});
        } else {
          shift = at::conv2d(x, perturbations[i], {}, layer.stride, layer.padding,
                             layer.dilation, layer.groups)
                      .transpose(0, 1)
                      .reshape({perturbations[i].size(0), -1})
                      .t();
        }
        const at::Tensor batch_sum = shift.to(at::kDouble).sum(0);
        sums[i] = sums[i].defined() ? sums[i] + batch_sum : batch_sum;
        counts[i] += shift.size(0);
      }
    });
    POLARIS_RETURN_IF_ERROR(status);
  }
  for (size_t i : corrected) corrections[i] = (sums[i] / counts[i]).to(at::kFloat);
  return corrections;
}

absl::StatusOr<QuantParams> ChooseWeightParams(const at::Tensor& weight, Granularity granularity,
                                               const std::string& layer) {
  const at::Tensor values = weight.detach().to(at::kFloat);
  POLARIS_RETURN_IF_ERROR(CheckFinite(values, absl::StrCat("the weight of '", layer, "'")));
  absl::StatusOr<QuantParams> params;
  if (granularity == Granularity::kPerChannel) {
    const at::Tensor rows = values.reshape({values.size(0), -1});
    params = ChooseQuantParams(rows.amin(1), rows.amax(1), QuantDtype::kInt8,
                               QuantScheme::kSymmetric, /*axis=*/0);
  } else {
    params = ChooseQuantParams(values.min().reshape({1}), values.max().reshape({1}),
                               QuantDtype::kInt8, QuantScheme::kSymmetric, /*axis=*/-1);
  }
  if (!params.ok()) {
    return Annotate(params.status(), absl::StrCat("quantizing the weight of '", layer, "'"));
  }
  return params;
}

absl::StatusOr<Int4Weights> QuantizeInt4Groups(const at::Tensor& weight, int64_t group_size,
                                               const std::string& layer) {
  if (weight.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "INT4 quantization needs a 2-D weight, but '", layer, "' has ", weight.dim(), " dims"));
  }
  const int64_t in_features = weight.size(1);
  if (group_size < 1 || in_features % group_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group size ", group_size, " does not divide the input size ", in_features,
        " of Linear layer '", layer, "'; choose a group size that divides it"));
  }
  const at::Tensor values = weight.detach().to(at::kFloat).contiguous();
  POLARIS_RETURN_IF_ERROR(CheckFinite(values, absl::StrCat("the weight of '", layer, "'")));
  absl::StatusOr<Int4Weight> quantized = QuantizeWeightInt4(values, group_size);
  if (!quantized.ok()) {
    return Annotate(quantized.status(), absl::StrCat("quantizing the weight of '", layer, "'"));
  }
  Int4Weights result;
  result.packed = quantized->packed;
  result.scale = quantized->scale;
  result.zero_point = quantized->zero_point;
  POLARIS_ASSIGN_OR_RETURN(result.values,
                           UnpackInt4(result.packed, in_features, /*is_signed=*/false));
  result.dequantized =
      (result.values.to(at::kFloat) -
       result.zero_point.to(at::kFloat).repeat_interleave(group_size, /*dim=*/1)) *
      result.scale.repeat_interleave(group_size, /*dim=*/1);
  return result;
}

absl::StatusOr<at::Tensor> EffectiveWeight(const at::Tensor& weight, LayerConversion conversion,
                                           const ConverterOptions& options,
                                           const std::string& layer) {
  const at::Tensor values = weight.detach().to(at::kFloat);
  switch (conversion) {
    case LayerConversion::kFloat32:
      return values;
    case LayerConversion::kBFloat16:
      return values.to(at::kBFloat16).to(at::kFloat);
    case LayerConversion::kInt8Static:
    case LayerConversion::kInt8Dynamic: {
      POLARIS_ASSIGN_OR_RETURN(const QuantParams params,
                               ChooseWeightParams(values, options.weight_granularity, layer));
      return FakeQuantize(values, params);
    }
    case LayerConversion::kInt4: {
      POLARIS_ASSIGN_OR_RETURN(const Int4Weights int4,
                               QuantizeInt4Groups(values, options.GroupSizeOf(layer), layer));
      return int4.dequantized;
    }
  }
  return absl::InternalError(absl::StrCat("unknown conversion of '", layer, "'"));
}

absl::StatusOr<Conversion> ConvertLayers(const FlatModel& flat,
                                         const std::vector<WeightLayer>& layers,
                                         const std::vector<LayerConversion>& conversions,
                                         const Int8Plan& plan,
                                         const std::vector<QuantParams>& site_params,
                                         const ConverterOptions& options,
                                         const LayerOverrides& overrides) {
  if (conversions.size() != layers.size() || site_params.size() != plan.sites.size()) {
    return absl::InternalError("conversion plan does not match the model's layers");
  }
  bool needs_polaris_ops = false;
  for (LayerConversion conversion : conversions) {
    needs_polaris_ops |= conversion == LayerConversion::kInt8Dynamic ||
                         conversion == LayerConversion::kInt4 ||
                         (conversion == LayerConversion::kInt8Static && options.use_polaris_ops);
  }
  if (needs_polaris_ops && !PolarisOpsAvailable()) {
    return absl::FailedPreconditionError(
        "polaris's quantization operators are not registered in this program; link "
        "//quantization:ops (alwayslink), or set use_polaris_ops to false for static int8");
  }
  if (!plan.computes.empty()) POLARIS_RETURN_IF_ERROR(UseOnednnQuantizedEngine());

  return CallTorch("converting the model", [&]() -> absl::StatusOr<Conversion> {
    at::NoGradGuard no_grad;
    Converter converter(flat, layers, options, overrides);
    for (const Int8Plan::Compute& compute : plan.computes) {
      POLARIS_RETURN_IF_ERROR(converter.ConvertCompute(compute, site_params));
    }
    for (const Int8Plan::Add& add : plan.adds) {
      POLARIS_RETURN_IF_ERROR(converter.ConvertAdd(add, site_params));
    }
    for (const Node* node : plan.passthroughs) converter.MarkPassthrough(node);
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerConversion conversion = conversions[i];
      if (conversion == LayerConversion::kFloat32 || conversion == LayerConversion::kInt8Static) {
        continue;
      }
      POLARIS_RETURN_IF_ERROR(converter.ConvertFloatLayer(i, conversion));
    }
    converter.InsertDequantizes();
    return converter.Finish();
  });
}

}  // namespace polaris::quantization::internal
