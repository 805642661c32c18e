#include "pruning/batch_norm.h"

#include <algorithm>
#include <string>

#include "ATen/core/grad_mode.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/torch_status.h"

namespace polaris::pruning {

bool HasBatchNorm(const torch::jit::Module& model) {
  for (const auto& buffer : model.named_buffers(/*recurse=*/true)) {
    if (absl::EndsWith(buffer.name, "running_mean")) return true;
  }
  return false;
}

absl::Status RecalibrateBatchNorm(torch::jit::Module& model, const LabeledData& data,
                                  int64_t batch_size) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the recalibration batch size must be at least 1, got ", batch_size));
  }
  if (!HasBatchNorm(model) || data.size() == 0) return absl::OkStatus();
  absl::Status status = CallTorch("recalibrating BatchNorm statistics", [&] {
    at::NoGradGuard no_grad;
    model.train();
    for (int64_t start = 0; start < data.size(); start += batch_size) {
      const int64_t count = std::min(batch_size, data.size() - start);
      // Batch statistics need two examples or more.
      if (count < 2) break;
      model.forward({data.inputs.slice(0, start, start + count)});
    }
  });
  model.eval();
  if (!status.ok()) return absl::InvalidArgumentError(status.message());
  return absl::OkStatus();
}

}  // namespace polaris::pruning
