#include "core/tensor_file.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "caffe2/serialize/inline_container.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "core/torch_status.h"
#include "torch/csrc/jit/serialization/pickle.h"

namespace polaris {
namespace {

absl::StatusOr<at::Tensor> ExpectTensor(const c10::IValue& value, absl::string_view what,
                                        absl::string_view path) {
  if (!value.isTensor()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what, " must be a tensor, found ",
                                                   value.tagKind()));
  }
  return value.toTensor();
}

absl::StatusOr<LabeledData> ToLabeledData(const c10::IValue& inputs_value,
                                          const c10::IValue& labels_value,
                                          absl::string_view path) {
  POLARIS_ASSIGN_OR_RETURN(at::Tensor inputs, ExpectTensor(inputs_value, "inputs", path));
  POLARIS_ASSIGN_OR_RETURN(at::Tensor labels, ExpectTensor(labels_value, "labels", path));
  if (!at::isFloatingType(inputs.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": inputs must be a floating-point tensor, found ",
        c10::toString(inputs.scalar_type()), "; convert with .float() before torch.save"));
  }
  if (at::isFloatingType(labels.scalar_type()) || labels.scalar_type() == at::kBool) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": labels must be integer class indices, found ",
        c10::toString(labels.scalar_type()), "; convert with .long() before torch.save"));
  }
  return CallTorch(absl::StrCat("converting tensors from ", path), [&] {
    return LabeledData{inputs.to(at::kFloat).contiguous(), labels.to(at::kLong).contiguous()};
  });
}

absl::StatusOr<LabeledData> PairFromValue(const c10::IValue& value, absl::string_view what,
                                          absl::string_view path) {
  if (!value.isTuple() && !value.isList()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", what, " must be an (inputs, labels) tuple, found ", value.tagKind()));
  }
  std::vector<c10::IValue> items = value.isTuple() ? value.toTupleRef().elements().vec()
                                                   : value.toListRef().vec();
  if (items.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what,
                                                   " must hold 2 tensors (inputs, labels), found ",
                                                   items.size()));
  }
  return ToLabeledData(items[0], items[1], path);
}

}  // namespace

absl::StatusOr<SavedDataSets> LoadSavedDataSets(const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  if (bytes.size() < 4 || bytes.compare(0, 2, "PK") != 0) {
    return absl::DataLossError(absl::StrCat(
        path, " is not a torch.save file in PyTorch's zip format (no zip header); save it with "
              "torch.save((inputs, labels), path) from PyTorch 1.6 or later"));
  }
  // A damaged archive is data loss; an intact archive whose pickle this reader cannot turn into
  // tensors (a state dict, a Python object) is the wrong kind of file.
  absl::Status archive = CallTorch(absl::StrCat("reading the zip archive ", path), [&] {
    std::istringstream stream(bytes);
    caffe2::serialize::PyTorchStreamReader reader(&stream);
    reader.getAllRecords();
  });
  if (!archive.ok()) return absl::DataLossError(archive.message());
  std::vector<char> buffer(bytes.begin(), bytes.end());
  absl::StatusOr<c10::IValue> loaded =
      CallTorch(absl::StrCat("unpickling ", path), [&] { return torch::jit::pickle_load(buffer); });
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " does not hold tensors in a supported layout; save (inputs, labels) with "
              "torch.save((inputs, labels), path). LibTorch reported: ",
        loaded.status().message()));
  }
  const c10::IValue& value = *loaded;

  SavedDataSets sets;
  if (value.isGenericDict()) {
    const c10::Dict<c10::IValue, c10::IValue> dict = value.toGenericDict();
    if (!dict.contains(c10::IValue("test"))) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": a saved dict must have a \"test\" key (and may have \"train\")"));
    }
    POLARIS_ASSIGN_OR_RETURN(sets.test, PairFromValue(dict.at(c10::IValue("test")), "\"test\"", path));
    if (dict.contains(c10::IValue("train"))) {
      POLARIS_ASSIGN_OR_RETURN(LabeledData train,
                               PairFromValue(dict.at(c10::IValue("train")), "\"train\"", path));
      sets.train = std::move(train);
    }
    return sets;
  }

  if (value.isTuple() || value.isList()) {
    std::vector<c10::IValue> items = value.isTuple() ? value.toTupleRef().elements().vec()
                                                     : value.toListRef().vec();
    if (items.size() == 2) {
      POLARIS_ASSIGN_OR_RETURN(sets.test, ToLabeledData(items[0], items[1], path));
      return sets;
    }
    if (items.size() == 4) {
      POLARIS_ASSIGN_OR_RETURN(LabeledData train, ToLabeledData(items[0], items[1], path));
      POLARIS_ASSIGN_OR_RETURN(sets.test, ToLabeledData(items[2], items[3], path));
      sets.train = std::move(train);
      return sets;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": expected 2 tensors (inputs, labels) or 4 (train inputs, train labels, test "
              "inputs, test labels), found ",
        items.size()));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": expected a tuple of tensors or a dict with \"train\"/\"test\", found ",
      value.tagKind()));
}

}  // namespace polaris
