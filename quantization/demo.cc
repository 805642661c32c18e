// Quantizes polaris's Fashion-MNIST reference models with every method and prints, for each
// variant, the accuracy on the full test set, the file size and the latency at batch 1 and 64,
// beside the fp32 model as saved, the fp32 model after torch::jit::optimize_for_inference (the
// baseline every speedup is measured against) and PyTorch's own FX int8 result on the same CNN.
//
//   bazel run --config=opt //quantization:demo
//
// The trained models come from core's model zoo (trained once per machine, about 3 minutes for
// the CNN). PyTorch's FX result needs Debian's python3-torch at /usr/bin/python3; without it
// that row is left out and the demo says so.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/dataset.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "quantization/internal/model_convert.h"
#include "quantization/model_measurement.h"
#include "quantization/model_quantization.h"
#include "torch/csrc/jit/serialization/pickle.h"

ABSL_FLAG(int, threads, 2, "Threads for LibTorch, OpenBLAS and polaris's kernels.");
ABSL_FLAG(int64_t, calibration_examples, 2048,
          "Training images (a seeded random subset) used to calibrate activation ranges.");
ABSL_FLAG(int, rounds, 100, "Timed rounds per batch size; each round runs every variant once.");
ABSL_FLAG(bool, fx, true, "Also quantize the CNN with PyTorch's FX workflow (needs python3-torch).");
ABSL_FLAG(std::string, fashion_mnist_dir, "",
          "Folder with the Fashion-MNIST IDX files; empty uses the default.");

namespace polaris::quantization {
namespace {

constexpr char kPython[] = "/usr/bin/python3";

struct Variant {
  std::string name;
  torch::jit::Module model;
};

// Runs fx_reference.py on the CNN and loads the FX int8 model it writes.
absl::StatusOr<torch::jit::Module> QuantizeWithFx(const std::string& model_path,
                                                  const at::Tensor& calibration_inputs) {
  POLARIS_ASSIGN_OR_RETURN(const std::string cache, UserCacheDir());
  const std::string calibration_path = absl::StrCat(cache, "/quantization_demo_calibration.pt");
  const std::string out_path = absl::StrCat(cache, "/quantization_demo_fx_int8.pt");
  POLARIS_ASSIGN_OR_RETURN(
      const std::vector<char> bytes,
      CallTorch("serializing the calibration inputs",
                [&] { return torch::jit::pickle_save(calibration_inputs); }));
  POLARIS_RETURN_IF_ERROR(
      WriteFileAtomically(calibration_path, absl::string_view(bytes.data(), bytes.size())));

  // Under bazel run the script is in the runfiles tree, the current directory.
  const std::string command = absl::StrCat(kPython, " quantization/fx_reference.py '",
                                           model_path, "' '", calibration_path, "' '", out_path,
                                           "'");
  std::fprintf(stderr, "quantizing the CNN with PyTorch FX: %s\n", command.c_str());
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("'", command, "' failed"));
  }
  return LoadModel(out_path);
}

void PrintTable(const std::string& title, const std::vector<Variant>& variants,
                const std::vector<ModelMeasurement>& measurements, size_t baseline) {
  std::printf("\n%s\n", title.c_str());
  std::printf("%-34s %9s %8s %10s %7s %10s %10s %9s %9s\n", "variant", "accuracy", "change",
              "file", "smaller", "batch 1", "batch 64", "speedup", "speedup");
  std::printf("%-34s %9s %8s %10s %7s %10s %10s %9s %9s\n", "", "", "(points)", "", "",
              "median ms", "median ms", "batch 1", "batch 64");
  const ModelMeasurement& base = measurements[baseline];
  const ModelMeasurement& saved = measurements[0];
  for (size_t i = 0; i < variants.size(); ++i) {
    const ModelMeasurement& m = measurements[i];
    std::printf("%-34s %8.2f%% %+8.2f %10s %6.2fx %10.3f %10.3f %8.2fx %8.2fx\n",
                variants[i].name.c_str(), 100 * m.evaluation.accuracy,
                100 * (m.evaluation.accuracy - saved.evaluation.accuracy),
                FormatBytes(m.size.file_bytes).c_str(),
                static_cast<double>(saved.size.file_bytes) / m.size.file_bytes,
                m.latencies[0].median_ms, m.latencies[1].median_ms,
                base.latencies[0].median_ms / m.latencies[0].median_ms,
                base.latencies[1].median_ms / m.latencies[1].median_ms);
  }
  std::printf("speedups are against '%s'; latency p90 in ms (batch 1 / batch 64):",
              variants[baseline].name.c_str());
  for (size_t i = 0; i < variants.size(); ++i) {
    std::printf("%s %s %.3f/%.3f", i == 0 ? "" : ",", variants[i].name.c_str(),
                measurements[i].latencies[0].p90_ms, measurements[i].latencies[1].p90_ms);
  }
  std::printf("\n");
}

void PrintLayers(const std::string& name, const QuantizationResult& result) {
  std::printf("\n%s: %zu layers converted, model output SQNR %.1f dB, weight bytes %s -> %s\n",
              name.c_str(), result.layers.size(), result.output_sqnr_db,
              FormatBytes(result.weight_bytes_before).c_str(),
              FormatBytes(result.weight_bytes_after).c_str());
  for (const LayerReport& layer : result.layers) {
    std::printf("  %-22s %-5s %-30s weight SQNR %5.1f dB, output SQNR %5.1f dB, %s -> %s\n",
                layer.name.c_str(), std::string(LayerPrecisionName(layer.precision)).c_str(),
                layer.op.c_str(), layer.weight_sqnr_db, layer.output_sqnr_db,
                FormatBytes(layer.bytes_before).c_str(), FormatBytes(layer.bytes_after).c_str());
  }
  for (const SkippedLayer& layer : result.skipped) {
    std::printf("  %-22s stays fp32: %s\n", layer.name.c_str(), layer.reason.c_str());
  }
}

absl::Status Run() {
  POLARIS_RETURN_IF_ERROR(SetThreads(absl::GetFlag(FLAGS_threads)));
  POLARIS_RETURN_IF_ERROR(UseOnednnQuantizedEngine());
  const RuntimeInfo info = CurrentRuntimeInfo();
  std::printf("threads %d (OpenBLAS %d), %s, LibTorch %s, oneDNN %s, quantized engine %s\n",
              info.intra_op_threads, info.openblas_threads, info.cpu_model.c_str(),
              info.libtorch_version.c_str(), info.onednn_version.c_str(),
              info.quantized_engine.c_str());
  if (ReferenceBlasActive()) {
    std::printf("warning: LibTorch uses Debian's reference BLAS; fp32 baselines are too slow\n");
  }

  std::string data_dir = absl::GetFlag(FLAGS_fashion_mnist_dir);
  if (data_dir.empty()) data_dir = DefaultFashionMnistDir();
  POLARIS_ASSIGN_OR_RETURN(const LabeledData train, LoadFashionMnist(DataSplit::kTrain, data_dir));
  POLARIS_ASSIGN_OR_RETURN(const LabeledData test, LoadFashionMnist(DataSplit::kTest, data_dir));
  const LabeledData calibration =
      RandomSubset(train, absl::GetFlag(FLAGS_calibration_examples), /*seed=*/1);
  ZooOptions zoo;
  zoo.data_dir = data_dir;
  POLARIS_ASSIGN_OR_RETURN(TrainedModel cnn, GetTrainedModel(ReferenceModel::kResidualCnn, zoo));
  POLARIS_ASSIGN_OR_RETURN(TrainedModel mlp, GetTrainedModel(ReferenceModel::kMlp, zoo));

  MeasurementOptions measurement;
  measurement.rounds = absl::GetFlag(FLAGS_rounds);
  const bool polaris_ops = internal::PolarisOpsAvailable();

  // The residual CNN.
  std::vector<Variant> cnn_variants;
  cnn_variants.push_back({"fp32 TorchScript as saved", cnn.model});
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module optimized, OptimizeForInference(cnn.model));
  cnn_variants.push_back({"fp32 optimize_for_inference", optimized});
  if (absl::GetFlag(FLAGS_fx)) {
    absl::StatusOr<torch::jit::Module> fx = QuantizeWithFx(cnn.path, calibration.inputs);
    if (fx.ok()) {
      cnn_variants.push_back({"PyTorch FX int8 (onednn)", *fx});
    } else {
      std::printf("PyTorch FX reference unavailable: %s\n", fx.status().ToString().c_str());
    }
  }
  QuantizationOptions static_options;
  static_options.calibration_examples = calibration.size();
  static_options.use_polaris_ops = polaris_ops;
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult ptq,
                           QuantizeModel(cnn.model, static_options, calibration));
  PrintLayers("static int8 (PTQ) of the CNN", ptq);
  cnn_variants.push_back(
      {polaris_ops ? "polaris static int8" : "polaris static int8 (LibTorch ops)", ptq.model});
  if (polaris_ops) {
    QuantizationOptions stock = static_options;
    stock.use_polaris_ops = false;
    POLARIS_ASSIGN_OR_RETURN(QuantizationResult stock_ptq,
                             QuantizeModel(cnn.model, stock, calibration));
    cnn_variants.push_back({"polaris static int8 (LibTorch ops)", stock_ptq.model});
  }

  std::vector<torch::jit::Module*> cnn_models;
  for (Variant& variant : cnn_variants) cnn_models.push_back(&variant.model);
  POLARIS_ASSIGN_OR_RETURN(std::vector<ModelMeasurement> cnn_measured,
                           MeasureModels(cnn_models, test, measurement));
  PrintTable("Residual CNN, Fashion-MNIST test set (10000 images)", cnn_variants, cnn_measured,
             /*baseline=*/1);

  // The MLP.
  std::vector<Variant> mlp_variants;
  mlp_variants.push_back({"fp32 TorchScript as saved", mlp.model});
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module mlp_optimized, OptimizeForInference(mlp.model));
  mlp_variants.push_back({"fp32 optimize_for_inference", mlp_optimized});
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult mlp_static,
                           QuantizeModel(mlp.model, static_options, calibration));
  mlp_variants.push_back({"polaris static int8", mlp_static.model});
  std::vector<torch::jit::Module*> mlp_models;
  for (Variant& variant : mlp_variants) mlp_models.push_back(&variant.model);
  POLARIS_ASSIGN_OR_RETURN(std::vector<ModelMeasurement> mlp_measured,
                           MeasureModels(mlp_models, test, measurement));
  PrintTable("MLP, Fashion-MNIST test set (10000 images)", mlp_variants, mlp_measured,
             /*baseline=*/1);
  return absl::OkStatus();
}

}  // namespace
}  // namespace polaris::quantization

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = polaris::quantization::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "demo failed: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
