#include "pruning/evolutionary.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/core/grad_mode.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/evaluate.h"
#include "core/graph_utils.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/progress.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "pruning/batch_norm.h"
#include "pruning/common.h"
#include "pruning/gradual.h"
#include "pruning/internal/nsga2.h"
#include "pruning/internal/parallel.h"
#include "pruning/magnitude.h"
#include "sparse/export.h"

namespace polaris::pruning {
namespace {

using internal::Fitness;
using internal::Genome;

// Accuracy drops (fractions) whose per-layer sensitivity limits seed the first generation.
constexpr double kSeedDrops[] = {0.005, 0.01, 0.02, 0.05};
constexpr int64_t kCalibrationBatchSize = 64;

bool HasObjective(const EvolutionarySearchOptions& options, SearchObjective objective) {
  return std::find(options.objectives.begin(), options.objectives.end(), objective) !=
         options.objectives.end();
}

bool MeasuresLatency(const EvolutionarySearchOptions& options) {
  return HasObjective(options, SearchObjective::kLatency) || options.min_speedup > 0;
}

absl::Status CheckProbability(double value, absl::string_view name) {
  if (std::isfinite(value) && value >= 0 && value <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " must lie in [0, 1], got ", value));
}

absl::Status ValidateOptions(const EvolutionarySearchOptions& options) {
  if (options.population_size < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("population_size must be at least 2, got ", options.population_size));
  }
  if (options.algorithm == SearchAlgorithm::kGenetic &&
      (options.elite_count < 0 || options.elite_count >= options.population_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("population_size (", options.population_size,
                     ") must be larger than elite_count (", options.elite_count,
                     ") so that each generation has offspring; raise population_size "
                     "or lower elite_count"));
  }
  if (options.generations < 1 || options.tournament_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("generations and tournament_size must be at least 1, got ",
                     options.generations, " and ", options.tournament_size));
  }
  POLARIS_RETURN_IF_ERROR(CheckProbability(options.crossover_probability, "crossover_probability"));
  POLARIS_RETURN_IF_ERROR(CheckProbability(options.mutation_probability, "mutation_probability"));

  if (options.algorithm == SearchAlgorithm::kGenetic && options.min_size_reduction <= 0 &&
      options.min_speedup <= 0) {
    return absl::InvalidArgumentError(
        "the genetic algorithm maximizes accuracy under a size or speed constraint; set "
        "min_size_reduction or min_speedup, or use NSGA-II");
  }
  if (options.algorithm == SearchAlgorithm::kNsga2 && options.objectives.empty()) {
    return absl::InvalidArgumentError(
        "NSGA-II needs at least one objective besides accuracy (file_bytes or latency)");
  }
  if (options.min_size_reduction < 0 || options.min_speedup < 0 ||
      !std::isfinite(options.min_size_reduction) || !std::isfinite(options.min_speedup)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_size_reduction and min_speedup must be 0 (none) or positive, got ",
                     options.min_size_reduction, " and ", options.min_speedup));
  }

  if (options.space == SearchSpace::kChannels &&
      (!(options.min_keep_fraction > 0 && options.min_keep_fraction <= 1) ||
       options.channel_step < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_keep_fraction must lie in (0, 1] and channel_step be at least 1, got ",
                     options.min_keep_fraction, " and ", options.channel_step));
  }
  if (options.space == SearchSpace::kSparsity) {
    POLARIS_RETURN_IF_ERROR(ValidateFraction(options.max_sparsity, "max_sparsity"));
    if (!(options.sparsity_step > 0 && options.sparsity_step <= options.max_sparsity)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sparsity_step must lie in (0, max_sparsity], got ", options.sparsity_step));
    }
  }

  if (options.validation_examples < 0 || options.calibration_examples < 0 ||
      options.fine_tune_steps < 0 || options.batch_size < 1 || options.latency_batch_size < 1) {
    return absl::InvalidArgumentError(
        "validation_examples, calibration_examples and fine_tune_steps must not be negative, "
        "and batch_size and latency_batch_size must be at least 1");
  }

  if (options.workers < 1 || options.threads_per_worker < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers and threads_per_worker must be at least 1, got ", options.workers,
                     " and ", options.threads_per_worker));
  }
  if (static_cast<bool>(options.checkpointer.save) !=
      static_cast<bool>(options.checkpointer.load)) {
    return absl::InvalidArgumentError("a checkpointer needs both save and load");
  }

  if (options.sensitivity.has_value() &&
      (options.sensitivity->method == SensitivityMethod::kChannels) !=
          (options.space == SearchSpace::kChannels)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the sensitivity scan (", SensitivityMethodName(options.sensitivity->method),
        ") does not match the search space (", SearchSpaceName(options.space),
        "); scan with channels for a channel search and magnitude for a sparsity search"));
  }
  return absl::OkStatus();
}

// The genes and their levels.
struct Space {
  std::vector<std::string> names;
  // Value of each level: channels kept (kChannels) or sparsity (kSparsity), ascending.
  std::vector<std::vector<double>> values;
  std::vector<int> upper;
  // Level that leaves the gene unpruned: the last (kChannels) or the first (kSparsity).
  std::vector<int> dense_level;
  // kSparsity: the weight each gene prunes.
  std::vector<std::string> weight_paths;
  ChannelImportance importance;
};

absl::StatusOr<Space> BuildChannelSpace(const torch::jit::Module& model,
                                        const EvolutionarySearchOptions& options,
                                        const LabeledData& importance_data) {
  StructuredPruningOptions structured;
  structured.criterion = options.criterion;
  structured.example_shape = options.example_shape;
  structured.seed = options.seed;
  Space space;
  POLARIS_ASSIGN_OR_RETURN(space.importance,
                           ComputeChannelImportance(model, structured, &importance_data));
  for (const ChannelGroup& group : space.importance.dependencies.groups) {
    if (!group.prunable) continue;
    const int64_t lowest = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(options.min_keep_fraction * group.channels)));
    std::vector<double> levels;
    for (int64_t count = lowest; count < group.channels; ++count) {
      if (count % options.channel_step == 0) levels.push_back(static_cast<double>(count));
    }
    if (levels.empty() && lowest < group.channels) levels.push_back(static_cast<double>(lowest));
    levels.push_back(static_cast<double>(group.channels));
    space.names.push_back(group.name);
    space.upper.push_back(static_cast<int>(levels.size()) - 1);
    space.dense_level.push_back(static_cast<int>(levels.size()) - 1);
    space.values.push_back(std::move(levels));
  }
  if (space.names.empty()) {
    return absl::InvalidArgumentError("no channel group of the model can be pruned");
  }
  return space;
}

absl::StatusOr<Space> BuildSparsitySpace(const torch::jit::Module& model,
                                         const EvolutionarySearchOptions& options) {
  UnstructuredPruningOptions unstructured;
  unstructured.sparsity = 0;
  unstructured.example_shape = options.example_shape;
  POLARIS_ASSIGN_OR_RETURN(PruningMasks masks, ComputeMagnitudeMasks(model, unstructured));
  std::vector<double> levels;
  const int steps =
      static_cast<int>(std::floor(options.max_sparsity / options.sparsity_step + 1e-9));
  for (int i = 0; i <= steps; ++i) levels.push_back(i * options.sparsity_step);
  Space space;
  for (const LayerSparsity& layer : masks.layers) {
    space.names.push_back(layer.layer);
    space.weight_paths.push_back(layer.weight_path);
    space.values.push_back(levels);
    space.upper.push_back(static_cast<int>(levels.size()) - 1);
    space.dense_level.push_back(0);
  }
  return space;
}

// FNV-1a, 64 bits: a stable hash (unlike absl::Hash, which is seeded per process) so that a
// checkpoint written by one run is recognized by the next.
class Fnv1a {
 public:
  void Add(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      hash_ ^= bytes[i];
      hash_ *= 1099511628211ull;
    }
  }
  void Add(const std::string& text) { Add(text.data(), text.size()); }
  void Add(const at::Tensor& tensor) {
    const at::Tensor contiguous = tensor.detach().contiguous();
    Add(contiguous.data_ptr(), contiguous.numel() * contiguous.element_size());
  }
  std::string Hex() const { return absl::StrFormat("%016x", hash_); }

 private:
  uint64_t hash_ = 14695981039346656037ull;
};

std::string Fingerprint(const torch::jit::Module& model, const LabeledData& validation,
                        const LabeledData& calibration, const Space& space,
                        const EvolutionarySearchOptions& options) {
  Fnv1a hash;
  for (const auto& parameter : model.named_parameters(/*recurse=*/true)) {
    hash.Add(parameter.name);
    hash.Add(parameter.value);
  }
  for (const auto& buffer : model.named_buffers(/*recurse=*/true)) {
    hash.Add(buffer.name);
    hash.Add(buffer.value);
  }
  hash.Add(validation.inputs);
  hash.Add(validation.labels);
  if (calibration.size() > 0) hash.Add(calibration.inputs);
  for (size_t i = 0; i < space.names.size(); ++i) {
    hash.Add(absl::StrCat(space.names[i], ":", absl::StrJoin(space.values[i], ",")));
  }
  std::vector<std::string> objectives;
  for (SearchObjective objective : options.objectives) {
    objectives.push_back(SearchObjectiveName(objective));
  }
  hash.Add(absl::StrCat(SearchSpaceName(options.space), SearchAlgorithmName(options.algorithm),
                        absl::StrJoin(objectives, ","), options.population_size, "/",
                        options.elite_count, "/", options.tournament_size, "/",
                        options.crossover_probability, "/", options.mutation_probability, "/",
                        options.seed, "/", ChannelCriterionName(options.criterion), "/",
                        options.min_size_reduction, "/", options.min_speedup, "/",
                        options.fine_tune_steps, "/", options.fine_tune.learning_rate, "/",
                        options.fine_tune.batch_size, "/", options.latency_batch_size, "/",
                        options.sensitivity.has_value(), "/", options.threads_per_worker));
  return hash.Hex();
}

// Builds and measures candidates. Every candidate starts from the serialized model loaded into
// its own compilation unit, so workers never share TorchScript types: registering types in one
// compilation unit from two threads is not safe. It also keeps the saved files the same
// whatever ran before them.
class Evaluator {
 public:
  Evaluator(std::string model_bytes, const Space& space, const EvolutionarySearchOptions& options,
            LabeledData calibration, const LabeledData& train, LabeledData validation)
      : model_bytes_(std::move(model_bytes)),
        space_(space),
        options_(options),
        calibration_(std::move(calibration)),
        train_(train),
        validation_(std::move(validation)) {}

  absl::StatusOr<torch::jit::Module> Build(const Genome& genome) const {
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model,
                             LoadModelFromBytes(model_bytes_, "the search's copy of the model"));
    PruningMasks masks;
    if (options_.space == SearchSpace::kChannels) {
      StructuredPruningResult report;
      POLARIS_RETURN_IF_ERROR(
          PruneChannelsInPlace(model, space_.importance, Channels(genome), &report));
    } else {
      POLARIS_ASSIGN_OR_RETURN(masks, Masks(model, genome));
      POLARIS_RETURN_IF_ERROR(ApplyMasks(model, masks));
    }
    POLARIS_RETURN_IF_ERROR(RecalibrateBatchNorm(model, calibration_, kCalibrationBatchSize));
    if (options_.fine_tune_steps > 0) POLARIS_RETURN_IF_ERROR(FineTune(model, masks));
    model.eval();
    return model;
  }

  // Accuracy, loss, file bytes and parameters; latency is measured separately.
  absl::StatusOr<CandidateEvaluation> Measure(const Genome& genome) const {
    CandidateEvaluation evaluation = Describe(genome);
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model, Build(genome));
    POLARIS_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(model, validation_, options_.batch_size));
    evaluation.accuracy = eval.accuracy;
    evaluation.loss = eval.loss;
    if (options_.space == SearchSpace::kChannels) {
      POLARIS_ASSIGN_OR_RETURN(std::string bytes, SerializeModel(model));
      evaluation.file_bytes = static_cast<int64_t>(bytes.size());
      evaluation.parameters = ParameterCount(model);
    } else {
      POLARIS_ASSIGN_OR_RETURN(sparse::SparseExportResult exported,
                               Export(model, /*with_kernels=*/false));
      evaluation.file_bytes = exported.size_after.file_bytes;
      POLARIS_ASSIGN_OR_RETURN(evaluation.parameters, NonZeroParameters(model));
    }
    return evaluation;
  }

  absl::StatusOr<double> MeasureLatencyMs(const Genome& genome) const {
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model, Build(genome));
    return LatencyOf(model, /*dense=*/false);
  }

  // The dense model as given: no re-estimation, no fine-tuning.
  absl::StatusOr<CandidateEvaluation> MeasureBaseline() const {
    Genome genome(space_.dense_level);
    CandidateEvaluation evaluation = Describe(genome);
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module model,
                             LoadModelFromBytes(model_bytes_, "the search's copy of the model"));
    POLARIS_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(model, validation_, options_.batch_size));
    evaluation.accuracy = eval.accuracy;
    evaluation.loss = eval.loss;
    evaluation.file_bytes = static_cast<int64_t>(model_bytes_.size());
    evaluation.parameters = ParameterCount(model);
    if (MeasuresLatency(options_)) {
      POLARIS_ASSIGN_OR_RETURN(evaluation.latency_ms, LatencyOf(model, /*dense=*/true));
    }
    return evaluation;
  }

  CandidateEvaluation Describe(const Genome& genome) const {
    CandidateEvaluation evaluation;
    evaluation.genome = genome;
    for (size_t i = 0; i < genome.size(); ++i) {
      const double value = space_.values[i][genome[i]];
      if (options_.space == SearchSpace::kChannels) {
        evaluation.channels[space_.names[i]] = static_cast<int64_t>(value);
      } else {
        evaluation.sparsity[space_.names[i]] = value;
      }
    }
    return evaluation;
  }

 private:
  std::map<std::string, int64_t> Channels(const Genome& genome) const {
    std::map<std::string, int64_t> channels;
    for (size_t i = 0; i < genome.size(); ++i) {
      channels[space_.names[i]] = static_cast<int64_t>(space_.values[i][genome[i]]);
    }
    return channels;
  }

  absl::StatusOr<PruningMasks> Masks(const torch::jit::Module& model, const Genome& genome) const {
    PruningMasks masks;
    for (size_t i = 0; i < genome.size(); ++i) {
      const double sparsity = space_.values[i][genome[i]];
      if (sparsity <= 0) continue;
      POLARIS_ASSIGN_OR_RETURN(at::Tensor weight, FindTensor(model, space_.weight_paths[i]));
      POLARIS_ASSIGN_OR_RETURN(masks.masks[space_.weight_paths[i]],
                               MagnitudeMask(weight, sparsity));
    }
    return masks;
  }

  absl::Status FineTune(torch::jit::Module& model, PruningMasks& masks) const {
    TrainOptions train_options = options_.fine_tune;
    const int64_t per_epoch = (train_.size() + train_options.batch_size - 1) /
                              std::max<int64_t>(1, train_options.batch_size);
    train_options.max_steps = options_.fine_tune_steps;
    train_options.epochs = static_cast<int>(std::max<int64_t>(
        1, (options_.fine_tune_steps + per_epoch - 1) / std::max<int64_t>(1, per_epoch)));
    train_options.show_progress = false;
    if (!masks.masks.empty()) {
      train_options.after_backward = [&](int64_t) { return ZeroMaskedGradients(model, masks); };
      train_options.after_step = [&](int64_t) { return ReapplyMasks(model, masks); };
    }
    return Train(model, train_, train_options).status();
  }

  absl::StatusOr<sparse::SparseExportResult> Export(const torch::jit::Module& model,
                                                    bool with_kernels) const {
    sparse::SparseExportOptions export_options;
    export_options.example_shape = options_.example_shape;
    export_options.batch_size = options_.latency_batch_size;
    if (!with_kernels) export_options.formats.clear();
    return sparse::ExportSparseModel(model, export_options);
  }

  absl::StatusOr<int64_t> NonZeroParameters(const torch::jit::Module& model) const {
    return CallTorch("counting non-zero parameters", [&] {
      int64_t count = 0;
      for (const at::Tensor& parameter : model.parameters()) {
        count += parameter.detach().ne(0).sum().item<int64_t>();
      }
      return count;
    });
  }

  absl::StatusOr<double> LatencyOf(const torch::jit::Module& model, bool dense) const {
    torch::jit::Module timed;
    if (options_.space == SearchSpace::kSparsity && !dense) {
      POLARIS_ASSIGN_OR_RETURN(sparse::SparseExportResult exported,
                               Export(model, /*with_kernels=*/true));
      timed = exported.model;
    } else {
      POLARIS_ASSIGN_OR_RETURN(timed, OptimizeForInference(model));
    }
    std::vector<int64_t> shape = options_.example_shape;
    shape.insert(shape.begin(), options_.latency_batch_size);
    POLARIS_ASSIGN_OR_RETURN(
        at::Tensor input, CallTorch("making the latency input", [&] { return at::ones(shape); }));
    POLARIS_ASSIGN_OR_RETURN(LatencyStats stats,
                             MeasureModelLatency(timed, input, options_.latency));
    return stats.median_ms;
  }

  std::string model_bytes_;
  const Space& space_;
  const EvolutionarySearchOptions& options_;
  LabeledData calibration_;
  const LabeledData& train_;
  LabeledData validation_;
};

double Violation(const CandidateEvaluation& candidate, const CandidateEvaluation& baseline,
                 const EvolutionarySearchOptions& options) {
  double violation = 0;
  if (options.min_size_reduction > 0) {
    const double reduction =
        static_cast<double>(baseline.file_bytes) / std::max<int64_t>(1, candidate.file_bytes);
    violation += std::max(0.0, options.min_size_reduction - reduction) / options.min_size_reduction;
  }
  if (options.min_speedup > 0 && candidate.latency_ms > 0) {
    const double speedup = baseline.latency_ms / candidate.latency_ms;
    violation += std::max(0.0, options.min_speedup - speedup) / options.min_speedup;
  }
  return violation;
}

Fitness FitnessOf(const CandidateEvaluation& candidate, const EvolutionarySearchOptions& options) {
  Fitness fitness;
  fitness.objectives.push_back(-candidate.accuracy);
  for (SearchObjective objective : options.objectives) {
    fitness.objectives.push_back(objective == SearchObjective::kFileBytes
                                     ? static_cast<double>(candidate.file_bytes)
                                     : candidate.latency_ms);
  }
  fitness.violation = candidate.violation;
  return fitness;
}

// kGenetic's order: feasibility first, then accuracy, then the objectives as tie-breakers.
bool GeneticBetter(const CandidateEvaluation& a, const CandidateEvaluation& b) {
  if (a.violation != b.violation) return a.violation < b.violation;
  if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
  if (a.file_bytes != b.file_bytes) return a.file_bytes < b.file_bytes;
  return a.latency_ms < b.latency_ms;
}

int LevelForChannels(const std::vector<double>& levels, double channels) {
  for (size_t i = 0; i < levels.size(); ++i) {
    if (levels[i] >= channels) return static_cast<int>(i);
  }
  return static_cast<int>(levels.size()) - 1;
}

int LevelForSparsity(const std::vector<double>& levels, double sparsity) {
  int level = 0;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (levels[i] <= sparsity + 1e-9) level = static_cast<int>(i);
  }
  return level;
}

std::vector<Genome> InitialPopulation(const Space& space, const EvolutionarySearchOptions& options,
                                      std::mt19937_64& rng) {
  const int size = options.population_size;
  std::vector<Genome> population;
  population.push_back(space.dense_level);

  // Uniform pruning: every gene at the same share of its range.
  const int uniform = std::max(1, size / 4);
  for (int k = 1; k <= uniform && static_cast<int>(population.size()) < size; ++k) {
    const double amount = static_cast<double>(k) / uniform;
    Genome genome(space.upper.size());
    for (size_t i = 0; i < genome.size(); ++i) {
      const int pruned = static_cast<int>(std::lround(amount * space.upper[i]));
      genome[i] = options.space == SearchSpace::kChannels ? space.upper[i] - pruned : pruned;
    }
    population.push_back(genome);
  }

  if (options.sensitivity.has_value()) {
    const SensitivityAnalysis& scan = *options.sensitivity;
    for (double drop : kSeedDrops) {
      if (static_cast<int>(population.size()) >= size) break;
      Genome genome(space.dense_level);
      for (size_t i = 0; i < genome.size(); ++i) {
        for (const LayerSensitivity& layer : scan.layers) {
          if (layer.layer != space.names[i]) continue;
          const double sparsity = MaxSparsityWithinDrop(layer, scan.baseline_accuracy, drop);
          if (options.space == SearchSpace::kChannels) {
            const double channels = space.values[i].back();
            genome[i] =
                LevelForChannels(space.values[i], channels - std::round(sparsity * channels));
          } else {
            genome[i] = LevelForSparsity(space.values[i], sparsity);
          }
        }
      }
      population.push_back(genome);
    }
  }

  while (static_cast<int>(population.size()) < size) {
    Genome genome(space.upper.size());
    for (size_t i = 0; i < genome.size(); ++i) {
      genome[i] = std::uniform_int_distribution<int>(0, space.upper[i])(rng);
    }
    population.push_back(genome);
  }
  return population;
}

std::string EngineState(const std::mt19937_64& rng) {
  std::ostringstream stream;
  stream << rng;
  return stream.str();
}

absl::Status RestoreEngine(const std::string& state, std::mt19937_64& rng) {
  std::istringstream stream(state);
  stream >> rng;
  if (stream.fail()) {
    return absl::DataLossError("the checkpoint's random engine state cannot be read");
  }
  return absl::OkStatus();
}

std::string FormatCandidateRow(const std::string& label, const CandidateEvaluation& candidate,
                               const CandidateEvaluation& baseline,
                               const std::vector<std::string>& gene_names) {
  const double reduction =
      static_cast<double>(baseline.file_bytes) / std::max<int64_t>(1, candidate.file_bytes);
  std::string latency = "-";
  if (candidate.latency_ms > 0) {
    latency = absl::StrFormat("%.3f ms (%.2fx)", candidate.latency_ms,
                              baseline.latency_ms / candidate.latency_ms);
  }
  // Settings in gene order, which is graph order.
  std::vector<std::string> parts;
  for (const std::string& gene : gene_names) {
    if (auto it = candidate.channels.find(gene); it != candidate.channels.end()) {
      parts.push_back(absl::StrCat(it->second));
    } else if (auto it = candidate.sparsity.find(gene); it != candidate.sparsity.end()) {
      parts.push_back(absl::StrFormat("%.0f%%", 100 * it->second));
    }
  }
  return absl::StrFormat("%-9s %8.2f%% %10s %7.2fx %10d  %-20s %s%s\n", label,
                         100 * candidate.accuracy, FormatBytes(candidate.file_bytes), reduction,
                         candidate.parameters, latency, absl::StrJoin(parts, "/"),
                         candidate.violation > 0 ? "  (infeasible)" : "");
}

// The search itself, as a class so that the generation loop reads in steps.
class Search {
 public:
  Search(const EvolutionarySearchOptions& options, const Space& space, const Evaluator& evaluator,
         std::string fingerprint)
      : options_(options),
        space_(space),
        evaluator_(evaluator),
        fingerprint_(std::move(fingerprint)),
        rng_(options.seed) {}

  absl::StatusOr<SearchResult> Run() {
    const auto start = std::chrono::steady_clock::now();
    POLARIS_ASSIGN_OR_RETURN(result_.baseline, evaluator_.MeasureBaseline());
    result_.gene_names = space_.names;
    result_.gene_values = space_.values;
    POLARIS_RETURN_IF_ERROR(Resume());

    const int total = options_.generations;
    Progress progress("pruning search", total, "generation", options_.show_progress);
    progress.Update(generations_completed_);
    int run_this_call = 0;
    while (generations_completed_ < total) {
      if (options_.max_generations_per_call > 0 &&
          run_this_call >= options_.max_generations_per_call) {
        break;
      }
      const auto generation_start = std::chrono::steady_clock::now();
      const int evaluated_before = static_cast<int>(archive_.size());
      if (generations_completed_ == 0) {
        population_ = InitialPopulation(space_, options_, rng_);
        POLARIS_RETURN_IF_ERROR(EvaluateAll(population_, 0));
      } else {
        POLARIS_RETURN_IF_ERROR(NextGeneration());
      }
      ++generations_completed_;
      ++run_this_call;
      RecordHistory(
          static_cast<int>(archive_.size()) - evaluated_before,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - generation_start)
              .count());
      if (options_.checkpointer.save) POLARIS_RETURN_IF_ERROR(options_.checkpointer.save(State()));
      progress.Update(generations_completed_, HistoryLine(result_.history.back()));
    }
    progress.Finish();

    result_.generations_completed = generations_completed_;
    result_.finished = generations_completed_ >= total;
    result_.evaluated = archive_;
    result_.pareto_front = ParetoFront();
    POLARIS_RETURN_IF_ERROR(Choose());
    result_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::move(result_);
  }

 private:
  SearchState State() const {
    SearchState state;
    state.fingerprint = fingerprint_;
    state.generations_completed = generations_completed_;
    state.rng_state = EngineState(rng_);
    state.population = population_;
    state.archive = archive_;
    state.history = result_.history;
    return state;
  }

  absl::Status Resume() {
    if (!options_.checkpointer.load) return absl::OkStatus();
    POLARIS_ASSIGN_OR_RETURN(std::optional<SearchState> state, options_.checkpointer.load());
    if (!state.has_value()) return absl::OkStatus();
    if (state->fingerprint != fingerprint_) {
      return absl::FailedPreconditionError(
          absl::StrCat("the checkpoint was written by a search with another model, data or options "
                       "(fingerprint ",
                       state->fingerprint, ", this search ", fingerprint_,
                       "); delete it or choose another checkpoint path"));
    }
    POLARIS_RETURN_IF_ERROR(RestoreEngine(state->rng_state, rng_));
    generations_completed_ = state->generations_completed;
    population_ = state->population;
    archive_ = state->archive;
    result_.history = state->history;
    for (size_t i = 0; i < archive_.size(); ++i) index_[archive_[i].genome] = i;
    for (const Genome& genome : population_) {
      if (index_.count(genome) == 0) {
        return absl::DataLossError("the checkpoint's population has an unevaluated candidate");
      }
    }
    return absl::OkStatus();
  }

  // Evaluates the genomes not seen before: accuracy and size in parallel, then latency one at
  // a time on the calling thread's thread count.
  absl::Status EvaluateAll(const std::vector<Genome>& genomes, int generation) {
    std::vector<Genome> fresh;
    for (const Genome& genome : genomes) {
      if (index_.count(genome) > 0) continue;
      if (std::find(fresh.begin(), fresh.end(), genome) != fresh.end()) continue;
      fresh.push_back(genome);
    }
    std::vector<CandidateEvaluation> measured(fresh.size());
    POLARIS_RETURN_IF_ERROR(internal::ParallelFor(
        options_.workers, options_.threads_per_worker, static_cast<int64_t>(fresh.size()),
        [&](int worker, int64_t task) -> absl::Status {
          POLARIS_ASSIGN_OR_RETURN(measured[task], evaluator_.Measure(fresh[task]));
          return absl::OkStatus();
        }));
    for (size_t i = 0; i < fresh.size(); ++i) {
      if (MeasuresLatency(options_)) {
        POLARIS_ASSIGN_OR_RETURN(measured[i].latency_ms, evaluator_.MeasureLatencyMs(fresh[i]));
      }
      measured[i].generation = generation;
      measured[i].violation = Violation(measured[i], result_.baseline, options_);
      index_[fresh[i]] = archive_.size();
      archive_.push_back(std::move(measured[i]));
    }
    return absl::OkStatus();
  }

  const CandidateEvaluation& Evaluation(const Genome& genome) const {
    return archive_[index_.at(genome)];
  }

  std::vector<Fitness> FitnessOfAll(const std::vector<Genome>& genomes) const {
    std::vector<Fitness> fitness;
    for (const Genome& genome : genomes) fitness.push_back(FitnessOf(Evaluation(genome), options_));
    return fitness;
  }

  std::vector<Genome> Offspring(int count) {
    const int size = static_cast<int>(population_.size());
    std::vector<int> rank;
    std::vector<double> crowding;
    internal::SelectSurvivors(FitnessOfAll(population_), size, &rank, &crowding);
    auto better = [&](int a, int b) {
      if (options_.algorithm == SearchAlgorithm::kGenetic) {
        return GeneticBetter(Evaluation(population_[a]), Evaluation(population_[b]));
      }
      if (rank[a] != rank[b]) return rank[a] < rank[b];
      return crowding[a] > crowding[b];
    };
    const double mutation = options_.mutation_probability > 0
                                ? options_.mutation_probability
                                : 1.0 / static_cast<double>(space_.upper.size());
    std::vector<Genome> children;
    while (static_cast<int>(children.size()) < count) {
      const int first = internal::Tournament(size, options_.tournament_size, rng_, better);
      const int second = internal::Tournament(size, options_.tournament_size, rng_, better);
      Genome child_a;
      Genome child_b;
      internal::UniformCrossover(population_[first], population_[second],
                                 options_.crossover_probability, rng_, &child_a, &child_b);
      internal::Mutate(space_.upper, mutation, rng_, &child_a);
      internal::Mutate(space_.upper, mutation, rng_, &child_b);
      children.push_back(std::move(child_a));
      if (static_cast<int>(children.size()) < count) children.push_back(std::move(child_b));
    }
    return children;
  }

  absl::Status NextGeneration() {
    const int size = options_.population_size;
    if (options_.algorithm == SearchAlgorithm::kNsga2) {
      std::vector<Genome> children = Offspring(size);
      POLARIS_RETURN_IF_ERROR(EvaluateAll(children, generations_completed_));
      std::vector<Genome> combined = population_;
      combined.insert(combined.end(), children.begin(), children.end());
      std::vector<int> rank;
      std::vector<double> crowding;
      const std::vector<int> survivors =
          internal::SelectSurvivors(FitnessOfAll(combined), size, &rank, &crowding);
      std::vector<Genome> next;
      for (int index : survivors) next.push_back(combined[index]);
      population_ = std::move(next);
      return absl::OkStatus();
    }

    std::vector<Genome> children = Offspring(size - options_.elite_count);
    POLARIS_RETURN_IF_ERROR(EvaluateAll(children, generations_completed_));
    std::vector<int> order(population_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return GeneticBetter(Evaluation(population_[a]), Evaluation(population_[b]));
    });
    std::vector<Genome> next;
    for (int i = 0; i < options_.elite_count; ++i) next.push_back(population_[order[i]]);
    next.insert(next.end(), children.begin(), children.end());
    population_ = std::move(next);
    return absl::OkStatus();
  }

  std::vector<CandidateEvaluation> ParetoFront() const {
    if (archive_.empty()) return {};
    std::vector<Fitness> fitness;
    for (const CandidateEvaluation& candidate : archive_) {
      fitness.push_back(FitnessOf(candidate, options_));
    }
    std::vector<int> rank;
    const std::vector<std::vector<int>> fronts = internal::NonDominatedSort(fitness, &rank);
    std::vector<CandidateEvaluation> front;
    for (int index : fronts.front()) front.push_back(archive_[index]);
    std::stable_sort(front.begin(), front.end(),
                     [](const CandidateEvaluation& a, const CandidateEvaluation& b) {
                       return a.file_bytes < b.file_bytes;
                     });
    return front;
  }

  absl::Status Choose() {
    if (archive_.empty()) return absl::OkStatus();
    const CandidateEvaluation* best = nullptr;
    const bool by_latency =
        !options_.objectives.empty() && options_.objectives.front() == SearchObjective::kLatency;
    auto cost = [&](const CandidateEvaluation& candidate) {
      return by_latency ? candidate.latency_ms : static_cast<double>(candidate.file_bytes);
    };
    if (options_.max_accuracy_drop >= 0) {
      const double floor = result_.baseline.accuracy - options_.max_accuracy_drop;
      for (const CandidateEvaluation& candidate : archive_) {
        if (candidate.violation > 0 || candidate.accuracy < floor) continue;
        if (best == nullptr || cost(candidate) < cost(*best) ||
            (cost(candidate) == cost(*best) && candidate.accuracy > best->accuracy)) {
          best = &candidate;
        }
      }
    }
    if (best == nullptr) {
      for (const CandidateEvaluation& candidate : archive_) {
        if (best == nullptr || GeneticBetter(candidate, *best)) best = &candidate;
      }
    }
    result_.chosen = *best;
    result_.chosen_feasible = best->violation <= 0;
    // Rebuilt on a worker with the same thread count as during the search, so that the model
    // matches the measured candidate exactly.
    return internal::ParallelFor(1, options_.threads_per_worker, 1, [&](int, int64_t) {
      POLARIS_ASSIGN_OR_RETURN(result_.chosen_model, evaluator_.Build(best->genome));
      return absl::OkStatus();
    });
  }

  void RecordHistory(int evaluated, double seconds) {
    GenerationSummary summary;
    summary.generation = generations_completed_ - 1;
    summary.evaluated = evaluated;
    summary.seconds = seconds;
    for (const Genome& genome : population_) {
      const CandidateEvaluation& candidate = Evaluation(genome);
      if (candidate.violation > 0) continue;
      summary.best_feasible_accuracy = std::max(summary.best_feasible_accuracy, candidate.accuracy);
      if (summary.smallest_feasible_bytes == 0 ||
          candidate.file_bytes < summary.smallest_feasible_bytes) {
        summary.smallest_feasible_bytes = candidate.file_bytes;
      }
    }
    std::vector<int> rank;
    const auto fronts = internal::NonDominatedSort(FitnessOfAll(population_), &rank);
    summary.front_size = fronts.empty() ? 0 : static_cast<int>(fronts.front().size());
    result_.history.push_back(summary);
  }

  static std::string HistoryLine(const GenerationSummary& summary) {
    return absl::StrFormat("%d new candidates, best feasible %.2f%%, smallest feasible %s",
                           summary.evaluated, 100 * summary.best_feasible_accuracy,
                           FormatBytes(summary.smallest_feasible_bytes));
  }

  const EvolutionarySearchOptions& options_;
  const Space& space_;
  const Evaluator& evaluator_;
  const std::string fingerprint_;
  std::mt19937_64 rng_;
  int generations_completed_ = 0;
  std::vector<Genome> population_;
  std::vector<CandidateEvaluation> archive_;
  std::map<Genome, size_t> index_;
  SearchResult result_;
};

}  // namespace

std::string SearchSpaceName(SearchSpace space) {
  return space == SearchSpace::kChannels ? "channels" : "sparsity";
}

std::string SearchAlgorithmName(SearchAlgorithm algorithm) {
  return algorithm == SearchAlgorithm::kGenetic ? "genetic" : "nsga2";
}

std::string SearchObjectiveName(SearchObjective objective) {
  return objective == SearchObjective::kFileBytes ? "file_bytes" : "latency";
}

absl::StatusOr<SearchResult> EvolutionarySearch(const torch::jit::Module& model,
                                                const LabeledData& train,
                                                const LabeledData& validation,
                                                const EvolutionarySearchOptions& options) {
  POLARIS_RETURN_IF_ERROR(ValidateOptions(options));
  if (validation.size() == 0 || train.size() == 0) {
    return absl::InvalidArgumentError(
        "the search needs training examples (for BatchNorm re-estimation and fine-tuning) and "
        "validation examples (for fitness)");
  }
  EvolutionarySearchOptions resolved = options;
  if (resolved.example_shape.empty()) {
    resolved.example_shape = validation.inputs.sizes().slice(1).vec();
  }
  const LabeledData validation_subset = resolved.validation_examples > 0
                                            ? Slice(validation, 0, resolved.validation_examples)
                                            : validation;
  const LabeledData calibration =
      resolved.calibration_examples > 0
          ? RandomSubset(train, resolved.calibration_examples, resolved.seed)
          : LabeledData{};

  Space space;
  if (resolved.space == SearchSpace::kChannels) {
    POLARIS_ASSIGN_OR_RETURN(
        space, BuildChannelSpace(model, resolved,
                                 calibration.size() > 0 ? calibration : validation_subset));
  } else {
    POLARIS_ASSIGN_OR_RETURN(space, BuildSparsitySpace(model, resolved));
  }
  POLARIS_ASSIGN_OR_RETURN(std::string model_bytes, SerializeModel(model));
  POLARIS_ASSIGN_OR_RETURN(std::string fingerprint, CallTorch("fingerprinting the search", [&] {
                             return Fingerprint(model, validation_subset, calibration, space,
                                                resolved);
                           }));
  Evaluator evaluator(std::move(model_bytes), space, resolved, calibration, train,
                      validation_subset);
  Search search(resolved, space, evaluator, std::move(fingerprint));
  return search.Run();
}

std::string FormatParetoFront(const SearchResult& result) {
  const bool channels = !result.baseline.channels.empty();
  std::string table =
      absl::StrFormat("%-9s %9s %10s %8s %10s  %-20s %s: %s\n", "candidate", "accuracy", "file",
                      "smaller", "parameters", "latency", channels ? "channels kept" : "sparsity",
                      absl::StrJoin(result.gene_names, "/"));
  table += FormatCandidateRow("dense", result.baseline, result.baseline, result.gene_names);
  for (size_t i = 0; i < result.pareto_front.size(); ++i) {
    table += FormatCandidateRow(absl::StrCat("front ", i + 1), result.pareto_front[i],
                                result.baseline, result.gene_names);
  }
  table += FormatCandidateRow("chosen", result.chosen, result.baseline, result.gene_names);
  return table;
}

}  // namespace polaris::pruning
