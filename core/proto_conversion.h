// Conversion of core's measurement structs into the shared protobuf messages of core.proto,
// kept apart so that numeric code does not depend on protobuf.
#ifndef POLARIS_CORE_PROTO_CONVERSION_H_
#define POLARIS_CORE_PROTO_CONVERSION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/core.pb.h"
#include "core/evaluate.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "core/trainer.h"

namespace polaris {

// Fills an Environment from the current runtime; `git_commit` may be empty. The timestamp is
// the current time in UTC.
proto::Environment ToEnvironmentProto(const RuntimeInfo& info, const std::string& git_commit);

proto::Latency ToLatencyProto(const LatencyStats& stats, int64_t batch_size);

proto::ModelSize ToModelSizeProto(const ModelSize& size, int64_t parameters);

proto::Accuracy ToAccuracyProto(const EvalResult& eval, const std::string& data_name);

// Returns `defaults` with the fields `schedule` sets replaced. Errors: kInvalidArgument for an
// optimizer other than "sgd" or "adam", or a learning-rate schedule other than "cosine" or
// "constant".
absl::StatusOr<TrainOptions> ToTrainOptions(const proto::TrainingSchedule& schedule,
                                            const TrainOptions& defaults);

// Returns `git describe --always --dirty` run in `directory` (BUILD_WORKSPACE_DIRECTORY under
// bazel run when empty), or "unknown" when git or the repository is unavailable.
std::string DescribeGitCommit(const std::string& directory = "");

}  // namespace polaris

#endif  // POLARIS_CORE_PROTO_CONVERSION_H_
