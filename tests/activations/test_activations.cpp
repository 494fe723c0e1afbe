#include <doctest/doctest.h>

#include <cmath>
#include <heed/activations.hpp>
#include <heed/testing/gradcheck.hpp>

using heed::Matrix;
using heed::testing::check_module;

namespace {
// Random (B, F) values away from 0, so ReLU-like kinks are not straddled by +-eps.
Matrix<double> input(heed::Index rows, heed::Index cols, std::uint64_t seed) {
  heed::Generator g(seed);
  Matrix<double> x(rows, cols);
  for (heed::Index i = 0; i < x.size(); ++i) {
    double v = g.uniform(-3, 3);
    if (std::abs(v) < 0.05) v += 0.1;
    x.data()[i] = v;
  }
  return x;
}
}  // namespace

TEST_CASE_TEMPLATE("activations: gradient check in double", A, heed::ReLU<double>,
                   heed::LeakyReLU<double>, heed::Sigmoid<double>, heed::Tanh<double>,
                   heed::GELU<double>, heed::Softmax<double>, heed::Identity<double>) {
  A act;
  const auto r = check_module(act, input(4, 7, 3));
  INFO(r.detail);
  CHECK(r.ok);
  CHECK(r.checked == 28);
}

TEST_CASE("LeakyReLU with a negative slope: gradient follows x, not y") {
  heed::LeakyReLU<double> act(-0.5);
  const auto r = check_module(act, input(3, 5, 11));
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("activations: forward values") {
  Matrix<double> x(1, 4);
  x << -2, -0.5, 0.5, 2;
  CHECK(heed::ReLU<double>().forward(x).isApprox((Matrix<double>(1, 4) << 0, 0, 0.5, 2).finished()));
  CHECK(heed::LeakyReLU<double>(0.1).forward(x).isApprox(
      (Matrix<double>(1, 4) << -0.2, -0.05, 0.5, 2).finished()));
  heed::Sigmoid<double> s;
  CHECK(s.forward(x)(0, 3) == doctest::Approx(1 / (1 + std::exp(-2.0))).epsilon(1e-14));
  heed::GELU<double> gelu;  // torch.nn.functional.gelu(tensor([-0.5, 2.])) in double
  CHECK(gelu.forward(x)(0, 1) == doctest::Approx(-0.15426876936299344).epsilon(1e-12));
  CHECK(gelu.forward(x)(0, 3) == doctest::Approx(1.9544997361036416).epsilon(1e-12));
  heed::Tanh<double> t;
  CHECK(t.forward(x)(0, 0) == doctest::Approx(std::tanh(-2.0)));
}

TEST_CASE("Sigmoid saturates without overflow") {
  Matrix<float> x(1, 3);
  x << -1000.f, 0.f, 1000.f;
  heed::Sigmoid<float> s;
  const auto& y = s.forward(x);
  CHECK(y(0, 0) == 0.f);
  CHECK(y(0, 1) == 0.5f);
  CHECK(y(0, 2) == 1.f);
}

TEST_CASE("Softmax: rows sum to one and large logits stay finite") {
  Matrix<float> x(2, 3);
  x << 1000.f, 1001.f, 1002.f, -5.f, 0.f, 5.f;
  heed::Softmax<float> sm;
  const auto& y = sm.forward(x);
  CHECK(y.allFinite());
  CHECK(y.row(0).sum() == doctest::Approx(1.0));
  CHECK(y.row(1).sum() == doctest::Approx(1.0));
  // softmax([0, 1, 2]) = [0.09003057, 0.24472847, 0.66524096]
  CHECK(y(0, 2) == doctest::Approx(0.66524096).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("activations: float agrees with double", A, heed::GELU<float>,
                   heed::Softmax<float>, heed::Sigmoid<float>) {
  const Matrix<double> xd = input(3, 6, 5);
  const Matrix<float> xf = xd.cast<float>();
  A af;
  // The double twin of A: rebind the template's scalar.
  using D = std::conditional_t<std::is_same_v<A, heed::GELU<float>>, heed::GELU<double>,
            std::conditional_t<std::is_same_v<A, heed::Softmax<float>>, heed::Softmax<double>,
                               heed::Sigmoid<double>>>;
  D ad;
  CHECK(af.forward(xf).template cast<double>().isApprox(ad.forward(xd), 1e-5));
  const Matrix<double> dy = input(3, 6, 9);
  CHECK(af.backward(dy.cast<float>()).template cast<double>().isApprox(ad.backward(dy), 1e-5));
}

TEST_CASE("activations: gradient of the wrong shape is a ShapeError naming the module") {
  heed::Tanh<double> t;
  t.forward(Matrix<double>::Ones(2, 3));
  CHECK_THROWS_WITH_AS(t.backward(Matrix<double>::Ones(2, 4)),
                       "Tanh: gradient expected (2, 3), got (2, 4)", heed::ShapeError);
}
