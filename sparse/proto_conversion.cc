#include "sparse/proto_conversion.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace polaris::sparse {
namespace {

// Collects the text-format parser's first error with its position.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (error_.empty()) {
      error_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
    }
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

}  // namespace

absl::StatusOr<proto::SparseConfig> ParseSparseConfig(const std::string& text,
                                                      const std::string& name) {
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  proto::SparseConfig config;
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid SparseConfig in ", name, ": ", errors.error()));
  }
  return config;
}

absl::StatusOr<DynamicSparsityOptions> ToDynamicSparsityOptions(
    const proto::DynamicSparsityConfig& config) {
  DynamicSparsityOptions options;
  switch (config.method()) {
    case proto::SPARSE_TRAINING_STATIC:
      options.method = DynamicSparsityMethod::kStatic;
      break;
    case proto::SPARSE_TRAINING_SET:
      options.method = DynamicSparsityMethod::kSet;
      break;
    default:
      options.method = DynamicSparsityMethod::kRigL;
      break;
  }
  if (config.distribution() == proto::SPARSITY_DISTRIBUTION_UNIFORM) {
    options.distribution = SparsityDistribution::kUniform;
  }
  if (config.drop_schedule() == proto::DROP_FRACTION_CONSTANT) {
    options.drop_schedule = DropSchedule::kConstant;
  }
  if (config.has_sparsity()) options.sparsity = config.sparsity();
  if (config.has_update_interval()) options.update_interval = config.update_interval();
  if (config.has_drop_fraction()) options.drop_fraction = config.drop_fraction();
  if (config.has_end_step()) options.end_step = config.end_step();
  if (config.has_end_fraction()) options.end_fraction = config.end_fraction();
  if (config.has_seed()) options.seed = config.seed();
  options.dense_layers.assign(config.dense_layers().begin(), config.dense_layers().end());

  if (!(options.sparsity >= 0 && options.sparsity < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sparsity.sparsity must lie in [0, 1), got ", options.sparsity));
  }
  if (options.update_interval < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sparsity.update_interval must be at least 1, got ", options.update_interval));
  }
  if (!(options.drop_fraction > 0 && options.drop_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sparsity.drop_fraction must lie in (0, 1], got ", options.drop_fraction));
  }
  if (!(options.end_fraction > 0 && options.end_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sparsity.end_fraction must lie in (0, 1], got ", options.end_fraction));
  }
  return options;
}

absl::StatusOr<SparseFormat> ParseSparseFormat(const std::string& name) {
  if (name == "csr") return SparseFormat::kCsr;
  if (name == "bsr") return SparseFormat::kBsr;
  if (name == "nm") return SparseFormat::kNm;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown sparse format '", name, "'; use csr, bsr or nm"));
}

absl::StatusOr<SparseExportOptions> ToSparseExportOptions(const proto::SparseExportConfig& config) {
  SparseExportOptions options;
  if (config.has_batch_size()) options.batch_size = config.batch_size();
  if (config.has_threads()) options.threads = config.threads();
  if (config.has_min_sparsity()) options.min_sparsity = config.min_sparsity();
  if (!config.formats().empty()) {
    options.formats.clear();
    for (const std::string& name : config.formats()) {
      absl::StatusOr<SparseFormat> format = ParseSparseFormat(name);
      if (!format.ok()) return format.status();
      options.formats.push_back(*format);
    }
  }
  if (config.has_block_rows()) options.block_rows = config.block_rows();
  if (config.has_block_columns()) options.block_columns = config.block_columns();
  if (config.has_n()) options.n = config.n();
  if (config.has_m()) options.m = config.m();
  if (config.has_min_speedup()) options.min_speedup = config.min_speedup();
  if (config.has_timed_runs()) {
    if (config.timed_runs() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("export.timed_runs must be at least 1, got ", config.timed_runs()));
    }
    options.timing.timed_runs = config.timed_runs();
    options.timing.min_timed_runs = std::min(options.timing.min_timed_runs, config.timed_runs());
  }
  return options;
}

proto::SparseLayerResult ToLayerResultProto(const LayerExportDecision& decision,
                                            const SparseLayerReport* training) {
  proto::SparseLayerResult result;
  result.set_layer(decision.layer);
  result.set_kind(decision.kind);
  result.set_sparsity(decision.sparsity);
  result.set_format(decision.format);
  result.set_uses_sparse_kernel(decision.uses_sparse_kernel);
  result.set_dense_ms(decision.dense_ms);
  result.set_sparse_ms(decision.sparse_ms);
  result.set_bytes_before(decision.bytes_before);
  result.set_bytes_after(decision.bytes_after);
  result.set_note(decision.note);
  if (training != nullptr) {
    result.set_parameters(training->parameters);
    result.set_target_sparsity(training->target_sparsity);
  } else {
    result.set_parameters(decision.bytes_before / 4);
  }
  return result;
}

}  // namespace polaris::sparse
