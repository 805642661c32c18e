// BatchNorm folding on a flat forward graph; quantization/model_batchnorm_folding.h documents
// the arithmetic and the conditions.
#ifndef POLARIS_QUANTIZATION_INTERNAL_MODEL_BATCHNORM_FOLDING_H_
#define POLARIS_QUANTIZATION_INTERNAL_MODEL_BATCHNORM_FOLDING_H_

#include <vector>

#include "ATen/core/Tensor.h"
#include "absl/status/status.h"
#include "quantization/internal/model_graph.h"
#include "quantization/model_batchnorm_folding.h"

namespace polaris::quantization::internal {

struct FoldingReport {
  std::vector<FoldedBatchNorm> folded;
  std::vector<UnfoldedBatchNorm> not_folded;
};

// Folds the BatchNorm nodes of `flat` in place: new weight and bias tensors go into
// `flat.attributes` and the BatchNorm nodes leave the graph. `example_input` (may be undefined)
// decides whether Linear outputs are 2-D. Errors as FoldBatchNorm.
absl::StatusOr<FoldingReport> FoldBatchNormInGraph(FlatModel& flat,
                                                   const at::Tensor& example_input);

}  // namespace polaris::quantization::internal

#endif  // POLARIS_QUANTIZATION_INTERNAL_MODEL_BATCHNORM_FOLDING_H_
