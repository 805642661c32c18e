// Conversion between pruning.proto's configs and results and the pruning module's option and
// result structs, kept apart so that the numeric code does not depend on protobuf. Also the
// file checkpointer of the evolutionary search.
//
//   POLARIS_ASSIGN_OR_RETURN(proto::PruningConfig config, ParsePruningConfig(text, path));
//   POLARIS_ASSIGN_OR_RETURN(StructuredPruningOptions options,
//                            ToStructuredPruningOptions(config.structured()));
#ifndef POLARIS_PRUNING_PROTO_CONVERSION_H_
#define POLARIS_PRUNING_PROTO_CONVERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/proto_conversion.h"
#include "core/trainer.h"
#include "pruning/evolutionary.h"
#include "pruning/gradual.h"
#include "pruning/magnitude.h"
#include "pruning/pruning.pb.h"
#include "pruning/sensitivity.h"
#include "pruning/structured.h"

namespace polaris::pruning {

// Parses a PruningConfig in protobuf text format; `name` (a file path) goes into messages.
// Errors: kInvalidArgument with the parser's line and column.
absl::StatusOr<proto::PruningConfig> ParsePruningConfig(const std::string& text,
                                                        const std::string& name);

// Each returns the options struct with every set field applied. Values are range-checked by
// the function that takes the options; these return kInvalidArgument only for unknown enum
// values and names.
absl::StatusOr<UnstructuredPruningOptions> ToUnstructuredPruningOptions(
    const proto::PruningMagnitudeConfig& config);
absl::StatusOr<StructuredPruningOptions> ToStructuredPruningOptions(
    const proto::PruningStructuredConfig& config);
absl::StatusOr<GradualPruningOptions> ToGradualPruningOptions(
    const proto::PruningGradualConfig& config, const TrainOptions& train);
absl::StatusOr<SensitivityOptions> ToSensitivityOptions(
    const proto::PruningSensitivityConfig& config);
absl::StatusOr<EvolutionarySearchOptions> ToEvolutionarySearchOptions(
    const proto::PruningSearchConfig& config, const TrainOptions& fine_tune_defaults);


proto::PruningLayerResult ToLayerResultProto(const LayerSparsity& layer);
proto::PruningChannelGroupResult ToChannelGroupProto(const ChannelGroupReport& group);
proto::PruningScheduleStep ToScheduleStepProto(const SparsityPoint& point);

// A sensitivity scan as data, both ways, so that a saved scan can seed a later search.
proto::PruningSensitivityResult ToSensitivityProto(const SensitivityAnalysis& analysis);
SensitivityAnalysis FromSensitivityProto(const proto::PruningSensitivityResult& result);

proto::PruningSearchCandidate ToCandidateProto(const CandidateEvaluation& candidate);
CandidateEvaluation FromCandidateProto(const proto::PruningSearchCandidate& candidate);
proto::PruningSearchResult ToSearchResultProto(const SearchResult& result);

proto::PruningSearchCheckpoint ToCheckpointProto(const SearchState& state);
SearchState FromCheckpointProto(const proto::PruningSearchCheckpoint& checkpoint);

// Returns a checkpointer that writes the state to `path` as binary protobuf, atomically (a
// temporary file renamed over it), and reads it back. Its load returns std::nullopt when
// `path` does not exist and kDataLoss when the file cannot be parsed.
SearchCheckpointer FileCheckpointer(const std::string& path);

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_PROTO_CONVERSION_H_
