// Mixed precision: a numeric format per layer among fp32, bf16, int8 and int4, chosen to lose
// the least accuracy under a model-size or latency budget.
//
// QuantizeModel with QuantizationMethod::kMixedPrecision:
//  1. measures, for every convertible layer and every candidate format, a sensitivity
//     (options.mixed_precision.metric):
//      - kOutputSqnr: the model's output noise when only this layer is converted, as the
//        noise-to-signal power ratio 10^(-SQNR/10) on the first sensitivity_examples
//        calibration inputs. It covers weight and activation quantization.
//      - kHessianTrace: tr(H_l) / n_l * |Q(W_l) - W_l|^2, with the trace of the loss Hessian
//        over the layer's n_l weights estimated by Hutchinson's method (E[v^T H v] over
//        Rademacher vectors v, one Hessian-vector product per sample by double
//        backpropagation) on the calibration examples and labels; HAWQ-V2 (Dong et al.,
//        NeurIPS 2020) ranks layers this way. It covers weight quantization only.
//      - kFisher: sum over the layer's weights of F * (Q(W) - W)^2, F the empirical Fisher
//        information (the mean squared per-example gradient of the loss). Weights only.
//  2. measures each candidate's stored bytes (from the converted tensors) and latency (the
//     layer's operator alone, at latency_batch_size on calibration activations, median of
//     repeated runs; int8 layers are timed on int8 tensors, since inside an int8 region they
//     neither quantize nor dequantize);
//  3. picks one candidate per layer minimizing the summed sensitivity subject to the summed
//     bytes (or latencies) staying within the budget, solved exactly by SolveBitAllocation;
//  4. converts the model with the chosen formats (int8 layers form int8 regions as in static
//     quantization) and measures the converted model's accuracy on the calibration data.
// Sums of per-layer sensitivities and latencies are the model the allocation optimizes, not a
// prediction that is reported as a result: the result reports the converted model's measured
// accuracy, and the quantize command and the demo measure its latency and size.
#ifndef POLARIS_QUANTIZATION_MIXED_PRECISION_H_
#define POLARIS_QUANTIZATION_MIXED_PRECISION_H_

#include <vector>

#include "absl/status/statusor.h"

namespace polaris::quantization {

// One candidate of one layer.
struct AllocationChoice {
  // What the choice costs in accuracy (a sensitivity); smaller is better. Finite, >= 0.
  double cost = 0;
  // What it uses of the budget (bytes, milliseconds). Finite, >= 0.
  double resource = 0;
};

struct AllocationProblem {
  // layers[i] lists layer i's candidates; each layer needs at least one.
  std::vector<std::vector<AllocationChoice>> layers;
  double budget = 0;
};

struct AllocationSolution {
  // Index of the chosen candidate per layer.
  std::vector<int> choices;
  double total_cost = 0;
  double total_resource = 0;
};

// Returns the choice per layer with the smallest total cost whose total resource is at most
// the budget; among equal costs, the one with the smallest resource. Exact: dynamic programming
// over the layers that keeps, after each layer, every partial assignment not dominated by
// another (one with no more cost and no more resource), so no optimal assignment is dropped.
// Errors: kInvalidArgument when a layer has no candidates, a cost or resource is negative or
// not finite, or even the smallest-resource choice of every layer exceeds the budget (the
// message gives that minimum); kResourceExhausted when the set of non-dominated partial
// assignments grows beyond 10^6 entries.
absl::StatusOr<AllocationSolution> SolveBitAllocation(const AllocationProblem& problem);

}  // namespace polaris::quantization

#endif  // POLARIS_QUANTIZATION_MIXED_PRECISION_H_
