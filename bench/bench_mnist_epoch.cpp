// One MNIST training epoch of the article's MLP (784-256-128-64-10, ReLU, cross-entropy, Adam,
// batch 100) on synthetic data of the real size (60,000 x 784 bytes), against its bounds,
// measured in the same run:
//   epoch/threads:T/shards:S   the training loop: S = 1 the plain step (Eigen threads each
//                              product), S > 1 heed::DataParallel with S shards per batch
//   gemm_bound/<backend>/threads:T   the same epoch's matrix products alone (~63 GFLOP) through
//                              heed's gemm with that backend, the batch split over the T threads
//                              as DataParallel splits it (each thread's products serial)
// Every row carries FLOP/s and of_peak, its fraction of the FMA peak (bench/peak.hpp) measured
// in this process at the same thread count. Read epoch / best gemm_bound as the overhead of
// everything that is not a product.
#include <benchmark/benchmark.h>

#include <heed/heed.hpp>

#include "peak.hpp"

namespace {

using heed::Index;
using heed::Matrix;
constexpr Index kN = 60000, kB = 100;
constexpr Index kSizes[] = {784, 256, 128, 64, 10};

struct Synthetic {
  heed::ByteMatrix images;
  heed::Labels labels;
  Synthetic() : images(kN, 784), labels(kN) {
    heed::Generator g(1);
    for (Index i = 0; i < images.size(); ++i) images.data()[i] = static_cast<std::uint8_t>(g.below(256));
    for (Index i = 0; i < kN; ++i) labels(i) = static_cast<int>(g.below(10));
  }
};
const Synthetic& data() {
  static const Synthetic d;
  return d;
}

// Matrix-product flops of one epoch: forward x W^T, backward dW and dx (no dx for layer 1).
double epoch_flops() {
  double f = 0;
  for (int l = 0; l < 4; ++l) f += 2.0 * kB * kSizes[l] * kSizes[l + 1] * (l == 0 ? 2 : 3);
  return f * (kN / kB);
}

void counters(benchmark::State& st, int threads) {
  st.counters["FLOP/s"] = benchmark::Counter(epoch_flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["of_peak"] =
      benchmark::Counter(epoch_flops() / 1e9 / bench::peak(threads), benchmark::Counter::kIsIterationInvariantRate);
}

heed::Sequential<float> mlp() {
  heed::Generator gen(0);
  heed::Sequential<float> model;
  for (int l = 0; l < 4; ++l) {
    model.emplace<heed::Linear<float>>(kSizes[l], kSizes[l + 1], true, gen);
    if (l < 3) model.emplace<heed::ReLU<float>>();
  }
  model.requires_input_grad(false);
  return model;
}

void BM_Epoch(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0)), shards = static_cast<int>(st.range(1));
  heed::set_gemm_backend(heed::detail::default_gemm());
  Eigen::setNbThreads(threads);
  heed::Sequential<float> model = mlp();
  heed::DataParallel<heed::Sequential<float>> parallel(model, mlp, {.shards = shards});
  heed::CrossEntropyLoss<float> criterion;
  heed::Adam<float> opt(model.parameters(), {.lr = 1e-3f});
  heed::DataLoader<float> loader(data().images, data().labels,
                                 {.batch_size = kB, .shuffle = true, .seed = 0, .mean = 0.5f, .std = 0.5f});
  Matrix<float> x;
  heed::Labels y;
  for (auto _ : st) {
    loader.start_epoch();
    while (loader.next(x, y)) {
      opt.zero_grad();
      parallel.step(x, y, criterion);
      opt.step();
    }
  }
  counters(st, threads);
  st.SetLabel(heed::gemm_name(heed::gemm_backend()));
}

// The bound: only the epoch's 600 x 11 matrix products, each thread its share of the batch.
void BM_GemmBound(benchmark::State& st, heed::Gemm backend) {
  const int threads = static_cast<int>(st.range(0));
  heed::set_gemm_backend(backend);
  Eigen::setNbThreads(threads);
  using heed::detail::Op;
  struct Work {
    std::vector<Matrix<float>> W, dW, act, grad;
  };
  std::vector<Work> work(threads);
  for (int t = 0; t < threads; ++t) {
    const Index rows = (t + 1) * kB / threads - t * kB / threads;
    for (int l = 0; l < 4; ++l) {
      work[t].W.push_back(Matrix<float>::Random(kSizes[l + 1], kSizes[l]));
      work[t].dW.push_back(Matrix<float>::Zero(kSizes[l + 1], kSizes[l]));
    }
    for (int l = 0; l <= 4; ++l) {
      work[t].act.push_back(Matrix<float>::Random(rows, kSizes[l]));
      work[t].grad.push_back(Matrix<float>::Random(rows, kSizes[l]));
    }
  }
  auto step = [](Work& w) {
    for (int l = 0; l < 4; ++l) heed::detail::gemm<float>(w.act[l + 1], w.act[l], Op::N, w.W[l], Op::T);
    for (int l = 3; l >= 0; --l) {
      heed::detail::gemm<float>(w.dW[l], w.grad[l + 1], Op::T, w.act[l], Op::N, 1.f);
      if (l > 0) heed::detail::gemm<float>(w.grad[l], w.grad[l + 1], Op::N, w.W[l], Op::N);
    }
  };
  for (auto _ : st) {
    for (Index s = 0; s < kN / kB; ++s) {
      if (threads == 1) {
        step(work[0]);
      } else {
#pragma omp parallel for num_threads(threads)
        for (int t = 0; t < threads; ++t) step(work[t]);
      }
    }
    benchmark::DoNotOptimize(work[0].dW[0].data());
  }
  counters(st, threads);
}

}  // namespace

int main(int argc, char** argv) {
  for (int t : {1, 2}) {
    benchmark::RegisterBenchmark("gemm_bound/eigen", BM_GemmBound, heed::Gemm::Eigen)
        ->Arg(t)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();
    if (heed::blas_available())
      benchmark::RegisterBenchmark("gemm_bound/blas", BM_GemmBound, heed::Gemm::Blas)
          ->Arg(t)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  for (int t : {1, 2})
    for (int s : {1, 2, 4})
      benchmark::RegisterBenchmark("epoch", BM_Epoch)->Args({t, s})->ArgNames({"threads", "shards"})
          ->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  bench::add_peak_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
