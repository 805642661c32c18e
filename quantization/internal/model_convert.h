// Conversion of a flat float graph into a quantized one, layer by layer.
//
// Static int8 layers form regions: PlanInt8Regions walks the graph in order and marks as int8
// the outputs of int8 convolutions and Linear layers (fused with a ReLU that is their only
// consumer), of residual adds with an int8 operand (fused with a following ReLU), and of the
// operators that LibTorch runs on quantized tensors without new parameters (ReLU, max and
// average pooling, flatten, reshape, view, contiguous, eval-mode dropout). Float values enter a
// region through one quantize and leave it through one dequantize, so consecutive int8 layers
// exchange int8 tensors. The plan lists the float values whose ranges calibration (or QAT)
// must supply: region inputs and the outputs of every int8 operator that produces new scales.
#ifndef POLARIS_QUANTIZATION_INTERNAL_MODEL_CONVERT_H_
#define POLARIS_QUANTIZATION_INTERNAL_MODEL_CONVERT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "quantization/internal/model_calibration.h"
#include "quantization/internal/model_graph.h"
#include "quantization/internal/model_layers.h"
#include "quantization/model_options.h"
#include "quantization/quant_params.h"
#include "torch/csrc/jit/ir/ir.h"

namespace polaris::quantization::internal {

// The conversion of one weight layer.
enum class LayerConversion {
  kFloat32,
  // Weight, bias and computation in bfloat16; input and output stay float32.
  kBFloat16,
  // LibTorch's quantized::conv2d / quantized::linear (and ReLU fusions) inside int8 regions.
  kInt8Static,
  // polaris::quant_linear_int8_dynamic (Linear only).
  kInt8Dynamic,
  // polaris::quant_linear_int4 with group-wise INT4 weights (Linear only).
  kInt4,
};

LayerPrecision PrecisionOf(LayerConversion conversion);

struct Int8Plan {
  // An int8 convolution or Linear layer.
  struct Compute {
    // Index into the layers the plan was made from.
    size_t layer = 0;
    // The aten::relu fused into it, or nullptr.
    torch::jit::Node* relu = nullptr;
    // Site of the float input when it enters a region here; none when the input is int8.
    std::optional<size_t> input_site;
    // Site whose parameters the int8 input has: input_site, or the site of the int8 value
    // upstream.
    size_t input_params_site = 0;
    size_t output_site = 0;
    // True when no int8 operator reads the output: the region ends here.
    bool exits_region = false;
  };
  // A residual add of two tensors, at least one of them int8.
  struct Add {
    torch::jit::Node* node = nullptr;
    torch::jit::Node* relu = nullptr;
    std::optional<size_t> input_sites[2];
    size_t output_site = 0;
  };

  std::vector<ActivationSite> sites;
  std::vector<Compute> computes;
  std::vector<Add> adds;
  // Operators that run on int8 tensors unchanged.
  std::vector<torch::jit::Node*> passthroughs;
};

// Plans the int8 regions of `flat` for the layers whose conversion is kInt8Static (indices as
// in `layers`, which FindWeightLayers returned for `flat`). The plan refers to values and nodes
// of `flat.graph`, which it does not change.
Int8Plan PlanInt8Regions(const FlatModel& flat, const std::vector<WeightLayer>& layers,
                         const std::vector<LayerConversion>& conversions);

struct ConverterOptions {
  Granularity weight_granularity = Granularity::kPerChannel;
  // INT4 group size per layer name, and for layers not listed.
  std::map<std::string, int64_t> layer_group_sizes;
  int64_t group_size = 128;
  bool use_polaris_ops = true;

  int64_t GroupSizeOf(const std::string& layer) const {
    const auto it = layer_group_sizes.find(layer);
    return it == layer_group_sizes.end() ? group_size : it->second;
  }
};

// Per-layer replacements of what ConvertLayers derives from the float weights, by layer index.
struct LayerOverrides {
  // Weight quantization parameters learned elsewhere (QAT with learnable scales).
  std::map<size_t, QuantParams> weight_params;
  // Added to the float bias (zero when the layer has none) of int8 layers; see
  // MeasureBiasCorrections.
  std::map<size_t, at::Tensor> bias_corrections;
};

// A layer of the converted model.
struct ConvertedLayer {
  size_t layer = 0;
  LayerReport report;
  // The layer's output value (after a fused ReLU) in the converted graph, and the same value
  // in the float graph it came from.
  torch::jit::Value* output = nullptr;
  torch::jit::Value* reference_output = nullptr;
};

struct Conversion {
  FlatModel model;
  std::vector<ConvertedLayer> layers;
};

// Converts a copy of `flat`: every layer gets conversions[i]; int8 regions follow `plan`, with
// `site_params` (per-tensor uint8 parameters, one per plan site) for activations. Weights are
// quantized from the tensors in `flat.attributes` at the time of the call, with symmetric
// parameters from their range unless `overrides` contains learned ones for the layer index.
// Errors: kInvalidArgument when a converted layer's weight or bias contains NaN or Inf, when a
// group size does not divide a Linear layer's input size, or a conversion does not fit the
// layer (kInt4 or kInt8Dynamic on a convolution), naming the layer; kFailedPrecondition when
// polaris's operators are needed but not linked into the program.
absl::StatusOr<Conversion> ConvertLayers(const FlatModel& flat,
                                         const std::vector<WeightLayer>& layers,
                                         const std::vector<LayerConversion>& conversions,
                                         const Int8Plan& plan,
                                         const std::vector<QuantParams>& site_params,
                                         const ConverterOptions& options,
                                         const LayerOverrides& overrides = {});

// Returns, for every kInt8Static layer, the mean change of its output per output channel that
// quantizing its weight causes, E[W x] - E[Q(W) x], measured on the float model's activations
// for `inputs` (examples along dimension 0, run in batches of `batch_size`). Adding it to the
// bias removes the systematic shift of the layer's output ("bias correction", Nagel et al.,
// "Data-Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019, here
// measured on calibration data). Errors: the model's, and those of weight quantization.
absl::StatusOr<std::map<size_t, at::Tensor>> MeasureBiasCorrections(
    const FlatModel& flat, const std::vector<WeightLayer>& layers,
    const std::vector<LayerConversion>& conversions, const at::Tensor& inputs,
    int64_t batch_size, const ConverterOptions& options);

// Returns true when `compute` ends its region and is a Linear layer: with polaris's operators
// it then runs as polaris::quant_linear_int8, whose float output skips the requantization of
// the layer's output (the logits, in a classifier). QAT leaves such outputs unquantized too.
bool HasFloatOutput(const Int8Plan::Compute& compute, const WeightLayer& layer,
                    const ConverterOptions& options);

// Symmetric int8 weight parameters, per output channel (axis 0) or per tensor.
// Returns kInvalidArgument naming `layer` when the weight contains NaN or Inf.
absl::StatusOr<QuantParams> ChooseWeightParams(const at::Tensor& weight, Granularity granularity,
                                               const std::string& layer);

// Group-wise INT4 weights of a Linear layer: the weight [out, in] is split along the input
// dimension into groups of `group_size` elements, and each (row, group) gets its own
// asymmetric uint4 scale and zero point (values 0 to 15).
struct Int4Weights {
  // uint8 [out, in] with values in [0, 15].
  at::Tensor values;
  // PackInt4(values): uint8 [out, ceil(in / 2)], two values per byte, low nibble first.
  at::Tensor packed;
  // float32 [out, in / group_size] and uint8 [out, in / group_size].
  at::Tensor scale;
  at::Tensor zero_point;
  // The weight the layer computes with: (values - zero_point) * scale, float32 [out, in].
  at::Tensor dequantized;
};

// Quantizes a 2-D weight group-wise to INT4. Returns kInvalidArgument, naming `layer`, when
// the weight is not 2-D, `group_size` is below 1 or does not divide its input size, or the
// weight contains NaN or Inf.
absl::StatusOr<Int4Weights> QuantizeInt4Groups(const at::Tensor& weight, int64_t group_size,
                                               const std::string& layer);

// Returns the float32 weight a layer computes with after conversion (dequantized int8 or INT4
// values, or bfloat16 values widened again), for error measurements. Errors as ConvertLayers.
absl::StatusOr<at::Tensor> EffectiveWeight(const at::Tensor& weight, LayerConversion conversion,
                                           const ConverterOptions& options,
                                           const std::string& layer);

// Returns true when polaris's quantization operators are registered in this process.
bool PolarisOpsAvailable();

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MODEL_CONVERT_H_
