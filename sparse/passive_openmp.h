// Restarting a command with OMP_WAIT_POLICY=PASSIVE.
//
// LibTorch 1.13 on Debian runs its element-wise operators in OpenMP parallel regions whose
// workers keep spinning afterwards, while OpenBLAS runs its own threads. On 2 cores they take
// the cores from each other. On the shared build machine, dense torch::linear on 2 threads
// measured 11 ms with spinning workers and 2.3 ms without, and training the MLP ran at about
// 1,400 images/s against about 33,000 with PASSIVE. libgomp reads the policy only when it is
// loaded, so a program has to set it before it starts.
#ifndef POLARIS_SPARSE_PASSIVE_OPENMP_H_
#define POLARIS_SPARSE_PASSIVE_OPENMP_H_

namespace polaris::sparse {

// When OMP_WAIT_POLICY is unset, sets it to PASSIVE and replaces this process with a fresh
// run of the same program and arguments (execv of /proc/self/exe). Returns only when the
// variable was already set or the restart failed (after printing a warning). Call it first
// in main, before anything starts OpenMP threads.
void RestartWithPassiveOpenMp(char** argv);

}  // namespace polaris::sparse

#endif  // POLARIS_SPARSE_PASSIVE_OPENMP_H_
