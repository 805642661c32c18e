// Export of a model whose Linear and Conv2d weights contain zeros (after pruning or sparse
// training) into a TorchScript model that is measurably smaller and, where a sparse kernel
// wins, faster.
//
// For every Linear and Conv2d layer of the forward graph, ExportSparseModel measures on this
// machine, at options.batch_size and with options.threads, the dense layer (torch.linear /
// torch.conv2d) against each sparse format the options allow. A layer calls a polaris sparse
// operator (sparse/ops.cc) only when the fastest sparse format was measured faster than dense.
// Otherwise it stays dense. If its weight has zeros, the weight is then stored as a bitmap
// plus values and expanded once, on the first forward call, into a cached attribute. The
// decision and both timings are returned for every layer.
//
//   SparseExportOptions options;  // batch 64, CSR for Linear and Conv2d
//   POLARIS_ASSIGN_OR_RETURN(SparseExportResult exported, ExportSparseModel(model, options));
//   POLARIS_RETURN_IF_ERROR(SaveModel(exported.model, "model_sparse.pt"));
//
// The exported file needs the polaris operators: C++ programs link //sparse:ops, Python loads
// libpolaris_sparse_ops.so with torch.ops.load_library. Its forward is the inlined forward
// graph of `model` with the rewritten layers. The replaced weights of the layer submodules
// become empty tensors, so a submodule's own forward (model.fc1(x)) no longer runs.
#ifndef POLARIS_SPARSE_EXPORT_H_
#define POLARIS_SPARSE_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/latency.h"
#include "core/metrics.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::sparse {

// Sparse formats a layer may be exported in.
enum class SparseFormat {
  kCsr,
  // Block CSR with SparseExportOptions::block_rows x block_columns blocks (Linear only, and
  // only when the block size divides the weight).
  kBsr,
  // N:M along the input dimension (Linear only, and only when the weight is already N:M sparse
  // with SparseExportOptions::n and m).
  kNm,
};

// Returns "csr", "bsr" or "nm".
std::string SparseFormatName(SparseFormat format);

struct SparseExportOptions {
  // Batch size at which the dense and sparse layers are timed.
  int64_t batch_size = 64;
  // LibTorch and OpenBLAS threads for the timings (core SetThreads); 0 keeps the current
  // setting. The previous setting is restored afterwards.
  int threads = 0;
  // Layers whose weights have a smaller fraction of zeros stay dense and uncompressed.
  double min_sparsity = 0.3;
  // Formats tried for the sparse kernel. Empty: every layer stays dense (compactly stored).
  std::vector<SparseFormat> formats = {SparseFormat::kCsr, SparseFormat::kBsr, SparseFormat::kNm};
  int64_t block_rows = 4;
  int64_t block_columns = 4;
  int n = 2;
  int m = 4;
  // A sparse kernel is used only when dense_ms / sparse_ms is at least this. Values above 1
  // demand a margin against timing noise.
  double min_speedup = 1.0;
  // Shape of one input example without the batch dimension; it is used to find the layers'
  // input shapes. Default: Fashion-MNIST, {1, 28, 28}.
  std::vector<int64_t> example_shape = {1, 28, 28};
  // Fold each inference-mode BatchNorm that directly follows a Conv2d into the convolution's
  // weight and bias first, as optimize_for_inference does for dense models. Scaling an output
  // channel keeps its zeros, so the sparsity is unchanged.
  bool fold_batch_norm = true;
  // Timing of each variant of each layer.
  LatencyOptions timing = {
      .warmup_runs = 3, .timed_runs = 15, .max_seconds = 1.0, .min_timed_runs = 5};
};

// The export decision for one layer, with the measurements behind it.
struct LayerExportDecision {
  // Module path of the layer ("fc1", "layer1.conv2").
  std::string layer;
  // "linear" or "conv2d".
  std::string kind;
  // Fraction of zeros in the weight.
  double sparsity = 0;
  // Format of a sparse kernel: "csr", "bsr4x4", "nm2:4", or "csr-direct" (convolution
  // without im2col). A dense layer is "dense-bitmap" when its weight is stored as bitmap plus
  // values, and "dense" when it is stored unchanged.
  std::string format;
  // Median milliseconds of the dense layer and of the fastest sparse format at the options'
  // batch size. Both are 0 when no sparse format was timed.
  double dense_ms = 0;
  double sparse_ms = 0;
  bool uses_sparse_kernel = false;
  // Bytes of the weight's tensors before and after export.
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;
  // Reason the layer was left dense or was not timed; empty otherwise.
  std::string note;
};

struct SparseExportResult {
  torch::jit::Module model;
  std::vector<LayerExportDecision> layers;
  // Serialized sizes of the input model and of the exported one (core MeasureModelSize).
  ModelSize size_before;
  ModelSize size_after;
  // Intra-op threads the timings ran with.
  int threads = 0;
  // Largest absolute difference between the outputs of `model` and the exported model on one
  // random batch, checked before returning.
  double max_output_difference = 0;
};

// Exports `model` as described at the top of this file. `model` is not modified.
// Errors: kInvalidArgument when options are out of range (batch_size < 1, min_sparsity outside
// [0, 1), a block size below 1, n > m, min_speedup not positive), when the model has no Linear
// or Conv2d layer with a weight attribute ("empty model"), or when it cannot run on an input
// of example_shape; kInternal when the exported model's outputs differ from the model's beyond
// float rounding (a bug: please report it).
absl::StatusOr<SparseExportResult> ExportSparseModel(const torch::jit::Module& model,
                                                     const SparseExportOptions& options);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_EXPORT_H_
