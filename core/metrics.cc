#include "core/metrics.h"

#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "caffe2/serialize/inline_container.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

// Walks IValues and adds each distinct storage's bytes under its dtype.
class TensorByteCounter {
 public:
  void Visit(const c10::IValue& value, int depth = 0) {
    // Deeply nested values are not produced by real models; the limit guards against cycles.
    if (depth > 64) return;
    if (value.isTensor()) {
      AddTensor(value.toTensor());
    } else if (value.isTensorList()) {
      for (const at::Tensor& tensor : value.toTensorVector()) AddTensor(tensor);
    } else if (value.isList()) {
      for (const c10::IValue& item : value.toListRef()) Visit(item, depth + 1);
    } else if (value.isTuple()) {
      for (const c10::IValue& item : value.toTupleRef().elements()) Visit(item, depth + 1);
    } else if (value.isGenericDict()) {
      for (const auto& entry : value.toGenericDict()) Visit(entry.value(), depth + 1);
    } else if (value.isObject()) {
      VisitObject(value, depth);
    }
  }

  const std::map<std::string, int64_t>& bytes() const { return bytes_; }

 private:
  void AddTensor(const at::Tensor& tensor) {
    if (!tensor.defined() || !tensor.has_storage()) return;
    const void* key = tensor.storage().data();
    if (key != nullptr && !seen_.insert(key).second) return;
    bytes_[std::string(tensor.dtype().name())] += static_cast<int64_t>(tensor.storage().nbytes());
  }

  void VisitObject(const c10::IValue& value, int depth) {
    const c10::intrusive_ptr<c10::ivalue::Object> object = value.toObject();
    if (!seen_.insert(object.get()).second) return;
    if (auto getstate = object->type()->findMethod("__getstate__"); getstate != nullptr) {
      c10::IValue state = (*getstate)({value});
      Visit(state, depth + 1);
      return;
    }
    for (size_t slot = 0; slot < object->slots().size(); ++slot) {
      Visit(object->getSlot(slot), depth + 1);
    }
  }

  std::set<const void*> seen_;
  std::map<std::string, int64_t> bytes_;
};

int64_t ReadProcStatusField(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, field)) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    int64_t kilobytes = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kilobytes)) return kilobytes * 1024;
  }
  return -1;
}

}  // namespace

absl::StatusOr<ModelSize> MeasureSerializedSize(const std::string& bytes) {
  return CallTorch("reading the serialized model's records", [&] {
    std::istringstream stream(bytes);
    caffe2::serialize::PyTorchStreamReader reader(&stream);
    ModelSize size;
    size.file_bytes = static_cast<int64_t>(bytes.size());
    for (const std::string& record : reader.getAllRecords()) {
      // Tensor storages are the records named data/<key>; see torch/csrc/jit/serialization.
      if (!absl::StartsWith(record, "data/")) continue;
      size.tensor_data_bytes += static_cast<int64_t>(std::get<1>(reader.getRecord(record)));
    }
    size.other_bytes = size.file_bytes - size.tensor_data_bytes;
    return size;
  });
}

absl::StatusOr<ModelSize> MeasureModelSize(const torch::jit::Module& model) {
  POLARIS_ASSIGN_OR_RETURN(std::string bytes, SerializeModel(model));
  return MeasureSerializedSize(bytes);
}

int64_t ParameterCount(const torch::jit::Module& model) {
  int64_t count = 0;
  for (const at::Tensor& param : model.parameters(/*recurse=*/true)) count += param.numel();
  return count;
}

absl::StatusOr<std::map<std::string, int64_t>> TensorBytesByType(
    const torch::jit::Module& model) {
  return CallTorch("counting tensor bytes", [&] {
    TensorByteCounter counter;
    counter.Visit(model._ivalue());
    return counter.bytes();
  });
}

int64_t CurrentResidentBytes() { return ReadProcStatusField("VmRSS:"); }

int64_t PeakResidentBytes() { return ReadProcStatusField("VmHWM:"); }

std::string FormatBytes(int64_t bytes) {
  if (bytes < 0) return "unknown";
  if (bytes < 1000) return absl::StrFormat("%d B", bytes);
  if (bytes < 1000 * 1000) return absl::StrFormat("%.1f KB", bytes / 1e3);
  if (bytes < int64_t{1000} * 1000 * 1000) return absl::StrFormat("%.2f MB", bytes / 1e6);
  return absl::StrFormat("%.2f GB", bytes / 1e9);
}

}  // namespace polaris
