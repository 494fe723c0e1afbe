// heed's GEMM backends (core/gemm.hpp) against each other and against the machine's FMA peak,
// measured in the same process:
//   fma_peak/threads:N          the peak (bench/peak.hpp), counter GFLOPS
//   gemm/<backend>/M/N/K/threads:N   C (M, N) = A (M, K) B^T (K, N) through detail::gemm with
//                               that backend: counters GFLOPS and of_peak (a fraction of this
//                               process's measured peak at the same thread count)
// Shapes: the MNIST MLP's products at batch 100 (and at its shards of 25 and 50 rows), the
// attention projections (B*T, 512) x (512, 512), and 512^3, 1024^3.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <heed/core/gemm.hpp>
#include <string>
#include <vector>

#include "peak.hpp"

namespace {

using heed::Index;
using heed::Matrix;

void BM_Peak(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  double g = 0;
  for (auto _ : st) g = bench::fma_peak_gflops(threads);
  st.counters["GFLOPS"] = g;
  st.SetLabel(bench::peak_isa());
}

void BM_Gemm(benchmark::State& st, heed::Gemm backend) {
  const Index M = st.range(0), N = st.range(1), K = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  const double p = bench::peak(threads);
  heed::set_gemm_backend(backend);
  Eigen::setNbThreads(threads);
  const Matrix<float> A = Matrix<float>::Random(M, K), B = Matrix<float>::Random(N, K);
  Matrix<float> C(M, N);
  for (auto _ : st) {
    heed::detail::gemm<float>(C, A, heed::detail::Op::N, B, heed::detail::Op::T);
    benchmark::DoNotOptimize(C.data());
  }
  const double flops = 2.0 * M * N * K;
  st.counters["GFLOPS"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["of_peak"] = benchmark::Counter(flops / 1e9 / p, benchmark::Counter::kIsIterationInvariantRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  const std::vector<std::vector<std::int64_t>> s = {
      {100, 256, 784}, {50, 256, 784}, {25, 256, 784},  // MLP fc1 forward, batch 100 and shards
      {256, 784, 100},                                   // fc1 dW = dy^T x
      {100, 128, 256}, {100, 64, 128},                   // fc2, fc3 forward
      {1024, 512, 512}, {4096, 512, 512},                // attention projections, B*T rows
      {512, 512, 512}, {1024, 1024, 1024}};
  for (const auto& v : s)
    for (std::int64_t t : {1, 2}) b->Args({v[0], v[1], v[2], t});
  b->ArgNames({"M", "N", "K", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("fma_peak", BM_Peak)->Arg(1)->Arg(2)->ArgName("threads")->Iterations(1)->UseRealTime();
  benchmark::RegisterBenchmark("gemm/eigen", BM_Gemm, heed::Gemm::Eigen)->Apply(shapes);
  if (heed::blas_available()) benchmark::RegisterBenchmark("gemm/blas", BM_Gemm, heed::Gemm::Blas)->Apply(shapes);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  bench::add_peak_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
