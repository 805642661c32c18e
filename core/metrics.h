// Measured sizes of models and tensors, and the process's memory use. Every figure is counted
// from real bytes: serialized files, tensor storages, /proc. No size is estimated from
// parameter counts.
//
//   POLARIS_ASSIGN_OR_RETURN(ModelSize size, MeasureModelSize(model));
//   size.file_bytes;         // bytes of the TorchScript file Module::save writes
//   size.tensor_data_bytes;  // of which tensor storages
#ifndef POLARIS_CORE_METRICS_H_
#define POLARIS_CORE_METRICS_H_

#include <cstdint>
#include <map>
#include <string>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris {

struct ModelSize {
  // Size of the serialized TorchScript file.
  int64_t file_bytes = 0;
  // Bytes of the tensor storages in that file (its data/ records).
  int64_t tensor_data_bytes = 0;
  // Everything else: code, pickled structure, constants, zip headers.
  int64_t other_bytes = 0;
};

// Serializes `model` in memory and counts the bytes of the file and of its tensor records.
absl::StatusOr<ModelSize> MeasureModelSize(const torch::jit::Module& model);

// The same for a serialized TorchScript file held in memory.
absl::StatusOr<ModelSize> MeasureSerializedSize(const std::string& bytes);

// Number of elements in the module's parameters (recursively). Packed weights held by custom
// classes (LibTorch's quantized packed parameters, polaris operators) are not parameters and
// are counted by TensorBytesByType instead.
int64_t ParameterCount(const torch::jit::Module& model);

// Bytes of every distinct tensor storage reachable from the module: parameters, buffers, tensor
// attributes, tensors in lists, tuples and dicts, and tensors inside custom-class objects that
// expose __getstate__ (LibTorch's packed quantized weights). Keyed by dtype name ("float",
// "qint8", "unsigned char", ...). Storages shared by several tensors count once.
absl::StatusOr<std::map<std::string, int64_t>> TensorBytesByType(const torch::jit::Module& model);

// Resident memory of this process from /proc/self/status: now (VmRSS) and the peak (VmHWM).
// Return -1 when /proc is unavailable.
int64_t CurrentResidentBytes();
int64_t PeakResidentBytes();

// Formats a byte count as "512 B", "12.3 KB" or "4.56 MB" (powers of 1000, as file sizes are
// usually shown).
std::string FormatBytes(int64_t bytes);

}  // namespace polaris

#endif  // POLARIS_CORE_METRICS_H_
