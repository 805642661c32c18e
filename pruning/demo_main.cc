// Measures the pruning targets in one process, against dense baselines on the same machine:
//
//   mlp     Fashion-MNIST MLP pruned to 90% by gradual magnitude pruning with fine-tuning:
//           accuracy drop on the full test set (target: at most 1 point), and the file after
//           the sparse export.
//   cnn     residual CNN with 50% of its filters removed by structured pruning and fine-tuned:
//           accuracy drop (target: at most 1.5 points) and parameters (target: 1.8x fewer).
//           Latency at batch 64 against the dense model, both after optimize_for_inference on
//           the same threads (target: 1.6x faster).
//   search  NSGA-II search over the CNN's channel counts for accuracy and file size, with
//           candidates at least 3x smaller; the most accurate one is fine-tuned (target: within
//           1 point of the dense model, in under 20 minutes on 2 cores).
//
//   bazel run --config=opt //pruning:demo                  all three
//   bazel run --config=opt //pruning:demo -- --parts=cnn   one
//
// The reference models come from core's model zoo (trained once per machine). Validation data
// for the search is held out from the training set; accuracy is always measured on the full
// test set.
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/dataset.h"
#include "core/evaluate.h"
#include "core/fashion_mnist.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/models.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "pruning/evolutionary.h"
#include "pruning/gradual.h"
#include "pruning/latency_comparison.h"
#include "pruning/proto_conversion.h"
#include "pruning/structured.h"
#include "sparse/export.h"

ABSL_FLAG(std::string, parts, "mlp,cnn,search", "Comma-separated parts to run: mlp, cnn, search.");
ABSL_FLAG(int, threads, 0, "LibTorch and OpenBLAS threads; 0 uses all hardware threads.");
ABSL_FLAG(int, mlp_epochs, 8, "Training epochs of gradual pruning (the last quarter at 90%).");
ABSL_FLAG(double, mlp_learning_rate, 0.02, "Peak learning rate of gradual pruning.");
ABSL_FLAG(int, cnn_fine_tune_epochs, 3,
          "Fine-tuning epochs after structured pruning and after the search; 0 skips them.");
ABSL_FLAG(double, cnn_learning_rate, 0.05, "Peak learning rate of the CNN fine-tuning.");
ABSL_FLAG(int, search_population, 16, "Population of the search.");
ABSL_FLAG(int, search_generations, 12, "Generations of the search, the first included.");
ABSL_FLAG(double, search_min_size_reduction, 3.0,
          "Candidates must be this many times smaller than the dense file.");
ABSL_FLAG(std::string, search_checkpoint, "",
          "File for the search state; an existing one is resumed. Empty: no checkpoint.");

namespace polaris::pruning {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::StatusOr<double> TestAccuracy(const torch::jit::Module& model, const LabeledData& test) {
  torch::jit::Module copy = model;
  POLARIS_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(copy, test));
  return eval.accuracy;
}

absl::StatusOr<LatencyComparison> CompareOptimized(const torch::jit::Module& dense,
                                                   const torch::jit::Module& pruned,
                                                   const LabeledData& test, int64_t batch) {
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module dense_optimized, OptimizeForInference(dense));
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module pruned_optimized, OptimizeForInference(pruned));
  LatencyOptions options;
  options.warmup_runs = 10;
  options.timed_runs = batch > 1 ? 100 : 400;
  options.max_seconds = 30;
  options.min_timed_runs = 20;
  return CompareLatency(dense_optimized, pruned_optimized, Slice(test, 0, batch).inputs, options);
}

void PrintLatency(const char* label, const LatencyComparison& comparison, int64_t batch) {
  std::printf(
      "  %s batch %ld: dense %.3f ms (p90 %.3f), pruned %.3f ms (p90 %.3f): %.2fx faster "
      "(%d threads, %d alternating rounds; fastest runs %.3f vs %.3f ms, %.2fx)\n",
      label, static_cast<long>(batch), comparison.baseline.median_ms, comparison.baseline.p90_ms,
      comparison.candidate.median_ms, comparison.candidate.p90_ms, comparison.speedup,
      comparison.baseline.threads, comparison.baseline.runs, comparison.baseline.min_ms,
      comparison.candidate.min_ms, comparison.baseline.min_ms / comparison.candidate.min_ms);
}

const char* Verdict(bool met) { return met ? "MET" : "NOT MET"; }

absl::Status RunMlp(const LabeledData& train, const LabeledData& test) {
  std::printf("\n== MLP: gradual magnitude pruning to 90%% with fine-tuning ==\n");
  POLARIS_ASSIGN_OR_RETURN(TrainedModel dense, GetTrainedModel(ReferenceModel::kMlp));
  GradualPruningOptions options;
  options.pruning.sparsity = 0.9;
  options.pruning.scope = PruningScope::kGlobal;
  options.pruning.min_density = 0.02;
  options.frequency = 100;
  options.train = DefaultTrainOptions(ReferenceModel::kMlp);
  options.train.epochs = absl::GetFlag(FLAGS_mlp_epochs);
  options.train.learning_rate = absl::GetFlag(FLAGS_mlp_learning_rate);
  options.train.name = "gradual pruning";
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(GradualPruningResult pruned, GradualPrune(dense.model, train, options));
  const double seconds = Seconds(start);
  POLARIS_ASSIGN_OR_RETURN(double pruned_accuracy, TestAccuracy(pruned.model, test));

  sparse::SparseExportOptions export_options;
  POLARIS_ASSIGN_OR_RETURN(sparse::SparseExportResult exported,
                           sparse::ExportSparseModel(pruned.model, export_options));
  POLARIS_ASSIGN_OR_RETURN(double exported_accuracy, TestAccuracy(exported.model, test));
  POLARIS_ASSIGN_OR_RETURN(ModelSize dense_size, MeasureModelSize(dense.model));

  const double drop = 100 * (dense.test_accuracy - pruned_accuracy);
  std::printf("%s", FormatLayerSparsity(pruned.masks.layers).c_str());
  std::printf("  sparsity %.2f%% of Linear weights (global threshold), %ld mask updates, %.0f s\n",
              100 * pruned.masks.sparsity, static_cast<long>(pruned.schedule.size()), seconds);
  std::printf(
      "  test accuracy: dense %.2f%%, pruned %.2f%% (exported %.2f%%): drop %.2f points"
      " -> target <= 1 point %s\n",
      100 * dense.test_accuracy, 100 * pruned_accuracy, 100 * exported_accuracy, drop,
      Verdict(drop <= 1.0));
  std::printf("  file: dense %s, sparse export %s (%.2fx smaller)\n",
              FormatBytes(dense_size.file_bytes).c_str(),
              FormatBytes(exported.size_after.file_bytes).c_str(),
              static_cast<double>(dense_size.file_bytes) / exported.size_after.file_bytes);
  for (const sparse::LayerExportDecision& layer : exported.layers) {
    std::printf("  export %-6s %-14s dense %.3f ms, sparse %.3f ms%s\n", layer.layer.c_str(),
                layer.format.c_str(), layer.dense_ms, layer.sparse_ms,
                layer.uses_sparse_kernel ? " (sparse kernel used)" : "");
  }
  return absl::OkStatus();
}

absl::Status RunCnn(const LabeledData& train, const LabeledData& test) {
  std::printf("\n== CNN: structured pruning of 50%% of the filters, fine-tuned ==\n");
  POLARIS_ASSIGN_OR_RETURN(TrainedModel dense, GetTrainedModel(ReferenceModel::kResidualCnn));
  StructuredPruningOptions options;
  options.fraction = 0.5;
  POLARIS_ASSIGN_OR_RETURN(StructuredPruningResult pruned,
                           PruneChannels(dense.model, options, nullptr));
  std::printf("%s", FormatStructuredPruningReport(pruned).c_str());
  POLARIS_ASSIGN_OR_RETURN(double before_fine_tune, TestAccuracy(pruned.model, test));

  TrainOptions fine_tune = DefaultTrainOptions(ReferenceModel::kResidualCnn);
  fine_tune.epochs = absl::GetFlag(FLAGS_cnn_fine_tune_epochs);
  fine_tune.learning_rate = absl::GetFlag(FLAGS_cnn_learning_rate);
  fine_tune.warmup_steps = 0;
  fine_tune.name = "fine-tune pruned cnn";
  const auto start = std::chrono::steady_clock::now();
  if (fine_tune.epochs > 0) POLARIS_RETURN_IF_ERROR(Train(pruned.model, train, fine_tune).status());
  const double seconds = Seconds(start);
  POLARIS_ASSIGN_OR_RETURN(double accuracy, TestAccuracy(pruned.model, test));

  const double drop = 100 * (dense.test_accuracy - accuracy);
  const double parameter_ratio =
      static_cast<double>(pruned.parameters_before) / pruned.parameters_after;
  std::printf(
      "  test accuracy: dense %.2f%%, pruned %.2f%% before and %.2f%% after %d epochs "
      "of fine-tuning (%.0f s): drop %.2f points -> target <= 1.5 points %s\n",
      100 * dense.test_accuracy, 100 * before_fine_tune, 100 * accuracy, fine_tune.epochs, seconds,
      drop, Verdict(drop <= 1.5));
  std::printf("  parameters: %ld -> %ld, %.2fx fewer -> target >= 1.8x %s\n",
              static_cast<long>(pruned.parameters_before),
              static_cast<long>(pruned.parameters_after), parameter_ratio,
              Verdict(parameter_ratio >= 1.8));
  POLARIS_ASSIGN_OR_RETURN(LatencyComparison batch64,
                           CompareOptimized(dense.model, pruned.model, test, 64));
  PrintLatency("latency after optimize_for_inference,", batch64, 64);
  std::printf("  -> target >= 1.6x at batch 64 %s\n", Verdict(batch64.speedup >= 1.6));
  POLARIS_ASSIGN_OR_RETURN(LatencyComparison batch1,
                           CompareOptimized(dense.model, pruned.model, test, 1));
  PrintLatency("latency after optimize_for_inference,", batch1, 1);
  POLARIS_ASSIGN_OR_RETURN(ModelSize dense_size, MeasureModelSize(dense.model));
  POLARIS_ASSIGN_OR_RETURN(ModelSize pruned_size, MeasureModelSize(pruned.model));
  std::printf("  file: dense %s, pruned %s (%.2fx smaller)\n",
              FormatBytes(dense_size.file_bytes).c_str(),
              FormatBytes(pruned_size.file_bytes).c_str(),
              static_cast<double>(dense_size.file_bytes) / pruned_size.file_bytes);
  return absl::OkStatus();
}

absl::Status RunSearch(const LabeledData& train_all, const LabeledData& test) {
  std::printf("\n== CNN: evolutionary search (NSGA-II, accuracy and file size) ==\n");
  POLARIS_ASSIGN_OR_RETURN(TrainedModel dense, GetTrainedModel(ReferenceModel::kResidualCnn));
  // 5,000 training images held out for validation; the search and the fine-tuning train on
  // the rest.
  const auto [train, validation] = SplitHoldOut(train_all, 5000.0 / train_all.size(), 7);
  EvolutionarySearchOptions options;
  options.space = SearchSpace::kChannels;
  options.algorithm = SearchAlgorithm::kNsga2;
  options.objectives = {SearchObjective::kFileBytes};
  options.population_size = absl::GetFlag(FLAGS_search_population);
  options.generations = absl::GetFlag(FLAGS_search_generations);
  options.min_size_reduction = absl::GetFlag(FLAGS_search_min_size_reduction);
  options.validation_examples = 2000;
  options.calibration_examples = 2048;
  options.workers = HardwareThreads();
  options.threads_per_worker = 1;
  if (!absl::GetFlag(FLAGS_search_checkpoint).empty()) {
    options.checkpointer = FileCheckpointer(absl::GetFlag(FLAGS_search_checkpoint));
  }
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(SearchResult search,
                           EvolutionarySearch(dense.model, train, validation, options));
  const double search_seconds = Seconds(start);
  std::printf("%s", FormatParetoFront(search).c_str());
  std::printf("  %ld candidates measured in %d generations, %.0f s\n",
              static_cast<long>(search.evaluated.size()), search.generations_completed,
              search_seconds);

  TrainOptions fine_tune = DefaultTrainOptions(ReferenceModel::kResidualCnn);
  fine_tune.epochs = absl::GetFlag(FLAGS_cnn_fine_tune_epochs);
  fine_tune.learning_rate = absl::GetFlag(FLAGS_cnn_learning_rate);
  fine_tune.warmup_steps = 0;
  fine_tune.name = "fine-tune chosen cnn";
  torch::jit::Module chosen = search.chosen_model;
  if (fine_tune.epochs > 0) POLARIS_RETURN_IF_ERROR(Train(chosen, train, fine_tune).status());
  const double total_seconds = Seconds(start);
  POLARIS_ASSIGN_OR_RETURN(double accuracy, TestAccuracy(chosen, test));
  POLARIS_ASSIGN_OR_RETURN(ModelSize dense_size, MeasureModelSize(dense.model));
  POLARIS_ASSIGN_OR_RETURN(ModelSize chosen_size, MeasureModelSize(chosen));

  const double drop = 100 * (dense.test_accuracy - accuracy);
  const double reduction = static_cast<double>(dense_size.file_bytes) / chosen_size.file_bytes;
  std::printf(
      "  chosen model after %d epochs of fine-tuning: test accuracy %.2f%% (dense "
      "%.2f%%): drop %.2f points -> target <= 1 point %s\n",
      fine_tune.epochs, 100 * accuracy, 100 * dense.test_accuracy, drop, Verdict(drop <= 1.0));
  std::printf("  file: dense %s, chosen %s: %.2fx smaller -> target >= 3x %s\n",
              FormatBytes(dense_size.file_bytes).c_str(),
              FormatBytes(chosen_size.file_bytes).c_str(), reduction, Verdict(reduction >= 3.0));
  std::printf("  search + fine-tuning: %.1f minutes -> target < 20 minutes %s\n",
              total_seconds / 60, Verdict(total_seconds < 20 * 60));
  return absl::OkStatus();
}

absl::Status Run() {
  const int threads =
      absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : HardwareThreads();
  POLARIS_RETURN_IF_ERROR(SetThreads(threads));
  const std::vector<std::string> parts = absl::StrSplit(absl::GetFlag(FLAGS_parts), ',');
  const std::set<std::string> wanted(parts.begin(), parts.end());
  for (const std::string& part : wanted) {
    if (part != "mlp" && part != "cnn" && part != "search") {
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown part '%s' in --parts; use mlp, cnn and search", part));
    }
  }
  const RuntimeInfo info = CurrentRuntimeInfo();
  std::printf("polaris pruning demo: %s, %d threads, LibTorch %s, oneDNN %s\n",
              info.cpu_model.c_str(), info.intra_op_threads, info.libtorch_version.c_str(),
              info.onednn_version.c_str());
  POLARIS_ASSIGN_OR_RETURN(LabeledData train, LoadFashionMnist(DataSplit::kTrain));
  POLARIS_ASSIGN_OR_RETURN(LabeledData test, LoadFashionMnist(DataSplit::kTest));

  if (wanted.count("mlp") > 0) POLARIS_RETURN_IF_ERROR(RunMlp(train, test));
  if (wanted.count("cnn") > 0) POLARIS_RETURN_IF_ERROR(RunCnn(train, test));
  if (wanted.count("search") > 0) POLARIS_RETURN_IF_ERROR(RunSearch(train, test));
  return absl::OkStatus();
}

}  // namespace
}  // namespace polaris::pruning

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures polaris's pruning targets against dense baselines on this machine.");
  absl::ParseCommandLine(argc, argv);
  // Line-buffered, so that results appear in a log file as they are measured.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const absl::Status status = polaris::pruning::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "demo: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
