// One MNIST training epoch of the article's MLP (784-256-128-64-10, ReLU, cross-entropy, Adam,
// batch 100) on synthetic data of the real size (60,000 x 784 bytes), against the bound: the
// same epoch's matrix products alone (~63 GFLOP) with plain Eigen, measured in the same run.
// Read "Epoch" / "GemmBound" as the fraction of the machine's limit heed reaches.
#include <benchmark/benchmark.h>

#include <heed/heed.hpp>

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

void set_threads(benchmark::State& st) { Eigen::setNbThreads(static_cast<int>(st.range(0))); }

void BM_MnistEpoch(benchmark::State& st) {
  set_threads(st);
  heed::Generator gen(0);
  heed::Sequential<float> model;
  for (int l = 0; l < 4; ++l) {
    model.emplace<heed::Linear<float>>(kSizes[l], kSizes[l + 1], true, gen);
    if (l < 3) model.emplace<heed::ReLU<float>>();
  }
  model.requires_input_grad(false);
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
      criterion.forward(model.forward(x), y);
      model.backward(criterion.backward());
      opt.step();
    }
  }
  st.counters["FLOP/s"] = benchmark::Counter(epoch_flops(), benchmark::Counter::kIsIterationInvariantRate);
}

// The bound: only the epoch's 600 x 11 matrix products, with plain Eigen.
void BM_GemmBound(benchmark::State& st) {
  set_threads(st);
  std::vector<Matrix<float>> W, dW, act, grad;
  for (int l = 0; l < 4; ++l) {
    W.push_back(Matrix<float>::Random(kSizes[l + 1], kSizes[l]));
    dW.push_back(Matrix<float>::Zero(kSizes[l + 1], kSizes[l]));
  }
  for (int l = 0; l <= 4; ++l) {
    act.push_back(Matrix<float>::Random(kB, kSizes[l]));
    grad.push_back(Matrix<float>::Random(kB, kSizes[l]));
  }
  for (auto _ : st) {
    for (Index s = 0; s < kN / kB; ++s) {
      for (int l = 0; l < 4; ++l) act[l + 1].noalias() = act[l] * W[l].transpose();
      for (int l = 3; l >= 0; --l) {
        dW[l].noalias() += grad[l + 1].transpose() * act[l];
        if (l > 0) grad[l].noalias() = grad[l + 1] * W[l];
      }
    }
    benchmark::DoNotOptimize(dW[0].data());
  }
  st.counters["FLOP/s"] = benchmark::Counter(epoch_flops(), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_GemmBound)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MnistEpoch)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
