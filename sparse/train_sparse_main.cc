// Trains a model sparse from scratch with SET or RigL, exports it with sparse kernels where
// they measure faster, and writes the exported model and a SparseResult text proto.
//
//   bazel run //sparse:train_sparse -- --model=mlp \
//       --config=sparse/configs/rigl_mlp_90.textproto --out=mlp_rigl.pt --result=mlp_rigl.textproto
//
// --model takes a reference model name (mlp, lenet, cnn: freshly initialized) or a TorchScript
// file (trained from its current weights). Data: Fashion-MNIST, or --data=FILE saved with
// torch.save (see core/tensor_file.h) holding training and test sets.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/tensor_file.h"
#include "google/protobuf/text_format.h"
#include "sparse/proto_conversion.h"
#include "sparse/training_run.h"

ABSL_FLAG(std::string, model, "mlp",
          "Reference model name (mlp, lenet, cnn; trained from scratch) or a TorchScript file.");
ABSL_FLAG(std::string, config, "",
          "SparseConfig in protobuf text format (required); examples in sparse/configs/.");
ABSL_FLAG(std::string, out, "", "Where to write the exported TorchScript model (required).");
ABSL_FLAG(std::string, result, "", "Where to write the SparseResult text proto (required).");
ABSL_FLAG(std::string, data, "",
          "torch.save file with training and test data; empty uses Fashion-MNIST.");
ABSL_FLAG(std::string, fashion_mnist_dir, "",
          "Folder with the Fashion-MNIST IDX files; empty uses $POLARIS_FASHION_MNIST_DIR or "
          "/usr/share/datasets/fashion-mnist.");
ABSL_FLAG(int, threads, 0, "Threads for LibTorch, OpenBLAS and the sparse kernels; 0 uses all.");

namespace {

absl::Status RequireFlag(const std::string& value, const char* name, const char* what) {
  if (!value.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", name, " is required: ", what));
}

absl::Status Run() {
  const std::string config_path = polaris::ResolveUserPath(absl::GetFlag(FLAGS_config));
  const std::string out = polaris::ResolveUserPath(absl::GetFlag(FLAGS_out));
  const std::string result_path = polaris::ResolveUserPath(absl::GetFlag(FLAGS_result));
  POLARIS_RETURN_IF_ERROR(RequireFlag(config_path, "config", "the SparseConfig text proto"));
  POLARIS_RETURN_IF_ERROR(RequireFlag(out, "out", "the file to write the exported model to"));
  POLARIS_RETURN_IF_ERROR(RequireFlag(result_path, "result", "the file to write the result to"));
  const int threads =
      absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : polaris::HardwareThreads();
  POLARIS_RETURN_IF_ERROR(polaris::SetThreads(threads));

  POLARIS_ASSIGN_OR_RETURN(std::string config_text, polaris::ReadFileToString(config_path));
  POLARIS_ASSIGN_OR_RETURN(polaris::proto::SparseConfig config,
                           polaris::sparse::ParseSparseConfig(config_text, config_path));

  // A reference model name gives a fresh model and its default recipe; a file keeps its
  // weights and takes core's TrainOptions defaults.
  const std::string model_flag = absl::GetFlag(FLAGS_model);
  torch::jit::Module model;
  polaris::TrainOptions defaults;
  if (absl::StatusOr<polaris::ReferenceModel> kind = polaris::ParseReferenceModel(model_flag);
      kind.ok()) {
    defaults = polaris::DefaultTrainOptions(*kind);
    POLARIS_ASSIGN_OR_RETURN(model, polaris::MakeReferenceModel(*kind, defaults.seed));
  } else {
    const std::string path = polaris::ResolveUserPath(model_flag);
    if (!polaris::PathExists(path)) {
      return absl::NotFoundError(
          absl::StrCat("--model='", model_flag,
                       "' is neither a reference model (mlp, lenet, cnn) nor an "
                       "existing file"));
    }
    POLARIS_ASSIGN_OR_RETURN(model, polaris::LoadModel(path));
    POLARIS_RETURN_IF_ERROR(polaris::CheckClassifierSignature(model));
  }

  polaris::LabeledData train;
  polaris::LabeledData test;
  if (const std::string data = absl::GetFlag(FLAGS_data); !data.empty()) {
    POLARIS_ASSIGN_OR_RETURN(polaris::SavedDataSets sets,
                             polaris::LoadSavedDataSets(polaris::ResolveUserPath(data)));
    if (!sets.train.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data=", data,
                       " holds one data set, but training needs separate training and test "
                       "sets: save (x_train, y_train, x_test, y_test)"));
    }
    train = *sets.train;
    test = sets.test;
  } else {
    std::string dir = absl::GetFlag(FLAGS_fashion_mnist_dir);
    dir = dir.empty() ? polaris::DefaultFashionMnistDir() : polaris::ResolveUserPath(dir);
    POLARIS_ASSIGN_OR_RETURN(train, polaris::LoadFashionMnist(polaris::DataSplit::kTrain, dir));
    POLARIS_ASSIGN_OR_RETURN(test, polaris::LoadFashionMnist(polaris::DataSplit::kTest, dir));
  }

  POLARIS_ASSIGN_OR_RETURN(
      polaris::sparse::SparseTrainingRun run,
      polaris::sparse::RunSparseTraining(model, train, test, config, defaults, model_flag));
  std::string result_text;
  if (!google::protobuf::TextFormat::PrintToString(run.result, &result_text)) {
    return absl::InternalError("formatting the result as text failed");
  }
  POLARIS_RETURN_IF_ERROR(polaris::SaveModel(run.exported, out));
  POLARIS_RETURN_IF_ERROR(polaris::WriteFileAtomically(result_path, result_text));
  std::printf("%s", polaris::sparse::FormatSparseResult(run.result).c_str());
  std::printf("wrote %s and %s\n", out.c_str(), result_path.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains a model sparse with SET or RigL, exports it and writes the model and a result.\n"
      "  bazel run //sparse:train_sparse -- --model=mlp "
      "--config=sparse/configs/rigl_mlp_90.textproto --out=mlp.pt --result=mlp.textproto");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
