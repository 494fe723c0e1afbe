#pragma once
// The machine's FMA peak, measured: each thread runs independent chains of fused multiply-adds
// in the widest vectors this build targets (AVX-512, AVX2+FMA, else SSE multiply + add), enough
// chains to cover the FMA latency on every port. GFLOP/s = 2 x lanes x chains x iterations / s.
// bench_gemm reports it (fma_peak/threads:N) and the other benchmarks their fraction of it
// (bench::peak, cached; bench::add_peak_context writes both into the run's context).
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <cstdint>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bench {

inline const char* peak_isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#else
  return "sse2 (no fma)";
#endif
}

// One thread's FLOPs over `iters` iterations of 12 independent chains.
inline double fma_chains(std::int64_t iters, float seed) {
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int lanes = 16;
  auto set = [](float v) { return _mm512_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  auto sum = [](V a) { return _mm512_reduce_add_ps(a); };
#elif defined(__AVX2__) && defined(__FMA__)
  using V = __m256;
  constexpr int lanes = 8;
  auto set = [](float v) { return _mm256_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  auto sum = [](V a) {
    alignas(32) float t[8];
    _mm256_store_ps(t, a);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
  };
#else
  using V = __m128;
  constexpr int lanes = 4;
  auto set = [](float v) { return _mm_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm_add_ps(_mm_mul_ps(a, b), c); };
  auto sum = [](V a) {
    alignas(16) float t[4];
    _mm_store_ps(t, a);
    return t[0] + t[1] + t[2] + t[3];
  };
#endif
  constexpr int chains = 12;
  V acc[chains];
  for (int c = 0; c < chains; ++c) acc[c] = set(seed + c);
  const V a = set(0.999999f), b = set(1e-7f);
  for (std::int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int c = 0; c < chains; ++c) acc[c] = fma(acc[c], a, b);
  float s = 0;
  for (int c = 0; c < chains; ++c) s += sum(acc[c]);
  volatile float sink = s;  // keep the chains
  (void)sink;
  return 2.0 * lanes * chains * static_cast<double>(iters);
}

// GFLOP/s of `threads` threads running the chains at once, best of 5 runs of ~0.1 s.
inline double fma_peak_gflops(int threads) {
  const std::int64_t iters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    double flops = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += fma_chains(iters, 1.0f + omp_get_thread_num());
#else
    (void)threads;
    flops = fma_chains(iters, 1.0f);
#endif
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

// fma_peak_gflops(threads) for 1 or 2 threads, measured once and then kept: the benchmarks
// divide by it (of_peak counters).
inline double peak(int threads) {
  static double cache[3] = {};
  if (cache[threads] == 0) cache[threads] = fma_peak_gflops(threads);
  return cache[threads];
}

// Measures both peaks before any benchmark runs and writes them, with the vectors used, into
// the run's context (the JSON's "context" and the console header).
inline void add_peak_context() {
  benchmark::AddCustomContext("fma_isa", peak_isa());
  for (int t : {1, 2}) benchmark::AddCustomContext("fma_peak_gflops_threads_" + std::to_string(t), std::to_string(peak(t)));
}

}  // namespace bench
