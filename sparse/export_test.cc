#include "sparse/export.h"

#include <cstdint>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/evaluate.h"
#include "core/graph_utils.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/models.h"
#include "core/tensor_file.h"
#include "core/testing/python_test_util.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "torch/csrc/jit/ir/ir.h"

namespace polaris::sparse {
namespace {

constexpr char kScript[] = "core/testing/make_python_files.py";
constexpr char kOpsLibrary[] = "sparse/libpolaris_sparse_ops.so";

// Zeroes the smallest-magnitude `sparsity` fraction of the weight at `path`, in place.
void PruneWeight(torch::jit::Module& model, const std::string& path, double sparsity) {
  at::Tensor weight = *FindTensor(model, path);
  at::NoGradGuard no_grad;
  const int64_t pruned = static_cast<int64_t>(sparsity * weight.numel());
  const at::Tensor threshold =
      std::get<0>(weight.abs().flatten().kthvalue(std::max<int64_t>(pruned, 1)));
  weight.mul_(weight.abs().gt(threshold));
}

torch::jit::Module PrunedMlp(double sparsity) {
  torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kMlp, testing::TestSeed());
  PruneWeight(model, "fc1.weight", sparsity);
  return model;
}

// Forces a sparse kernel wherever one applies, whatever the timings are.
SparseExportOptions AlwaysSparse() {
  SparseExportOptions options;
  options.min_speedup = 1e-9;
  options.batch_size = 8;
  options.timing = {.warmup_runs = 1, .timed_runs = 2, .max_seconds = 0.5, .min_timed_runs = 1};
  return options;
}

SparseExportOptions NeverSparse() {
  SparseExportOptions options = AlwaysSparse();
  options.formats.clear();
  return options;
}

at::Tensor Forward(torch::jit::Module& model, const at::Tensor& input) {
  at::NoGradGuard no_grad;
  model.eval();
  return model.forward({input}).toTensor();
}

std::vector<std::string> OperatorNames(const torch::jit::Module& model) {
  std::vector<std::string> names;
  const std::shared_ptr<torch::jit::Graph> graph = InlinedForwardGraph(model);
  for (const torch::jit::Node* node : graph->nodes()) {
    names.push_back(node->kind().toQualString());
  }
  return names;
}

bool HasOperator(const torch::jit::Module& model, const std::string& name) {
  const std::vector<std::string> names = OperatorNames(model);
  return std::find(names.begin(), names.end(), name) != names.end();
}

const LayerExportDecision* FindDecision(const SparseExportResult& result,
                                        const std::string& layer) {
  for (const LayerExportDecision& decision : result.layers) {
    if (decision.layer == layer) return &decision;
  }
  return nullptr;
}

TEST(ExportSparseModel, SparseKernelMatchesAndShrinks) {
  torch::jit::Module model = PrunedMlp(0.9);
  absl::StatusOr<SparseExportResult> result = ExportSparseModel(model, AlwaysSparse());
  ASSERT_TRUE(result.ok()) << result.status();

  const LayerExportDecision* fc1 = FindDecision(*result, "fc1");
  ASSERT_NE(fc1, nullptr);
  EXPECT_TRUE(fc1->uses_sparse_kernel);
  EXPECT_NEAR(fc1->sparsity, 0.9, 0.01);
  EXPECT_GT(fc1->dense_ms, 0);
  EXPECT_GT(fc1->sparse_ms, 0);
  EXPECT_LT(fc1->bytes_after, fc1->bytes_before / 4);
  const LayerExportDecision* fc2 = FindDecision(*result, "fc2");
  ASSERT_NE(fc2, nullptr);
  EXPECT_EQ(fc2->format, "dense") << fc2->note;
  EXPECT_FALSE(fc2->uses_sparse_kernel);

  EXPECT_TRUE(HasOperator(result->model, "polaris::sparse_linear_csr") ||
              HasOperator(result->model, "polaris::sparse_linear_bsr"))
      << absl::StrJoin(OperatorNames(result->model), " ");
  EXPECT_LT(result->size_after.file_bytes, result->size_before.file_bytes * 0.35)
      << result->size_after.file_bytes << " vs " << result->size_before.file_bytes;
  const at::Tensor input = at::randn({5, 1, 28, 28});
  EXPECT_TRUE(at::allclose(Forward(model, input), Forward(result->model, input), 1e-4, 1e-4));
}

TEST(ExportSparseModel, DenseBitmapMatchesAndShrinks) {
  torch::jit::Module model = PrunedMlp(0.9);
  absl::StatusOr<SparseExportResult> result = ExportSparseModel(model, NeverSparse());
  ASSERT_TRUE(result.ok()) << result.status();
  const LayerExportDecision* fc1 = FindDecision(*result, "fc1");
  ASSERT_NE(fc1, nullptr);
  EXPECT_EQ(fc1->format, "dense-bitmap");
  EXPECT_FALSE(fc1->uses_sparse_kernel);
  EXPECT_TRUE(HasOperator(result->model, "aten::linear"));
  EXPECT_LT(result->size_after.file_bytes, result->size_before.file_bytes * 0.25);

  // The expanded weight is exact, and the file still loads and runs after saving.
  const at::Tensor input = at::randn({3, 1, 28, 28});
  const at::Tensor expected = Forward(model, input);
  absl::StatusOr<std::string> bytes = SerializeModel(result->model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<torch::jit::Module> loaded = LoadModelFromBytes(*bytes, "exported");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(at::equal(expected, Forward(*loaded, input)));
  EXPECT_TRUE(at::equal(expected, Forward(*loaded, input)));  // from the cached weight
}

TEST(ExportSparseModel, LeavesCallersModelUnchanged) {
  torch::jit::Module model = PrunedMlp(0.9);
  const at::Tensor input = at::randn({2, 1, 28, 28});
  const at::Tensor before = Forward(model, input);
  const std::vector<std::string> operators_before = OperatorNames(model);
  const at::Tensor fc1_before = FindTensor(model, "fc1.weight")->clone();

  ASSERT_TRUE(ExportSparseModel(model, AlwaysSparse()).ok());
  ASSERT_TRUE(ExportSparseModel(model, NeverSparse()).ok());

  EXPECT_TRUE(at::equal(before, Forward(model, input)));
  EXPECT_EQ(operators_before, OperatorNames(model));
  EXPECT_TRUE(at::equal(fc1_before, *FindTensor(model, "fc1.weight")));
  EXPECT_FALSE(model.type()->hasAttribute("polaris_fc1_values"));
}

TEST(ExportSparseModel, ConvolutionsUseSparseKernel) {
  torch::jit::Module model = *MakeReferenceModel(ReferenceModel::kResidualCnn, testing::TestSeed());
  for (const char* path :
       {"conv1.weight", "layer1.conv1.weight", "layer1.conv2.weight", "layer2.conv1.weight",
        "layer2.conv2.weight", "layer2.shortcut_conv.weight", "fc.weight"}) {
    PruneWeight(model, path, 0.8);
  }
  // Trained-looking BatchNorm statistics, so that folding them changes the weights.
  at::NoGradGuard no_grad;
  for (const char* norm :
       {"bn1", "layer1.bn1", "layer1.bn2", "layer2.bn1", "layer2.bn2", "layer2.shortcut_bn"}) {
    for (const char* name : {"weight", "bias", "running_mean"}) {
      at::Tensor tensor = *FindTensor(model, absl::StrCat(norm, ".", name));
      tensor.copy_(at::randn(tensor.sizes()) * 0.5);
    }
    at::Tensor variance = *FindTensor(model, absl::StrCat(norm, ".running_var"));
    variance.copy_(at::rand(variance.sizes()) + 0.5);
  }
  model.eval();
  absl::StatusOr<SparseExportResult> result = ExportSparseModel(model, AlwaysSparse());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->layers.size(), 7u);
  for (const LayerExportDecision& decision : result->layers) {
    EXPECT_TRUE(decision.uses_sparse_kernel) << decision.layer << ": " << decision.note;
  }
  EXPECT_TRUE(HasOperator(result->model, "polaris::sparse_conv2d_csr") ||
              HasOperator(result->model, "polaris::sparse_conv2d_csr_direct"))
      << absl::StrJoin(OperatorNames(result->model), " ");
  EXPECT_FALSE(HasOperator(result->model, "aten::conv2d"));
  // BatchNorm was folded into the convolutions before they became sparse.
  EXPECT_FALSE(HasOperator(result->model, "aten::batch_norm"));
  const at::Tensor input = at::randn({3, 1, 28, 28});
  EXPECT_TRUE(at::allclose(Forward(model, input), Forward(result->model, input), 1e-4, 1e-4));
  EXPECT_LT(result->size_after.file_bytes, result->size_before.file_bytes * 0.6);
}

TEST(ExportSparseModel, LowSparsityStaysDense) {
  torch::jit::Module model = PrunedMlp(0.1);
  SparseExportOptions options = AlwaysSparse();
  options.min_sparsity = 0.5;
  absl::StatusOr<SparseExportResult> result = ExportSparseModel(model, options);
  ASSERT_TRUE(result.ok()) << result.status();
  for (const LayerExportDecision& decision : result->layers) {
    EXPECT_EQ(decision.format, "dense") << decision.layer;
    EXPECT_FALSE(decision.note.empty()) << decision.layer;
  }
}

TEST(ExportSparseModel, RejectsBadInput) {
  torch::jit::Module model = PrunedMlp(0.9);
  SparseExportOptions options = AlwaysSparse();
  options.batch_size = 0;
  EXPECT_EQ(ExportSparseModel(model, options).status().code(), absl::StatusCode::kInvalidArgument);
  options = AlwaysSparse();
  options.min_sparsity = 1.0;
  EXPECT_EQ(ExportSparseModel(model, options).status().code(), absl::StatusCode::kInvalidArgument);
  options = AlwaysSparse();
  options.n = 5;
  EXPECT_EQ(ExportSparseModel(model, options).status().code(), absl::StatusCode::kInvalidArgument);
  options = AlwaysSparse();
  options.example_shape = {3, 3};
  EXPECT_EQ(ExportSparseModel(model, options).status().code(), absl::StatusCode::kInvalidArgument);

  torch::jit::Module empty("__torch__.Empty");
  empty.register_attribute("training", c10::BoolType::get(), false);
  empty.define("def forward(self, x: Tensor) -> Tensor:\n    return x * 2\n");
  const absl::Status status = ExportSparseModel(empty, AlwaysSparse()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("empty model"), absl::string_view::npos) << status;
}

// Exports in C++, then loads the file in Python 1.13 with the operator library and checks it
// predicts the same classes as C++.
TEST(ExportSparseModel, PythonPredictsSameClasses) {
  const std::string data = testing::TempPath("data.pt");
  ASSERT_TRUE(testing::RunPython(kScript, {"labeled-pair", data}).ok());
  absl::StatusOr<SavedDataSets> sets = LoadSavedDataSets(data);
  ASSERT_TRUE(sets.ok()) << sets.status();

  torch::jit::Module cnn = *MakeReferenceModel(ReferenceModel::kResidualCnn, 3);
  PruneWeight(cnn, "layer1.conv2.weight", 0.8);
  PruneWeight(cnn, "fc.weight", 0.9);
  cnn.eval();
  const std::vector<std::pair<std::string, torch::jit::Module>> models = {{"mlp", PrunedMlp(0.9)},
                                                                          {"cnn", cnn}};
  for (const auto& [name, model] : models) {
    for (const SparseExportOptions& options : {AlwaysSparse(), NeverSparse()}) {
      SCOPED_TRACE(name + (options.formats.empty() ? " dense-bitmap" : " sparse"));
      absl::StatusOr<SparseExportResult> result = ExportSparseModel(model, options);
      ASSERT_TRUE(result.ok()) << result.status();
      const std::string path = testing::TempPath(name + "_exported.pt");
      ASSERT_TRUE(SaveModel(result->model, path).ok());

      absl::StatusOr<at::Tensor> predictions = Predict(result->model, sets->test.inputs);
      ASSERT_TRUE(predictions.ok()) << predictions.status();
      std::vector<int64_t> classes(predictions->data_ptr<int64_t>(),
                                   predictions->data_ptr<int64_t>() + predictions->numel());
      absl::StatusOr<std::string> python =
          testing::RunPython(kScript, {"predict-with-ops", kOpsLibrary, path, data});
      ASSERT_TRUE(python.ok()) << python.status();
      EXPECT_EQ(std::string(absl::StripAsciiWhitespace(*python)), absl::StrJoin(classes, " "));
    }
  }
}

}  // namespace
}  // namespace polaris::sparse
