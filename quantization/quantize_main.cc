// Quantizes one TorchScript model with one configuration and writes the quantized model and a
// result report, so that a quantization result can be reproduced without the pipeline:
//
//   bazel run //quantization:quantize -- --model=cnn.pt \
//       --config=quantization/configs/static_int8.textproto --out=cnn_int8.pt \
//       --result=cnn_int8.json
//
// Relative paths are relative to the directory bazel run was started from. The result is
// written in text format, or as JSON when its name ends in ".json". Calibration (and, for QAT,
// training) data is a random subset of the Fashion-MNIST training set unless --data names a
// torch.save file of (inputs, labels) or (train_inputs, train_labels, test_inputs,
// test_labels); accuracy is measured on the test split of the same source. The command
// prints one line per error and exits with status 1.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/dataset.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/latency.h"
#include "core/model_io.h"
#include "core/proto_conversion.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/tensor_file.h"
#include "quantization/model_measurement.h"
#include "quantization/model_proto_conversion.h"
#include "quantization/model_quantization.h"

ABSL_FLAG(std::string, model, "", "TorchScript model to quantize (required).");
ABSL_FLAG(std::string, config, "",
          "Text-format polaris.proto.QuantizationConfig (required); examples are in "
          "quantization/configs/.");
ABSL_FLAG(std::string, out, "", "Where to write the quantized TorchScript model (required).");
ABSL_FLAG(std::string, result, "",
          "Where to write the result report: JSON when the name ends in .json, else text format "
          "(required).");
ABSL_FLAG(std::string, data, "",
          "torch.save file with calibration and test data; empty uses Fashion-MNIST.");
ABSL_FLAG(int64_t, calibration_subset, 8192,
          "Training examples (a seeded random subset) passed to quantization as calibration "
          "data; QAT trains on them, so raise it for QAT. 0 passes all of them.");
ABSL_FLAG(int, threads, 2, "Threads for LibTorch, OpenBLAS and polaris's kernels.");
ABSL_FLAG(bool, measure, true,
          "Measure accuracy, file size and latency of the float, optimized float and quantized "
          "models on the test data.");
ABSL_FLAG(int, latency_rounds, 5,
          "Latency rounds per batch size; each round times every model in a block of 20 runs.");

namespace polaris::quantization {
namespace {

struct Data {
  LabeledData train;
  LabeledData test;
  std::string test_name;
};

absl::StatusOr<Data> LoadData() {
  Data data;
  const std::string path = absl::GetFlag(FLAGS_data);
  if (path.empty()) {
    POLARIS_ASSIGN_OR_RETURN(data.train, LoadFashionMnist(DataSplit::kTrain));
    POLARIS_ASSIGN_OR_RETURN(data.test, LoadFashionMnist(DataSplit::kTest));
    data.test_name = absl::StrCat("Fashion-MNIST test (", data.test.size(), " images)");
    return data;
  }
  POLARIS_ASSIGN_OR_RETURN(SavedDataSets saved, LoadSavedDataSets(ResolveUserPath(path)));
  data.test = saved.test;
  data.train = saved.train.has_value() ? *saved.train : saved.test;
  data.test_name = absl::StrCat(path, saved.train.has_value() ? " (test split, " : " (",
                                data.test.size(), " examples)");
  return data;
}

absl::Status Run() {
  const std::string model_path = absl::GetFlag(FLAGS_model);
  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  const std::string result_path = absl::GetFlag(FLAGS_result);
  if (model_path.empty() || config_path.empty() || out_path.empty() || result_path.empty()) {
    return absl::InvalidArgumentError(
        "--model, --config, --out and --result are required; run with --help for details");
  }
  POLARIS_RETURN_IF_ERROR(SetThreads(absl::GetFlag(FLAGS_threads)));
  POLARIS_RETURN_IF_ERROR(UseOnednnQuantizedEngine());

  POLARIS_ASSIGN_OR_RETURN(const proto::QuantizationConfig config,
                           ReadQuantizationConfig(ResolveUserPath(config_path)));
  POLARIS_ASSIGN_OR_RETURN(const QuantizationOptions options, OptionsFromConfig(config));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model, LoadModel(ResolveUserPath(model_path)));
  POLARIS_ASSIGN_OR_RETURN(const Data data, LoadData());
  const int64_t subset = absl::GetFlag(FLAGS_calibration_subset);
  const LabeledData calibration =
      subset > 0 ? RandomSubset(data.train, subset, /*seed=*/1) : data.train;

  POLARIS_ASSIGN_OR_RETURN(QuantizationResult result,
                           QuantizeModel(model, options, calibration));
  POLARIS_RETURN_IF_ERROR(SaveModel(result.model, ResolveUserPath(out_path)));

  proto::QuantizationResult report = ResultToProto(result, options);
  report.set_model_path(model_path);
  report.set_output_path(out_path);
  if (absl::GetFlag(FLAGS_measure)) {
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module optimized, OptimizeForInference(model));
    MeasurementOptions measurement;
    measurement.rounds = absl::GetFlag(FLAGS_latency_rounds);
    POLARIS_ASSIGN_OR_RETURN(
        const std::vector<ModelMeasurement> measured,
        MeasureModels({&model, &optimized, &result.model}, data.test, measurement));
    const char* variants[] = {"fp32 as given", "fp32 optimize_for_inference", "quantized"};
    for (size_t i = 0; i < measured.size(); ++i) {
      *report.add_measurements() = MeasurementToProto(measured[i], variants[i], data.test_name);
    }
    std::printf("accuracy %.2f%% -> %.2f%%, file %s -> %s, batch 1 %.3f ms (optimized fp32 "
                "%.3f ms), batch 64 %.3f ms (optimized fp32 %.3f ms)\n",
                100 * measured[0].evaluation.accuracy, 100 * measured[2].evaluation.accuracy,
                FormatBytes(measured[0].size.file_bytes).c_str(),
                FormatBytes(measured[2].size.file_bytes).c_str(),
                measured[2].latencies[0].median_ms, measured[1].latencies[0].median_ms,
                measured[2].latencies[1].median_ms, measured[1].latencies[1].median_ms);
  }
  *report.mutable_environment() = ToEnvironmentProto(CurrentRuntimeInfo(), DescribeGitCommit());
  POLARIS_RETURN_IF_ERROR(WriteQuantizationResult(report, ResolveUserPath(result_path)));
  std::printf("%s: %zu layers converted, %zu left in float32, output SQNR %.1f dB; wrote %s and "
              "%s\n",
              std::string(QuantizationMethodName(options.method)).c_str(), result.layers.size(),
              result.skipped.size(), result.output_sqnr_db, out_path.c_str(),
              result_path.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace polaris::quantization

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Quantizes a TorchScript model: quantize --model=IN.pt --config=CONFIG.textproto "
      "--out=OUT.pt --result=RESULT.json");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = polaris::quantization::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "quantize: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
