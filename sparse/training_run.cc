#include "sparse/training_run.h"

#include <map>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/evaluate.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/proto_conversion.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "sparse/dynamic_sparsity.h"
#include "sparse/export.h"
#include "sparse/proto_conversion.h"

namespace polaris::sparse {
namespace {

constexpr int64_t kDefaultLatencyBatch = 64;

std::string DataName(const LabeledData& data) {
  return absl::StrCat("test set (", data.size(), " examples)");
}

absl::StatusOr<proto::Accuracy> MeasureAccuracy(torch::jit::Module& model,
                                                const LabeledData& test) {
  POLARIS_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(model, test));
  return ToAccuracyProto(eval, DataName(test));
}

absl::StatusOr<proto::Latency> MeasureLatencyProto(torch::jit::Module model,
                                                   const LabeledData& test, int64_t batch) {
  const at::Tensor input = test.inputs.slice(0, 0, std::min<int64_t>(batch, test.size()));
  LatencyOptions options;
  options.warmup_runs = 5;
  options.timed_runs = 30;
  options.max_seconds = 5;
  POLARIS_ASSIGN_OR_RETURN(LatencyStats stats, MeasureModelLatency(model, input, options));
  return ToLatencyProto(stats, input.size(0));
}

}  // namespace

absl::StatusOr<SparseTrainingRun> RunSparseTraining(const torch::jit::Module& model,
                                                    const LabeledData& train,
                                                    const LabeledData& test,
                                                    const proto::SparseConfig& config,
                                                    const TrainOptions& defaults,
                                                    const std::string& model_name) {
  POLARIS_ASSIGN_OR_RETURN(DynamicSparsityOptions sparsity,
                           ToDynamicSparsityOptions(config.sparsity()));
  POLARIS_ASSIGN_OR_RETURN(TrainOptions training, ToTrainOptions(config.training(), defaults));
  POLARIS_ASSIGN_OR_RETURN(SparseExportOptions export_options,
                           ToSparseExportOptions(config.export_()));
  if (train.inputs.defined() && train.inputs.dim() >= 2) {
    const std::vector<int64_t> example(train.inputs.sizes().begin() + 1,
                                       train.inputs.sizes().end());
    sparsity.example_shape = example;
    export_options.example_shape = example;
  }
  const int64_t latency_batch =
      config.has_latency_batch_size() ? config.latency_batch_size() : kDefaultLatencyBatch;

  SparseTrainingRun run;
  proto::SparseResult& result = run.result;
  *result.mutable_environment() = ToEnvironmentProto(CurrentRuntimeInfo(), DescribeGitCommit());
  *result.mutable_config() = config;
  result.set_model(model_name);

  if (config.train_dense_baseline()) {
    POLARIS_ASSIGN_OR_RETURN(torch::jit::Module dense, CopyForTraining(model));
    TrainOptions dense_training = training;
    dense_training.name = "dense";
    POLARIS_RETURN_IF_ERROR(
        Annotate(Train(dense, train, dense_training).status(), "training the dense baseline"));
    POLARIS_ASSIGN_OR_RETURN(*result.mutable_dense_accuracy(), MeasureAccuracy(dense, test));
  }

  training.name = MethodName(sparsity.method);
  absl::StatusOr<DynamicSparseTrainingResult> trained =
      TrainDynamicSparse(model, train, training, sparsity);
  if (!trained.ok()) return Annotate(trained.status(), "sparse training");
  run.trained = trained->model;
  result.set_overall_sparsity(trained->overall_sparsity);
  result.set_mask_updates(trained->updates);
  result.set_grown_connections(trained->grown_connections);
  result.set_train_seconds(trained->training.seconds);
  POLARIS_ASSIGN_OR_RETURN(*result.mutable_sparse_accuracy(), MeasureAccuracy(run.trained, test));

  absl::StatusOr<SparseExportResult> exported = ExportSparseModel(run.trained, export_options);
  if (!exported.ok()) return Annotate(exported.status(), "sparse export");
  run.exported = exported->model;
  std::map<std::string, const SparseLayerReport*> reports;
  for (const SparseLayerReport& report : trained->layers) reports[report.layer] = &report;
  for (const LayerExportDecision& decision : exported->layers) {
    const auto report = reports.find(decision.layer);
    *result.add_layers() =
        ToLayerResultProto(decision, report == reports.end() ? nullptr : report->second);
  }
  *result.mutable_size_before() =
      ToModelSizeProto(exported->size_before, ParameterCount(run.trained));
  *result.mutable_size_after() =
      ToModelSizeProto(exported->size_after, ParameterCount(run.exported));
  POLARIS_ASSIGN_OR_RETURN(*result.mutable_exported_accuracy(),
                           MeasureAccuracy(run.exported, test));

  POLARIS_ASSIGN_OR_RETURN(torch::jit::Module optimized, OptimizeForInference(run.trained));
  POLARIS_ASSIGN_OR_RETURN(*result.mutable_latency_dense(),
                           MeasureLatencyProto(optimized, test, latency_batch));
  POLARIS_ASSIGN_OR_RETURN(*result.mutable_latency_exported(),
                           MeasureLatencyProto(run.exported, test, latency_batch));
  return run;
}

std::string FormatSparseResult(const proto::SparseResult& result) {
  std::string text;
  if (result.has_dense_accuracy()) {
    absl::StrAppendFormat(&text, "dense baseline accuracy   %.2f%%\n",
                          100 * result.dense_accuracy().accuracy());
  }
  absl::StrAppendFormat(&text,
                        "sparse model accuracy     %.2f%% at %.1f%% sparsity (%d mask updates)\n",
                        100 * result.sparse_accuracy().accuracy(), 100 * result.overall_sparsity(),
                        result.mask_updates());
  absl::StrAppendFormat(&text, "exported model accuracy   %.2f%% on %s\n",
                        100 * result.exported_accuracy().accuracy(),
                        result.exported_accuracy().data());
  absl::StrAppendFormat(&text, "file size                 %s -> %s (%.2fx smaller)\n",
                        FormatBytes(result.size_before().file_bytes()),
                        FormatBytes(result.size_after().file_bytes()),
                        static_cast<double>(result.size_before().file_bytes()) /
                            std::max<int64_t>(1, result.size_after().file_bytes()));
  absl::StrAppendFormat(
      &text,
      "latency at batch %d       %.3f ms dense (optimize_for_inference) -> %.3f ms exported "
      "(%.2fx), %d threads\n",
      result.latency_exported().batch_size(), result.latency_dense().median_ms(),
      result.latency_exported().median_ms(),
      result.latency_dense().median_ms() / std::max(1e-9, result.latency_exported().median_ms()),
      result.latency_exported().threads());
  absl::StrAppendFormat(&text, "%-22s %-7s %9s %13s %10s %10s %12s\n", "layer", "kind", "sparsity",
                        "format", "dense ms", "sparse ms", "bytes after");
  for (const proto::SparseLayerResult& layer : result.layers()) {
    absl::StrAppendFormat(&text, "%-22s %-7s %8.1f%% %13s %10.3f %10.3f %12d\n", layer.layer(),
                          layer.kind(), 100 * layer.sparsity(), layer.format(), layer.dense_ms(),
                          layer.sparse_ms(), layer.bytes_after());
  }
  return text;
}

}  // namespace polaris::sparse
