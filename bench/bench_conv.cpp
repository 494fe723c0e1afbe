// Conv2d forward + backward at the shapes of PyTorch's MNIST example (batch 100: 1 -> 32 3x3
// on 28x28, then 32 -> 64 3x3 on 26x26), beside the same products as plain Eigen GEMMs (per
// sample, the shapes Conv2d multiplies, on ready-made column buffers): the ratio of the two
// FLOP/s counters is what im2col, col2im and the layer cost on top of the GEMMs.
// Counters: FLOP/s, 2 flops per multiply-add, 3 products (y, dW, dcols) per sample.
// Run with OMP_NUM_THREADS=1 for a one-core comparison.
#include <benchmark/benchmark.h>

#include <heed/heed.hpp>

namespace {

using heed::Index;
using heed::Matrix;

constexpr Index kB = 100;

double conv_flops(Index C, Index O, Index H) {
  const Index P = (H - 2) * (H - 2), K = C * 9;
  return 6.0 * kB * O * K * P;
}

// args: C, O, H (square input, 3x3 kernel, stride 1, no padding)
void BM_Conv2dForwardBackward(benchmark::State& st) {
  const Index C = st.range(0), O = st.range(1), H = st.range(2);
  heed::Generator g(0);
  heed::Conv2d<float> conv(C, O, 3, {.input = {H, H}}, g);
  conv.requires_input_grad(C > 1);  // the first layer never needs dx
  const Matrix<float> x = Matrix<float>::Random(kB, C * H * H);
  const Matrix<float> dy = Matrix<float>::Random(kB, conv.output_size());
  for (auto _ : st) {
    conv.forward(x);
    benchmark::DoNotOptimize(conv.backward(dy).data());
  }
  const double flops = C > 1 ? conv_flops(C, O, H) : conv_flops(C, O, H) * 2 / 3;
  st.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// The bound: per sample, Y = W cols, dW += dY cols^T, dcols = W^T dY with plain Eigen.
void BM_EigenGemmConvShapes(benchmark::State& st) {
  const Index C = st.range(0), O = st.range(1), H = st.range(2);
  const Index P = (H - 2) * (H - 2), K = C * 9;
  const Matrix<float> W = Matrix<float>::Random(O, K), cols = Matrix<float>::Random(K, P);
  const Matrix<float> dY = Matrix<float>::Random(O, P);
  Matrix<float> Y(O, P), dW = Matrix<float>::Zero(O, K), dcols(K, P);
  for (auto _ : st) {
    for (Index n = 0; n < kB; ++n) {
      Y.noalias() = W * cols;
      dW.noalias() += dY * cols.transpose();
      if (C > 1) dcols.noalias() = W.transpose() * dY;
    }
    benchmark::DoNotOptimize(Y.data());
    benchmark::DoNotOptimize(dW.data());
    benchmark::DoNotOptimize(dcols.data());
  }
  const double flops = C > 1 ? conv_flops(C, O, H) : conv_flops(C, O, H) * 2 / 3;
  st.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_Conv2dForwardBackward)->Args({1, 32, 28})->Args({32, 64, 26})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EigenGemmConvShapes)->Args({1, 32, 28})->Args({32, 64, 26})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
