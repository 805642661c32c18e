// Layer sensitivities for mixed precision: output SQNR under single-layer conversion, Hessian
// trace by Hutchinson's method, and the empirical Fisher information.
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ATen/CPUGeneratorImpl.h"
#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "core/trainer.h"
#include "quantization/error_metrics.h"
#include "quantization/internal/mixed_precision.h"
#include "torch/csrc/autograd/autograd.h"
#include "torch/csrc/jit/runtime/graph_executor.h"

namespace polaris::quantization::internal {
namespace {

// Examples per forward pass of the loss-based metrics.
constexpr int64_t kSensitivityBatch = 64;

// Runs LibTorch's TorchScript interpreter without its optimizing executor while alive, so that
// autograd records ordinary operators and double backpropagation works (the executor's fused
// differentiable graphs support one backward pass only).
class PlainExecutorScope {
 public:
  PlainExecutorScope() : previous_(torch::jit::getGraphExecutorOptimize()) {
    torch::jit::setGraphExecutorOptimize(false);
  }
  ~PlainExecutorScope() { torch::jit::setGraphExecutorOptimize(previous_); }

 private:
  bool previous_;
};

// Returns the float output of the model `flat` describes on `inputs`.
absl::StatusOr<at::Tensor> RunFlat(const FlatModel& flat, const at::Tensor& inputs) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module module, BuildModule(flat, "SensitivityProbe"));
  return CallTorch("running a converted model", [&] {
    at::NoGradGuard no_grad;
    at::Tensor output = module.forward({inputs}).toTensor();
    return output.is_quantized() ? output.dequantize() : output;
  });
}

double NoiseRatio(double sqnr_db) {
  if (std::isinf(sqnr_db) && sqnr_db > 0) return 0;
  return std::pow(10.0, -sqnr_db / 10.0);
}

absl::StatusOr<std::vector<std::vector<double>>> OutputSqnrSensitivities(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates,
    const QuantizationOptions& options, const at::Tensor& inputs,
    const SiteParamsMap& calibrated) {
  POLARIS_ASSIGN_OR_RETURN(const at::Tensor reference, RunFlat(prepared.flat, inputs));
  std::vector<std::vector<double>> sensitivities(candidates.size());
  for (size_t layer = 0; layer < candidates.size(); ++layer) {
    for (LayerConversion candidate : candidates[layer]) {
      if (candidate == LayerConversion::kFloat32) {
        sensitivities[layer].push_back(0);
        continue;
      }
      std::vector<LayerConversion> conversions(prepared.layers.size(), LayerConversion::kFloat32);
      conversions[layer] = candidate;
      const Int8Plan plan = PlanInt8Regions(prepared.flat, prepared.layers, conversions);
      POLARIS_ASSIGN_OR_RETURN(const std::vector<QuantParams> params,
                               ParamsForPlan(plan, calibrated));
      POLARIS_ASSIGN_OR_RETURN(const Conversion conversion,
                               ConvertLayers(prepared.flat, prepared.layers, conversions, plan,
                                             params, MakeConverterOptions(options)));
      POLARIS_ASSIGN_OR_RETURN(const at::Tensor output, RunFlat(conversion.model, inputs));
      POLARIS_ASSIGN_OR_RETURN(const QuantizationError error,
                               MeasureQuantizationError(reference, output));
      sensitivities[layer].push_back(NoiseRatio(error.sqnr_db));
    }
  }
  return sensitivities;
}

// The float model with the allocated layers' weights as leaves that require gradients.
struct DifferentiableModel {
  torch::jit::Module module;
  // Per layer index; undefined for layers not allocated.
  std::vector<at::Tensor> weights;
  // The defined ones, in layer order.
  std::vector<at::Tensor> leaves;
};

absl::StatusOr<DifferentiableModel> MakeDifferentiable(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates) {
  DifferentiableModel model;
  POLARIS_ASSIGN_OR_RETURN(model.module, BuildModule(prepared.flat, "SensitivityModel"));
  model.weights.resize(prepared.layers.size());
  return CallTorch("preparing weights for gradients", [&]() -> absl::StatusOr<DifferentiableModel> {
    for (size_t layer = 0; layer < prepared.layers.size(); ++layer) {
      if (candidates[layer].empty()) continue;
      const std::string& name = prepared.layers[layer].weight_attribute;
      at::Tensor weight = model.module.attr(name).toTensor().detach().clone().set_requires_grad(true);
      model.module.setattr(name, weight);
      model.weights[layer] = weight;
      model.leaves.push_back(weight);
    }
    return std::move(model);
  });
}

absl::StatusOr<at::Tensor> Loss(DifferentiableModel& model, const LabeledData& batch) {
  const at::Tensor logits = model.module.forward({batch.inputs}).toTensor();
  return at::cross_entropy_loss(logits, batch.labels);
}

// Sum over layers of the layer's sensitivity for each candidate, from a per-layer weight
// importance: `weigh(layer, perturbation)` returns the importance-weighted size of a weight
// perturbation.
template <typename Weigh>
absl::StatusOr<std::vector<std::vector<double>>> WeightPerturbationSensitivities(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates,
    const QuantizationOptions& options, const DifferentiableModel& model, Weigh weigh) {
  std::vector<std::vector<double>> sensitivities(candidates.size());
  for (size_t layer = 0; layer < candidates.size(); ++layer) {
    const at::Tensor weight = model.weights[layer];
    for (LayerConversion candidate : candidates[layer]) {
      POLARIS_ASSIGN_OR_RETURN(
          const at::Tensor effective,
          EffectiveWeight(weight, candidate, MakeConverterOptions(options),
                          prepared.layers[layer].name));
      sensitivities[layer].push_back(weigh(layer, effective - weight.detach()));
    }
  }
  return sensitivities;
}

absl::StatusOr<std::vector<std::vector<double>>> HessianSensitivities(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates,
    const QuantizationOptions& options, const LabeledData& data) {
  PlainExecutorScope plain_executor;
  POLARIS_ASSIGN_OR_RETURN(DifferentiableModel model, MakeDifferentiable(prepared, candidates));
  const int samples = options.mixed_precision.hutchinson_samples;
  std::vector<double> traces(prepared.layers.size(), 0.0);
  absl::Status estimated = CallTorch("estimating Hessian traces", [&]() -> absl::Status {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.mixed_precision.seed);
    for (int sample = 0; sample < samples; ++sample) {
      for (int64_t start = 0; start < data.size(); start += kSensitivityBatch) {
        const LabeledData batch = Slice(data, start, kSensitivityBatch);
        POLARIS_ASSIGN_OR_RETURN(at::Tensor loss, Loss(model, batch));
        // Weighting each batch by its share of the examples makes the sum over batches the
        // Hessian of the mean loss over all of them.
        loss = loss * (static_cast<double>(batch.size()) / data.size());
        const std::vector<at::Tensor> gradients = torch::autograd::grad(
            {loss}, model.leaves, {}, /*retain_graph=*/true, /*create_graph=*/true);
        std::vector<at::Tensor> probes;
        at::Tensor dot = at::zeros({});
        for (size_t i = 0; i < model.leaves.size(); ++i) {
          // Rademacher vector: +1 or -1 with equal probability.
          probes.push_back(at::randint(0, 2, model.leaves[i].sizes(), generator,
                                       at::TensorOptions().dtype(at::kFloat)) * 2 - 1);
          dot = dot + (gradients[i] * probes[i]).sum();
        }
        const std::vector<at::Tensor> products = torch::autograd::grad({dot}, model.leaves);
        size_t leaf = 0;
        for (size_t layer = 0; layer < prepared.layers.size(); ++layer) {
          if (!model.weights[layer].defined()) continue;
          traces[layer] += (products[leaf] * probes[leaf]).sum().item<double>() / samples;
          ++leaf;
        }
      }
    }
    return absl::OkStatus();
  });
  POLARIS_RETURN_IF_ERROR(estimated);
  return WeightPerturbationSensitivities(
      prepared, candidates, options, model, [&](size_t layer, const at::Tensor& perturbation) {
        // A negative estimate (possible away from a minimum, or from sampling noise) means the
        // loss is not convex there, and the layer is ranked as insensitive.
        const double mean_curvature = std::max(0.0, traces[layer]) / perturbation.numel();
        return mean_curvature * perturbation.pow(2).sum().item<double>();
      });
}

absl::StatusOr<std::vector<std::vector<double>>> FisherSensitivities(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates,
    const QuantizationOptions& options, const LabeledData& data) {
  PlainExecutorScope plain_executor;
  POLARIS_ASSIGN_OR_RETURN(DifferentiableModel model, MakeDifferentiable(prepared, candidates));
  std::vector<at::Tensor> fisher;
  for (const at::Tensor& leaf : model.leaves) fisher.push_back(at::zeros_like(leaf).detach());
  absl::Status estimated = CallTorch("estimating the empirical Fisher", [&]() -> absl::Status {
    for (int64_t example = 0; example < data.size(); ++example) {
      POLARIS_ASSIGN_OR_RETURN(const at::Tensor loss, Loss(model, Slice(data, example, 1)));
      const std::vector<at::Tensor> gradients = torch::autograd::grad({loss}, model.leaves);
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < fisher.size(); ++i) fisher[i].add_(gradients[i].pow(2));
    }
    at::NoGradGuard no_grad;
    for (at::Tensor& value : fisher) value.div_(static_cast<double>(data.size()));
    return absl::OkStatus();
  });
  POLARIS_RETURN_IF_ERROR(estimated);
  std::vector<at::Tensor> fisher_of_layer(prepared.layers.size());
  size_t leaf = 0;
  for (size_t layer = 0; layer < prepared.layers.size(); ++layer) {
    if (model.weights[layer].defined()) fisher_of_layer[layer] = fisher[leaf++];
  }
  return WeightPerturbationSensitivities(
      prepared, candidates, options, model, [&](size_t layer, const at::Tensor& perturbation) {
        return (fisher_of_layer[layer] * perturbation.pow(2)).sum().item<double>();
      });
}

}  // namespace

absl::StatusOr<std::vector<QuantParams>> ParamsForPlan(const Int8Plan& plan,
                                                       const SiteParamsMap& calibrated) {
  std::vector<QuantParams> params;
  for (const ActivationSite& site : plan.sites) {
    const auto it = calibrated.find(site.value);
    if (it == calibrated.end()) {
      return absl::InternalError(
          absl::StrCat("the ", site.description, " was not calibrated"));
    }
    params.push_back(it->second);
  }
  return params;
}

absl::StatusOr<std::vector<std::vector<double>>> MeasureSensitivities(
    const PreparedModel& prepared, const std::vector<std::vector<LayerConversion>>& candidates,
    const QuantizationOptions& options, const LabeledData& data,
    const SiteParamsMap& calibrated) {
  const SensitivityMetric metric = options.mixed_precision.metric;
  if (metric == SensitivityMetric::kOutputSqnr) {
    return OutputSqnrSensitivities(prepared, candidates, options, data.inputs, calibrated);
  }
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module probe, BuildModule(prepared.flat, "LabelCheck"));
  POLARIS_ASSIGN_OR_RETURN(const int64_t classes, CountClasses(probe, data));
  POLARIS_RETURN_IF_ERROR(ValidateLabeledData(data, classes, "calibration data"));
  if (metric == SensitivityMetric::kHessianTrace) {
    return HessianSensitivities(prepared, candidates, options, data);
  }
  return FisherSensitivities(prepared, candidates, options, data);
}

}  // namespace polaris::quantization::internal
