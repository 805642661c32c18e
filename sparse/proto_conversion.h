// Conversion between sparse.proto's configs and results and the sparse module's option and
// result structs, kept apart so the numeric code does not depend on protobuf.
#ifndef POLARIS_SPARSE_PROTO_CONVERSION_H_
#define POLARIS_SPARSE_PROTO_CONVERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/proto_conversion.h"
#include "core/trainer.h"
#include "sparse/dynamic_sparsity.h"
#include "sparse/export.h"
#include "sparse/sparse.pb.h"

namespace polaris::sparse {

// Parses a SparseConfig in protobuf text format. `name` (a file path) goes into messages.
// Errors: kInvalidArgument with the parser's line and column.
absl::StatusOr<proto::SparseConfig> ParseSparseConfig(const std::string& text,
                                                      const std::string& name);

// Returns the options with every set field of `config` applied. Errors: kInvalidArgument for
// values out of range (the same checks as DynamicSparsity::Create) or unknown names.
absl::StatusOr<DynamicSparsityOptions> ToDynamicSparsityOptions(
    const proto::DynamicSparsityConfig& config);


// Errors: kInvalidArgument for an unknown format name or a non-positive timed_runs.
absl::StatusOr<SparseExportOptions> ToSparseExportOptions(const proto::SparseExportConfig& config);

// Parses "csr", "bsr" or "nm". Errors: kInvalidArgument listing the valid names.
absl::StatusOr<SparseFormat> ParseSparseFormat(const std::string& name);

proto::SparseLayerResult ToLayerResultProto(const LayerExportDecision& decision,
                                            const SparseLayerReport* training);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_PROTO_CONVERSION_H_
