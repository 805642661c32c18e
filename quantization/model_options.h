// Options and results of model-level quantization (QuantizeModel in model_quantization.h), as
// plain structs so that numeric code does not depend on protobuf. quantization.proto mirrors
// them for configuration files and reports; model_proto_conversion.h converts between the two.
#ifndef POLARIS_QUANTIZATION_MODEL_OPTIONS_H_
#define POLARIS_QUANTIZATION_MODEL_OPTIONS_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/trainer.h"
#include "quantization/calibration.h"
#include "quantization/model_batchnorm_folding.h"
#include "quantization/quant_params.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {

enum class QuantizationMethod {
  // Post-training static int8: per-channel int8 weights, per-tensor uint8 activations whose
  // ranges come from calibration; consecutive int8 layers exchange int8 tensors.
  kStatic,
  // int8 weights; each Linear layer quantizes its input at run time from the input's range.
  kDynamic,
  // Group-wise INT4 weights of Linear layers; activations stay float32.
  kWeightOnlyInt4,
  // Fake quantization during training (straight-through estimator, optionally learned scales),
  // then the same int8 model as kStatic.
  kQat,
  // A precision per layer among fp32, bf16, int8 and int4, chosen under a size or latency
  // budget.
  kMixedPrecision,
};

// Numeric format of one weight layer in a converted model.
enum class LayerPrecision { kFloat32, kBFloat16, kInt8, kInt4 };

enum class Granularity { kPerChannel, kPerTensor };

absl::string_view QuantizationMethodName(QuantizationMethod method);
absl::string_view LayerPrecisionName(LayerPrecision precision);
// Bits per weight element: 32, 16, 8 or 4.
int BitsOf(LayerPrecision precision);

struct QatOptions {
  int epochs = 1;
  // Stops after this many optimizer steps when positive.
  int64_t max_steps = 0;
  int64_t batch_size = 128;
  // Peak rate of SGD with Nesterov momentum and a cosine schedule. Fine-tuning a trained model
  // needs a rate well below the one it was trained with: on the residual Fashion-MNIST CNN
  // (trained at 0.1), one QAT epoch on 16k images at 0.0005 kept the test accuracy within 0.02
  // points, while 0.002 lost 0.14 points (quantization demo, 2-core Zen 4).
  double learning_rate = 0.0005;
  double weight_decay = 0.0;
  // Learns activation and weight scales by gradient descent (LSQ: Esser et al., "Learned Step
  // Size Quantization", ICLR 2020) instead of keeping the calibrated ones.
  bool learnable_scales = false;
  uint64_t seed = 1;
};

enum class SensitivityMetric {
  // Loss of model-output SQNR when only this layer is converted, measured on calibration data.
  kOutputSqnr,
  // Hessian trace of the loss with respect to the layer's weights (Hutchinson's estimator)
  // times the weight perturbation energy, as HAWQ-V2 (Dong et al. 2020) weighs layers.
  kHessianTrace,
  // Empirical Fisher information: mean squared per-example gradient times the squared weight
  // perturbation, summed over the layer's weights.
  kFisher,
};

enum class BudgetKind { kModelSize, kLatency };

struct MixedPrecisionOptions {
  // Precisions each layer may take; Linear layers may take all four, convolutions all but
  // kInt4 (no INT4 convolution kernel exists here).
  std::vector<LayerPrecision> candidates = {LayerPrecision::kFloat32, LayerPrecision::kBFloat16,
                                            LayerPrecision::kInt8, LayerPrecision::kInt4};
  SensitivityMetric metric = SensitivityMetric::kOutputSqnr;
  BudgetKind budget = BudgetKind::kModelSize;
  // kModelSize: upper bound on the bytes of all weight layers' stored tensors (weights, biases,
  // scales, zero points).
  int64_t max_weight_bytes = 0;
  // kLatency: upper bound on the sum of the measured latencies of the layers mixed precision
  // allocates (each layer timed alone), in milliseconds, at latency_batch_size.
  double max_latency_ms = 0;
  int64_t latency_batch_size = 64;
  // Random probe vectors for Hutchinson's trace estimator.
  int hutchinson_samples = 8;
  // Calibration examples the sensitivity measurements use (the first ones of the data).
  int64_t sensitivity_examples = 256;
  // Seeds the random probe vectors of Hutchinson's estimator.
  uint64_t seed = 1;
};

struct QuantizationOptions {
  QuantizationMethod method = QuantizationMethod::kStatic;

  // Weights: symmetric int8 (zero point 0, which LibTorch's ONEDNN int8 kernels require) per
  // output channel or per tensor. `weight_bits` must be 8 for int8 methods and 4 for
  // kWeightOnlyInt4.
  Granularity weight_granularity = Granularity::kPerChannel;
  int weight_bits = 8;
  // INT4 layers: input elements sharing one scale and zero point. It must divide the input
  // size of every Linear layer converted to INT4; layer_group_sizes overrides it per layer
  // (by module path), for models whose layers have input sizes without a common divisor.
  int64_t group_size = 128;
  std::map<std::string, int64_t> layer_group_sizes;

  // Activations (kStatic, kQat, int8 layers of kMixedPrecision) are per-tensor uint8, as
  // LibTorch's ONEDNN kernels take them. The calibration method and its parameters come from
  // here, while the converter sets dtype, scheme and axis.
  CalibrationOptions activation_calibration = {.method = CalibrationMethod::kMse};
  QuantScheme activation_scheme = QuantScheme::kAsymmetric;
  // Examples of the calibration data used to observe activations, in batches.
  int64_t calibration_examples = 2048;
  int64_t calibration_batch_size = 256;

  // Empirical bias correction for kStatic and the int8 layers of kMixedPrecision. Each int8
  // layer's bias gets the mean output shift that quantizing its weight causes on the
  // calibration data, so that rounding errors do not add up to a systematic offset.
  bool bias_correction = true;

  // Layers left in float, by module path ("layer1.conv1"). Unknown names are an error.
  std::vector<std::string> skip_layers;

  // Quantize and dequantize at the edges of int8 regions with polaris's vectorized operators
  // (polaris::quant_quantize_per_tensor / quant_dequantize), several times faster than
  // LibTorch's. With false, a kStatic model uses only LibTorch operators and loads in stock
  // PyTorch without polaris's operator library.
  bool use_polaris_ops = true;

  QatOptions qat;
  MixedPrecisionOptions mixed_precision;

  bool show_progress = true;
};

// Returns kInvalidArgument naming the first invalid option: bits outside {4, 8} or not
// matching the method, a group size below 1, calibration options out of range (percentile
// outside (0, 100], ...), non-positive example counts, QAT settings out of range, an empty or
// unknown candidate set, or a missing budget for kMixedPrecision.
absl::Status ValidateQuantizationOptions(const QuantizationOptions& options);

// Returns the INT4 group size of `layer`: its layer_group_sizes entry, else group_size.
int64_t GroupSizeOf(const QuantizationOptions& options, const std::string& layer);

// Summary of a tensor of per-channel (or per-group) scales.
struct ScaleSummary {
  double min = 0;
  double max = 0;
  double mean = 0;
  int64_t count = 0;
};

struct LayerReport {
  // Module path in the caller's model ("layer1.conv1").
  std::string name;
  // "Linear" or "Conv2d".
  std::string type;
  LayerPrecision precision = LayerPrecision::kFloat32;
  // The operator that computes the layer in the converted model ("quantized::conv2d_relu",
  // "polaris::quant_linear_int4", "aten::linear").
  std::string op;
  // Why the layer has this precision: the method, or the mixed-precision trade-off.
  std::string reason;
  ScaleSummary weight_scales;
  // Output scale and zero point of int8 layers with static activations; 0 otherwise.
  double output_scale = 0;
  int64_t output_zero_point = 0;
  // SQNR of the dequantized weight against the float weight, in dB (+Inf for float32).
  double weight_sqnr_db = std::numeric_limits<double>::infinity();
  // SQNR of this layer's output in the converted model against the float model's, both run on
  // the same calibration batch, in dB. It includes the error of every converted layer before
  // it.
  double output_sqnr_db = std::numeric_limits<double>::infinity();
  // Bytes of the layer's stored tensors (weight, bias, scales, zero points) before and after.
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;
};

// A layer left in float32 and why.
struct SkippedLayer {
  std::string name;
  // "Linear", "Conv2d", or the operator of another layer type ("aten::layer_norm").
  std::string type;
  std::string reason;
};

// Per-layer inputs and outcome of the mixed-precision allocation.
struct MixedPrecisionLayer {
  std::string name;
  std::vector<LayerPrecision> candidates;
  // Per candidate, in the order of `candidates`: sensitivity (the metric's value, larger means
  // more accuracy lost; 0 for float32), stored bytes and measured latency in milliseconds.
  std::vector<double> sensitivity;
  std::vector<int64_t> bytes;
  std::vector<double> latency_ms;
  LayerPrecision chosen = LayerPrecision::kFloat32;
  // Why: the chosen candidate's sensitivity and cost beside the others'.
  std::string reason;
};

struct MixedPrecisionReport {
  SensitivityMetric metric = SensitivityMetric::kOutputSqnr;
  BudgetKind budget = BudgetKind::kModelSize;
  double budget_value = 0;
  std::vector<MixedPrecisionLayer> layers;
  // Totals of the chosen configuration: predicted sensitivity, bytes, summed layer latency.
  double total_sensitivity = 0;
  int64_t total_bytes = 0;
  double total_latency_ms = 0;
  // Accuracy of the converted model on the calibration data, measured after conversion.
  double calibration_accuracy = 0;
  double float_calibration_accuracy = 0;
};

struct QatReport {
  int64_t steps = 0;
  double seconds = 0;
  double last_epoch_loss = 0;
  double last_epoch_accuracy = 0;
};

struct QuantizationResult {
  // The converted model, in eval mode. Its forward is the flat graph described in
  // model_quantization.h.
  torch::jit::Module model;
  QuantizationMethod method = QuantizationMethod::kStatic;
  // Converted layers, in graph order.
  std::vector<LayerReport> layers;
  // Layers that stayed in float32 with the reason.
  std::vector<SkippedLayer> skipped;
  std::vector<FoldedBatchNorm> folded_batchnorm;
  std::vector<UnfoldedBatchNorm> unfolded_batchnorm;
  // SQNR of the converted model's output against the float model's on the calibration batch.
  double output_sqnr_db = 0;
  // Bytes of the weight layers' stored tensors before and after (the sums of the layers').
  int64_t weight_bytes_before = 0;
  int64_t weight_bytes_after = 0;
  // Set for kMixedPrecision and kQat.
  MixedPrecisionReport mixed_precision;
  QatReport qat;
};

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_MODEL_OPTIONS_H_
