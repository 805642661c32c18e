// Definitions shared by polaris's pruning methods: the pruning scope and the checks of
// sparsity and fraction arguments, so every method reports bad values the same way.
#ifndef POLARIS_PRUNING_COMMON_H_
#define POLARIS_PRUNING_COMMON_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace polaris::pruning {

// How a pruning target is shared among layers.
enum class PruningScope {
  // Every layer loses the same fraction of its weights or channels.
  kPerLayer,
  // One threshold over all layers together: layers with smaller weights (or less important
  // channels) lose more, bounded by a per-layer minimum.
  kGlobal,
};

// Returns "per_layer" or "global".
std::string PruningScopeName(PruningScope scope);

// Returns kInvalidArgument unless 0 <= value < 1, naming `what` (for example "sparsity" or
// "layer_sparsity['fc1']") and the value.
absl::Status ValidateFraction(double value, absl::string_view what);

// Returns kNotFound when an entry of `layers` is not in `known`, naming the option, the layer
// and the known layers.
absl::Status ValidateLayerNames(const std::vector<std::string>& layers,
                                const std::vector<std::string>& known, absl::string_view option);

// Returns the keys of a per-layer option map, in order.
template <typename T>
std::vector<std::string> KeysOf(const std::map<std::string, T>& by_layer) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : by_layer) keys.push_back(key);
  return keys;
}

}  // namespace polaris::pruning

#endif  // POLARIS_PRUNING_COMMON_H_
