#include "core/evaluate.h"

#include <vector>

#include "ATen/Functions.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

// Restores the module's training flag when it goes out of scope.
class EvalModeScope {
 public:
  explicit EvalModeScope(torch::jit::Module& model)
      : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalModeScope() { model_.train(was_training_); }

 private:
  torch::jit::Module& model_;
  bool was_training_;
};

absl::StatusOr<at::Tensor> RunBatch(torch::jit::Module& model, const at::Tensor& inputs) {
  c10::IValue output = model.forward({inputs});
  if (!output.isTensor()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model must return one tensor of logits, but it returned ", output.tagKind()));
  }
  at::Tensor logits = output.toTensor();
  if (logits.dim() != 2 || logits.size(0) != inputs.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model must return logits of shape [batch, classes]; for a batch of ",
        inputs.size(0), " it returned shape [", absl::StrJoin(logits.sizes(), ", "), "]"));
  }
  return logits.to(at::kFloat);
}

}  // namespace

absl::StatusOr<EvalResult> Evaluate(torch::jit::Module& model, const LabeledData& data,
                                    int64_t batch_size) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be positive, got ", batch_size));
  }
  if (data.size() == 0) return absl::InvalidArgumentError("evaluation data has no examples");

  return CallTorch("evaluating the model", [&]() -> absl::StatusOr<EvalResult> {
    EvalModeScope eval_mode(model);
    at::NoGradGuard no_grad;
    EvalResult result;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = 0; start < data.size(); start += batch_size) {
      const LabeledData batch = Slice(data, start, batch_size);
      POLARIS_ASSIGN_OR_RETURN(at::Tensor logits, RunBatch(model, batch.inputs));
      const int64_t classes = logits.size(1);
      if (!result.confusion.defined()) {
        POLARIS_RETURN_IF_ERROR(ValidateLabeledData(data, classes, "evaluation data"));
        result.confusion = at::zeros({classes, classes}, at::kLong);
      }
      const at::Tensor predictions = logits.argmax(1);
      loss_sum += at::cross_entropy_loss(logits, batch.labels, {}, at::Reduction::Sum)
                      .item<double>();
      correct += predictions.eq(batch.labels).sum().item<int64_t>();
      result.confusion.view(-1).index_add_(
          0, batch.labels.mul(classes).add(predictions), at::ones_like(predictions));
    }
    result.examples = data.size();
    result.accuracy = static_cast<double>(correct) / data.size();
    result.loss = loss_sum / data.size();
    return result;
  });
}

absl::StatusOr<at::Tensor> Predict(torch::jit::Module& model, const at::Tensor& inputs,
                                   int64_t batch_size) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be positive, got ", batch_size));
  }
  return CallTorch("running the model", [&]() -> absl::StatusOr<at::Tensor> {
    EvalModeScope eval_mode(model);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> predictions;
    for (int64_t start = 0; start < inputs.size(0); start += batch_size) {
      POLARIS_ASSIGN_OR_RETURN(at::Tensor logits,
                               RunBatch(model, inputs.slice(0, start, start + batch_size)));
      predictions.push_back(logits.argmax(1));
    }
    return at::cat(predictions);
  });
}

std::string FormatConfusionMatrix(const at::Tensor& confusion) {
  const at::Tensor counts = confusion.to(at::kLong).contiguous();
  const int64_t classes = counts.size(0);
  const int64_t* data = counts.data_ptr<int64_t>();
  std::string table = "true\\pred";
  for (int64_t c = 0; c < classes; ++c) absl::StrAppend(&table, absl::StrFormat("%6d", c));
  absl::StrAppend(&table, "\n");
  for (int64_t r = 0; r < classes; ++r) {
    absl::StrAppend(&table, absl::StrFormat("%9d", r));
    for (int64_t c = 0; c < classes; ++c) {
      absl::StrAppend(&table, absl::StrFormat("%6d", data[r * classes + c]));
    }
    absl::StrAppend(&table, "\n");
  }
  return table;
}

}  // namespace polaris
