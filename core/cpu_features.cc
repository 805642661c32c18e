#include "core/cpu_features.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace polaris {
namespace {

CpuFeatureSet DetectCpuFeatures() {
  CpuFeatureSet features;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  features.avx2 = __builtin_cpu_supports("avx2");
  features.fma = __builtin_cpu_supports("fma");
  // GCC 12 has no __builtin_cpu_supports name for F16C; every CPU with AVX2 here has it.
  features.f16c = features.avx2;
  features.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  features.avx512_vnni = features.avx512 && __builtin_cpu_supports("avx512vnni");
  features.avx512_bf16 = features.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  return features;
}

}  // namespace

const CpuFeatureSet& CpuFeatures() {
  static const CpuFeatureSet features = DetectCpuFeatures();
  return features;
}

std::string CpuModelName() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (!absl::StartsWith(line, "model name")) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    return std::string(absl::StripAsciiWhitespace(absl::string_view(line).substr(colon + 1)));
  }
  return "unknown CPU";
}

std::string CpuFeatureString() {
  const CpuFeatureSet& features = CpuFeatures();
  std::vector<std::string> names;
  if (features.avx2) names.push_back("avx2");
  if (features.fma) names.push_back("fma");
  if (features.avx512) names.push_back("avx512");
  if (features.avx512_vnni) names.push_back("avx512_vnni");
  if (features.avx512_bf16) names.push_back("avx512_bf16");
  if (names.empty()) return "baseline x86-64";
  return absl::StrJoin(names, " ");
}

}  // namespace polaris
