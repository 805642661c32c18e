// Accuracy, loss and confusion matrix of a classifier on labeled data.
//
//   POLARIS_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(model, test_data));
//   std::cout << eval.accuracy;  // fraction in [0, 1]
#ifndef POLARIS_CORE_EVALUATE_H_
#define POLARIS_CORE_EVALUATE_H_

#include <cstdint>
#include <string>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris {

struct EvalResult {
  int64_t examples = 0;
  // Fraction of examples whose highest logit is the label's, in [0, 1].
  double accuracy = 0;
  // Mean softmax cross-entropy.
  double loss = 0;
  // int64 [classes, classes]: row = true label, column = prediction.
  at::Tensor confusion;
};

// Runs `model` in eval mode without gradients over `data` in batches of `batch_size` and
// compares its argmax with the labels. The model's training flag is restored afterwards.
// Errors: kInvalidArgument when the data is invalid, its labels exceed the model's class
// count, or the model does not return [batch, classes] logits for this input shape (the
// message includes LibTorch's reason, such as a shape mismatch).
absl::StatusOr<EvalResult> Evaluate(torch::jit::Module& model, const LabeledData& data,
                                    int64_t batch_size = 500);

// Returns the predicted class of every example (int64 [N]).
absl::StatusOr<at::Tensor> Predict(torch::jit::Module& model, const at::Tensor& inputs,
                                   int64_t batch_size = 500);

// Formats the confusion matrix as an aligned text table.
std::string FormatConfusionMatrix(const at::Tensor& confusion);

}  // namespace polaris

#endif  // POLARIS_CORE_EVALUATE_H_
