// Fashion-MNIST (Xiao et al. 2017: 60,000 training and 10,000 test images of 28x28 grey
// clothing items in 10 classes), read from Debian's dataset-fashion-mnist package or any folder
// of IDX files laid out the same way.
//
//   POLARIS_ASSIGN_OR_RETURN(LabeledData test, LoadFashionMnist(DataSplit::kTest));
//   // test.inputs: float32 [10000, 1, 28, 28], normalized; test.labels: int64 [10000]
#ifndef POLARIS_CORE_FASHION_MNIST_H_
#define POLARIS_CORE_FASHION_MNIST_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"

namespace polaris {

enum class DataSplit { kTrain, kTest };

inline constexpr int64_t kFashionMnistClasses = 10;
// Mean and standard deviation of the training images scaled to [0, 1]; the loader subtracts
// the mean and divides by the deviation, so models see inputs of roughly zero mean, unit scale.
inline constexpr float kFashionMnistMean = 0.2860f;
inline constexpr float kFashionMnistStd = 0.3530f;
inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Returns the folder to read Fashion-MNIST from: $POLARIS_FASHION_MNIST_DIR when set, else
// kDefaultFashionMnistDir.
std::string DefaultFashionMnistDir();

// Reads one split from `dir`, which holds train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally gzip-compressed (.gz).
// Images become float32 [N, 1, H, W], scaled to [0, 1] and normalized with the constants above.
// Errors: kNotFound naming the missing file (and how to install Debian's package), the IDX
// reader's errors, and kInvalidArgument when images and labels disagree in count or labels
// fall outside [0, 10).
absl::StatusOr<LabeledData> LoadFashionMnist(DataSplit split,
                                             const std::string& dir = DefaultFashionMnistDir());

}  // namespace polaris

#endif  // POLARIS_CORE_FASHION_MNIST_H_
