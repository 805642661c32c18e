// Trains a Fashion-MNIST reference model and saves it as a TorchScript file.
//
//   bazel run //core:train -- --model=cnn --epochs=2 --out=cnn.pt
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/trainer.h"

ABSL_FLAG(std::string, model, "cnn", "Reference model to train: mlp, lenet or cnn.");
ABSL_FLAG(int, epochs, 0, "Training epochs; 0 uses the model's default (mlp 10, lenet 10, cnn 2).");
ABSL_FLAG(double, learning_rate, 0, "Peak learning rate; 0 uses the model's default.");
ABSL_FLAG(int64_t, batch_size, 128, "Examples per optimizer step.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for weight initialization and data shuffling.");
ABSL_FLAG(int, threads, 0, "Threads for LibTorch and OpenBLAS; 0 uses all hardware threads.");
ABSL_FLAG(std::string, out, "", "Output TorchScript file (required), relative to where bazel run "
                                "was started.");
ABSL_FLAG(std::string, fashion_mnist_dir, "",
          "Folder with the Fashion-MNIST IDX files; empty uses $POLARIS_FASHION_MNIST_DIR or "
          "/usr/share/datasets/fashion-mnist.");

namespace {

absl::Status Run() {
  const std::string out = polaris::ResolveUserPath(absl::GetFlag(FLAGS_out));
  if (out.empty()) {
    return absl::InvalidArgumentError("--out is required: the file to write the model to");
  }
  POLARIS_ASSIGN_OR_RETURN(polaris::ReferenceModel kind,
                           polaris::ParseReferenceModel(absl::GetFlag(FLAGS_model)));
  const int threads =
      absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : polaris::HardwareThreads();
  POLARIS_RETURN_IF_ERROR(polaris::SetThreads(threads));

  polaris::TrainOptions options = polaris::DefaultTrainOptions(kind);
  if (absl::GetFlag(FLAGS_epochs) > 0) options.epochs = absl::GetFlag(FLAGS_epochs);
  if (absl::GetFlag(FLAGS_learning_rate) > 0) {
    options.learning_rate = absl::GetFlag(FLAGS_learning_rate);
  }
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.seed = absl::GetFlag(FLAGS_seed);

  std::string data_dir = absl::GetFlag(FLAGS_fashion_mnist_dir);
  data_dir = data_dir.empty() ? polaris::DefaultFashionMnistDir() : polaris::ResolveUserPath(data_dir);
  POLARIS_ASSIGN_OR_RETURN(polaris::LabeledData train,
                           polaris::LoadFashionMnist(polaris::DataSplit::kTrain, data_dir));
  POLARIS_ASSIGN_OR_RETURN(polaris::LabeledData test,
                           polaris::LoadFashionMnist(polaris::DataSplit::kTest, data_dir));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model,
                           polaris::MakeReferenceModel(kind, options.seed));

  std::printf("training %s for %d epochs on %lld images with %d threads\n",
              polaris::ReferenceModelName(kind).c_str(), options.epochs,
              static_cast<long long>(train.size()), threads);
  POLARIS_ASSIGN_OR_RETURN(polaris::TrainResult result, polaris::Train(model, train, options));
  POLARIS_ASSIGN_OR_RETURN(polaris::EvalResult eval, polaris::Evaluate(model, test));
  POLARIS_RETURN_IF_ERROR(polaris::SaveModel(model, out));

  std::printf("test accuracy %.2f%% (loss %.4f) on %lld images after %.1f s of training\n",
              100 * eval.accuracy, eval.loss, static_cast<long long>(eval.examples),
              result.seconds);
  std::printf("confusion matrix:\n%s", polaris::FormatConfusionMatrix(eval.confusion).c_str());
  std::printf("wrote %s\n", out.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains a Fashion-MNIST reference model and saves it as TorchScript.\n"
      "  bazel run //core:train -- --model=cnn --epochs=2 --out=cnn.pt");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
