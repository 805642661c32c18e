#include "pruning/proto_conversion.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace polaris::pruning {
namespace {

// Collects the first text-format parse error with its position.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!message_.empty()) return;
    message_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

absl::StatusOr<PruningScope> ToScope(proto::PruningScope scope) {
  switch (scope) {
    case proto::PRUNING_SCOPE_UNSPECIFIED:
    case proto::PRUNING_SCOPE_PER_LAYER: return PruningScope::kPerLayer;
    case proto::PRUNING_SCOPE_GLOBAL: return PruningScope::kGlobal;
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown pruning scope ", scope));
}

absl::StatusOr<ChannelCriterion> ToCriterion(proto::PruningChannelCriterion criterion) {
  switch (criterion) {
    case proto::PRUNING_CRITERION_UNSPECIFIED:
    case proto::PRUNING_CRITERION_L1: return ChannelCriterion::kL1Norm;
    case proto::PRUNING_CRITERION_L2: return ChannelCriterion::kL2Norm;
    case proto::PRUNING_CRITERION_TAYLOR: return ChannelCriterion::kTaylor;
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown channel criterion ", criterion));
}

proto::PruningSensitivityMethod ToSensitivityMethodProto(SensitivityMethod method) {
  return method == SensitivityMethod::kChannels ? proto::PRUNING_SENSITIVITY_CHANNELS
                                                : proto::PRUNING_SENSITIVITY_MAGNITUDE;
}

proto::PruningSearchGeneration ToGenerationProto(const GenerationSummary& summary) {
  proto::PruningSearchGeneration generation;
  generation.set_generation(summary.generation);
  generation.set_evaluated(summary.evaluated);
  generation.set_best_feasible_accuracy(summary.best_feasible_accuracy);
  generation.set_smallest_feasible_bytes(summary.smallest_feasible_bytes);
  generation.set_front_size(summary.front_size);
  generation.set_seconds(summary.seconds);
  return generation;
}

GenerationSummary FromGenerationProto(const proto::PruningSearchGeneration& generation) {
  GenerationSummary summary;
  summary.generation = generation.generation();
  summary.evaluated = generation.evaluated();
  summary.best_feasible_accuracy = generation.best_feasible_accuracy();
  summary.smallest_feasible_bytes = generation.smallest_feasible_bytes();
  summary.front_size = generation.front_size();
  summary.seconds = generation.seconds();
  return summary;
}

}  // namespace

absl::StatusOr<proto::PruningConfig> ParsePruningConfig(const std::string& text,
                                                        const std::string& name) {
  proto::PruningConfig config;
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid pruning config '", name, "': ", errors.message()));
  }
  return config;
}

absl::StatusOr<UnstructuredPruningOptions> ToUnstructuredPruningOptions(
    const proto::PruningMagnitudeConfig& config) {
  UnstructuredPruningOptions options;
  if (config.has_sparsity()) options.sparsity = config.sparsity();
  POLARIS_ASSIGN_OR_RETURN(options.scope, ToScope(config.scope()));
  if (config.has_min_density()) options.min_density = config.min_density();
  for (const auto& [layer, sparsity] : config.layer_sparsity()) {
    options.layer_sparsity[layer] = sparsity;
  }
  options.excluded_layers.assign(config.excluded_layers().begin(), config.excluded_layers().end());
  if (config.has_nm()) options.nm = NmPattern{config.nm().n(), config.nm().m()};
  return options;
}

absl::StatusOr<StructuredPruningOptions> ToStructuredPruningOptions(
    const proto::PruningStructuredConfig& config) {
  StructuredPruningOptions options;
  POLARIS_ASSIGN_OR_RETURN(options.criterion, ToCriterion(config.criterion()));
  if (config.has_fraction()) options.fraction = config.fraction();
  POLARIS_ASSIGN_OR_RETURN(options.scope, ToScope(config.scope()));
  for (const auto& [layer, fraction] : config.layer_fractions()) {
    options.layer_fractions[layer] = fraction;
  }
  for (const auto& [layer, channels] : config.layer_channels()) {
    options.layer_channels[layer] = channels;
  }
  options.excluded_layers.assign(config.excluded_layers().begin(), config.excluded_layers().end());
  if (config.has_min_channels()) options.min_channels = config.min_channels();
  if (config.has_channel_multiple()) options.channel_multiple = config.channel_multiple();
  if (config.has_importance_examples()) {
    options.importance_examples = config.importance_examples();
  }
  if (config.has_importance_batch_size()) {
    options.importance_batch_size = config.importance_batch_size();
  }
  return options;
}

absl::StatusOr<GradualPruningOptions> ToGradualPruningOptions(
    const proto::PruningGradualConfig& config, const TrainOptions& train) {
  GradualPruningOptions options;
  POLARIS_ASSIGN_OR_RETURN(options.pruning, ToUnstructuredPruningOptions(config.target()));
  if (config.has_initial_sparsity()) options.initial_sparsity = config.initial_sparsity();
  if (config.has_begin_step()) options.begin_step = config.begin_step();
  if (config.has_end_step()) options.end_step = config.end_step();
  if (config.has_frequency()) options.frequency = config.frequency();
  options.train = train;
  return options;
}

absl::StatusOr<SensitivityOptions> ToSensitivityOptions(
    const proto::PruningSensitivityConfig& config) {
  SensitivityOptions options;
  switch (config.method()) {
    case proto::PRUNING_SENSITIVITY_UNSPECIFIED:
    case proto::PRUNING_SENSITIVITY_MAGNITUDE:
      options.method = SensitivityMethod::kMagnitude;
      break;
    case proto::PRUNING_SENSITIVITY_CHANNELS: options.method = SensitivityMethod::kChannels; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown sensitivity method ", config.method()));
  }
  if (!config.sparsities().empty()) {
    options.sparsities.assign(config.sparsities().begin(), config.sparsities().end());
  }
  POLARIS_ASSIGN_OR_RETURN(options.criterion, ToCriterion(config.criterion()));
  if (config.has_batch_size()) options.batch_size = config.batch_size();
  if (config.has_workers()) options.workers = config.workers();
  if (config.has_threads_per_worker()) options.threads_per_worker = config.threads_per_worker();
  return options;
}

absl::StatusOr<EvolutionarySearchOptions> ToEvolutionarySearchOptions(
    const proto::PruningSearchConfig& config, const TrainOptions& fine_tune_defaults) {
  EvolutionarySearchOptions options;
  switch (config.space()) {
    case proto::PRUNING_SEARCH_SPACE_UNSPECIFIED:
    case proto::PRUNING_SEARCH_SPACE_CHANNELS: options.space = SearchSpace::kChannels; break;
    case proto::PRUNING_SEARCH_SPACE_SPARSITY: options.space = SearchSpace::kSparsity; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown search space ", config.space()));
  }
  switch (config.algorithm()) {
    case proto::PRUNING_SEARCH_ALGORITHM_UNSPECIFIED:
    case proto::PRUNING_SEARCH_NSGA2: options.algorithm = SearchAlgorithm::kNsga2; break;
    case proto::PRUNING_SEARCH_GENETIC: options.algorithm = SearchAlgorithm::kGenetic; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown search algorithm ", config.algorithm()));
  }
  if (!config.objectives().empty()) {
    options.objectives.clear();
    for (int objective : config.objectives()) {
      switch (objective) {
        case proto::PRUNING_OBJECTIVE_UNSPECIFIED:
        case proto::PRUNING_OBJECTIVE_FILE_BYTES:
          options.objectives.push_back(SearchObjective::kFileBytes);
          break;
        case proto::PRUNING_OBJECTIVE_LATENCY:
          options.objectives.push_back(SearchObjective::kLatency);
          break;
        default:
          return absl::InvalidArgumentError(absl::StrCat("unknown search objective ", objective));
      }
    }
  }
  if (config.has_population_size()) options.population_size = config.population_size();
  if (config.has_generations()) options.generations = config.generations();
  if (config.has_elite_count()) options.elite_count = config.elite_count();
  if (config.has_tournament_size()) options.tournament_size = config.tournament_size();
  if (config.has_crossover_probability()) {
    options.crossover_probability = config.crossover_probability();
  }
  if (config.has_mutation_probability()) {
    options.mutation_probability = config.mutation_probability();
  }
  if (config.has_seed()) options.seed = config.seed();
  POLARIS_ASSIGN_OR_RETURN(options.criterion, ToCriterion(config.criterion()));
  if (config.has_min_keep_fraction()) options.min_keep_fraction = config.min_keep_fraction();
  if (config.has_channel_step()) options.channel_step = config.channel_step();
  if (config.has_max_sparsity()) options.max_sparsity = config.max_sparsity();
  if (config.has_sparsity_step()) options.sparsity_step = config.sparsity_step();
  if (config.has_min_size_reduction()) options.min_size_reduction = config.min_size_reduction();
  if (config.has_min_speedup()) options.min_speedup = config.min_speedup();
  if (config.has_validation_examples()) options.validation_examples = config.validation_examples();
  if (config.has_calibration_examples()) {
    options.calibration_examples = config.calibration_examples();
  }
  if (config.has_fine_tune_steps()) options.fine_tune_steps = config.fine_tune_steps();
  POLARIS_ASSIGN_OR_RETURN(options.fine_tune,
                           ToTrainOptions(config.candidate_fine_tune(), fine_tune_defaults));
  if (config.has_batch_size()) options.batch_size = config.batch_size();
  if (config.has_latency_batch_size()) options.latency_batch_size = config.latency_batch_size();
  if (config.has_max_accuracy_drop()) options.max_accuracy_drop = config.max_accuracy_drop();
  if (config.has_workers()) options.workers = config.workers();
  if (config.has_threads_per_worker()) options.threads_per_worker = config.threads_per_worker();
  if (!config.checkpoint().empty()) options.checkpointer = FileCheckpointer(config.checkpoint());
  return options;
}

proto::PruningLayerResult ToLayerResultProto(const LayerSparsity& layer) {
  proto::PruningLayerResult result;
  result.set_layer(layer.layer);
  result.set_weight_path(layer.weight_path);
  result.set_weights(layer.weights);
  result.set_zeros(layer.zeros);
  result.set_sparsity(layer.sparsity);
  result.set_note(layer.note);
  return result;
}

proto::PruningChannelGroupResult ToChannelGroupProto(const ChannelGroupReport& group) {
  proto::PruningChannelGroupResult result;
  result.set_name(group.name);
  for (const std::string& layer : group.producers) result.add_producers(layer);
  for (const std::string& layer : group.normalizations) result.add_normalizations(layer);
  for (const std::string& layer : group.consumers) result.add_consumers(layer);
  result.set_channels_before(group.channels_before);
  result.set_channels_after(group.channels_after);
  result.set_pruned(group.pruned);
  result.set_note(group.note);
  for (int64_t channel : group.kept_channels) result.add_kept_channels(channel);
  return result;
}

proto::PruningScheduleStep ToScheduleStepProto(const SparsityPoint& point) {
  proto::PruningScheduleStep step;
  step.set_step(point.step);
  step.set_target_sparsity(point.target);
  step.set_achieved_sparsity(point.achieved);
  return step;
}

proto::PruningSensitivityResult ToSensitivityProto(const SensitivityAnalysis& analysis) {
  proto::PruningSensitivityResult result;
  result.set_method(ToSensitivityMethodProto(analysis.method));
  result.set_baseline_accuracy(analysis.baseline_accuracy);
  result.set_baseline_loss(analysis.baseline_loss);
  result.set_examples(analysis.examples);
  for (const LayerSensitivity& layer : analysis.layers) {
    proto::PruningLayerSensitivity* entry = result.add_layers();
    entry->set_layer(layer.layer);
    entry->set_size(layer.size);
    for (const SensitivityPoint& point : layer.points) {
      proto::PruningSensitivityPoint* out = entry->add_points();
      out->set_sparsity(point.sparsity);
      out->set_accuracy(point.accuracy);
      out->set_loss(point.loss);
    }
  }
  return result;
}

SensitivityAnalysis FromSensitivityProto(const proto::PruningSensitivityResult& result) {
  SensitivityAnalysis analysis;
  analysis.method = result.method() == proto::PRUNING_SENSITIVITY_CHANNELS
                        ? SensitivityMethod::kChannels
                        : SensitivityMethod::kMagnitude;
  analysis.baseline_accuracy = result.baseline_accuracy();
  analysis.baseline_loss = result.baseline_loss();
  analysis.examples = result.examples();
  for (const proto::PruningLayerSensitivity& entry : result.layers()) {
    LayerSensitivity layer;
    layer.layer = entry.layer();
    layer.size = entry.size();
    for (const proto::PruningSensitivityPoint& point : entry.points()) {
      layer.points.push_back({point.sparsity(), point.accuracy(), point.loss()});
    }
    analysis.layers.push_back(layer);
  }
  return analysis;
}

proto::PruningSearchCandidate ToCandidateProto(const CandidateEvaluation& candidate) {
  proto::PruningSearchCandidate result;
  for (int gene : candidate.genome) result.add_genome(gene);
  for (const auto& [name, count] : candidate.channels) (*result.mutable_channels())[name] = count;
  for (const auto& [name, value] : candidate.sparsity) (*result.mutable_sparsity())[name] = value;
  result.set_accuracy(candidate.accuracy);
  result.set_loss(candidate.loss);
  result.set_file_bytes(candidate.file_bytes);
  result.set_parameters(candidate.parameters);
  result.set_latency_ms(candidate.latency_ms);
  result.set_violation(candidate.violation);
  result.set_generation(candidate.generation);
  return result;
}

CandidateEvaluation FromCandidateProto(const proto::PruningSearchCandidate& candidate) {
  CandidateEvaluation result;
  result.genome.assign(candidate.genome().begin(), candidate.genome().end());
  for (const auto& [name, count] : candidate.channels()) result.channels[name] = count;
  for (const auto& [name, value] : candidate.sparsity()) result.sparsity[name] = value;
  result.accuracy = candidate.accuracy();
  result.loss = candidate.loss();
  result.file_bytes = candidate.file_bytes();
  result.parameters = candidate.parameters();
  result.latency_ms = candidate.latency_ms();
  result.violation = candidate.violation();
  result.generation = candidate.generation();
  return result;
}

proto::PruningSearchResult ToSearchResultProto(const SearchResult& result) {
  proto::PruningSearchResult out;
  *out.mutable_baseline() = ToCandidateProto(result.baseline);
  for (const std::string& name : result.gene_names) out.add_gene_names(name);
  for (const CandidateEvaluation& candidate : result.pareto_front) {
    *out.add_pareto_front() = ToCandidateProto(candidate);
  }
  *out.mutable_chosen() = ToCandidateProto(result.chosen);
  out.set_chosen_feasible(result.chosen_feasible);
  for (const GenerationSummary& summary : result.history) {
    *out.add_history() = ToGenerationProto(summary);
  }
  out.set_generations_completed(result.generations_completed);
  out.set_finished(result.finished);
  out.set_evaluations(static_cast<int64_t>(result.evaluated.size()));
  out.set_seconds(result.seconds);
  return out;
}

proto::PruningSearchCheckpoint ToCheckpointProto(const SearchState& state) {
  proto::PruningSearchCheckpoint checkpoint;
  checkpoint.set_fingerprint(state.fingerprint);
  checkpoint.set_generations_completed(state.generations_completed);
  checkpoint.set_rng_state(state.rng_state);
  for (const std::vector<int>& genome : state.population) {
    proto::PruningSearchCheckpoint::Genome* out = checkpoint.add_population();
    for (int gene : genome) out->add_genes(gene);
  }
  for (const CandidateEvaluation& candidate : state.archive) {
    *checkpoint.add_archive() = ToCandidateProto(candidate);
  }
  for (const GenerationSummary& summary : state.history) {
    *checkpoint.add_history() = ToGenerationProto(summary);
  }
  return checkpoint;
}

SearchState FromCheckpointProto(const proto::PruningSearchCheckpoint& checkpoint) {
  SearchState state;
  state.fingerprint = checkpoint.fingerprint();
  state.generations_completed = checkpoint.generations_completed();
  state.rng_state = checkpoint.rng_state();
  for (const auto& genome : checkpoint.population()) {
    state.population.emplace_back(genome.genes().begin(), genome.genes().end());
  }
  for (const auto& candidate : checkpoint.archive()) {
    state.archive.push_back(FromCandidateProto(candidate));
  }
  for (const auto& generation : checkpoint.history()) {
    state.history.push_back(FromGenerationProto(generation));
  }
  return state;
}

SearchCheckpointer FileCheckpointer(const std::string& path) {
  SearchCheckpointer checkpointer;
  checkpointer.save = [path](const SearchState& state) -> absl::Status {
    std::string bytes;
    if (!ToCheckpointProto(state).SerializeToString(&bytes)) {
      return absl::InternalError("serializing the search checkpoint failed");
    }
    absl::Status written = WriteFileAtomically(path, bytes);
    if (!written.ok()) return Annotate(written, absl::StrCat("saving search checkpoint ", path));
    return absl::OkStatus();
  };
  checkpointer.load = [path]() -> absl::StatusOr<std::optional<SearchState>> {
    if (!PathExists(path)) return std::optional<SearchState>();
    POLARIS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    proto::PruningSearchCheckpoint checkpoint;
    if (!checkpoint.ParseFromString(bytes)) {
      return absl::DataLossError(absl::StrCat("search checkpoint '", path,
                                              "' cannot be parsed; delete it to start afresh"));
    }
    return std::optional<SearchState>(FromCheckpointProto(checkpoint));
  };
  return checkpointer;
}

}  // namespace polaris::pruning
