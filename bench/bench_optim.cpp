// Optimizer step() over the MNIST MLP's parameters (784-256-128-64-10 Linear weights and biases,
// 242,762 floats in 8 tensors), against the bound: one streaming pass over the same buffers with
// plain Eigen (read grad, read/write value), measured in the same run.
// items/s = parameters updated per second; bytes/s = the memory traffic of the update rule
// (every buffer read once, every written one written once).
// Argument: threads (Eigen's and OpenMP's), as in bench_mnist_epoch.
#include <benchmark/benchmark.h>

#include <heed/heed.hpp>
#include <memory>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using heed::Index;
using heed::Matrix;
constexpr Index kSizes[] = {784, 256, 128, 64, 10};

// The MLP's parameters with random values and gradients, owned here (no model needed).
struct MlpParams {
  std::vector<Matrix<float>> value, grad;
  MlpParams() {
    for (int l = 0; l < 4; ++l) {
      value.push_back(Matrix<float>::Random(kSizes[l + 1], kSizes[l]));  // weight (out, in)
      grad.push_back(Matrix<float>::Random(kSizes[l + 1], kSizes[l]) * 1e-2f);
      value.push_back(Matrix<float>::Random(1, kSizes[l + 1]));  // bias (1, out)
      grad.push_back(Matrix<float>::Random(1, kSizes[l + 1]) * 1e-2f);
    }
  }
  std::vector<heed::Parameter<float>> parameters() {
    std::vector<heed::Parameter<float>> ps;
    for (std::size_t i = 0; i < value.size(); ++i)
      ps.push_back({std::to_string(i / 2) + (i % 2 ? ".bias" : ".weight"), &value[i], &grad[i]});
    return ps;
  }
  Index count() const {
    Index n = 0;
    for (const auto& v : value) n += v.size();
    return n;
  }
};

void set_threads(benchmark::State& st) {
  const int n = static_cast<int>(st.range(0));
  Eigen::setNbThreads(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

// `buffers`: tensors touched per parameter (value + grad + optimizer state); `written`: those
// written. Traffic = (buffers + written) * 4 bytes per parameter.
void counters(benchmark::State& st, Index n, int buffers, int written) {
  st.SetItemsProcessed(st.iterations() * n);
  st.SetBytesProcessed(st.iterations() * n * (buffers + written) * static_cast<Index>(sizeof(float)));
}

template <class Make>
void run(benchmark::State& st, Make make, int buffers, int written) {
  set_threads(st);
  MlpParams p;
  auto opt = make(p.parameters());
  opt->step();  // first step (buffers initialised), not timed
  for (auto _ : st) {
    opt->step();
    benchmark::DoNotOptimize(p.value[0].data());
    benchmark::ClobberMemory();
  }
  counters(st, p.count(), buffers, written);
}

void BM_SGDMomentum(benchmark::State& st) {
  run(st, [](auto ps) {
    return std::make_unique<heed::SGD<float>>(ps, heed::SGDOptions<float>{.lr = 0.01f, .momentum = 0.9f});
  }, 3, 2);  // p, g, b; writes p, b
}

void BM_Adam(benchmark::State& st) {
  run(st, [](auto ps) {
    return std::make_unique<heed::Adam<float>>(ps, heed::AdamOptions<float>{.lr = 1e-3f});
  }, 4, 3);  // p, g, m, v; writes p, m, v
}

void BM_AdamW(benchmark::State& st) {
  run(st, [](auto ps) {
    return std::make_unique<heed::AdamW<float>>(ps, heed::AdamWOptions<float>{.lr = 1e-3f, .weight_decay = 1e-2f});
  }, 4, 3);
}

void BM_RMSprop(benchmark::State& st) {
  run(st, [](auto ps) {
    return std::make_unique<heed::RMSprop<float>>(ps, heed::RMSpropOptions<float>{.lr = 1e-2f});
  }, 3, 2);  // p, g, v; writes p, v
}

// The bound: plain SGD (p -= lr * g) on the same tensors, one fused Eigen pass each.
void BM_StreamBound(benchmark::State& st) {
  set_threads(st);
  MlpParams p;
  for (auto _ : st) {
    for (std::size_t i = 0; i < p.value.size(); ++i) p.value[i].array() -= 1e-3f * p.grad[i].array();
    benchmark::DoNotOptimize(p.value[0].data());
    benchmark::ClobberMemory();
  }
  counters(st, p.count(), 2, 1);
}

}  // namespace

BENCHMARK(BM_StreamBound)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_SGDMomentum)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Adam)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_AdamW)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_RMSprop)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_MAIN();
