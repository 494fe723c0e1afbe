#include <doctest/doctest.h>

#include <cmath>
#include <heed/activations.hpp>
#include <heed/layers.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"

using heed::Matrix;
using heed::testing::check_module;
using heed_test::randn;

TEST_CASE("Linear: gradient check of input, weight and bias") {
  heed::Generator gen(1);
  heed::Linear<double> lin(5, 3, true, gen);
  const auto r = check_module(lin, randn(4, 5, 2));
  INFO(r.detail);
  CHECK(r.ok);
  CHECK(r.checked == 4 * 5 + 3 * 5 + 3);
}

TEST_CASE("Linear: without bias has only a weight") {
  heed::Linear<double> lin(4, 2, false);
  CHECK(lin.parameters().size() == 1);
  const auto r = check_module(lin, randn(3, 4, 5));
  CHECK(r.ok);
}

TEST_CASE("Linear: forward is x W^T + b") {
  heed::Linear<double> lin(2, 2);
  lin.weight() << 1, 2, 3, 4;
  lin.bias() << 10, 20;
  Matrix<double> x(1, 2);
  x << 1, 1;
  const auto& y = lin.forward(x);
  CHECK(y(0, 0) == 13);
  CHECK(y(0, 1) == 27);
}

TEST_CASE("Linear: PyTorch default init bounds and seeded reproducibility") {
  heed::Generator g1(42), g2(42);
  heed::Linear<float> a(784, 256, true, g1), b(784, 256, true, g2);
  CHECK(a.weight() == b.weight());
  CHECK(a.bias() == b.bias());
  const float bound = 1.0f / std::sqrt(784.0f);
  CHECK(a.weight().maxCoeff() <= bound);
  CHECK(a.weight().minCoeff() >= -bound);
  CHECK(a.weight().maxCoeff() > 0.95f * bound);  // actually spread over the whole range
  CHECK(std::abs(a.weight().mean()) < 0.01f * bound);
  // U(-c, c) has variance c^2 / 3
  const float var = (a.weight().array() - a.weight().mean()).square().mean();
  CHECK(var == doctest::Approx(bound * bound / 3).epsilon(0.02));
  CHECK(a.bias().cols() == 256);
}

TEST_CASE("Linear: gradients accumulate until zero_grad") {
  heed::Linear<double> lin(3, 2);
  const Matrix<double> x = randn(4, 3, 1), dy = randn(4, 2, 2);
  lin.forward(x);
  lin.backward(dy);
  const Matrix<double> once = *lin.parameters()[0].grad;
  lin.forward(x);
  lin.backward(dy);
  CHECK((*lin.parameters()[0].grad).isApprox(2 * once));
  lin.zero_grad();
  CHECK((*lin.parameters()[0].grad).isZero());
}

TEST_CASE("Linear: shape errors name the module and both shapes") {
  heed::Linear<float> lin(784, 10);
  CHECK_THROWS_WITH_AS(lin.forward(Matrix<float>::Zero(100, 783)),
                       "Linear: input expected (*, 784), got (100, 783)", heed::ShapeError);
  lin.forward(Matrix<float>::Zero(100, 784));
  CHECK_THROWS_WITH_AS(lin.backward(Matrix<float>::Zero(99, 10)),
                       "Linear: gradient expected (100, 10), got (99, 10)", heed::ShapeError);
  CHECK_THROWS_AS(heed::Linear<float>(0, 3), heed::ValueError);
}

TEST_CASE("Linear: requires_input_grad(false) skips dx but still fills dW") {
  heed::Linear<double> lin(3, 2);
  lin.requires_input_grad(false);
  lin.forward(randn(4, 3, 1));
  const auto& dx = lin.backward(randn(4, 2, 2));
  CHECK(dx.rows() == 0);
  CHECK(!lin.parameters()[0].grad->isZero());
}

TEST_CASE("Dense<ReLU>: gradient check, equals Linear then ReLU") {
  heed::Generator g(3);
  heed::Dense<double, heed::ReLU> d(6, 4, true, g);
  CHECK(d.name() == "Dense<ReLU>");
  const auto r = check_module(d, randn(5, 6, 4));
  INFO(r.detail);
  CHECK(r.ok);
  heed::Dense<double, heed::Tanh> t(3, 3);
  CHECK(check_module(t, randn(2, 3, 8)).ok);
  heed::Dense<double, heed::LeakyReLU> l(3, 3, true, heed::default_generator(), 0.2);
  CHECK(l.activation().negative_slope() == 0.2);
}

TEST_CASE("Dropout: gradient check with a fixed mask, and eval is identity") {
  heed::Dropout<double> drop(0.3, 99);
  auto state = drop.generator();
  const auto r = check_module(drop, randn(6, 5, 1), 7, {}, [&] { drop.generator() = state; });
  INFO(r.detail);
  CHECK(r.ok);
  // Inverted scaling: kept values are x / (1 - p), dropped ones 0.
  Matrix<double> x = Matrix<double>::Ones(200, 50);
  const auto& y = drop.forward(x);
  const double kept = (y.array() > 0).cast<double>().mean();
  CHECK(kept == doctest::Approx(0.7).epsilon(0.03));
  CHECK(y.maxCoeff() == doctest::Approx(1 / 0.7));
  drop.eval();
  CHECK(drop.forward(x) == x);
  CHECK_THROWS_AS(heed::Dropout<float>(1.0), heed::ValueError);
  CHECK_THROWS_AS(heed::Dropout<float>(-0.1), heed::ValueError);
}

TEST_CASE("LayerNorm: gradient check and normalised output") {
  heed::LayerNorm<double> ln(6);
  // Non-trivial affine parameters so their gradients matter.
  auto ps = ln.parameters();
  *ps[0].value = randn(1, 6, 10);
  *ps[1].value = randn(1, 6, 11);
  const auto r = check_module(ln, randn(4, 6, 12));
  INFO(r.detail);
  CHECK(r.ok);
  heed::LayerNorm<double> plain(5, 1e-5, false);
  const auto& y = plain.forward(randn(3, 5, 2) * 4.0);
  for (int i = 0; i < 3; ++i) {
    CHECK(std::abs(y.row(i).mean()) < 1e-12);
    CHECK(y.row(i).squaredNorm() / 5 == doctest::Approx(1.0).epsilon(1e-4));
  }
  CHECK_THROWS_AS(ln.forward(randn(2, 5, 1)), heed::ShapeError);
}

TEST_CASE_TEMPLATE("LayerNorm: a constant row gives exactly beta, even for huge constants", T, float,
                   double) {
  // mean(x) rounds for large constants (float, >= 1e4); normalised, that error became +-1, and
  // at 3e38 the sum or the square overflowed to NaN.
  const heed::Index F = 7;
  heed::LayerNorm<T> ln(F);
  auto ps = ln.parameters();
  *ps[0].value = randn(1, F, 30).cast<T>();
  *ps[1].value = randn(1, F, 31).cast<T>();
  const Matrix<T> beta = *ps[1].value;
  for (double c : {1.0, 1e4, 1e6, 1e20, 3e38, -3e38, 0.0, -1e4, 1.0 / 3}) {
    CAPTURE(c);
    const Matrix<T> x = Matrix<T>::Constant(3, F, static_cast<T>(c));
    const Matrix<T> y = ln.forward(x);
    CHECK(y.allFinite());
    for (heed::Index b = 0; b < 3; ++b) CHECK(y.row(b) == beta);
    const Matrix<T> dx = ln.backward(randn(3, F, 32).cast<T>());
    CHECK(dx.allFinite());
  }
  // Huge non-constant rows stay finite and match a reference computed in long double.
  Matrix<T> x(2, F);
  x << T(3e38), T(-3e38), T(1e38), T(0), T(-2e38), T(3e38), T(5),
      T(1e30), T(1.5e30), T(-1e30), T(2e30), T(0), T(1e29), T(-3e30);
  heed::LayerNorm<T> plain(F, 1e-5, false);
  const Matrix<T> y = plain.forward(x);
  REQUIRE(y.allFinite());
  for (heed::Index b = 0; b < 2; ++b) {
    long double mu = 0, var = 0;
    for (heed::Index f = 0; f < F; ++f) mu += static_cast<long double>(x(b, f));
    mu /= F;
    for (heed::Index f = 0; f < F; ++f) var += std::pow(static_cast<long double>(x(b, f)) - mu, 2);
    var /= F;
    for (heed::Index f = 0; f < F; ++f)
      CHECK(static_cast<double>(y(b, f)) ==
            doctest::Approx(static_cast<double>((x(b, f) - mu) / std::sqrt(var + 1e-5L))).epsilon(1e-5));
  }
  CHECK(plain.backward(Matrix<T>::Ones(2, F)).allFinite());
}

TEST_CASE("LayerNorm: gradient check at and near constant rows") {
  heed::LayerNorm<double> ln(5);
  auto ps = ln.parameters();
  *ps[0].value = randn(1, 5, 40);
  *ps[1].value = randn(1, 5, 41);
  Matrix<double> x(4, 5);
  x.row(0).setConstant(1.0);
  x.row(1).setConstant(-2.5);
  x.row(2) = Matrix<double>::Constant(1, 5, 7.0) + 1e-3 * randn(1, 5, 42);
  x.row(3) = randn(1, 5, 43);
  const auto r = check_module(ln, x);
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("Sequential: chains, names parameters like PyTorch, gradient check") {
  heed::Sequential<double> net;
  net.emplace<heed::Linear<double>>(4, 5);
  net.emplace<heed::Tanh<double>>();
  net.emplace<heed::LayerNorm<double>>(5);
  net.emplace<heed::Linear<double>>(5, 3);
  const auto ps = net.parameters();
  REQUIRE(ps.size() == 6);
  CHECK(ps[0].name == "0.weight");
  CHECK(ps[1].name == "0.bias");
  CHECK(ps[2].name == "2.weight");
  CHECK(ps[5].name == "3.bias");
  CHECK(net.num_parameters() == 4 * 5 + 5 + 10 + 5 * 3 + 3);
  const auto r = check_module(net, randn(3, 4, 6));
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("Sequential: train/eval reaches children; empty forward is an error") {
  heed::Sequential<float> net;
  auto& d = net.emplace<heed::Dropout<float>>(0.5);
  net.eval();
  CHECK(!d.training());
  net.train();
  CHECK(d.training());
  heed::Sequential<float> empty;
  CHECK_THROWS_AS(empty.forward(Matrix<float>::Zero(1, 1)), heed::ValueError);
  CHECK_THROWS_AS(net[3], heed::ValueError);
}

TEST_CASE("float modules compile and agree with double") {
  heed::Generator g1(5), g2(5);
  heed::Sequential<float> f;
  f.emplace<heed::Dense<float, heed::GELU>>(4, 6, true, g1);
  f.emplace<heed::LayerNorm<float>>(6);
  heed::Sequential<double> d;
  d.emplace<heed::Dense<double, heed::GELU>>(4, 6, true, g2);
  d.emplace<heed::LayerNorm<double>>(6);
  const Matrix<double> x = randn(3, 4, 1);
  CHECK(f.forward(x.cast<float>()).cast<double>().isApprox(d.forward(x), 1e-5));
  const Matrix<double> dy = randn(3, 6, 2);
  CHECK(f.backward(dy.cast<float>()).cast<double>().isApprox(d.backward(dy), 1e-4));
}

#include <heed/optim/finite_guard.hpp>

TEST_CASE("check_finite names the step and the parameter where a NaN first appeared") {
  heed::Sequential<float> net;
  net.emplace<heed::Linear<float>>(3, 4);
  net.emplace<heed::Linear<float>>(4, 2);
  const Matrix<float> x = Matrix<float>::Ones(2, 3);
  net.forward(x);
  net.backward(Matrix<float>::Ones(2, 2));
  CHECK_NOTHROW(heed::check_finite(1.0f, net.parameters(), 5));
  CHECK_THROWS_WITH_AS(heed::check_finite(std::nanf(""), net.parameters(), 5),
                       doctest::Contains("training step 5: loss is nan"), heed::NumericError);
  (*net.parameters()[2].grad)(0, 0) = INFINITY;  // "1.weight"
  (*net.parameters()[0].grad)(0, 0) = NAN;       // "0.weight": produced later in backward
  CHECK_THROWS_WITH_AS(heed::check_finite(1.0f, net.parameters(), 7),
                       doctest::Contains("step 7: non-finite gradient in '1.weight'"), heed::NumericError);
}
