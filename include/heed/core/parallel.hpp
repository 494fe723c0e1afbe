#pragma once
// for_each_slice: heed's one way of using several cores inside a module.
//
// Attention works on independent (sample, head) slices. Running whole slices on different
// threads, each with its own scratch, needs one fork/join per call; threading each small matrix
// product instead (Eigen's own OpenMP) needs one per product and collapses when a core is busy
// with something else, since every product waits for its slowest thread. Inside the parallel
// region Eigen's products run serially (Eigen does not nest inside a parallel region).
//
// The thread count is Eigen::nbThreads() (Eigen::setNbThreads, else OMP_NUM_THREADS), the same
// knob as for the products. Slices must write disjoint memory; then the results are
// bit-identical to the serial loop, whatever the thread count.
#include <algorithm>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor.hpp"

namespace heed::detail {

// Runs f(i, scratch) for i in [0, n), scratch being the calling thread's element of `scratch`
// (grown to one per thread as needed). Jobs under ~1M multiply-adds (`flops`) stay serial:
// starting threads would cost more than they save.
template <class Scratch, class F>
void for_each_slice(Index n, [[maybe_unused]] double flops, std::vector<Scratch>& scratch,
                    F&& f) {
#ifdef _OPENMP
  const int threads = Eigen::nbThreads();
  if (n > 1 && flops > 1e6 && threads > 1 && !omp_in_parallel()) {
    if (scratch.size() < static_cast<std::size_t>(threads)) scratch.resize(threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (Index i = 0; i < n; ++i) f(i, scratch[omp_get_thread_num()]);
    return;
  }
#endif
  if (scratch.empty()) scratch.resize(1);
  for (Index i = 0; i < n; ++i) f(i, scratch[0]);
}

}  // namespace heed::detail
