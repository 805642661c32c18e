// Per-layer sensitivity scan: the accuracy of a model when one layer alone is pruned to each of
// several sparsities (or loses each of several fractions of its channels), all others intact.
// The result is a table for people and data for searches: the evolutionary search seeds its
// first generation from it, and a mixed-precision search can rank layers by it.
//
//   SensitivityOptions options;  // magnitude pruning at 10%, 20%, ... 90%
//   POLARIS_ASSIGN_OR_RETURN(SensitivityAnalysis analysis,
//                            ScanSensitivity(model, validation, options));
//   std::cout << FormatSensitivityTable(analysis);
#ifndef POLARIS_PRUNING_SENSITIVITY_H_
#define POLARIS_PRUNING_SENSITIVITY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "pruning/structured.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

enum class SensitivityMethod {
  // Unstructured magnitude pruning of one Conv2d or Linear weight; the x axis is sparsity.
  kMagnitude,
  // Structured pruning of one channel group; the x axis is the fraction of channels removed.
  kChannels,
};

// Returns "magnitude" or "channels".
std::string SensitivityMethodName(SensitivityMethod method);

struct SensitivityOptions {
  SensitivityMethod method = SensitivityMethod::kMagnitude;
  // Sparsities (kMagnitude) or removed channel fractions (kChannels), each in [0, 1).
  std::vector<double> sparsities = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  // kChannels: how channels are ranked (kTaylor uses the validation data).
  ChannelCriterion criterion = ChannelCriterion::kL1Norm;
  int64_t batch_size = 500;
  // Shape of one input example without the batch dimension; taken from the data when empty.
  std::vector<int64_t> example_shape;
  // Models evaluated side by side, each on its own copy with threads_per_worker intra-op
  // threads.
  int workers = 1;
  int threads_per_worker = 1;
};

struct SensitivityPoint {
  double sparsity = 0;
  double accuracy = 0;
  double loss = 0;
};

struct LayerSensitivity {
  // Layer name (kMagnitude) or channel group name (kChannels).
  std::string layer;
  // Weights of the layer (kMagnitude), or channels of the group (kChannels).
  int64_t size = 0;
  std::vector<SensitivityPoint> points;
};

struct SensitivityAnalysis {
  SensitivityMethod method = SensitivityMethod::kMagnitude;
  double baseline_accuracy = 0;
  double baseline_loss = 0;
  // Validation examples every point was measured on.
  int64_t examples = 0;
  std::vector<LayerSensitivity> layers;
};

// Prunes each layer of `model` (a copy) alone to each sparsity and measures accuracy and loss
// on `validation`. Fixed channel groups are left out of a kChannels scan. `model` is not
// changed.
// Errors: kInvalidArgument for an empty list of sparsities or one outside [0, 1), a batch size
// or worker count below 1, invalid validation data, or a model with nothing to prune; errors
// of Evaluate.
absl::StatusOr<SensitivityAnalysis> ScanSensitivity(const torch::jit::Module& model,
                                                    const LabeledData& validation,
                                                    const SensitivityOptions& options);

// Returns the largest scanned sparsity at which `layer` stays within `max_drop` (a fraction,
// 0.01 = one point) of `baseline_accuracy`, or 0 when none does.
double MaxSparsityWithinDrop(const LayerSensitivity& layer, double baseline_accuracy,
                             double max_drop);

// Formats the scan as a table: one row per layer, one column of accuracy (in %) per sparsity.
std::string FormatSensitivityTable(const SensitivityAnalysis& analysis);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_SENSITIVITY_H_
