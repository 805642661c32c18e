// Run-time detection of the x86-64 instruction-set extensions that polaris's hand-written
// kernels use, and a readable name of the CPU for reports.
//
//   if (polaris::CpuFeatures().avx512_vnni) RunVnniKernel(...); else RunReference(...);
#ifndef POLARIS_CORE_CPU_FEATURES_H_
#define POLARIS_CORE_CPU_FEATURES_H_

#include <string>

namespace polaris {

struct CpuFeatureSet {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  // AVX-512 Foundation plus the BW, DQ and VL subsets, which every AVX-512 kernel here assumes.
  bool avx512 = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
};

// Returns the features of the CPU this process runs on, detected once.
const CpuFeatureSet& CpuFeatures();

// Returns the CPU's model name from /proc/cpuinfo, or "unknown CPU" when it cannot be read.
std::string CpuModelName();

// Returns a short list such as "avx2 fma avx512 avx512_vnni avx512_bf16".
std::string CpuFeatureString();

}  // namespace polaris

#endif  // POLARIS_CORE_CPU_FEATURES_H_
