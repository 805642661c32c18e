// Prunes a TorchScript classifier as a PruningConfig describes, and writes the pruned model
// and a PruningResult with every number measured in the run, so that each result can be
// reproduced without the pipeline.
//
//   bazel run //pruning:prune -- --model=cnn \
//       --config=pruning/configs/cnn_channels_50.textproto --out=cnn50.pt --result=cnn50.textproto
//
// --model is a TorchScript file or a reference model name (mlp, lenet, cnn: trained once and
// cached by core's model zoo). Data is Fashion-MNIST unless --data names a torch.save file of
// (train_inputs, train_labels, test_inputs, test_labels). Validation data is held out from
// the training part, and accuracy before and after is measured on the test part.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "core/status_macros.h"
#include "core/tensor_file.h"
#include "google/protobuf/text_format.h"
#include "pruning/proto_conversion.h"
#include "pruning/run.h"

ABSL_FLAG(std::string, model, "",
          "TorchScript file to prune, or a reference model: mlp, lenet or cnn (trained once and "
          "cached).");
ABSL_FLAG(std::string, config, "",
          "PruningConfig in protobuf text format (pruning/pruning.proto).");
ABSL_FLAG(std::string, out, "", "File to write the pruned TorchScript model to.");
ABSL_FLAG(std::string, result, "",
          "File to write the PruningResult to: binary protobuf when it ends in .pb, text "
          "format otherwise.");
ABSL_FLAG(std::string, data, "",
          "torch.save file with (train_inputs, train_labels, test_inputs, test_labels); empty "
          "uses Fashion-MNIST.");
ABSL_FLAG(int, threads, 0, "LibTorch and OpenBLAS threads; 0 uses the config's or all cores.");

namespace {

using polaris::pruning::PruningRunInput;
using polaris::pruning::PruningRunOutput;

absl::Status LoadModel(const std::string& name, PruningRunInput& input) {
  absl::StatusOr<polaris::ReferenceModel> reference = polaris::ParseReferenceModel(name);
  if (reference.ok()) {
    POLARIS_ASSIGN_OR_RETURN(polaris::TrainedModel trained, polaris::GetTrainedModel(*reference));
    input.model = trained.model;
    input.reference = *reference;
    input.model_name = name;
    return absl::OkStatus();
  }
  const std::string path = polaris::ResolveUserPath(name);
  POLARIS_ASSIGN_OR_RETURN(input.model, polaris::LoadModel(path));
  input.model_name = path;
  return absl::OkStatus();
}

absl::Status LoadData(const std::string& data, PruningRunInput& input) {
  if (data.empty()) {
    POLARIS_ASSIGN_OR_RETURN(input.train, polaris::LoadFashionMnist(polaris::DataSplit::kTrain));
    POLARIS_ASSIGN_OR_RETURN(input.test, polaris::LoadFashionMnist(polaris::DataSplit::kTest));
    input.data_name = "Fashion-MNIST";
    return absl::OkStatus();
  }
  const std::string path = polaris::ResolveUserPath(data);
  POLARIS_ASSIGN_OR_RETURN(polaris::SavedDataSets sets, polaris::LoadSavedDataSets(path));
  if (sets.train.has_value()) input.train = *sets.train;
  input.test = sets.test;
  input.data_name = path;
  return absl::OkStatus();
}

absl::Status WriteResult(const polaris::proto::PruningResult& result, const std::string& path) {
  std::string bytes;
  const bool binary = absl::EndsWith(path, ".pb");
  const bool written = binary ? result.SerializeToString(&bytes)
                              : google::protobuf::TextFormat::PrintToString(result, &bytes);
  if (!written) return absl::InternalError("serializing the pruning result failed");
  return polaris::WriteFileAtomically(path, bytes);
}

absl::Status Run() {
  const std::string config_path = polaris::ResolveUserPath(absl::GetFlag(FLAGS_config));
  const std::string out = polaris::ResolveUserPath(absl::GetFlag(FLAGS_out));
  const std::string result_path = polaris::ResolveUserPath(absl::GetFlag(FLAGS_result));
  if (absl::GetFlag(FLAGS_model).empty() || config_path.empty() || result_path.empty()) {
    return absl::InvalidArgumentError(
        "--model, --config and --result are required; see --help for their meaning");
  }
  POLARIS_ASSIGN_OR_RETURN(std::string text, polaris::ReadFileToString(config_path));
  POLARIS_ASSIGN_OR_RETURN(polaris::proto::PruningConfig config,
                           polaris::pruning::ParsePruningConfig(text, config_path));
  if (absl::GetFlag(FLAGS_threads) > 0) config.set_threads(absl::GetFlag(FLAGS_threads));
  if (!config.has_sensitivity() && out.empty()) {
    return absl::InvalidArgumentError("--out is required: the file to write the pruned model to");
  }

  PruningRunInput input;
  POLARIS_RETURN_IF_ERROR(LoadModel(absl::GetFlag(FLAGS_model), input));
  POLARIS_RETURN_IF_ERROR(LoadData(absl::GetFlag(FLAGS_data), input));
  POLARIS_ASSIGN_OR_RETURN(PruningRunOutput output, polaris::pruning::RunPruning(input, config));

  std::printf("%s", output.report.c_str());
  if (output.model.has_value()) {
    POLARIS_RETURN_IF_ERROR(polaris::SaveModel(*output.model, out));
    std::printf("wrote %s\n", out.c_str());
  }
  POLARIS_RETURN_IF_ERROR(WriteResult(output.result, result_path));
  std::printf("wrote %s\n", result_path.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Prunes a TorchScript classifier as a PruningConfig describes and writes the model and "
      "the measured result.\n  prune --model=cnn --config=CONFIG.textproto --out=OUT.pt "
      "--result=RESULT.textproto");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "prune: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
