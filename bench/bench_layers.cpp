// Linear, activations and softmax cross-entropy at the MNIST MLP's shapes, and a plain Eigen
// GEMM at the same shapes as the machine's bound. Counters: FLOP/s (2 flops per multiply-add).
#include <benchmark/benchmark.h>

#include <heed/heed.hpp>

namespace {

using heed::Index;
using heed::Matrix;

template <typename T>
Matrix<T> random(Index r, Index c) {
  return Matrix<T>::Random(r, c);
}

// forward only: y = x W^T + b, (B, in) -> (B, out)
void BM_LinearForward(benchmark::State& st) {
  const Index B = st.range(0), in = st.range(1), out = st.range(2);
  heed::Linear<float> lin(in, out);
  const Matrix<float> x = random<float>(B, in);
  for (auto _ : st) benchmark::DoNotOptimize(lin.forward(x).data());
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * B * in * out, benchmark::Counter::kIsIterationInvariantRate);
}

// forward + backward (dW, db, dx): three products of the same size.
void BM_LinearForwardBackward(benchmark::State& st) {
  const Index B = st.range(0), in = st.range(1), out = st.range(2);
  heed::Linear<float> lin(in, out);
  const Matrix<float> x = random<float>(B, in), dy = random<float>(B, out);
  for (auto _ : st) {
    lin.forward(x);
    benchmark::DoNotOptimize(lin.backward(dy).data());
  }
  st.counters["FLOP/s"] = benchmark::Counter(6.0 * B * in * out, benchmark::Counter::kIsIterationInvariantRate);
}

// The bound: the same three products with plain Eigen, no layer around them.
void BM_EigenGemmLinearShapes(benchmark::State& st) {
  const Index B = st.range(0), in = st.range(1), out = st.range(2);
  const Matrix<float> x = random<float>(B, in), W = random<float>(out, in), dy = random<float>(B, out);
  Matrix<float> y(B, out), dW(out, in), dx(B, in);
  for (auto _ : st) {
    y.noalias() = x * W.transpose();
    dW.noalias() = dy.transpose() * x;
    dx.noalias() = dy * W;
    benchmark::DoNotOptimize(dx.data());
  }
  st.counters["FLOP/s"] = benchmark::Counter(6.0 * B * in * out, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_EigenGemmSquare(benchmark::State& st) {
  const Index n = st.range(0);
  const Matrix<float> a = random<float>(n, n), b = random<float>(n, n);
  Matrix<float> c(n, n);
  for (auto _ : st) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Act>
void BM_Activation(benchmark::State& st) {
  Act act;
  const Matrix<float> x = random<float>(100, 256), dy = random<float>(100, 256);
  for (auto _ : st) {
    act.forward(x);
    benchmark::DoNotOptimize(act.backward(dy).data());
  }
  st.SetItemsProcessed(st.iterations() * x.size());
}

void BM_CrossEntropy(benchmark::State& st) {
  heed::CrossEntropyLoss<float> ce;
  const Matrix<float> z = random<float>(100, 10);
  heed::Labels y(100);
  for (int i = 0; i < 100; ++i) y(i) = i % 10;
  for (auto _ : st) benchmark::DoNotOptimize(ce.forward(z, y));
  st.SetItemsProcessed(st.iterations() * 100);
}

void mlp_shapes(benchmark::internal::Benchmark* b) {
  b->Args({100, 784, 256})->Args({100, 256, 128})->Args({100, 128, 64})->Args({100, 64, 10})
      ->Args({1024, 1024, 1024});
}

}  // namespace

BENCHMARK(BM_LinearForward)->Apply(mlp_shapes);
BENCHMARK(BM_LinearForwardBackward)->Apply(mlp_shapes);
BENCHMARK(BM_EigenGemmLinearShapes)->Apply(mlp_shapes);
BENCHMARK(BM_EigenGemmSquare)->Arg(1024)->Arg(2048);
BENCHMARK(BM_Activation<heed::ReLU<float>>);
BENCHMARK(BM_Activation<heed::GELU<float>>);
BENCHMARK(BM_Activation<heed::Sigmoid<float>>);
BENCHMARK(BM_Activation<heed::Tanh<float>>);
BENCHMARK(BM_Activation<heed::Softmax<float>>);
BENCHMARK(BM_CrossEntropy);
BENCHMARK_MAIN();
