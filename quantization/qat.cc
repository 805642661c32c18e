#include "quantization/qat.h"

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/internal/model_calibration.h"
#include "quantization/internal/model_convert.h"
#include "quantization/internal/model_pipeline.h"

namespace polaris::quantization {
namespace internal {

struct QatState {
  PreparedModel prepared;
  std::vector<LayerConversion> conversions;
  std::vector<SkippedLayer> skipped;
  Int8Plan plan;
  // Calibrated activation parameters, one per plan site.
  std::vector<QuantParams> site_params;
  QuantizationOptions options;
  // With learnable scales: the QAT module's attributes with each site's scale and zero point
  // (empty names for sites left in float), and each int8 layer's weight scales (by layer
  // index).
  std::vector<std::string> site_scale_attributes;
  std::vector<std::string> site_zero_point_attributes;
  std::map<size_t, std::string> weight_scale_attributes;
};

namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

constexpr int64_t kActivationMin = 0;
constexpr int64_t kActivationMax = 255;
constexpr int64_t kWeightMax = 127;

c10::Symbol Op(const char* name) { return c10::Symbol::fromQualString(name); }

Value* InsertAfterProducer(Graph& graph, Value* value, c10::Symbol op,
                           std::vector<torch::jit::NamedValue> args) {
  Node* position = value->node();
  if (position->kind() == c10::prim::Param) position = graph.param_node();
  torch::jit::WithInsertPoint insert_point(position->next());
  return graph.insert(op, args);
}

// Elements per example of every site's value, for LSQ's gradient scale.
absl::StatusOr<std::vector<int64_t>> SiteElementsPerExample(const FlatModel& flat,
                                                            const Int8Plan& plan,
                                                            const at::Tensor& example) {
  std::vector<Value*> values;
  for (const ActivationSite& site : plan.sites) values.push_back(site.value);
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module probe, BuildProbeModule(flat, values));
  POLARIS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, RunProbeModule(probe, example));
  std::vector<int64_t> elements;
  for (size_t i = 0; i < values.size(); ++i) {
    elements.push_back(std::max<int64_t>(1, outputs[1 + i].numel()));
  }
  return elements;
}

// Inserts fake quantization of every site and int8 weight into a copy of the prepared graph.
absl::StatusOr<FlatModel> BuildTrainingGraph(QatState& state,
                                             const std::vector<int64_t>& site_elements) {
  GraphCopyMap map;
  FlatModel training = CopyFlatModel(state.prepared.flat, &map);
  for (const auto& [name, entry] : state.prepared.flat.attributes.entries()) {
    if (entry.value.isTensor()) {
      // The QAT module trains its own copies; the prepared model keeps the float weights.
      training.attributes.FindMutable(name)->value = entry.value.toTensor().detach().clone();
    }
  }
  Graph& graph = *training.graph;
  const bool learnable = state.options.qat.learnable_scales;

  // Outputs that the int8 model leaves in float (HasFloatOutput) are not fake-quantized.
  std::vector<bool> quantized_site(state.plan.sites.size(), true);
  for (const Int8Plan::Compute& compute : state.plan.computes) {
    if (HasFloatOutput(compute, state.prepared.layers[compute.layer],
                       MakeConverterOptions(state.options))) {
      quantized_site[compute.output_site] = false;
    }
  }
  for (size_t i = 0; i < state.plan.sites.size(); ++i) {
    if (!quantized_site[i]) {
      if (learnable) {
        state.site_scale_attributes.push_back("");
        state.site_zero_point_attributes.push_back("");
      }
      continue;
    }
    Value* value = map(state.plan.sites[i].value);
    const QuantParams& params = state.site_params[i];
    Value* fake;
    if (learnable) {
      const std::string scale_name = training.attributes.AddUnique(
          absl::StrCat("qat_activation_scale_", i), params.scale.to(at::kFloat).clone(),
          /*is_parameter=*/true);
      const std::string zero_point_name = training.attributes.AddUnique(
          absl::StrCat("qat_activation_zero_point_", i), params.zero_point.to(at::kFloat),
          /*is_parameter=*/false);
      state.site_scale_attributes.push_back(scale_name);
      state.site_zero_point_attributes.push_back(zero_point_name);
      const double grad_factor = 1.0 / std::sqrt(static_cast<double>(site_elements[i]) *
                                                 kActivationMax);
      Node* position = value->node()->kind() == c10::prim::Param ? graph.param_node()
                                                                 : value->node();
      torch::jit::WithInsertPoint insert_point(position->next());
      Value* scale = InsertSelfGetAttr(graph, scale_name, c10::TensorType::get());
      Value* zero_point = InsertSelfGetAttr(graph, zero_point_name, c10::TensorType::get());
      fake = graph.insert(Op("aten::_fake_quantize_learnable_per_tensor_affine"),
                          {value, scale, zero_point, kActivationMin, kActivationMax, grad_factor});
    } else {
      fake = InsertAfterProducer(graph, value, Op("aten::fake_quantize_per_tensor_affine"),
                                 {value, params.scale.item<double>(),
                                  params.zero_point.item<int64_t>(), kActivationMin,
                                  kActivationMax});
    }
    value->replaceAllUsesAfterNodeWith(fake->node(), fake);
  }

  for (const Int8Plan::Compute& compute : state.plan.computes) {
    const WeightLayer& layer = state.prepared.layers[compute.layer];
    Node* node = map(layer.node);
    const at::Tensor weight = AttributeTensor(training.attributes, node->input(1));
    const int64_t channels = weight.size(0);
    const bool per_channel = state.options.weight_granularity == Granularity::kPerChannel;
    torch::jit::WithInsertPoint insert_point(node);
    Value* weight_value = node->input(1);
    Value* fake;
    if (learnable) {
      POLARIS_ASSIGN_OR_RETURN(
          const QuantParams params,
          ChooseWeightParams(weight, state.options.weight_granularity, layer.name));
      const std::string scale_name = training.attributes.AddUnique(
          FlatName(layer.name) + "_qat_weight_scale", params.scale.to(at::kFloat).clone(),
          /*is_parameter=*/true);
      const std::string zero_point_name = training.attributes.AddUnique(
          FlatName(layer.name) + "_qat_weight_zero_point",
          at::zeros({per_channel ? channels : 1}), /*is_parameter=*/false);
      state.weight_scale_attributes[compute.layer] = scale_name;
      const double grad_factor =
          1.0 / std::sqrt(static_cast<double>(weight.numel()) * kWeightMax);
      Value* scale = InsertSelfGetAttr(graph, scale_name, c10::TensorType::get());
      Value* zero_point = InsertSelfGetAttr(graph, zero_point_name, c10::TensorType::get());
      fake = per_channel
                 ? graph.insert(Op("aten::_fake_quantize_learnable_per_channel_affine"),
                                {weight_value, scale, zero_point, int64_t{0}, -kWeightMax,
                                 kWeightMax, grad_factor})
                 : graph.insert(Op("aten::_fake_quantize_learnable_per_tensor_affine"),
                                {weight_value, scale, zero_point, -kWeightMax, kWeightMax,
                                 grad_factor});
    } else {
      // The scale follows the weight's current range, max |w| / 127 per output channel, as
      // the conversion computes it; no gradient flows into it.
      const std::string zero_point_name = training.attributes.AddUnique(
          FlatName(layer.name) + "_qat_weight_zero_point",
          at::zeros({channels}, at::kInt), /*is_parameter=*/false);
      Value* flat_weight =
          graph.insert(c10::aten::reshape, {weight_value, std::vector<int64_t>{channels, -1}});
      Value* magnitude = graph.insert(
          c10::aten::abs, {graph.insert(c10::aten::detach, {flat_weight})});
      Value* range = per_channel
                         ? graph.insert(Op("aten::amax"), {magnitude, std::vector<int64_t>{1}})
                         : graph.insert(c10::aten::expand,
                                        {graph.insert(Op("aten::amax"),
                                                      {magnitude, std::vector<int64_t>{0, 1},
                                                       /*keepdim=*/true}),
                                         std::vector<int64_t>{channels, 1}});
      if (!per_channel) {
        range = graph.insert(c10::aten::reshape, {range, std::vector<int64_t>{channels}});
      }
      Value* scale = graph.insert(
          Op("aten::clamp_min"),
          {graph.insert(c10::aten::div, {range, static_cast<double>(kWeightMax)}),
           static_cast<double>(kMinScale)});
      // An all-zero channel gets scale 1, as the conversion gives it.
      scale = graph.insert(
          Op("aten::where"),
          {graph.insert(Op("aten::gt"), {range, 0.0}), scale, at::ones({1})});
      fake = graph.insert(Op("aten::fake_quantize_per_channel_affine"),
                          {weight_value, scale,
                           InsertSelfGetAttr(graph, zero_point_name, c10::TensorType::get()),
                           int64_t{0}, -kWeightMax, kWeightMax});
    }
    node->replaceInput(1, fake);
  }
  return training;
}

}  // namespace
}  // namespace internal

absl::StatusOr<QatModel> PrepareQat(const torch::jit::Module& model,
                                    const QuantizationOptions& options,
                                    const LabeledData& calibration_data) {
  QuantizationOptions qat_options = options;
  qat_options.method = QuantizationMethod::kQat;
  POLARIS_RETURN_IF_ERROR(ValidateQuantizationOptions(qat_options));
  POLARIS_RETURN_IF_ERROR(CheckClassifierSignature(model));
  POLARIS_RETURN_IF_ERROR(internal::CheckCalibrationInputs(calibration_data.inputs));
  const at::Tensor inputs = calibration_data.inputs.slice(0, 0, options.calibration_examples);

  auto state = std::make_shared<internal::QatState>();
  state->options = qat_options;
  POLARIS_ASSIGN_OR_RETURN(state->prepared, internal::PrepareModel(model, inputs.slice(0, 0, 1)));
  POLARIS_ASSIGN_OR_RETURN(state->conversions,
                           internal::ChooseConversions(state->prepared, qat_options,
                                                       &state->skipped));
  state->plan =
      internal::PlanInt8Regions(state->prepared.flat, state->prepared.layers, state->conversions);
  POLARIS_ASSIGN_OR_RETURN(
      state->site_params,
      internal::CalibrateActivations(state->prepared.flat, state->plan.sites, inputs,
                                     internal::ActivationCalibrationOptions(qat_options),
                                     options.calibration_batch_size, options.show_progress));
  POLARIS_ASSIGN_OR_RETURN(
      const std::vector<int64_t> site_elements,
      internal::SiteElementsPerExample(state->prepared.flat, state->plan, inputs.slice(0, 0, 1)));

  QatModel qat;
  POLARIS_ASSIGN_OR_RETURN(
      internal::FlatModel training,
      CallTorch("inserting fake quantization",
                [&] { return internal::BuildTrainingGraph(*state, site_elements); }));
  POLARIS_ASSIGN_OR_RETURN(qat.module, internal::BuildModule(training, "QatModel"));
  qat.state = std::move(state);
  return qat;
}

std::function<absl::Status(int64_t step)> QatAfterStepHook(const QatModel& qat) {
  std::vector<at::Tensor> scales;
  for (const std::string& name : qat.state->site_scale_attributes) {
    if (!name.empty()) scales.push_back(qat.module.attr(name).toTensor());
  }
  for (const auto& [layer, name] : qat.state->weight_scale_attributes) {
    scales.push_back(qat.module.attr(name).toTensor());
  }
  return [scales](int64_t step) {
    return CallTorch("keeping learned scales positive", [&] {
      at::NoGradGuard no_grad;
      for (const at::Tensor& scale : scales) scale.abs_().clamp_(kMinScale);
    });
  };
}

absl::StatusOr<QuantizationResult> ConvertQat(const QatModel& qat,
                                              const LabeledData& calibration_data) {
  const internal::QatState& state = *qat.state;
  POLARIS_RETURN_IF_ERROR(internal::CheckCalibrationInputs(calibration_data.inputs));
  const at::Tensor inputs =
      calibration_data.inputs.slice(0, 0, state.options.calibration_examples);

  // The trained weights on the prepared graph (the QAT module names them alike).
  internal::FlatModel trained{state.prepared.flat.graph, state.prepared.flat.attributes};
  for (const auto& [name, entry] : state.prepared.flat.attributes.entries()) {
    if (!entry.value.isTensor() || !qat.module.hasattr(name)) continue;
    trained.attributes.FindMutable(name)->value =
        qat.module.attr(name).toTensor().detach().clone();
  }

  std::vector<QuantParams> site_params = state.site_params;
  internal::LayerOverrides overrides;
  const absl::Status read = CallTorch("reading the learned scales", [&]() -> absl::Status {
    for (size_t i = 0; i < state.site_scale_attributes.size(); ++i) {
      if (state.site_scale_attributes[i].empty()) continue;
      const at::Tensor scale =
          qat.module.attr(state.site_scale_attributes[i]).toTensor().detach().abs().clamp_min(
              kMinScale);
      const at::Tensor zero_point = qat.module.attr(state.site_zero_point_attributes[i])
                                        .toTensor()
                                        .detach()
                                        .round()
                                        .clamp(0, 255)
                                        .to(at::kLong);
      site_params[i].scale = scale.to(at::kFloat).clone();
      site_params[i].zero_point = zero_point;
    }
    for (const auto& [layer, name] : state.weight_scale_attributes) {
      QuantParams params;
      params.scale = qat.module.attr(name).toTensor().detach().abs().clamp_min(kMinScale).clone();
      params.zero_point = at::zeros_like(params.scale, at::kLong);
      params.axis = state.options.weight_granularity == Granularity::kPerChannel ? 0 : -1;
      params.dtype = QuantDtype::kInt8;
      params.scheme = QuantScheme::kSymmetric;
      overrides.weight_params[layer] = params;
    }
    return absl::OkStatus();
  });
  POLARIS_RETURN_IF_ERROR(read);
  for (size_t i = 0; i < site_params.size(); ++i) {
    if (!at::isfinite(site_params[i].scale).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "training left a non-finite scale for the ", state.plan.sites[i].description,
          "; lower the QAT learning rate"));
    }
  }

  QuantizationResult result = internal::StartResult(state.prepared, state.options, state.skipped);
  POLARIS_RETURN_IF_ERROR(internal::FinishConversion(state.prepared, trained, state.conversions,
                                                     state.plan, site_params, overrides,
                                                     state.options, inputs, result));
  return result;
}

}  // namespace polaris::quantization
