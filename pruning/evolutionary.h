// Evolutionary pruning search: a genetic algorithm (one objective under constraints) or
// NSGA-II (several objectives) over per-group channel counts (structured) or per-layer
// sparsity (unstructured). Every candidate is built and measured for real. It is pruned, its
// BatchNorm statistics are re-estimated on training examples, and it is optionally fine-tuned
// for a few steps. Then its validation accuracy is measured on a held-out subset, its size is
// counted in serialized bytes (after the sparse export for unstructured candidates) and, if
// asked, its latency is timed. No objective is a formula.
//
//   EvolutionarySearchOptions options;
//   options.space = SearchSpace::kChannels;
//   options.min_size_reduction = 3.0;            // at least 3x fewer file bytes
//   POLARIS_ASSIGN_OR_RETURN(SearchResult result,
//                            EvolutionarySearch(model, train, validation, options));
//   std::cout << FormatParetoFront(result);
//   result.chosen_model;                          // fine-tune it, then measure on the test set
//
// Reproducibility: one seeded std::mt19937_64 drives initialization, selection, crossover and
// mutation. Each candidate is rebuilt from the serialized model in its own compilation unit
// with a fixed thread count. So the same seed gives the same search on the same machine and
// standard library. Latency is the exception: timings vary from run to run, so searches
// with a latency objective or constraint are reproducible only up to timing noise.
//
// Candidates are evaluated in parallel by `workers` threads with `threads_per_worker` LibTorch
// intra-op threads each; latency is timed afterwards, one candidate at a time, on the calling
// thread's thread count. With a checkpointer the state is saved after every generation, and a
// search that finds a saved state for the same model and options resumes from it, ending
// exactly where an uninterrupted run would.
#ifndef POLARIS_PRUNING_EVOLUTIONARY_H_
#define POLARIS_PRUNING_EVOLUTIONARY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/latency.h"
#include "core/trainer.h"
#include "pruning/sensitivity.h"
#include "pruning/structured.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::pruning {

enum class SearchSpace {
  // One gene per prunable channel group: the channels it keeps.
  kChannels,
  // One gene per Conv2d / Linear layer: its magnitude-pruning sparsity.
  kSparsity,
};

enum class SearchAlgorithm {
  // Maximizes validation accuracy subject to min_size_reduction / min_speedup, with
  // tournament selection, uniform crossover, mutation and elitism.
  kGenetic,
  // NSGA-II over accuracy and `objectives`, with the constraints as constrained domination.
  kNsga2,
};

// Objectives minimized besides accuracy, which is always maximized.
enum class SearchObjective {
  // Bytes of the serialized TorchScript file (after sparse export for kSparsity).
  kFileBytes,
  // Median latency at latency_batch_size after optimize_for_inference (kChannels) or of the
  // sparse export with its kernels (kSparsity).
  kLatency,
};

std::string SearchSpaceName(SearchSpace space);
std::string SearchAlgorithmName(SearchAlgorithm algorithm);
std::string SearchObjectiveName(SearchObjective objective);

// One measured candidate.
struct CandidateEvaluation {
  // Level index per gene (see SearchResult::gene_names and gene_values).
  std::vector<int> genome;
  // kChannels: channels kept per group; kSparsity: sparsity per layer.
  std::map<std::string, int64_t> channels;
  std::map<std::string, double> sparsity;
  double accuracy = 0;
  double loss = 0;
  int64_t file_bytes = 0;
  // Parameter elements (kChannels), or non-zero parameter elements (kSparsity).
  int64_t parameters = 0;
  // 0 when latency was not measured.
  double latency_ms = 0;
  // Sum of the relative shortfalls against min_size_reduction and min_speedup; 0 = feasible.
  double violation = 0;
  // Generation in which the candidate was first evaluated (0 = initial population).
  int generation = 0;
};

struct GenerationSummary {
  int generation = 0;
  // Candidates evaluated in this generation (repeated genomes are measured once).
  int evaluated = 0;
  double best_feasible_accuracy = 0;
  int64_t smallest_feasible_bytes = 0;
  int front_size = 0;
  double seconds = 0;
};

// Everything a resumed search needs; saved after each generation.
struct SearchState {
  // Identifies the model, data and options; a state with another fingerprint is rejected.
  std::string fingerprint;
  int generations_completed = 0;
  // The random engine, as written by operator<< of std::mt19937_64.
  std::string rng_state;
  std::vector<std::vector<int>> population;
  // Every candidate evaluated so far, in evaluation order.
  std::vector<CandidateEvaluation> archive;
  std::vector<GenerationSummary> history;
};

// Storage for the search state: both functions set, or both empty (no checkpoints).
// pruning/proto_conversion.h offers FileCheckpointer(path).
struct SearchCheckpointer {
  std::function<absl::Status(const SearchState& state)> save;
  // Returns std::nullopt when nothing was saved yet.
  std::function<absl::StatusOr<std::optional<SearchState>>()> load;
};

struct EvolutionarySearchOptions {
  SearchSpace space = SearchSpace::kChannels;
  SearchAlgorithm algorithm = SearchAlgorithm::kNsga2;
  std::vector<SearchObjective> objectives = {SearchObjective::kFileBytes};
  int population_size = 16;
  // Generations including the initial population.
  int generations = 10;
  // kGenetic: best candidates copied unchanged into the next generation.
  int elite_count = 2;
  int tournament_size = 2;
  double crossover_probability = 0.9;
  // Probability that a gene mutates; 0 means 1 / number of genes.
  double mutation_probability = 0;
  uint64_t seed = 1;

  // kChannels: how channels are ranked, the smallest share of a group's channels a candidate
  // may keep, and the step between channel counts (counts are multiples of it, plus the full
  // count).
  ChannelCriterion criterion = ChannelCriterion::kL1Norm;
  double min_keep_fraction = 0.25;
  int64_t channel_step = 4;
  // kSparsity: sparsities 0, sparsity_step, ... up to max_sparsity.
  double max_sparsity = 0.95;
  double sparsity_step = 0.05;

  // Constraints (0: none): dense file bytes / candidate file bytes, and dense latency /
  // candidate latency, must be at least these.
  double min_size_reduction = 0;
  double min_speedup = 0;

  // Evaluation: validation examples used (the first ones; 0 = all), training examples for the
  // BatchNorm re-estimation (0 = none), fine-tuning steps per candidate (0 = none; it uses
  // `fine_tune` with max_steps set), and the evaluation batch size.
  int64_t validation_examples = 2000;
  int64_t calibration_examples = 2048;
  int64_t fine_tune_steps = 0;
  TrainOptions fine_tune;
  int64_t batch_size = 500;
  int64_t latency_batch_size = 64;
  LatencyOptions latency = {
      .warmup_runs = 5, .timed_runs = 30, .max_seconds = 2.0, .min_timed_runs = 5};
  // Shape of one input example without the batch dimension; from the data when empty.
  std::vector<int64_t> example_shape;

  // Choice of the final model: with max_accuracy_drop >= 0, the feasible candidate with the
  // fewest bytes (or the lowest latency, when that is the first objective) among those within
  // max_accuracy_drop (a fraction) of the dense model's validation accuracy; otherwise, or if
  // none qualifies, the most accurate feasible candidate.
  double max_accuracy_drop = -1;

  // Seeds part of the first generation with per-layer settings that stay within 0.5, 1, 2 and
  // 5 points of accuracy in this scan (a kChannels scan for kChannels, kMagnitude for
  // kSparsity).
  std::optional<SensitivityAnalysis> sensitivity;

  int workers = 2;
  int threads_per_worker = 1;
  SearchCheckpointer checkpointer;
  // Stop after this many generations in this call (0: run to the end); resume later from the
  // checkpoint.
  int max_generations_per_call = 0;
  bool show_progress = true;
};

struct SearchResult {
  // The dense model measured the same way (without re-estimation or fine-tuning).
  CandidateEvaluation baseline;
  // Names of the genes (groups or layers) and, per gene, the value of each level.
  std::vector<std::string> gene_names;
  std::vector<std::vector<double>> gene_values;
  // Non-dominated candidates among all evaluated ones, by file bytes ascending.
  std::vector<CandidateEvaluation> pareto_front;
  std::vector<CandidateEvaluation> evaluated;
  CandidateEvaluation chosen;
  bool chosen_feasible = false;
  // The chosen candidate rebuilt: pruned, re-estimated and fine-tuned as during the search.
  torch::jit::Module chosen_model;
  std::vector<GenerationSummary> history;
  int generations_completed = 0;
  // False when the call stopped early (max_generations_per_call).
  bool finished = false;
  double seconds = 0;
};

// Runs the search on copies of `model`: BatchNorm re-estimation and fine-tuning read `train`,
// fitness reads the first validation_examples of `validation` (keep it apart from `train`,
// and from the test set). `model` is not changed.
// Errors: kInvalidArgument for a population below 2, elite_count >= population_size (the
// population must be larger than its elite), generations below 1, probabilities outside
// [0, 1], tournament_size below 1, kGenetic without a constraint, an empty objective list for
// kNsga2, space settings out of range, workers or threads below 1, invalid data, or a model
// with nothing to prune; kFailedPrecondition when the checkpoint belongs to another search;
// errors of pruning, training, evaluation and export.
absl::StatusOr<SearchResult> EvolutionarySearch(const torch::jit::Module& model,
                                                const LabeledData& train,
                                                const LabeledData& validation,
                                                const EvolutionarySearchOptions& options);

// Formats the Pareto front (and the baseline and the chosen candidate) as a text table.
std::string FormatParetoFront(const SearchResult& result);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_EVOLUTIONARY_H_
