#include "core/model_io.h"

#include <string>

#include "ATen/Functions.h"
#include "ATen/core/grad_mode.h"
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/layer_analysis.h"
#include "core/models.h"
#include "core/testing/python_test_util.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

constexpr char kScript[] = "core/testing/make_python_files.py";

std::string MakePythonFile(const std::string& kind) {
  const std::string path = polaris::testing::TempPath(kind + ".pt");
  absl::StatusOr<std::string> output = polaris::testing::RunPython(kScript, {kind, path});
  EXPECT_TRUE(output.ok()) << output.status();
  return path;
}

TEST(LoadModel, LoadsScriptedAndTracedPythonModels) {
  absl::StatusOr<LabeledData> test = LoadFashionMnist(DataSplit::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  for (const std::string kind : {"scripted-model", "traced-model"}) {
    absl::StatusOr<torch::jit::Module> model = LoadModel(MakePythonFile(kind));
    ASSERT_TRUE(model.ok()) << kind << ": " << model.status();
    EXPECT_TRUE(CheckClassifierSignature(*model).ok()) << kind;
    absl::StatusOr<EvalResult> eval = Evaluate(*model, *test);
    ASSERT_TRUE(eval.ok()) << kind << ": " << eval.status();
    EXPECT_EQ(eval->examples, 10000);
    // An untrained 10-class model; the test only needs it to run on every example.
    EXPECT_GE(eval->accuracy, 0.0);

    // The analysis sees through Python's module structure, BatchNorm and the residual add.
    absl::StatusOr<ModelAnalysis> analysis = AnalyzeModel(*model, at::zeros({1, 1, 28, 28}));
    ASSERT_TRUE(analysis.ok()) << kind << ": " << analysis.status();
    EXPECT_TRUE(analysis->has_residual_add) << kind;
    int convolutions = 0;
    for (const LayerInfo& layer : analysis->layers) {
      if (layer.kind == LayerKind::kConv2d) ++convolutions;
    }
    EXPECT_EQ(convolutions, 3) << kind;
  }
}

TEST(LoadModel, ExplainsFilesThatAreNotTorchScript) {
  EXPECT_EQ(LoadModel("/nonexistent/model.pt").status().code(), absl::StatusCode::kNotFound);

  const absl::Status state_dict = LoadModel(MakePythonFile("state-dict")).status();
  EXPECT_EQ(state_dict.code(), absl::StatusCode::kInvalidArgument) << state_dict;
  EXPECT_NE(state_dict.message().find("torch.jit.save"), absl::string_view::npos) << state_dict;

  const absl::Status text = LoadModel(kScript).status();
  EXPECT_EQ(text.code(), absl::StatusCode::kDataLoss) << text;

  const std::string empty = polaris::testing::TempPath("empty.pt");
  ASSERT_TRUE(WriteFileAtomically(empty, "").ok());
  EXPECT_EQ(LoadModel(empty).status().code(), absl::StatusCode::kDataLoss);
}

TEST(LoadModel, TruncatedFileIsDataLoss) {
  absl::StatusOr<std::string> bytes = ReadFileToString(MakePythonFile("scripted-model"));
  ASSERT_TRUE(bytes.ok());
  for (size_t keep : {bytes->size() / 2, bytes->size() - 30}) {
    const absl::Status status = LoadModelFromBytes(bytes->substr(0, keep), "cut.pt").status();
    EXPECT_FALSE(status.ok()) << "kept " << keep;
    EXPECT_NE(status.message().find("cut.pt"), absl::string_view::npos) << status;
  }
}

TEST(CheckClassifierSignature, RejectsTupleOutput) {
  absl::StatusOr<torch::jit::Module> model = LoadModel(MakePythonFile("two-outputs"));
  ASSERT_TRUE(model.ok()) << model.status();
  const absl::Status status = CheckClassifierSignature(*model);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("return one tensor"), absl::string_view::npos) << status;
}

TEST(CloneModel, CopyIsIndependent) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<torch::jit::Module> copy = CloneModel(*model);
  ASSERT_TRUE(copy.ok());
  const at::Tensor before = model->attr("fc1").toModule().attr("weight").toTensor().clone();
  {
    at::NoGradGuard no_grad;
    copy->attr("fc1").toModule().attr("weight").toTensor().mul_(0);
  }
  copy->register_attribute("extra", c10::IntType::get(), 3);
  EXPECT_TRUE(at::equal(model->attr("fc1").toModule().attr("weight").toTensor(), before));
  EXPECT_FALSE(model->hasattr("extra"));
}

TEST(CloneModel, ParametersStayTrainableLeaves) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kMlp, 1);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<torch::jit::Module> copy = CloneModel(*model);
  ASSERT_TRUE(copy.ok());
  for (const at::Tensor& parameter : copy->parameters()) {
    EXPECT_TRUE(parameter.requires_grad());
    EXPECT_TRUE(parameter.is_leaf());
  }
}

TEST(SaveModel, RoundTripsAndNeverLeavesPartialFile) {
  absl::StatusOr<torch::jit::Module> model = MakeReferenceModel(ReferenceModel::kLeNet, 1);
  ASSERT_TRUE(model.ok());
  const std::string path = polaris::testing::TempPath("lenet.pt");
  ASSERT_TRUE(SaveModel(*model, path).ok());
  absl::StatusOr<torch::jit::Module> loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(SaveModel(*model, "/nonexistent/dir/lenet.pt").ok());
  EXPECT_FALSE(PathExists("/nonexistent/dir/lenet.pt"));
}

}  // namespace
}  // namespace polaris
