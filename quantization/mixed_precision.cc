#include "quantization/mixed_precision.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/evaluate.h"
#include "core/latency.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/internal/mixed_precision.h"
#include "torch/csrc/jit/ir/constants.h"
#include "torch/csrc/jit/passes/dead_code_elimination.h"

namespace polaris::quantization {

absl::StatusOr<AllocationSolution> SolveBitAllocation(const AllocationProblem& problem) {
  constexpr size_t kMaxStates = 1000000;
  double minimum_resource = 0;
  for (size_t layer = 0; layer < problem.layers.size(); ++layer) {
    const std::vector<AllocationChoice>& choices = problem.layers[layer];
    if (choices.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", layer, " has no candidates"));
    }
    double smallest = std::numeric_limits<double>::infinity();
    for (const AllocationChoice& choice : choices) {
      if (!std::isfinite(choice.cost) || !std::isfinite(choice.resource) || choice.cost < 0 ||
          choice.resource < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", layer, " has a candidate with cost ", choice.cost, " and resource ",
            choice.resource, "; both must be finite and non-negative"));
      }
      smallest = std::min(smallest, choice.resource);
    }
    minimum_resource += smallest;
  }
  if (minimum_resource > problem.budget) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no assignment fits the budget ", problem.budget, ": the smallest possible total is ",
        minimum_resource));
  }

  // stages[i] contains the non-dominated partial assignments of layers 0..i, each pointing at
  // the state of stage i - 1 it extends.
  struct State {
    double resource;
    double cost;
    int parent;
    int choice;
  };
  std::vector<std::vector<State>> stages;
  std::vector<State> frontier{{0.0, 0.0, -1, -1}};
  for (size_t layer = 0; layer < problem.layers.size(); ++layer) {
    std::vector<State> next;
    for (size_t s = 0; s < frontier.size(); ++s) {
      const std::vector<AllocationChoice>& choices = problem.layers[layer];
      for (size_t c = 0; c < choices.size(); ++c) {
        const double resource = frontier[s].resource + choices[c].resource;
        // Resources are non-negative, so a partial sum over the budget never comes back.
        if (resource > problem.budget) continue;
        next.push_back({resource, frontier[s].cost + choices[c].cost, static_cast<int>(s),
                        static_cast<int>(c)});
      }
    }
    std::sort(next.begin(), next.end(), [](const State& a, const State& b) {
      return a.resource != b.resource ? a.resource < b.resource : a.cost < b.cost;
    });
    std::vector<State> kept;
    double best_cost = std::numeric_limits<double>::infinity();
    for (const State& state : next) {
      if (state.cost < best_cost) {
        kept.push_back(state);
        best_cost = state.cost;
      }
    }
    if (kept.size() > kMaxStates) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the allocation keeps ", kept.size(), " non-dominated partial assignments after layer ",
          layer, ", more than the limit of ", kMaxStates));
    }
    stages.push_back(frontier);
    frontier = std::move(kept);
  }

  // The frontier is sorted by resource with falling cost, so its last state costs least.
  AllocationSolution solution;
  solution.choices.resize(problem.layers.size());
  const State& best = frontier.back();
  solution.total_cost = best.cost;
  solution.total_resource = best.resource;
  State state = best;
  for (size_t layer = problem.layers.size(); layer-- > 0;) {
    solution.choices[layer] = state.choice;
    state = stages[layer][state.parent];
  }
  return solution;
}

namespace internal {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Latency measurement of one layer: warm-up and timed runs, stopping after two seconds.
constexpr int kLatencyWarmupRuns = 5;
constexpr int kLatencyTimedRuns = 30;
constexpr double kLatencyMaxSeconds = 2.0;

LayerConversion ConversionOf(LayerPrecision precision) {
  switch (precision) {
    case LayerPrecision::kFloat32: return LayerConversion::kFloat32;
    case LayerPrecision::kBFloat16: return LayerConversion::kBFloat16;
    case LayerPrecision::kInt8: return LayerConversion::kInt8Static;
    case LayerPrecision::kInt4: return LayerConversion::kInt4;
  }
  return LayerConversion::kFloat32;
}

// A model with one input x that computes only `layer` on it.
absl::StatusOr<FlatModel> SingleLayerModel(const FlatModel& flat, const WeightLayer& layer) {
  FlatModel single;
  single.graph = std::make_shared<Graph>();
  Graph& graph = *single.graph;
  graph.addInput("self")->setType(flat.graph->inputs()[0]->type());
  Value* input = graph.addInput("x");
  input->setType(c10::TensorType::get());
  Node* node = layer.node;
  absl::Status status = absl::OkStatus();
  Node* clone = graph.createClone(node, [&](Value* value) -> Value* {
    if (value == node->input(0)) return input;
    if (const std::optional<std::string> name = SelfAttributeName(value); name.has_value()) {
      single.attributes.AddUnique(*name, flat.attributes.Find(*name)->value, false);
      return InsertSelfGetAttr(graph, *name, value->type());
    }
    if (const c10::optional<c10::IValue> constant = torch::jit::toIValue(value)) {
      return graph.insertConstant(*constant);
    }
    if (value->node()->kind() == c10::prim::ListConstruct) {
      std::vector<int64_t> items;
      for (const Value* item : value->node()->inputs()) {
        const c10::optional<c10::IValue> constant = torch::jit::toIValue(item);
        if (!constant.has_value() || !constant->isInt()) break;
        items.push_back(constant->toInt());
      }
      if (items.size() == value->node()->inputs().size()) return graph.insertConstant(items);
    }
    status = absl::InvalidArgumentError(absl::StrCat(
        "layer '", layer.name, "' takes an argument computed at run time"));
    return graph.insertConstant(c10::IValue());
  });
  POLARIS_RETURN_IF_ERROR(status);
  graph.insertNode(clone);
  graph.registerOutput(clone->output());
  return single;
}

// Removes the quantize after the input and the dequantize before the output of a converted
// single-layer int8 model, so that it maps int8 tensors to int8 tensors.
void KeepInt8AtEdges(Graph& graph) {
  Value* input = graph.inputs()[1];
  for (const torch::jit::Use& use : std::vector<torch::jit::Use>(input->uses())) {
    Node* quantize = use.user;
    if (quantize->outputs().size() != 1) continue;
    quantize->output()->replaceAllUsesWith(input);
  }
  Node* dequantize = graph.outputs()[0]->node();
  if (dequantize->inputs().size() == 1) graph.return_node()->replaceInput(0, dequantize->input(0));
  torch::jit::EliminateDeadCode(graph.block());
}

absl::StatusOr<double> MeasureLayerLatency(const PreparedModel& prepared, size_t index,
                                           LayerConversion conversion, const at::Tensor& input,
                                           const SiteParamsMap& calibrated,
                                           const QuantizationOptions& options) {
  const WeightLayer& layer = prepared.layers[index];
  POLARIS_ASSIGN_OR_RETURN(FlatModel single, SingleLayerModel(prepared.flat, layer));
  const std::vector<WeightLayer> single_layers = FindWeightLayers(single);
  const std::vector<LayerConversion> conversions{conversion};
  Int8Plan plan;
  std::vector<QuantParams> site_params;
  QuantParams input_params;
  if (conversion == LayerConversion::kInt8Static) {
    plan = PlanInt8Regions(single, single_layers, conversions);
    const auto found = calibrated.find(layer.node->input(0));
    if (found == calibrated.end()) {
      return absl::InternalError(absl::StrCat("the input of '", layer.name, "' was not calibrated"));
    }
    input_params = found->second;
    // Timing does not depend on the output scale, so the input's scale is used for it too.
    site_params.assign(plan.sites.size(), input_params);
  }
  POLARIS_ASSIGN_OR_RETURN(Conversion converted,
                           ConvertLayers(single, single_layers, conversions, plan, site_params,
                                         MakeConverterOptions(options)));
  at::Tensor timed_input = input;
  if (conversion == LayerConversion::kInt8Static) {
    POLARIS_RETURN_IF_ERROR(CallTorch("timing an int8 layer alone", [&] {
      KeepInt8AtEdges(*converted.model.graph);
      timed_input = at::quantize_per_tensor(input, input_params.scale.item<double>(),
                                            input_params.zero_point.item<int64_t>(), at::kQUInt8);
    }));
  }
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module module,
                           BuildModule(converted.model, "LayerLatency"));
  LatencyOptions latency;
  latency.warmup_runs = kLatencyWarmupRuns;
  latency.timed_runs = kLatencyTimedRuns;
  latency.max_seconds = kLatencyMaxSeconds;
  POLARIS_ASSIGN_OR_RETURN(const LatencyStats stats,
                           MeasureModelLatency(module, timed_input, latency));
  return stats.median_ms;
}

// Inputs of every allocated layer on `batch`, by layer index.
absl::StatusOr<std::vector<at::Tensor>> LayerInputs(const PreparedModel& prepared,
                                                    const std::vector<bool>& allocated,
                                                    const at::Tensor& batch) {
  std::vector<Value*> values;
  std::vector<size_t> layers;
  for (size_t i = 0; i < prepared.layers.size(); ++i) {
    if (!allocated[i]) continue;
    values.push_back(prepared.layers[i].node->input(0));
    layers.push_back(i);
  }
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module probe, BuildProbeModule(prepared.flat, values));
  POLARIS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, RunProbeModule(probe, batch));
  std::vector<at::Tensor> inputs(prepared.layers.size());
  for (size_t k = 0; k < layers.size(); ++k) inputs[layers[k]] = outputs[1 + k].contiguous();
  return inputs;
}

int64_t LayerFloatBytes(const FlatModel& flat, const WeightLayer& layer) {
  int64_t bytes = 0;
  for (size_t input : {1, 2}) {
    const at::Tensor tensor = TensorValue(flat, layer.node->input(input));
    if (tensor.defined()) bytes += tensor.numel() * tensor.element_size();
  }
  return bytes;
}

// Adds the sites of `plan` that are not yet in `sites`.
void AddSites(const Int8Plan& plan, std::vector<ActivationSite>& sites,
              std::unordered_set<const Value*>& seen) {
  for (const ActivationSite& site : plan.sites) {
    if (seen.insert(site.value).second) sites.push_back(site);
  }
}

std::string DescribeChoice(const MixedPrecisionLayer& layer, size_t chosen, BudgetKind budget) {
  std::string reason = absl::StrFormat(
      "mixed precision: %s has sensitivity %.3g, %s", LayerPrecisionName(layer.chosen),
      layer.sensitivity[chosen],
      budget == BudgetKind::kModelSize
          ? absl::StrFormat("%d bytes", layer.bytes[chosen])
          : absl::StrFormat("%.3f ms", layer.latency_ms[chosen]));
  for (size_t c = 0; c < layer.candidates.size(); ++c) {
    if (c == chosen) continue;
    absl::StrAppendFormat(&reason, "; %s: sensitivity %.3g, %s",
                          LayerPrecisionName(layer.candidates[c]), layer.sensitivity[c],
                          budget == BudgetKind::kModelSize
                              ? absl::StrFormat("%d bytes", layer.bytes[c])
                              : absl::StrFormat("%.3f ms", layer.latency_ms[c]));
  }
  return reason;
}

}  // namespace

absl::StatusOr<MixedPrecisionAllocation> AllocateMixedPrecision(
    const PreparedModel& prepared, const std::vector<LayerConversion>& eligible,
    const QuantizationOptions& options, const LabeledData& data) {
  const MixedPrecisionOptions& mixed = options.mixed_precision;
  const at::Tensor inputs = data.inputs.slice(0, 0, options.calibration_examples);
  const size_t count = prepared.layers.size();

  // Candidates per layer; layers outside the allocation keep their conversion.
  std::vector<std::vector<LayerConversion>> candidates(count);
  std::vector<bool> allocated(count, false);
  for (size_t i = 0; i < count; ++i) {
    if (eligible[i] != LayerConversion::kInt8Static) continue;
    const WeightLayer& layer = prepared.layers[i];
    const at::Tensor weight = AttributeTensor(prepared.flat.attributes, layer.node->input(1));
    for (LayerPrecision precision : mixed.candidates) {
      if (precision == LayerPrecision::kInt4 &&
          (layer.kind != WeightLayerKind::kLinear ||
           weight.size(1) % GroupSizeOf(options, layer.name) != 0)) {
        continue;
      }
      candidates[i].push_back(ConversionOf(precision));
    }
    if (candidates[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer '", layer.name, "' can take none of the mixed-precision candidates (int4 needs "
          "a Linear layer whose input size the group size divides); add fp32, bf16 or int8"));
    }
    allocated[i] = true;
  }

  // One calibration run observes every site that the full int8 plan or any single-layer
  // int8 conversion needs.
  std::vector<ActivationSite> sites;
  std::unordered_set<const Value*> seen;
  std::vector<LayerConversion> all_int8 = eligible;
  for (size_t i = 0; i < count; ++i) {
    const bool has_int8 = std::find(candidates[i].begin(), candidates[i].end(),
                                    LayerConversion::kInt8Static) != candidates[i].end();
    if (allocated[i] && !has_int8) all_int8[i] = LayerConversion::kFloat32;
    if (!allocated[i] || !has_int8) continue;
    std::vector<LayerConversion> single(count, LayerConversion::kFloat32);
    single[i] = LayerConversion::kInt8Static;
    AddSites(PlanInt8Regions(prepared.flat, prepared.layers, single), sites, seen);
  }
  AddSites(PlanInt8Regions(prepared.flat, prepared.layers, all_int8), sites, seen);
  POLARIS_ASSIGN_OR_RETURN(
      const std::vector<QuantParams> site_params,
      CalibrateActivations(prepared.flat, sites, inputs, ActivationCalibrationOptions(options),
                           options.calibration_batch_size, options.show_progress));
  SiteParamsMap calibrated;
  for (size_t i = 0; i < sites.size(); ++i) calibrated[sites[i].value] = site_params[i];

  // Sensitivity, bytes and latency of every candidate.
  POLARIS_ASSIGN_OR_RETURN(
      const std::vector<std::vector<double>> sensitivities,
      MeasureSensitivities(prepared, candidates, options,
                           Slice(data, 0, mixed.sensitivity_examples), calibrated));
  const at::Tensor latency_batch =
      inputs.slice(0, 0, mixed.latency_batch_size).contiguous();
  std::vector<at::Tensor> layer_inputs;
  if (mixed.budget == BudgetKind::kLatency) {
    POLARIS_ASSIGN_OR_RETURN(layer_inputs, LayerInputs(prepared, allocated, latency_batch));
  }

  MixedPrecisionAllocation allocation;
  MixedPrecisionReport& report = allocation.report;
  report.metric = mixed.metric;
  report.budget = mixed.budget;
  report.budget_value = mixed.budget == BudgetKind::kModelSize
                            ? static_cast<double>(mixed.max_weight_bytes)
                            : mixed.max_latency_ms;
  AllocationProblem problem;
  problem.budget = report.budget_value;
  std::vector<size_t> problem_layers;
  for (size_t i = 0; i < count; ++i) {
    if (!allocated[i]) {
      // Layers outside the allocation stay float32 and count against a size budget.
      if (mixed.budget == BudgetKind::kModelSize) {
        problem.budget -= static_cast<double>(LayerFloatBytes(prepared.flat, prepared.layers[i]));
      }
      continue;
    }
    MixedPrecisionLayer layer;
    layer.name = prepared.layers[i].name;
    std::vector<AllocationChoice> choices;
    for (size_t c = 0; c < candidates[i].size(); ++c) {
      const LayerConversion conversion = candidates[i][c];
      std::vector<LayerConversion> single(count, LayerConversion::kFloat32);
      single[i] = conversion;
      const Int8Plan plan = PlanInt8Regions(prepared.flat, prepared.layers, single);
      POLARIS_ASSIGN_OR_RETURN(const std::vector<QuantParams> params,
                               ParamsForPlan(plan, calibrated));
      POLARIS_ASSIGN_OR_RETURN(const Conversion converted,
                               ConvertLayers(prepared.flat, prepared.layers, single, plan, params,
                                             MakeConverterOptions(options)));
      const int64_t bytes = converted.layers.empty()
                                ? LayerFloatBytes(prepared.flat, prepared.layers[i])
                                : converted.layers[0].report.bytes_after;
      double latency_ms = 0;
      if (mixed.budget == BudgetKind::kLatency) {
        POLARIS_ASSIGN_OR_RETURN(latency_ms,
                                 MeasureLayerLatency(prepared, i, conversion, layer_inputs[i],
                                                     calibrated, options));
      }
      layer.candidates.push_back(PrecisionOf(conversion));
      layer.sensitivity.push_back(sensitivities[i][c]);
      layer.bytes.push_back(bytes);
      layer.latency_ms.push_back(latency_ms);
      choices.push_back({sensitivities[i][c], mixed.budget == BudgetKind::kModelSize
                                                  ? static_cast<double>(bytes)
                                                  : latency_ms});
    }
    problem.layers.push_back(std::move(choices));
    problem_layers.push_back(i);
    report.layers.push_back(std::move(layer));
  }

  absl::StatusOr<AllocationSolution> solution = SolveBitAllocation(problem);
  if (!solution.ok()) {
    return Annotate(solution.status(),
                    mixed.budget == BudgetKind::kModelSize
                        ? "choosing precisions under the model-size budget (max_weight_bytes, "
                          "after the bytes of layers that stay float32)"
                        : "choosing precisions under the latency budget (max_latency_ms)");
  }
  allocation.conversions = eligible;
  for (size_t k = 0; k < problem_layers.size(); ++k) {
    const size_t i = problem_layers[k];
    const int chosen = solution->choices[k];
    allocation.conversions[i] = candidates[i][chosen];
    MixedPrecisionLayer& layer = report.layers[k];
    layer.chosen = layer.candidates[chosen];
    layer.reason = DescribeChoice(layer, chosen, mixed.budget);
    report.total_sensitivity += layer.sensitivity[chosen];
    report.total_bytes += layer.bytes[chosen];
    report.total_latency_ms += layer.latency_ms[chosen];
  }

  allocation.plan = PlanInt8Regions(prepared.flat, prepared.layers, allocation.conversions);
  std::vector<ActivationSite> missing;
  for (const ActivationSite& site : allocation.plan.sites) {
    if (calibrated.count(site.value) == 0) missing.push_back(site);
  }
  if (!missing.empty()) {
    POLARIS_ASSIGN_OR_RETURN(
        const std::vector<QuantParams> extra,
        CalibrateActivations(prepared.flat, missing, inputs, ActivationCalibrationOptions(options),
                             options.calibration_batch_size, options.show_progress));
    for (size_t i = 0; i < missing.size(); ++i) calibrated[missing[i].value] = extra[i];
  }
  POLARIS_ASSIGN_OR_RETURN(allocation.site_params, ParamsForPlan(allocation.plan, calibrated));
  return allocation;
}

absl::Status MeasureMixedPrecisionAccuracy(const torch::jit::Module& model,
                                           QuantizationResult& result, const LabeledData& data) {
  torch::jit::Module float_model = model;
  POLARIS_ASSIGN_OR_RETURN(const EvalResult float_eval, Evaluate(float_model, data));
  POLARIS_ASSIGN_OR_RETURN(const EvalResult converted_eval, Evaluate(result.model, data));
  result.mixed_precision.float_calibration_accuracy = float_eval.accuracy;
  result.mixed_precision.calibration_accuracy = converted_eval.accuracy;

  // Each converted layer's report gives the reason for its precision.
  for (LayerReport& layer : result.layers) {
    for (const MixedPrecisionLayer& allocated : result.mixed_precision.layers) {
      if (allocated.name == layer.name) layer.reason = allocated.reason;
    }
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace polaris::quantization
