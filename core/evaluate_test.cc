#include "core/evaluate.h"

#include <memory>

#include "ATen/Functions.h"
#include "core/script_layers.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

// A linear model whose weights make the prediction equal to the argmax of the input's first
// three features: logits = x[:, :3].
torch::jit::Module MakeIdentityClassifier() {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module model = MakeScriptLinear(unit, 3, 3, /*bias=*/false);
  model.setattr("weight", at::eye(3));
  return model;
}

TEST(Evaluate, CountsCorrectPredictionsAndConfusion) {
  torch::jit::Module model = MakeIdentityClassifier();
  // Four examples: predictions 0, 1, 2, 2; labels 0, 1, 1, 2.
  const at::Tensor inputs = at::tensor({9.f, 0.f, 0.f, 0.f, 9.f, 0.f, 0.f, 0.f, 9.f, 0.f, 1.f, 9.f})
                                .view({4, 3});
  const at::Tensor labels = at::tensor({0, 1, 1, 2}, at::kLong);
  absl::StatusOr<EvalResult> result = Evaluate(model, {inputs, labels}, /*batch_size=*/3);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_DOUBLE_EQ(result->accuracy, 0.75);
  EXPECT_EQ(result->confusion[1][2].item<int64_t>(), 1);
  EXPECT_EQ(result->confusion[1][1].item<int64_t>(), 1);
  EXPECT_EQ(result->confusion.sum().item<int64_t>(), 4);
  EXPECT_GT(result->loss, 0);
  EXPECT_NE(FormatConfusionMatrix(result->confusion).find("true\\pred"), std::string::npos);
}

TEST(Evaluate, RejectsLabelsBeyondModelClasses) {
  torch::jit::Module model = MakeIdentityClassifier();
  const at::Tensor inputs = at::zeros({2, 3});
  const at::Tensor labels = at::tensor({0, 3}, at::kLong);
  const absl::Status status = Evaluate(model, {inputs, labels}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("[0, 3)"), absl::string_view::npos) << status;
}

TEST(Evaluate, ShapeMismatchNamesLibTorchReason) {
  torch::jit::Module model = MakeIdentityClassifier();
  const absl::Status status =
      Evaluate(model, {at::zeros({2, 5}), at::zeros({2}, at::kLong)}).status();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("2x5"), absl::string_view::npos) << status;
}

TEST(Evaluate, RestoresTrainingFlag) {
  torch::jit::Module model = MakeIdentityClassifier();
  model.train(true);
  ASSERT_TRUE(Evaluate(model, {at::eye(3), at::arange(3, at::kLong)}).ok());
  EXPECT_TRUE(model.is_training());
}

TEST(Predict, ReturnsArgmaxPerExample) {
  torch::jit::Module model = MakeIdentityClassifier();
  absl::StatusOr<at::Tensor> predictions = Predict(model, at::eye(3).flip(0), 2);
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  EXPECT_TRUE(at::equal(*predictions, at::tensor({2, 1, 0}, at::kLong)));
}

}  // namespace
}  // namespace polaris
