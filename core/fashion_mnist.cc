#include "core/fashion_mnist.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/idx_reader.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

// Finds "<dir>/<stem>" or "<dir>/<stem>.gz".
absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& stem) {
  for (const std::string& candidate :
       {absl::StrCat(dir, "/", stem, ".gz"), absl::StrCat(dir, "/", stem)}) {
    if (PathExists(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      "Fashion-MNIST file '", stem, "' (or '", stem, ".gz') not found in '", dir,
      "'. Install Debian's dataset-fashion-mnist package, or point --fashion_mnist_dir or "
      "$POLARIS_FASHION_MNIST_DIR at a folder of IDX files"));
}

}  // namespace

std::string DefaultFashionMnistDir() {
  const char* dir = std::getenv("POLARIS_FASHION_MNIST_DIR");
  if (dir != nullptr && dir[0] != '\0') return dir;
  return kDefaultFashionMnistDir;
}

absl::StatusOr<LabeledData> LoadFashionMnist(DataSplit split, const std::string& dir) {
  const std::string prefix = split == DataSplit::kTrain ? "train" : "t10k";
  POLARIS_ASSIGN_OR_RETURN(std::string images_path,
                           FindIdxFile(dir, prefix + "-images-idx3-ubyte"));
  POLARIS_ASSIGN_OR_RETURN(std::string labels_path,
                           FindIdxFile(dir, prefix + "-labels-idx1-ubyte"));
  POLARIS_ASSIGN_OR_RETURN(at::Tensor images, ReadIdxFile(images_path));
  POLARIS_ASSIGN_OR_RETURN(at::Tensor labels, ReadIdxFile(labels_path));

  if (images.dim() != 3 || images.scalar_type() != at::kByte) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_path, ": expected uint8 images of shape [N, H, W], got rank ", images.dim()));
  }
  if (labels.dim() != 1 || labels.scalar_type() != at::kByte) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": expected uint8 labels of shape [N], got rank ", labels.dim()));
  }
  if (images.size(0) != labels.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, " holds ", images.size(0),
                                                   " images but ", labels_path, " holds ",
                                                   labels.size(0), " labels"));
  }

  POLARIS_ASSIGN_OR_RETURN(LabeledData data, CallTorch("normalizing Fashion-MNIST", [&] {
    at::Tensor inputs = images.to(at::kFloat).div_(255.0f);
    inputs.sub_(kFashionMnistMean).div_(kFashionMnistStd);
    return LabeledData{inputs.unsqueeze(1).contiguous(), labels.to(at::kLong)};
  }));
  POLARIS_RETURN_IF_ERROR(ValidateLabeledData(data, kFashionMnistClasses, labels_path));
  return data;
}

}  // namespace polaris
