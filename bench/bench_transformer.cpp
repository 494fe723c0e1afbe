// heed::TransformerEncoderLayer at a standard size: batch 8, d_model 512, 8 heads,
// dim_feedforward 2048, ReLU, post-norm (PyTorch's defaults), dropout 0, float, self-attention
// over T = 128 ... 1024 tokens (powers of 2). The input is (8*T, 512), batch-first.
//
//   layer/{fwd,fwdbwd}/T:n        TransformerEncoderLayer<float>(512, 8, {.dim_feedforward = 2048,
//                                 .dropout = 0}); forward, or forward + backward (all parameter
//                                 gradients and the input gradient). The attention takes the
//                                 fused kernel (the layer asks for no weights, as PyTorch's).
//   layer_prenorm/{fwd,fwdbwd}/T:n  the same with norm_first = true.
//   gemm_bound/{fwd,fwdbwd}/T:n   the baseline: only the layer's matrix products, plain Eigen, on
//                                 buffers allocated once: the four projections (in_proj 3d x d,
//                                 out_proj d x d, linear1 ff x d, linear2 d x ff) on (8*T, .)
//                                 and, per (batch, head) slice, Q K^T and P V; backward adds
//                                 two products per forward product.
//
// Counters
//   FLOP/s        nominal: 2*N*(4 d^2 + 2 d ff) for the projections (N = 8*T tokens) plus
//                 4*B*H*T^2*(d/H) for attention, forward; 3x that forward + backward.
//   vs_gemm       this benchmark's time per call over the gemm_bound's at the same T and phase,
//                 both measured in this process (the bound is timed, median of 3 calls, right
//                 before the layer's loop): 1.0 would be the products alone.
//   peak_extra_MiB  as bench_attention: peak RSS growth around one call on a freshly constructed
//                 layer (reset through /proc/self/clear_refs), with the inputs allocated.
//
//   decode_cached/T:n, decode_full/T:n   incremental decoding, see DecodeSetup below:
//                 vs_cached = full recomputation's time per token over the KV-cached step's.
//
// Extra flags (before the benchmark library's own): --threads=N (default 1)
//   --max_len=N (default 512)  --min_len=N (default 128)
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <heed/heed.hpp>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using heed::Index;
using heed::Matrix;
constexpr Index kB = 8, kD = 512, kH = 8, kHd = kD / kH, kFF = 2048;

// ---- memory measurement (as bench_attention) ----------------------------------------------
long status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::strtol(line.c_str() + n + 1, nullptr, 10);
  return -1;
}

double peak_extra_mib(const std::function<void()>& f) {
  malloc_trim(0);
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  if (!clear) {
    f();
    return -1;
  }
  const long before = status_kib("VmRSS:");
  f();
  const long peak = status_kib("VmHWM:");
  return before < 0 || peak < 0 ? -1 : static_cast<double>(peak - before) / 1024.0;
}

// ---- settings -----------------------------------------------------------------------------
int g_threads = 1;
Index g_min_len = 128, g_max_len = 512;

void set_threads() {
  Eigen::setNbThreads(g_threads);
#ifdef _OPENMP
  omp_set_num_threads(g_threads);
#endif
}

double layer_flops(Index T, bool backward) {
  const double N = static_cast<double>(kB * T);
  const double proj = 2.0 * N * (4.0 * kD * kD + 2.0 * kD * kFF);
  const double att = 4.0 * kB * kH * static_cast<double>(T) * T * kHd;
  return (backward ? 3.0 : 1.0) * (proj + att);
}

// ---- the baseline: the layer's matrix products only ---------------------------------------
struct GemmBound {
  Index T;
  Matrix<float> x, w_in, w_out, w1, w2;          // x (N, d); weights as stored (out, in)
  Matrix<float> qkv, ctx, o, h1, h2;             // (N, 3d), (N, d), (N, d), (N, ff), (N, d)
  Matrix<float> q, k, v, s, pv, ds, dq, dk, dv;  // one slice: (T, hd), (T, T)
  Matrix<float> dx, dh1, dw_in, dw_out, dw1, dw2;

  explicit GemmBound(Index T_)
      : T(T_), x(Matrix<float>::Random(kB * T_, kD)), w_in(Matrix<float>::Random(3 * kD, kD)),
        w_out(Matrix<float>::Random(kD, kD)), w1(Matrix<float>::Random(kFF, kD)),
        w2(Matrix<float>::Random(kD, kFF)), qkv(kB * T_, 3 * kD), ctx(Matrix<float>::Random(kB * T_, kD)),
        o(kB * T_, kD), h1(kB * T_, kFF), h2(kB * T_, kD), q(Matrix<float>::Random(T_, kHd)),
        k(Matrix<float>::Random(T_, kHd)), v(Matrix<float>::Random(T_, kHd)), s(T_, T_),
        pv(T_, kHd), ds(T_, T_), dq(T_, kHd), dk(T_, kHd), dv(T_, kHd), dx(kB * T_, kD),
        dh1(kB * T_, kFF), dw_in(3 * kD, kD), dw_out(kD, kD), dw1(kFF, kD), dw2(kD, kFF) {}

  void run(bool backward) {
    qkv.noalias() = x * w_in.transpose();  // in_proj          (N, d)(d, 3d)
    for (Index sl = 0; sl < kB * kH; ++sl) {
      s.noalias() = q * k.transpose();     // (T, hd)(hd, T)
      pv.noalias() = s * v;                // (T, T)(T, hd)
      if (backward) {
        dv.noalias() = s.transpose() * pv;
        ds.noalias() = pv * v.transpose();
        dq.noalias() = ds * k;
        dk.noalias() = ds.transpose() * q;
      }
    }
    o.noalias() = ctx * w_out.transpose();  // out_proj        (N, d)(d, d)
    h1.noalias() = o * w1.transpose();      // linear1         (N, d)(d, ff)
    h2.noalias() = h1 * w2.transpose();     // linear2         (N, ff)(ff, d)
    if (backward) {
      dw2.noalias() = h2.transpose() * h1;  // linear2: dW, dX
      dh1.noalias() = h2 * w2;
      dw1.noalias() = dh1.transpose() * o;  // linear1
      dx.noalias() = dh1 * w1;
      dw_out.noalias() = dx.transpose() * ctx;  // out_proj
      o.noalias() = dx * w_out;
      dw_in.noalias() = qkv.transpose() * x;    // in_proj
      dx.noalias() = qkv * w_in;
    }
    benchmark::DoNotOptimize(h2.data());
    benchmark::DoNotOptimize(dx.data());
  }
};

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double bound_seconds(Index T, bool backward) {  // median of 3 calls after a warm-up
  GemmBound b(T);
  b.run(backward);
  std::vector<double> t;
  for (int i = 0; i < 3; ++i) t.push_back(seconds_of([&] { b.run(backward); }));
  std::sort(t.begin(), t.end());
  return t[1];
}

void run_bound(benchmark::State& st, Index T, bool backward) {
  set_threads();
  GemmBound b(T);
  b.run(backward);  // warm-up
  for (auto _ : st) b.run(backward);
  st.counters["FLOP/s"] = benchmark::Counter(layer_flops(T, backward), benchmark::Counter::kIsIterationInvariantRate);
}

// ---- heed::TransformerEncoderLayer --------------------------------------------------------
void run_layer(benchmark::State& st, Index T, bool backward, bool norm_first) {
  set_threads();
  const Matrix<float> x = Matrix<float>::Random(kB * T, kD), dy = Matrix<float>::Random(kB * T, kD);
  heed::Generator gen(0);
  heed::TransformerEncoderLayer<float> layer(
      kD, kH, {.dim_feedforward = kFF, .dropout = 0.0, .norm_first = norm_first}, gen);
  auto step = [&] {
    benchmark::DoNotOptimize(layer.forward(x, kB).data());
    if (backward) benchmark::DoNotOptimize(layer.backward(dy).data());
  };
  const double extra = peak_extra_mib(step);  // and the warm-up
  const double bound = bound_seconds(T, backward);
  double total = 0;
  for (auto _ : st) total += seconds_of(step);
  st.counters["FLOP/s"] = benchmark::Counter(layer_flops(T, backward), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["peak_extra_MiB"] = extra;
  st.counters["vs_gemm"] = total / static_cast<double>(st.iterations()) / bound;
}

// ---- incremental decoding: one token at position T, cached vs recomputed ----------------
// A 2-layer TransformerDecoder (d 256, 4 heads, ff 1024, eval), 8 rows (a beam of 8), memory
// of 64 positions. decode_cached: forward_step of one token over caches holding T - 1 tokens
// (truncated back after each call, so every call is at position T). decode_full: the same
// token by full recomputation, forward over the T-token prefix with tgt_is_causal; its
// counter vs_cached = its time over the cached step's, measured in this process right before.
constexpr Index kDecB = 8, kDecD = 256, kDecH = 4, kDecFF = 1024, kDecTm = 64;

struct DecodeSetup {
  heed::Generator gen{0};
  heed::TransformerDecoder<float> dec{kDecD, kDecH, 2, {.dim_feedforward = kDecFF, .dropout = 0.0},
                                      {.norm = heed::LayerNorm<float>(kDecD)}, gen};
  Matrix<float> mem = Matrix<float>::Random(kDecB * kDecTm, kDecD);
  Matrix<float> x = Matrix<float>::Random(kDecB, kDecD);
  heed::TransformerDecoderCache<float> cache;
  explicit DecodeSetup(Index T) {
    dec.eval();
    dec.start_cache(mem, kDecB, cache, nullptr, T);
    for (Index t = 0; t + 1 < T; ++t) dec.forward_step(x, cache);
  }
  void step() {
    benchmark::DoNotOptimize(dec.forward_step(x, cache).data());
    cache.truncate(cache.length() - 1);
  }
};

double cached_step_seconds(Index T) {  // median of 5 after a warm-up
  DecodeSetup d(T);
  d.step();
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) t.push_back(seconds_of([&] { d.step(); }));
  std::sort(t.begin(), t.end());
  return t[2];
}

void run_decode(benchmark::State& st, Index T, bool full) {
  set_threads();
  if (!full) {
    DecodeSetup d(T);
    d.step();
    for (auto _ : st) d.step();
    return;
  }
  DecodeSetup d(1);
  const Matrix<float> tgt = Matrix<float>::Random(kDecB * T, kDecD);
  auto once = [&] { benchmark::DoNotOptimize(d.dec.forward(tgt, d.mem, kDecB, {.tgt_is_causal = true}).data()); };
  once();
  const double cached = cached_step_seconds(T);
  double total = 0;
  for (auto _ : st) total += seconds_of(once);
  st.counters["vs_cached"] = total / static_cast<double>(st.iterations()) / cached;
}

void register_all() {
  for (Index T : {32, 64, 128, 256, 512})
    for (bool full : {false, true})
      benchmark::RegisterBenchmark(
          ((full ? "decode_full/T:" : "decode_cached/T:") + std::to_string(T)).c_str(),
          [=](benchmark::State& st) { run_decode(st, T, full); })
          ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
  for (Index T = g_min_len; T <= g_max_len; T *= 2)
    for (bool bwd : {false, true}) {
      const std::string suffix = std::string(bwd ? "/fwdbwd" : "/fwd") + "/T:" + std::to_string(T);
      auto tune = [](benchmark::internal::Benchmark* b) {
        b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
      };
      tune(benchmark::RegisterBenchmark(("gemm_bound" + suffix).c_str(),
                                        [=](benchmark::State& st) { run_bound(st, T, bwd); }));
      tune(benchmark::RegisterBenchmark(("layer" + suffix).c_str(),
                                        [=](benchmark::State& st) { run_layer(st, T, bwd, false); }));
      tune(benchmark::RegisterBenchmark(("layer_prenorm" + suffix).c_str(),
                                        [=](benchmark::State& st) { run_layer(st, T, bwd, true); }));
    }
}

void parse_own_flags(int& argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* key) -> const char* {
      const std::size_t n = std::strlen(key);
      return a.compare(0, n, key) == 0 ? argv[i] + n : nullptr;
    };
    if (const char* v = value("--threads=")) g_threads = std::atoi(v);
    else if (const char* v2 = value("--max_len=")) g_max_len = std::atol(v2);
    else if (const char* v3 = value("--min_len=")) g_min_len = std::atol(v3);
    else argv[out++] = argv[i];
  }
  argc = out;
}

}  // namespace

int main(int argc, char** argv) {
  parse_own_flags(argc, argv);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // as bench_attention: freed big blocks go back
  set_threads();
  benchmark::AddCustomContext("heed_threads", std::to_string(g_threads));
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
