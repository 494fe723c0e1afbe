// clip_grad_norm_ / clip_grad_value_ against torch.nn.utils, and EarlyStopping's logic.
#include <cmath>
#include <limits>

#include "helpers.hpp"

using namespace optim_test;

TEST_CASE_TEMPLATE("clip_grad_norm_ matches torch.nn.utils.clip_grad_norm_", T, float, double) {
  for (const auto& c : ref::kClipGradNorm) {
    Matrix<T> a = Matrix<T>::Zero(2, 3), ga(2, 3), b = Matrix<T>::Zero(1, 3), gb(1, 3);
    CAPTURE(c[0]);
    // The references hold the clipped grads; rebuild the originals from the norm-1 case, whose
    // max_norm is large enough that nothing was clipped.
    const auto& orig = ref::kClipGradNorm[2];
    load(ga, {orig[3], orig[4], orig[5], orig[6], orig[7], orig[8]});
    load(gb, {orig[9], orig[10], orig[11]});
    const std::vector<Parameter<T>> ps{{"a", &a, &ga}, {"b", &b, &gb}};
    const T total = heed::clip_grad_norm_(ps, static_cast<T>(c[1]), static_cast<T>(c[0]));
    CHECK(static_cast<double>(total) == doctest::Approx(c[2]).epsilon(tol<T>()));
    for (int j = 0; j < 6; ++j)
      CHECK(static_cast<double>(ga.data()[j]) == doctest::Approx(c[3 + j]).epsilon(tol<T>()));
    for (int j = 0; j < 3; ++j)
      CHECK(static_cast<double>(gb.data()[j]) == doctest::Approx(c[9 + j]).epsilon(tol<T>()));
  }
}

TEST_CASE("clip_grad_norm_ validates and reports non-finite norms on request") {
  Matrix<double> w(1, 2), g(1, 2);
  g << 3, std::numeric_limits<double>::infinity();
  std::vector<Parameter<double>> ps{{"w", &w, &g}};
  CHECK(std::isinf(heed::clip_grad_norm_(ps, 1.0)));  // and, as in PyTorch, grads become NaN
  g << 3, std::numeric_limits<double>::infinity();
  expect_error<heed::NumericError>([&] { heed::clip_grad_norm_(ps, 1.0, 2.0, true); },
                                   {"clip_grad_norm_", "finite", "inf"});
  g << 3, 4;
  expect_error<heed::ValueError>([&] { heed::clip_grad_norm_(ps, -1.0); },
                                 {"clip_grad_norm_", "max_norm", "-1"});
  expect_error<heed::ValueError>([&] { heed::clip_grad_norm_(ps, 1.0, 0.0); },
                                 {"clip_grad_norm_", "norm_type"});
  CHECK(heed::clip_grad_norm_(ps, 10.0) == 5.0);  // below max_norm: untouched
  CHECK(g(0, 1) == 4.0);
}

TEST_CASE_TEMPLATE("clip_grad_value_ clamps every element", T, float, double) {
  Matrix<T> w(2, 2), g(2, 2);
  g << T(-3), T(0.5), T(2), T(-0.25);
  heed::clip_grad_value_<T>({{"w", &w, &g}}, T(1));
  Matrix<T> e(2, 2);
  e << T(-1), T(0.5), T(1), T(-0.25);
  CHECK(g == e);
  CHECK_THROWS_AS(heed::clip_grad_value_<T>({{"w", &w, &g}}, T(-1)), heed::ValueError);
}

TEST_CASE("EarlyStopping in Min mode waits patience epochs without improvement") {
  heed::EarlyStopping<double> stop({.patience = 2, .min_delta = 0.01});
  CHECK(stop.best_epoch() == -1);
  CHECK_FALSE(stop.step(1.0));
  CHECK(stop.improved());
  CHECK_FALSE(stop.step(0.5));  // improved
  CHECK(stop.improved());
  CHECK(stop.best() == 0.5);
  CHECK(stop.best_epoch() == 1);
  CHECK_FALSE(stop.step(0.495));  // better, but not by more than min_delta
  CHECK_FALSE(stop.improved());
  CHECK(stop.bad_epochs() == 1);
  CHECK_FALSE(stop.step(0.4));  // improvement resets the count
  CHECK(stop.best_epoch() == 3);
  CHECK(stop.bad_epochs() == 0);
  CHECK_FALSE(stop.step(0.45));
  CHECK(stop.step(0.41));  // second epoch without improvement
  CHECK(stop.should_stop());
  CHECK(stop.best() == 0.4);
  CHECK(stop.epochs() == 6);
  stop.reset();
  CHECK_FALSE(stop.should_stop());
  CHECK(stop.best_epoch() == -1);
}

TEST_CASE("EarlyStopping in Max mode, NaN never improves") {
  heed::EarlyStopping<float> stop({.patience = 3, .mode = heed::Mode::Max});
  CHECK_FALSE(stop.step(std::numeric_limits<float>::quiet_NaN()));
  CHECK_FALSE(stop.improved());
  CHECK(stop.best_epoch() == -1);
  CHECK_FALSE(stop.step(0.8f));
  CHECK(stop.best_epoch() == 1);
  CHECK_FALSE(stop.step(0.9f));
  CHECK(stop.improved());
  CHECK_FALSE(stop.step(0.85f));
  CHECK_FALSE(stop.step(std::numeric_limits<float>::quiet_NaN()));
  CHECK(stop.step(0.9f));  // equal is not better
  CHECK(stop.best() == 0.9f);
  CHECK(stop.best_epoch() == 2);
}

TEST_CASE("EarlyStopping validates its options") {
  expect_error<heed::ValueError>([] { heed::EarlyStopping<double>({.patience = -1}); },
                                 {"EarlyStopping", "patience", "-1"});
  expect_error<heed::ValueError>([] { heed::EarlyStopping<double>({.min_delta = -0.1}); },
                                 {"EarlyStopping", "min_delta", "-0.1"});
}

TEST_CASE("snapshot/restore_parameters keep the best weights") {
  Weight<double> p;
  const auto best = heed::snapshot_parameters(p.params());
  const Matrix<double> w0 = p.w;
  p.w.setConstant(7);
  heed::restore_parameters(p.params(), best);
  CHECK(p.w == w0);
  std::vector<Matrix<double>> reuse;
  heed::snapshot_parameters(p.params(), reuse);
  CHECK(reuse[0] == w0);
  expect_error<heed::ValueError>([&] { heed::restore_parameters(p.params(), {}); },
                                 {"restore_parameters", "1 tensors", "got 0"});
  reuse[0].resize(3, 2);
  expect_error<heed::ShapeError>([&] { heed::restore_parameters(p.params(), reuse); },
                                 {"restore_parameters", "'weight'", "(2, 3)", "(3, 2)"});
}

TEST_CASE("EarlyStopping resumes from its state()") {
  heed::EarlyStopping<float> a({.patience = 2}), b({.patience = 2});
  a.step(1.0f);
  a.step(0.5f);
  a.step(0.7f);
  auto sa = a.state(), sb = b.state();
  REQUIRE(sa.size() == 4);
  CHECK(sa[1].first == "best_epoch");
  for (std::size_t i = 0; i < sa.size(); ++i) *sb[i].second = *sa[i].second;
  CHECK(b.best() == 0.5f);
  CHECK(b.best_epoch() == 1);
  CHECK(b.bad_epochs() == 1);
  CHECK(b.epochs() == 3);
  CHECK(b.step(0.6f));
}
