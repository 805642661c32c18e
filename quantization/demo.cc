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
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/file_util.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "quantization/internal/model_convert.h"
#include "quantization/fx_baseline.h"
#include "quantization/model_measurement.h"
#include "quantization/model_quantization.h"

ABSL_FLAG(int, threads, 2, "Threads for LibTorch, OpenBLAS and polaris's kernels.");
ABSL_FLAG(int64_t, calibration_examples, 2048,
          "Training images (a seeded random subset) used to calibrate activation ranges.");
ABSL_FLAG(int64_t, qat_examples, 16384,
          "Training images (a seeded random subset) for one epoch of quantization-aware "
          "training of the CNN.");
ABSL_FLAG(double, qat_learning_rate, 0.0005, "Peak learning rate of quantization-aware training.");
ABSL_FLAG(int, rounds, 5,
          "Latency rounds per batch size; each round times every variant in a block of runs.");
ABSL_FLAG(int, runs_per_round, 20, "Timed runs per variant and round.");
ABSL_FLAG(bool, fx, true, "Also quantize the CNN with PyTorch's FX workflow (needs python3-torch).");
ABSL_FLAG(int, accuracy_seeds, 3,
          "Calibration subsets (seeds 1, 2, ...) on which static int8 and PyTorch FX int8 are "
          "compared for accuracy; single runs differ by a few test images either way.");
ABSL_FLAG(std::string, fashion_mnist_dir, "",
          "Folder with the Fashion-MNIST IDX files; empty uses the default.");

namespace polaris::quantization {
namespace {

struct Variant {
  std::string name;
  torch::jit::Module model;
};

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

struct Target {
  std::string what;
  double measured;
  double limit;
  // True when the target is "at least limit", false for "at most limit".
  bool at_least;
};

void PrintTargets(const std::vector<Target>& targets) {
  std::printf("\nTargets (measured in this run):\n");
  for (const Target& target : targets) {
    const bool met = target.at_least ? target.measured >= target.limit
                                     : target.measured <= target.limit;
    std::printf("  %-70s %8.3f  (%s %.3f)  %s\n", target.what.c_str(), target.measured,
                target.at_least ? ">=" : "<=", target.limit, met ? "met" : "NOT MET");
  }
}

absl::StatusOr<std::vector<ModelMeasurement>> Measure(std::vector<Variant>& variants,
                                                      const LabeledData& test) {
  MeasurementOptions measurement;
  measurement.rounds = absl::GetFlag(FLAGS_rounds);
  measurement.runs_per_round = absl::GetFlag(FLAGS_runs_per_round);
  std::vector<torch::jit::Module*> models;
  for (Variant& variant : variants) models.push_back(&variant.model);
  return MeasureModels(models, test, measurement);
}

size_t IndexOf(const std::vector<Variant>& variants, const std::string& name) {
  for (size_t i = 0; i < variants.size(); ++i) {
    if (variants[i].name == name) return i;
  }
  return variants.size();
}

void PrintMixedPrecision(const QuantizationResult& result) {
  const MixedPrecisionReport& report = result.mixed_precision;
  std::printf("  mixed precision: budget %.0f bytes, chosen total %lld bytes, summed "
              "sensitivity %.3g; calibration accuracy %.2f%% (float %.2f%%)\n",
              report.budget_value, static_cast<long long>(report.total_bytes),
              report.total_sensitivity, 100 * report.calibration_accuracy,
              100 * report.float_calibration_accuracy);
  for (const MixedPrecisionLayer& layer : report.layers) {
    std::printf("  %-22s %s\n", layer.name.c_str(), layer.reason.c_str());
  }
}

// Accuracy of polaris's static int8 and of PyTorch FX int8 on the test set, each calibrated on
// the same random training subsets; returns the mean difference in points (ours minus FX).
absl::StatusOr<double> CompareAccuracyWithFx(const TrainedModel& cnn, const LabeledData& train,
                                             const LabeledData& test,
                                             const QuantizationOptions& options) {
  const int seeds = absl::GetFlag(FLAGS_accuracy_seeds);
  double difference = 0;
  std::printf("\nStatic int8 against PyTorch FX int8, test accuracy per calibration subset of "
              "%lld images:\n", static_cast<long long>(options.calibration_examples));
  for (int seed = 1; seed <= seeds; ++seed) {
    const LabeledData calibration =
        RandomSubset(train, options.calibration_examples, static_cast<uint64_t>(seed));
    POLARIS_ASSIGN_OR_RETURN(QuantizationResult ours,
                             QuantizeModel(cnn.model, options, calibration));
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module fx, QuantizeWithPytorchFx(cnn.path, calibration.inputs, "quantization_demo"));
    POLARIS_ASSIGN_OR_RETURN(const EvalResult ours_eval, Evaluate(ours.model, test));
    POLARIS_ASSIGN_OR_RETURN(const EvalResult fx_eval, Evaluate(fx, test));
    std::printf("  seed %d: polaris %.2f%%, FX %.2f%%\n", seed, 100 * ours_eval.accuracy,
                100 * fx_eval.accuracy);
    difference += 100 * (ours_eval.accuracy - fx_eval.accuracy) / seeds;
  }
  std::printf("  mean difference %+.3f points (fp32 %.2f%%)\n", difference,
              100 * cnn.test_accuracy);
  return difference;
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

  // The residual CNN.
  QuantizationOptions ptq;
  ptq.calibration_examples = calibration.size();
  std::vector<Variant> cnn_variants;
  cnn_variants.push_back({"fp32 TorchScript as saved", cnn.model});
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module optimized, OptimizeForInference(cnn.model));
  cnn_variants.push_back({"fp32 optimize_for_inference", optimized});
  if (absl::GetFlag(FLAGS_fx)) {
    absl::StatusOr<torch::jit::Module> fx = QuantizeWithPytorchFx(cnn.path, calibration.inputs, "quantization_demo");
    if (fx.ok()) {
      cnn_variants.push_back({"PyTorch FX int8 (onednn)", *fx});
    } else {
      std::printf("PyTorch FX reference unavailable: %s\n", fx.status().ToString().c_str());
    }
  }
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult cnn_static, QuantizeModel(cnn.model, ptq, calibration));
  PrintLayers("static int8 (PTQ) of the CNN", cnn_static);
  cnn_variants.push_back({"polaris static int8", cnn_static.model});

  QuantizationOptions stock = ptq;
  stock.use_polaris_ops = false;
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult cnn_stock, QuantizeModel(cnn.model, stock, calibration));
  cnn_variants.push_back({"polaris static int8, LibTorch ops", cnn_stock.model});

  QuantizationOptions qat = ptq;
  qat.method = QuantizationMethod::kQat;
  qat.qat.learning_rate = absl::GetFlag(FLAGS_qat_learning_rate);
  qat.qat.epochs = 1;
  POLARIS_ASSIGN_OR_RETURN(
      QuantizationResult cnn_qat,
      QuantizeModel(cnn.model, qat, RandomSubset(train, absl::GetFlag(FLAGS_qat_examples), 2)));
  PrintLayers("quantization-aware training, int8", cnn_qat);
  cnn_variants.push_back({"polaris QAT int8", cnn_qat.model});

  QuantizationOptions mixed = ptq;
  mixed.method = QuantizationMethod::kMixedPrecision;
  mixed.group_size = 112;
  mixed.mixed_precision.max_weight_bytes = 150000;
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult cnn_mixed,
                           QuantizeModel(cnn.model, mixed, calibration));
  PrintLayers("mixed precision, at most 150 kB of weights", cnn_mixed);
  PrintMixedPrecision(cnn_mixed);
  cnn_variants.push_back({"polaris mixed precision", cnn_mixed.model});

  QuantizationOptions dynamic = ptq;
  dynamic.method = QuantizationMethod::kDynamic;
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult cnn_dynamic,
                           QuantizeModel(cnn.model, dynamic, calibration));
  cnn_variants.push_back({"polaris dynamic int8 (Linear only)", cnn_dynamic.model});

  POLARIS_ASSIGN_OR_RETURN(const std::vector<ModelMeasurement> cnn_measured,
                           Measure(cnn_variants, test));
  PrintTable("Residual CNN, Fashion-MNIST test set (10000 images)", cnn_variants, cnn_measured,
             /*baseline=*/1);

  // The MLP.
  std::vector<Variant> mlp_variants;
  mlp_variants.push_back({"fp32 TorchScript as saved", mlp.model});
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module mlp_optimized, OptimizeForInference(mlp.model));
  mlp_variants.push_back({"fp32 optimize_for_inference", mlp_optimized});
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult mlp_static, QuantizeModel(mlp.model, ptq, calibration));
  mlp_variants.push_back({"polaris static int8", mlp_static.model});
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult mlp_dynamic,
                           QuantizeModel(mlp.model, dynamic, calibration));
  mlp_variants.push_back({"polaris dynamic int8", mlp_dynamic.model});
  QuantizationOptions int4 = ptq;
  int4.method = QuantizationMethod::kWeightOnlyInt4;
  int4.weight_bits = 4;
  int4.group_size = 112;  // 784 = 7 x 112
  int4.layer_group_sizes["fc2"] = 128;
  POLARIS_ASSIGN_OR_RETURN(QuantizationResult mlp_int4, QuantizeModel(mlp.model, int4, calibration));
  PrintLayers("weight-only INT4 of the MLP", mlp_int4);
  mlp_variants.push_back({"polaris INT4 weights (groups 112/128)", mlp_int4.model});
  POLARIS_ASSIGN_OR_RETURN(const std::vector<ModelMeasurement> mlp_measured,
                           Measure(mlp_variants, test));
  PrintTable("MLP, Fashion-MNIST test set (10000 images)", mlp_variants, mlp_measured,
             /*baseline=*/1);

  // The targets, each from the measurements above.
  std::vector<Target> targets;
  const auto accuracy = [](const std::vector<ModelMeasurement>& measured, size_t i) {
    return 100 * measured[i].evaluation.accuracy;
  };
  const auto file = [](const std::vector<ModelMeasurement>& measured, size_t i) {
    return static_cast<double>(measured[i].size.file_bytes);
  };
  const size_t ours = IndexOf(cnn_variants, "polaris static int8");
  const size_t fx = IndexOf(cnn_variants, "PyTorch FX int8 (onednn)");
  const size_t cnn_qat_index = IndexOf(cnn_variants, "polaris QAT int8");
  targets.push_back({"CNN PTQ int8 accuracy drop, points",
                     accuracy(cnn_measured, 0) - accuracy(cnn_measured, ours), 0.2, false});
  targets.push_back({"CNN QAT int8 accuracy drop, points",
                     accuracy(cnn_measured, 0) - accuracy(cnn_measured, cnn_qat_index), 0.2,
                     false});
  targets.push_back({"CNN int8 file, times smaller than fp32",
                     file(cnn_measured, 0) / file(cnn_measured, ours), 3.5, true});
  if (fx < cnn_variants.size()) {
    targets.push_back({"CNN PTQ int8 accuracy minus PyTorch FX int8 accuracy, points",
                       accuracy(cnn_measured, ours) - accuracy(cnn_measured, fx), 0, true});
    if (absl::GetFlag(FLAGS_accuracy_seeds) > 0) {
      POLARIS_ASSIGN_OR_RETURN(const double mean_difference,
                               CompareAccuracyWithFx(cnn, train, test, ptq));
      targets.push_back(
          {absl::StrCat("  the same, mean over ", absl::GetFlag(FLAGS_accuracy_seeds),
                        " calibration subsets"),
           mean_difference, 0, true});
    }
    for (size_t b = 0; b < cnn_measured[ours].batch_sizes.size(); ++b) {
      targets.push_back(
          {absl::StrCat("CNN static int8 speed relative to PyTorch FX int8, batch ",
                        cnn_measured[ours].batch_sizes[b], " (FX median / ours)"),
           cnn_measured[fx].latencies[b].median_ms / cnn_measured[ours].latencies[b].median_ms,
           1.0, true});
    }
  }
  const size_t mlp_int4_index = IndexOf(mlp_variants, "polaris INT4 weights (groups 112/128)");
  targets.push_back({"MLP INT4 accuracy drop, points",
                     accuracy(mlp_measured, 0) - accuracy(mlp_measured, mlp_int4_index), 1.0,
                     false});
  targets.push_back({"MLP INT4 file, times smaller than fp32",
                     file(mlp_measured, 0) / file(mlp_measured, mlp_int4_index), 6.0, true});
  PrintTargets(targets);
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
