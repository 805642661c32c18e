#include "sparse/passive_openmp.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace polaris::sparse {

void RestartWithPassiveOpenMp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr,
               "warning: restarting with OMP_WAIT_POLICY=PASSIVE failed (%s); run the command "
               "with OMP_WAIT_POLICY=PASSIVE set, or spinning OpenMP workers may slow it down\n",
               std::strerror(errno));
}

}  // namespace polaris::sparse
