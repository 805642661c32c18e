#include "pruning/common.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace polaris::pruning {

std::string PruningScopeName(PruningScope scope) {
  return scope == PruningScope::kGlobal ? "global" : "per_layer";
}

absl::Status ValidateFraction(double value, absl::string_view what) {
  if (std::isfinite(value) && value >= 0 && value < 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must lie in [0, 1), got ", value,
                   "; 0 keeps everything and values near 1 remove nearly everything"));
}

absl::Status ValidateLayerNames(const std::vector<std::string>& layers,
                                const std::vector<std::string>& known, absl::string_view option) {
  for (const std::string& layer : layers) {
    if (std::find(known.begin(), known.end(), layer) != known.end()) continue;
    return absl::NotFoundError(absl::StrCat(
        "layer '", layer, "' in ", option,
        " is not a prunable layer of the model; use one of: ", absl::StrJoin(known, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace polaris::pruning
