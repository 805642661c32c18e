// Labeled data that a user saved from Python with torch.save, so that calibration, fine-tuning
// and evaluation can run on the user's own data.
//
// Accepted contents (torch.save of):
//   (inputs, labels)                              one set, used for everything
//   (train_inputs, train_labels, test_inputs, test_labels)
//   {"train": (inputs, labels), "test": (inputs, labels)}
// where inputs are float tensors with examples along dimension 0 and labels are integer class
// indices of shape [N]. In Python:
//   torch.save((x_test, y_test), "data.pt")
#ifndef POLARIS_CORE_TENSOR_FILE_H_
#define POLARIS_CORE_TENSOR_FILE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"

namespace polaris {

struct SavedDataSets {
  // Present only when the file holds separate training data.
  std::optional<LabeledData> train;
  LabeledData test;
};

// Reads a torch.save file in PyTorch's zip format (the default since PyTorch 1.6). Inputs of
// another floating type are converted to float32 and labels to int64.
// Errors: kNotFound for a missing file; kDataLoss when it is not a torch.save zip archive or is
// damaged; kInvalidArgument when it holds something other than the layouts above, naming what
// was found.
absl::StatusOr<SavedDataSets> LoadSavedDataSets(const std::string& path);

}  // namespace polaris

#endif  // POLARIS_CORE_TENSOR_FILE_H_
