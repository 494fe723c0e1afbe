#include <doctest/doctest.h>

#include <cmath>
#include <heed/losses.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"

using heed::Labels;
using heed::Matrix;
using heed::testing::check_gradient;
using heed_test::labels;
using heed_test::randn;

TEST_CASE("CrossEntropyLoss: hand-computed value and gradient") {
  Matrix<double> z(1, 3);
  z << 1, 2, 3;
  heed::CrossEntropyLoss<double> ce;
  // -log softmax(z)_2 = log(e + e^2 + e^3) - 3
  CHECK(ce.forward(z, labels({2})) == doctest::Approx(0.40760596444438).epsilon(1e-12));
  const double s = std::exp(1) + std::exp(2) + std::exp(3);
  CHECK(ce.backward()(0, 0) == doctest::Approx(std::exp(1) / s));
  CHECK(ce.backward()(0, 2) == doctest::Approx(std::exp(3) / s - 1));
}

TEST_CASE("CrossEntropyLoss: PyTorch reference with weights and label smoothing") {
  // torch.nn.CrossEntropyLoss(weight=tensor([1., 2., 0.5]), label_smoothing=0.1)
  //   (tensor([[1., 2., 3.], [0.5, -1., 2.]], dtype=float64), tensor([0, 1]))
  Matrix<double> z(2, 3);
  z << 1, 2, 3, 0.5, -1, 2;
  heed::CrossEntropyLoss<double> ce({.weight = {1, 2, 0.5}, .label_smoothing = 0.1});
  const double l = ce.forward(z, labels({0, 1}));
  // computed by hand from the definition (see cross_entropy.hpp):
  auto lse = [](double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); };
  const double l0 = lse(1, 2, 3), l1 = lse(0.5, -1, 2);
  const double num = 0.9 * 1 * (l0 - 1) + 0.1 / 3 * (1 * (l0 - 1) + 2 * (l0 - 2) + 0.5 * (l0 - 3)) +
                     0.9 * 2 * (l1 + 1) + 0.1 / 3 * (1 * (l1 - 0.5) + 2 * (l1 + 1) + 0.5 * (l1 - 2));
  CHECK(l == doctest::Approx(num / 3).epsilon(1e-12));
}

TEST_CASE("CrossEntropyLoss: gradient check, plain, weighted, smoothed, ignore_index") {
  const std::vector<heed::CrossEntropyLossOptions<double>> opts = {
      {}, {.weight = {0.5, 1, 2, 1.5}}, {.label_smoothing = 0.2},
      {.weight = {0.5, 1, 2, 1.5}, .label_smoothing = 0.1}, {.ignore_index = 1}};
  for (const auto& o : opts) {
    heed::CrossEntropyLoss<double> ce(o);
    Matrix<double> z = randn(5, 4, 3);
    const Labels y = labels({0, 1, 3, 2, 1});
    ce.forward(z, y);
    const Matrix<double> g = ce.backward();
    const auto r = check_gradient("CrossEntropyLoss", z, g, [&] { return ce.forward(z, y); });
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("CrossEntropyLoss: stable for huge logits; all-ignored gives zero") {
  Matrix<float> z(1, 3);
  z << 1e4f, 0.f, -1e4f;
  heed::CrossEntropyLoss<float> ce;
  CHECK(ce.forward(z, labels({1})) == doctest::Approx(1e4f));
  CHECK(ce.backward().allFinite());
  heed::CrossEntropyLoss<float> ig({.ignore_index = 0});
  CHECK(ig.forward(z, labels({0})) == 0.f);
  CHECK(ig.backward().isZero());
}

TEST_CASE("CrossEntropyLoss: bad input errors") {
  heed::CrossEntropyLoss<float> ce;
  CHECK_THROWS_WITH_AS(ce.forward(Matrix<float>::Zero(3, 10), labels({1, 2})),
                       "CrossEntropyLoss: target expected (3), got (2)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(ce.forward(Matrix<float>::Zero(2, 10), labels({1, 10})),
                       "CrossEntropyLoss: target 10 at row 1 out of range [0, 10)", heed::ValueError);
  heed::CrossEntropyLoss<float> w({.weight = {1, 2}});
  CHECK_THROWS_AS(w.forward(Matrix<float>::Zero(1, 3), labels({0})), heed::ShapeError);
  CHECK_THROWS_AS(heed::CrossEntropyLoss<float>({.label_smoothing = 1.5f}), heed::ValueError);
}

TEST_CASE("MSELoss: value and gradient check") {
  heed::MSELoss<double> mse;
  Matrix<double> x(1, 2), y(1, 2);
  x << 1, 3;
  y << 0, 1;
  CHECK(mse.forward(x, y) == doctest::Approx(2.5));
  Matrix<double> z = randn(3, 4, 1);
  const Matrix<double> t = randn(3, 4, 2);
  mse.forward(z, t);
  const Matrix<double> g = mse.backward();
  CHECK(check_gradient("MSELoss", z, g, [&] { return mse.forward(z, t); }).ok);
  CHECK_THROWS_WITH_AS(mse.forward(z, Matrix<double>::Zero(3, 5)),
                       "MSELoss: target expected (3, 4), got (3, 5)", heed::ShapeError);
}

TEST_CASE("BCEWithLogitsLoss: value, stability and gradient check") {
  heed::BCEWithLogitsLoss<double> bce;
  Matrix<double> x(1, 2), y(1, 2);
  x << 0, 2;
  y << 1, 0;
  // mean of log 2 and log(1 + e^2)
  CHECK(bce.forward(x, y) == doctest::Approx((std::log(2) + std::log1p(std::exp(2))) / 2));
  Matrix<float> big(1, 2), t(1, 2);
  big << 100.f, -100.f;
  t << 0.f, 1.f;
  heed::BCEWithLogitsLoss<float> bf;
  CHECK(bf.forward(big, t) == doctest::Approx(100.f));
  for (const auto& o : std::vector<heed::BCEWithLogitsLossOptions<double>>{{}, {.pos_weight = {2, 0.5, 3}}}) {
    heed::BCEWithLogitsLoss<double> b(o);
    Matrix<double> z = randn(4, 3, 5);
    Matrix<double> tt = (randn(4, 3, 6).array() > 0).cast<double>();
    tt(0, 0) = 0.3;  // soft target
    b.forward(z, tt);
    const Matrix<double> g = b.backward();
    const auto r = check_gradient("BCEWithLogitsLoss", z, g, [&] { return b.forward(z, tt); });
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE_TEMPLATE("Every loss refuses an empty batch with the same ShapeError", T, float, double) {
  // A mean over no rows is 0/0: CrossEntropyLoss used to return 0 here, hiding an empty split.
  using M = Matrix<T>;
  CHECK_THROWS_WITH_AS(heed::CrossEntropyLoss<T>().forward(M(0, 3), Labels(0)),
                       "CrossEntropyLoss: input is empty (0, 3)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::CrossEntropyLoss<T>({.ignore_index = 0}).forward(M(0, 3), Labels(0)),
                       "CrossEntropyLoss: input is empty (0, 3)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::MSELoss<T>().forward(M(0, 1), M(0, 1)),
                       "MSELoss: input is empty (0, 1)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::MSELoss<T>().forward(M(2, 0), M(2, 0)),
                       "MSELoss: input is empty (2, 0)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::BCEWithLogitsLoss<T>().forward(M(0, 2), M(0, 2)),
                       "BCEWithLogitsLoss: input is empty (0, 2)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::BCEWithLogitsLoss<T>({.pos_weight = {T(2), T(1)}}).forward(M(0, 2), M(0, 2)),
                       "BCEWithLogitsLoss: input is empty (0, 2)", heed::ShapeError);
  // Not empty, every row ignored: still the documented 0 with a zero gradient.
  heed::CrossEntropyLoss<T> ig({.ignore_index = 1});
  CHECK(ig.forward(M::Zero(2, 3), labels({1, 1})) == T(0));
  CHECK(ig.backward().isZero());
}

TEST_CASE_TEMPLATE("Every loss: backward before forward throws ValueError", T, float, double) {
  using M = Matrix<T>;
  CHECK_THROWS_WITH_AS(heed::CrossEntropyLoss<T>().backward(),
                       "CrossEntropyLoss: backward called before forward", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::MSELoss<T>().backward(), "MSELoss: backward called before forward",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::BCEWithLogitsLoss<T>().backward(),
                       "BCEWithLogitsLoss: backward called before forward", heed::ValueError);

  // A forward that threw leaves no gradient either, not a half-written or stale one.
  heed::CrossEntropyLoss<T> ce;
  ce.forward(M::Zero(2, 3), labels({0, 1}));
  CHECK(ce.backward().rows() == 2);
  CHECK_THROWS_AS(ce.forward(M::Zero(2, 3), labels({0, 7})), heed::ValueError);  // row 0 written
  CHECK_THROWS_WITH_AS(ce.backward(), "CrossEntropyLoss: backward called after a forward that threw",
                       heed::ValueError);
  ce.forward(M::Zero(1, 3), labels({2}));
  CHECK(ce.backward().rows() == 1);

  heed::MSELoss<T> mse;
  mse.forward(M::Ones(2, 2), M::Zero(2, 2));
  CHECK_THROWS_AS(mse.forward(M::Ones(2, 2), M::Zero(2, 3)), heed::ShapeError);
  CHECK_THROWS_WITH_AS(mse.backward(), "MSELoss: backward called after a forward that threw",
                       heed::ValueError);

  heed::BCEWithLogitsLoss<T> bce;
  bce.forward(M::Zero(1, 2), M::Zero(1, 2));
  CHECK_THROWS_AS(bce.forward(M(0, 2), M(0, 2)), heed::ShapeError);
  CHECK_THROWS_WITH_AS(bce.backward(), "BCEWithLogitsLoss: backward called after a forward that threw",
                       heed::ValueError);
  bce.forward(M::Zero(1, 2), M::Ones(1, 2));
  CHECK(bce.backward()(0, 0) == doctest::Approx(T(-0.25)));  // (sigmoid(0) - 1) / 2
}

TEST_CASE_TEMPLATE("CrossEntropyLoss: a large offset shared by every logit keeps log C", T, float,
                   double) {
  // logits [c, c, c]: the loss is log 3 whatever c; m + log(s) - z_y rounded it to 1.125, 1, 0
  // in float for c = 1e6, 1e7, 1e8. Smoothing and weights take the same path.
  for (double c : {1.0, 1e6, 1e7, 1e8, 1e20, -1e8}) {
    CAPTURE(c);
    Matrix<T> z = Matrix<T>::Constant(2, 3, static_cast<T>(c));
    heed::CrossEntropyLoss<T> ce;
    CHECK(ce.forward(z, labels({0, 2})) == doctest::Approx(std::log(3.0)).epsilon(1e-6));
    CHECK(ce.backward().isApprox(Matrix<T>::Constant(2, 3, T(1) / 6) -
                                 (Matrix<T>(2, 3) << 0.5, 0, 0, 0, 0, 0.5).finished()));
    heed::CrossEntropyLoss<T> sm({.label_smoothing = T(0.2)});
    CHECK(sm.forward(z, labels({1, 1})) == doctest::Approx(std::log(3.0)).epsilon(1e-6));
    // weighted + smoothed: sum_i a_i log 3 / W, a_i = 0.9 w_y + 0.1 mean(w) = 2.0, 2.9; W = 5
    heed::CrossEntropyLoss<T> w({.weight = {T(1), T(2), T(3)}, .label_smoothing = T(0.1)});
    CHECK(w.forward(z, labels({1, 2})) == doctest::Approx(std::log(3.0) * 4.9 / 5).epsilon(1e-6));
  }
}
