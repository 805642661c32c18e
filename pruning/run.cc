#include "pruning/run.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/evaluate.h"
#include "core/graph_utils.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/model_zoo.h"
#include "core/proto_conversion.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "core/trainer.h"
#include "pruning/evolutionary.h"
#include "pruning/gradual.h"
#include "pruning/latency_comparison.h"
#include "pruning/magnitude.h"
#include "pruning/proto_conversion.h"
#include "pruning/sensitivity.h"
#include "pruning/structured.h"
#include "sparse/export.h"
#include "sparse/proto_conversion.h"

namespace polaris::pruning {
namespace {

constexpr double kDefaultValidationFraction = 0.1;
constexpr int64_t kDefaultLatencyBatchSize = 64;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// State shared by the steps of one run.
struct Run {
  const PruningRunInput& input;
  const proto::PruningConfig& config;
  LabeledData train;
  LabeledData validation;
  TrainOptions train_defaults;
  std::vector<int64_t> example_shape;
  PruningRunOutput output;
};

absl::Status RequireTraining(const Run& run, absl::string_view method) {
  if (run.train.size() > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(method,
                   " needs training data, but the data has only a test set; pass a --data file "
                   "with (train_inputs, train_labels, test_inputs, test_labels)"));
}

absl::StatusOr<TrainOptions> FineTuneOptions(const Run& run) {
  POLARIS_ASSIGN_OR_RETURN(TrainOptions options,
                           ToTrainOptions(run.config.fine_tune(), run.train_defaults));
  options.name = "fine-tune";
  return options;
}

absl::StatusOr<int64_t> NonZeroParameters(const torch::jit::Module& model) {
  return CallTorch("counting non-zero parameters", [&] {
    int64_t count = 0;
    for (const at::Tensor& parameter : model.parameters()) {
      count += parameter.detach().ne(0).sum().item<int64_t>();
    }
    return count;
  });
}

// Masks that keep the non-zero weights of every Conv2d and Linear layer, for fine-tuning a
// model whose zeros must stay.
absl::StatusOr<PruningMasks> MasksOfZeros(const torch::jit::Module& model,
                                          const std::vector<int64_t>& example_shape) {
  UnstructuredPruningOptions options;
  options.sparsity = 0;
  options.example_shape = example_shape;
  POLARIS_ASSIGN_OR_RETURN(PruningMasks masks, ComputeMagnitudeMasks(model, options));
  for (auto& [path, mask] : masks.masks) {
    POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, path));
    mask = weight.detach().ne(0);
  }
  return masks;
}

void RecordLayers(Run& run, const PruningMasks& masks) {
  for (const LayerSparsity& layer : masks.layers) {
    *run.output.result.add_layers() = ToLayerResultProto(layer);
  }
  run.output.result.set_overall_sparsity(masks.sparsity);
  absl::StrAppend(&run.output.report, FormatLayerSparsity(masks.layers));
}

absl::StatusOr<torch::jit::Module> FineTuneMasked(Run& run, const torch::jit::Module& model,
                                                  const PruningMasks& masks) {
  POLARIS_RETURN_IF_ERROR(RequireTraining(run, "fine-tuning"));
  POLARIS_ASSIGN_OR_RETURN(TrainOptions options, FineTuneOptions(run));
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(MaskedTrainingResult tuned,
                           FineTuneWithMasks(model, masks, run.train, options));
  run.output.result.set_fine_tune_seconds(SecondsSince(start));
  RecordLayers(run, tuned.masks);
  return tuned.model;
}

absl::StatusOr<torch::jit::Module> FineTunePlain(Run& run, torch::jit::Module model) {
  POLARIS_RETURN_IF_ERROR(RequireTraining(run, "fine-tuning"));
  POLARIS_ASSIGN_OR_RETURN(TrainOptions options, FineTuneOptions(run));
  const auto start = std::chrono::steady_clock::now();
  POLARIS_RETURN_IF_ERROR(Train(model, run.train, options).status());
  run.output.result.set_fine_tune_seconds(SecondsSince(start));
  return model;
}

absl::StatusOr<torch::jit::Module> RunMagnitude(Run& run) {
  POLARIS_ASSIGN_OR_RETURN(UnstructuredPruningOptions options,
                           ToUnstructuredPruningOptions(run.config.magnitude()));
  options.example_shape = run.example_shape;
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(UnstructuredPruningResult pruned,
                           PruneMagnitude(run.input.model, options));
  run.output.result.set_prune_seconds(SecondsSince(start));
  if (!run.config.has_fine_tune()) {
    RecordLayers(run, pruned.masks);
    return pruned.model;
  }
  return FineTuneMasked(run, pruned.model, pruned.masks);
}

absl::StatusOr<torch::jit::Module> RunStructured(Run& run) {
  POLARIS_ASSIGN_OR_RETURN(StructuredPruningOptions options,
                           ToStructuredPruningOptions(run.config.structured()));
  options.example_shape = run.example_shape;
  options.seed = run.config.has_seed() ? run.config.seed() : options.seed;
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(
      StructuredPruningResult pruned,
      PruneChannels(run.input.model, options, run.train.size() > 0 ? &run.train : nullptr));
  run.output.result.set_prune_seconds(SecondsSince(start));
  for (const ChannelGroupReport& group : pruned.groups) {
    *run.output.result.add_groups() = ToChannelGroupProto(group);
  }
  absl::StrAppend(&run.output.report, FormatStructuredPruningReport(pruned));
  if (!run.config.has_fine_tune()) return pruned.model;
  return FineTunePlain(run, pruned.model);
}

absl::StatusOr<torch::jit::Module> RunGradual(Run& run) {
  POLARIS_RETURN_IF_ERROR(RequireTraining(run, "gradual pruning"));
  POLARIS_ASSIGN_OR_RETURN(TrainOptions train, FineTuneOptions(run));
  train.name = "gradual pruning";
  POLARIS_ASSIGN_OR_RETURN(GradualPruningOptions options,
                           ToGradualPruningOptions(run.config.gradual(), train));
  options.pruning.example_shape = run.example_shape;
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(GradualPruningResult pruned,
                           GradualPrune(run.input.model, run.train, options));
  run.output.result.set_prune_seconds(SecondsSince(start));
  for (const SparsityPoint& point : pruned.schedule) {
    *run.output.result.add_schedule() = ToScheduleStepProto(point);
  }
  RecordLayers(run, pruned.masks);
  return pruned.model;
}

absl::Status RunSensitivity(Run& run) {
  POLARIS_RETURN_IF_ERROR(RequireTraining(run, "the sensitivity scan"));
  POLARIS_ASSIGN_OR_RETURN(SensitivityOptions options,
                           ToSensitivityOptions(run.config.sensitivity()));
  options.example_shape = run.example_shape;
  const auto start = std::chrono::steady_clock::now();
  POLARIS_ASSIGN_OR_RETURN(SensitivityAnalysis analysis,
                           ScanSensitivity(run.input.model, run.validation, options));
  run.output.result.set_prune_seconds(SecondsSince(start));
  *run.output.result.mutable_sensitivity() = ToSensitivityProto(analysis);
  absl::StrAppend(&run.output.report, FormatSensitivityTable(analysis));
  return absl::OkStatus();
}

// Scans the sensitivity that matches the search space on the validation subset the search
// uses, to seed the search's first generation.
absl::StatusOr<SensitivityAnalysis> SeedingScan(Run& run,
                                                const EvolutionarySearchOptions& options) {
  SensitivityOptions scan;
  scan.method = options.space == SearchSpace::kChannels ? SensitivityMethod::kChannels
                                                        : SensitivityMethod::kMagnitude;
  scan.criterion = options.criterion;
  scan.example_shape = run.example_shape;
  scan.workers = options.workers;
  scan.threads_per_worker = options.threads_per_worker;
  const LabeledData subset = options.validation_examples > 0
                                 ? Slice(run.validation, 0, options.validation_examples)
                                 : run.validation;
  POLARIS_ASSIGN_OR_RETURN(SensitivityAnalysis analysis,
                           ScanSensitivity(run.input.model, subset, scan));
  *run.output.result.mutable_sensitivity() = ToSensitivityProto(analysis);
  return analysis;
}

absl::StatusOr<torch::jit::Module> RunSearch(Run& run) {
  POLARIS_RETURN_IF_ERROR(RequireTraining(run, "the evolutionary search"));
  POLARIS_ASSIGN_OR_RETURN(EvolutionarySearchOptions options,
                           ToEvolutionarySearchOptions(run.config.search(), run.train_defaults));
  options.example_shape = run.example_shape;

  const auto start = std::chrono::steady_clock::now();
  if (run.config.search().seed_from_sensitivity()) {
    POLARIS_ASSIGN_OR_RETURN(options.sensitivity, SeedingScan(run, options));
  }
  POLARIS_ASSIGN_OR_RETURN(SearchResult search,
                           EvolutionarySearch(run.input.model, run.train, run.validation, options));
  run.output.result.set_prune_seconds(SecondsSince(start));
  *run.output.result.mutable_search() = ToSearchResultProto(search);
  absl::StrAppend(&run.output.report, FormatParetoFront(search));
  if (!search.finished) {
    absl::StrAppendFormat(&run.output.report,
                          "the search stopped after %d of %d generations; run again to resume\n",
                          search.generations_completed, options.generations);
  }

  if (!run.config.has_fine_tune()) return search.chosen_model;
  if (options.space == SearchSpace::kChannels) return FineTunePlain(run, search.chosen_model);
  POLARIS_ASSIGN_OR_RETURN(PruningMasks masks,
                           MasksOfZeros(search.chosen_model, run.example_shape));
  return FineTuneMasked(run, search.chosen_model, masks);
}

absl::StatusOr<torch::jit::Module> Export(Run& run, const torch::jit::Module& model) {
  POLARIS_ASSIGN_OR_RETURN(sparse::SparseExportOptions options,
                           sparse::ToSparseExportOptions(run.config.export_()));
  options.example_shape = run.example_shape;
  POLARIS_ASSIGN_OR_RETURN(sparse::SparseExportResult exported,
                           sparse::ExportSparseModel(model, options));
  for (const sparse::LayerExportDecision& decision : exported.layers) {
    *run.output.result.add_export_layers() = sparse::ToLayerResultProto(decision, nullptr);
  }
  return exported.model;
}

// Measures `model` against the input model: test accuracy, file size, non-zero parameters and
// latency, the latter alternately on the same input after optimize_for_inference.
absl::Status MeasureBeforeAndAfter(Run& run, const torch::jit::Module& pruned,
                                   const torch::jit::Module& written) {
  proto::PruningResult& result = run.output.result;
  const std::string data =
      absl::StrFormat("%s test (%d examples)", run.input.data_name, run.input.test.size());
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module before, CloneModel(run.input.model));
  torch::jit::Module after = written;
  POLARIS_ASSIGN_OR_RETURN(EvalResult eval_before, Evaluate(before, run.input.test));
  POLARIS_ASSIGN_OR_RETURN(EvalResult eval_after, Evaluate(after, run.input.test));
  *result.mutable_accuracy_before() = ToAccuracyProto(eval_before, data);
  *result.mutable_accuracy_after() = ToAccuracyProto(eval_after, data);

  POLARIS_ASSIGN_OR_RETURN(ModelSize size_before, MeasureModelSize(run.input.model));
  POLARIS_ASSIGN_OR_RETURN(ModelSize size_after, MeasureModelSize(written));
  POLARIS_ASSIGN_OR_RETURN(int64_t parameters_before, NonZeroParameters(run.input.model));
  POLARIS_ASSIGN_OR_RETURN(int64_t parameters_after, NonZeroParameters(pruned));
  *result.mutable_size_before() = ToModelSizeProto(size_before, parameters_before);
  *result.mutable_size_after() = ToModelSizeProto(size_after, parameters_after);
  result.set_size_reduction(static_cast<double>(size_before.file_bytes) / size_after.file_bytes);
  result.set_parameter_reduction(static_cast<double>(parameters_before) /
                                 std::max<int64_t>(1, parameters_after));

  const int64_t batch = run.config.has_latency_batch_size() ? run.config.latency_batch_size()
                                                            : kDefaultLatencyBatchSize;
  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module dense_optimized, OptimizeForInference(before));
  absl::StatusOr<torch::jit::Module> written_optimized = OptimizeForInference(written);
  torch::jit::Module timed = written_optimized.ok() ? *written_optimized : after;
  if (!written_optimized.ok()) {
    absl::StrAppend(&run.output.report,
                    "note: the written model was timed without "
                    "optimize_for_inference, which failed on it: ",
                    written_optimized.status().message(), "\n");
  }
  LatencyOptions latency;
  latency.warmup_runs = 10;
  latency.timed_runs = 100;
  latency.max_seconds = 20;
  latency.min_timed_runs = 10;
  POLARIS_ASSIGN_OR_RETURN(
      LatencyComparison comparison,
      CompareLatency(dense_optimized, timed, Slice(run.input.test, 0, batch).inputs, latency));
  *result.mutable_latency_before() = ToLatencyProto(comparison.baseline, batch);
  *result.mutable_latency_after() = ToLatencyProto(comparison.candidate, batch);
  result.set_speedup(comparison.speedup);
  return absl::OkStatus();
}

std::string Summary(const proto::PruningResult& result) {
  return absl::StrFormat(
      "test accuracy %.2f%% -> %.2f%% (%+.2f points)\n"
      "file %s -> %s (%.2fx smaller), non-zero parameters %d -> %d (%.2fx fewer)\n"
      "latency at batch %d after optimize_for_inference: %.3f ms -> %.3f ms (%.2fx faster, "
      "%d threads, timed alternately)\n",
      100 * result.accuracy_before().accuracy(), 100 * result.accuracy_after().accuracy(),
      100 * (result.accuracy_after().accuracy() - result.accuracy_before().accuracy()),
      FormatBytes(result.size_before().file_bytes()), FormatBytes(result.size_after().file_bytes()),
      result.size_reduction(), result.size_before().parameters(), result.size_after().parameters(),
      result.parameter_reduction(), result.latency_before().batch_size(),
      result.latency_before().median_ms(), result.latency_after().median_ms(), result.speedup(),
      result.latency_after().threads());
}

}  // namespace

absl::StatusOr<PruningRunOutput> RunPruning(const PruningRunInput& input,
                                            const proto::PruningConfig& config) {
  if (config.method_case() == proto::PruningConfig::METHOD_NOT_SET) {
    return absl::InvalidArgumentError(
        "the config names no method; set one of magnitude, structured, gradual, sensitivity or "
        "search");
  }
  POLARIS_RETURN_IF_ERROR(CheckClassifierSignature(input.model));
  const int threads = config.has_threads() ? config.threads() : HardwareThreads();
  POLARIS_RETURN_IF_ERROR(SetThreads(threads));

  Run run{input, config};
  const double fraction =
      config.has_validation_fraction() ? config.validation_fraction() : kDefaultValidationFraction;
  POLARIS_RETURN_IF_ERROR(ValidateFraction(fraction, "validation_fraction"));
  if (input.train.size() > 0) {
    std::tie(run.train, run.validation) =
        SplitHoldOut(input.train, fraction, config.has_seed() ? config.seed() : 1);
  }
  run.train_defaults =
      input.reference.has_value() ? DefaultTrainOptions(*input.reference) : TrainOptions();
  run.example_shape = input.test.inputs.sizes().slice(1).vec();
  *run.output.result.mutable_environment() =
      ToEnvironmentProto(CurrentRuntimeInfo(), DescribeGitCommit());
  *run.output.result.mutable_config() = config;
  run.output.result.set_model(input.model_name);
  run.output.result.set_data(input.data_name);

  std::optional<torch::jit::Module> pruned;
  switch (config.method_case()) {
    case proto::PruningConfig::kMagnitude: {
      POLARIS_ASSIGN_OR_RETURN(pruned, RunMagnitude(run));
      break;
    }
    case proto::PruningConfig::kStructured: {
      POLARIS_ASSIGN_OR_RETURN(pruned, RunStructured(run));
      break;
    }
    case proto::PruningConfig::kGradual: {
      POLARIS_ASSIGN_OR_RETURN(pruned, RunGradual(run));
      break;
    }
    case proto::PruningConfig::kSearch: {
      POLARIS_ASSIGN_OR_RETURN(pruned, RunSearch(run));
      break;
    }
    case proto::PruningConfig::kSensitivity:
    case proto::PruningConfig::METHOD_NOT_SET:
      POLARIS_RETURN_IF_ERROR(RunSensitivity(run));
      return std::move(run.output);
  }

  torch::jit::Module written = *pruned;
  if (config.has_export_()) {
    POLARIS_ASSIGN_OR_RETURN(written, Export(run, *pruned));
  }
  POLARIS_RETURN_IF_ERROR(MeasureBeforeAndAfter(run, *pruned, written));
  absl::StrAppend(&run.output.report, Summary(run.output.result));
  run.output.model = written;
  return std::move(run.output);
}

}  // namespace polaris::pruning
