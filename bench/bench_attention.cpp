// Attention at the shapes of a transformer layer: batch 8, 8 heads, head dim 64 (embed 512),
// float, sequence length T = 128 ... 4096 (powers of 2), self-attention (Tq = Tk = T).
//
//   attention/<score>/{fwd,fwdbwd}/T:n   heed::Attention<float, Score>, one head per slice:
//                                        B*H = 64 slices of (T, 64); score = dot, scaled,
//                                        additive (hidden 64), general (W 64x64).
//                                        attention/scaled is the plain scaled dot-product path.
//   attention/fused/{fwd,fwdbwd}/T:n     heed::FusedAttention, same slices: the tiled kernel.
//   mha/{plain,fused}/{fwd,fwdbwd}/T:n   heed::MultiheadAttention(512, 8), x (8*T, 512) as query,
//                                        key and value; plain = need_weights (the weights are
//                                        formed and returned), fused = need_weights false.
//   gemm_bound/{fwd,fwdbwd}/T:n          the bound: only the matrix products of the plain path
//                                        (2 per slice forward, 6 forward+backward) with plain
//                                        Eigen, one (T, T) scratch reused for every slice.
//   fused_single_head_16k/fwdbwd         FusedAttention, one head, Tq = Tk = 16384, d = 64,
//                                        forward + backward, one iteration.
//
// Counters
//   FLOP/s        nominal attention flops: 4*B*H*T*T*d forward (QK^T and PV), 2x that more for
//                 backward (12*B*H*T*T*d forward+backward), whatever the path really does (the
//                 fused backward recomputes QK^T; the additive score's work is tanh, not
//                 products). mha adds its four E x E projections: 8*B*T*E^2 forward, 2x that
//                 more for backward. Read FLOP/s against gemm_bound at the same T.
//   peak_extra_MiB  measured, not estimated: one forward (+ backward) on a freshly constructed
//                 module, before the timing loop, with the inputs already allocated. The kernel's
//                 peak RSS is reset (`echo 5 > /proc/self/clear_refs`), VmRSS read, the call
//                 made, VmHWM read: peak_extra = VmHWM - VmRSS_before. It includes the module's
//                 copies of its inputs and its outputs and gradients, so O(B*T*E) is the floor.
//                 malloc_trim(0) runs first and mmap is used for every block >= 128 KiB
//                 (mallopt), so freed memory is returned and reused memory is counted.
//   weights_MiB   the size of the (B*H*T, T) float weight matrix the plain path keeps.
//   scores/s      score entries (B*H*T*T) per second, for comparing the four scores.
//
// Plain paths whose weight matrices would take more than the memory budget (half of
// MemAvailable at start, or HEED_BENCH_MEM_MIB) are skipped with a message. The additive score
// walks every (query, key) pair through a tanh of width 64, single-threaded: it stops at T = 1024
// (HEED_BENCH_ADDITIVE_MAX_T). T >= 2048 runs one iteration per repetition.
//
// Extra flags (before the benchmark library's own):  --threads=N (default 2, Eigen and OpenMP)
//   --max_len=N (longest T, default 4096)  --min_len=N (default 128)  --skip_16k
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdio>
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
constexpr Index kB = 8, kH = 8, kD = 64, kE = kH * kD;

// ---- memory measurement -------------------------------------------------------------------
long status_kib(const char* key) {  // a "Key:   123 kB" line of /proc/self/status
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::strtol(line.c_str() + n + 1, nullptr, 10);
  return -1;
}

long meminfo_kib(const char* key) {
  std::ifstream f("/proc/meminfo");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::strtol(line.c_str() + n + 1, nullptr, 10);
  return -1;
}

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// Peak RSS growth in MiB while f() runs (-1 when /proc does not allow the measurement).
double peak_extra_mib(const std::function<void()>& f) {
  malloc_trim(0);
  if (!reset_peak_rss()) {
    f();
    return -1;
  }
  const long before = status_kib("VmRSS:");
  f();
  const long peak = status_kib("VmHWM:");
  return before < 0 || peak < 0 ? -1 : static_cast<double>(peak - before) / 1024.0;
}

// ---- settings -----------------------------------------------------------------------------
int g_threads = 2;
Index g_min_len = 128, g_max_len = 4096;
bool g_skip_16k = false;
double g_budget_mib = 0;
Index g_additive_max = 1024;

void set_threads() {
  Eigen::setNbThreads(g_threads);
#ifdef _OPENMP
  omp_set_num_threads(g_threads);
#endif
}

double mib(double floats) { return floats * sizeof(float) / (1024.0 * 1024.0); }

bool over_budget(benchmark::State& st, double need_mib) {
  if (need_mib <= g_budget_mib) return false;
  const std::string msg = "skipped: the plain path needs " + std::to_string(static_cast<long>(need_mib)) +
                          " MiB for its weights, budget " + std::to_string(static_cast<long>(g_budget_mib)) +
                          " MiB (HEED_BENCH_MEM_MIB)";
  st.SkipWithError(msg.c_str());
  for (auto _ : st) {
  }
  return true;
}

double attention_flops(Index T, bool backward) {
  return (backward ? 12.0 : 4.0) * kB * kH * static_cast<double>(T) * T * kD;
}
double projection_flops(Index T, bool backward) {
  return (backward ? 24.0 : 8.0) * kB * static_cast<double>(T) * kE * kE;
}

void flop_counters(benchmark::State& st, double flops, Index T) {
  st.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["scores/s"] =
      benchmark::Counter(static_cast<double>(kB * kH) * T * T, benchmark::Counter::kIsIterationInvariantRate);
}

struct Inputs {  // B*H slices of (T, d): queries, keys, values, and an upstream gradient
  Matrix<float> q, k, v, dout;
  explicit Inputs(Index rows, Index cols)
      : q(Matrix<float>::Random(rows, cols)), k(Matrix<float>::Random(rows, cols)),
        v(Matrix<float>::Random(rows, cols)), dout(Matrix<float>::Random(rows, cols)) {}
};

// ---- heed::Attention<float, Score> and FusedAttention --------------------------------------
template <class Make>
void run_attention(benchmark::State& st, Index T, bool backward, bool plain, Make make) {
  set_threads();
  const double weights = mib(static_cast<double>(kB * kH * T) * T);
  if (plain && over_budget(st, weights + mib(static_cast<double>(T) * T))) return;
  const Inputs in(kB * kH * T, kD);
  auto step = [&](auto& att) {
    const auto& out = att.forward(in.q, in.k, in.v, kB * kH);
    benchmark::DoNotOptimize(out.data());
    if (backward) benchmark::DoNotOptimize(att.backward(in.dout).dquery.data());
  };
  auto att = make();
  // the measured call on the fresh module is also the warm-up: buffers allocated, pages touched
  const double extra = peak_extra_mib([&] { step(att); });
  for (auto _ : st) step(att);
  flop_counters(st, attention_flops(T, backward), T);
  st.counters["peak_extra_MiB"] = extra;
  if (plain) st.counters["weights_MiB"] = weights;
}

// ---- heed::MultiheadAttention -------------------------------------------------------------
void run_mha(benchmark::State& st, Index T, bool backward, bool plain) {
  set_threads();
  const double weights = mib(static_cast<double>(kB * kH * T) * T);
  // plain: per-head weights (B*H*T, T), head-averaged (B*T, T), one (T, T) backward scratch
  if (plain && over_budget(st, weights + mib(static_cast<double>(kB * T + T) * T))) return;
  const Matrix<float> x = Matrix<float>::Random(kB * T, kE), dy = Matrix<float>::Random(kB * T, kE);
  auto make = [] {
    heed::Generator gen(0);
    return heed::MultiheadAttention<float>(kE, kH, {}, gen);
  };
  auto step = [&](heed::MultiheadAttention<float>& m) {
    auto r = m.forward(x, x, x, kB, {.need_weights = plain});
    benchmark::DoNotOptimize(r.output.data());
    if (backward) benchmark::DoNotOptimize(m.backward(dy).dquery.data());
  };
  auto m = make();
  const double extra = peak_extra_mib([&] { step(m); });  // and the warm-up
  if (m.used_fused() == plain) {
    st.SkipWithError("MultiheadAttention did not take the expected path");
    for (auto _ : st) {
    }
    return;
  }
  for (auto _ : st) step(m);
  st.counters["FLOP/s"] = benchmark::Counter(attention_flops(T, backward) + projection_flops(T, backward),
                                             benchmark::Counter::kIsIterationInvariantRate);
  st.counters["peak_extra_MiB"] = extra;
  if (plain) st.counters["weights_MiB"] = weights;
}

// ---- the bound: the plain path's matrix products only -------------------------------------
void run_gemm_bound(benchmark::State& st, Index T, bool backward) {
  set_threads();
  const Inputs in(T, kD);  // one slice's operands, reused for all B*H slices
  Matrix<float> S(T, T), dS(T, T), O(T, kD), dQ(T, kD), dK(T, kD), dV(T, kD);
  S.setRandom();
  dS.setRandom();
  for (auto _ : st) {
    for (Index s = 0; s < kB * kH; ++s) {
      S.noalias() = in.q * in.k.transpose();  // (T, d)(d, T)
      O.noalias() = S * in.v;                 // (T, T)(T, d)
      if (backward) {
        dV.noalias() = S.transpose() * in.dout;  // (T, T)(T, d)
        dS.noalias() = in.dout * in.v.transpose();  // (T, d)(d, T)
        dQ.noalias() = dS * in.k;               // (T, T)(T, d)
        dK.noalias() = dS.transpose() * in.q;   // (T, T)(T, d)
      }
    }
    benchmark::DoNotOptimize(O.data());
    benchmark::DoNotOptimize(dK.data());
  }
  flop_counters(st, attention_flops(T, backward), T);
}

// ---- single head, 16k ---------------------------------------------------------------------
void run_fused_16k(benchmark::State& st) {
  set_threads();
  constexpr Index T = 16384;
  const Inputs in(T, kD);
  double extra = 0;
  for (auto _ : st) {  // one iteration: a fresh module, so its buffers count as extra memory
    heed::FusedAttention<float> att;
    extra = peak_extra_mib([&] {
      benchmark::DoNotOptimize(att.forward(in.q, in.k, in.v, 1).data());
      benchmark::DoNotOptimize(att.backward(in.dout).dquery.data());
    });
  }
  st.counters["FLOP/s"] = benchmark::Counter(12.0 * T * T * kD, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["peak_extra_MiB"] = extra;
  st.counters["plain_weights_MiB"] = mib(static_cast<double>(T) * T);  // what the plain path would keep
  st.counters["within_64MiB"] = extra >= 0 && extra < 64 ? 1 : 0;
}

// ---- registration -------------------------------------------------------------------------
template <template <typename> class Score, class MakeScore>
void register_score(const char* name, MakeScore make_score, Index max_len) {
  for (Index T = g_min_len; T <= std::min(g_max_len, max_len); T *= 2)
    for (bool bwd : {false, true}) {
      const std::string n = std::string("attention/") + name + (bwd ? "/fwdbwd" : "/fwd") + "/T:" + std::to_string(T);
      auto* b = benchmark::RegisterBenchmark(n.c_str(), [=](benchmark::State& st) {
        run_attention(st, T, bwd, true, [&] { return heed::Attention<float, Score>(make_score()); });
      });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      if (T >= 2048) b->Iterations(1);
    }
}

void register_all() {
  for (Index T = g_min_len; T <= g_max_len; T *= 2) {
    for (bool bwd : {false, true}) {
      const std::string suffix = std::string(bwd ? "/fwdbwd" : "/fwd") + "/T:" + std::to_string(T);
      auto tune = [T](benchmark::internal::Benchmark* b) {
        b->Unit(benchmark::kMillisecond)->UseRealTime();
        if (T >= 2048) b->Iterations(1);
      };
      tune(benchmark::RegisterBenchmark(("gemm_bound" + suffix).c_str(),
                                        [=](benchmark::State& st) { run_gemm_bound(st, T, bwd); }));
      tune(benchmark::RegisterBenchmark(("attention/fused" + suffix).c_str(), [=](benchmark::State& st) {
        run_attention(st, T, bwd, false, [] { return heed::FusedAttention<float>(); });
      }));
      tune(benchmark::RegisterBenchmark(("mha/plain" + suffix).c_str(),
                                        [=](benchmark::State& st) { run_mha(st, T, bwd, true); }));
      tune(benchmark::RegisterBenchmark(("mha/fused" + suffix).c_str(),
                                        [=](benchmark::State& st) { run_mha(st, T, bwd, false); }));
    }
  }
  register_score<heed::ScaledDotProductScore>("scaled", [] { return heed::ScaledDotProductScore<float>(); }, g_max_len);
  register_score<heed::DotProductScore>("dot", [] { return heed::DotProductScore<float>(); }, g_max_len);
  register_score<heed::GeneralScore>("general", [] {
    heed::Generator gen(0);
    return heed::GeneralScore<float>(kD, kD, gen);
  }, g_max_len);
  register_score<heed::AdditiveScore>("additive", [] {
    heed::Generator gen(0);
    return heed::AdditiveScore<float>(kD, kD, kD, gen);
  }, g_additive_max);
  if (!g_skip_16k)
    benchmark::RegisterBenchmark("fused_single_head_16k/fwdbwd", run_fused_16k)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
}

// Removes heed's own flags from argv, leaving the benchmark library's.
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
    else if (a == "--skip_16k") g_skip_16k = true;
    else argv[out++] = argv[i];
  }
  argc = out;
}

}  // namespace

int main(int argc, char** argv) {
  parse_own_flags(argc, argv);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // fixed threshold: big blocks always go back on free
  const char* budget = std::getenv("HEED_BENCH_MEM_MIB");
  g_budget_mib = budget ? std::atof(budget) : meminfo_kib("MemAvailable:") / 1024.0 / 2;
  if (const char* a = std::getenv("HEED_BENCH_ADDITIVE_MAX_T")) g_additive_max = std::atol(a);
  set_threads();
  {  // start the thread pool once, so its stacks are not charged to the first benchmark
    Matrix<float> a = Matrix<float>::Random(256, 256), c(256, 256);
    c.noalias() = a * a;
    benchmark::DoNotOptimize(c.data());
  }
  benchmark::AddCustomContext("heed_threads", std::to_string(g_threads));
  benchmark::AddCustomContext("heed_mem_budget_MiB", std::to_string(static_cast<long>(g_budget_mib)));
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
