#include <doctest/doctest.h>

#include <heed/core.hpp>
#include <heed/testing/gradcheck.hpp>

using heed::Matrix;

TEST_CASE("Generator: same seed, same stream; uniform in [0, 1)") {
  heed::Generator a(123), b(123), c(124);
  for (int i = 0; i < 100; ++i) {
    const double u = a.uniform();
    CHECK(u == b.uniform());
    CHECK(u >= 0.0);
    CHECK(u < 1.0);
  }
  CHECK(a.uniform() != c.uniform());
  heed::Generator n(5);
  double sum = 0, sq = 0;
  for (int i = 0; i < 20000; ++i) {
    const double v = n.normal();
    sum += v;
    sq += v * v;
  }
  CHECK(sum / 20000 == doctest::Approx(0).epsilon(0.03));
  CHECK(sq / 20000 == doctest::Approx(1).epsilon(0.03));
  for (int i = 0; i < 1000; ++i) CHECK(n.below(7) < 7);
}

TEST_CASE("manual_seed resets the default generator") {
  heed::manual_seed(9);
  const double a = heed::default_generator().uniform();
  heed::manual_seed(9);
  CHECK(heed::default_generator().uniform() == a);
}

TEST_CASE("check_shape formats expected and actual") {
  CHECK_THROWS_WITH_AS(heed::detail::check_shape("M", "input", 2, 3, -1, 4),
                       "M: input expected (*, 4), got (2, 3)", heed::ShapeError);
  CHECK_NOTHROW(heed::detail::check_shape("M", "input", 2, 4, -1, 4));
}

TEST_CASE("check_gradient catches a wrong gradient and passes a right one") {
  Matrix<double> x(1, 3);
  x << 0.5, -1.0, 2.0;
  auto f = [&] { return (x.array().cube()).sum(); };  // df/dx = 3 x^2
  Matrix<double> right = 3 * x.array().square().matrix();
  Matrix<double> wrong = right;
  wrong(0, 1) += 1e-3;
  CHECK(heed::testing::check_gradient("cube", x, right, f).ok);
  const auto r = heed::testing::check_gradient("cube", x, wrong, f);
  CHECK(!r.ok);
  CHECK(r.detail.find("cube[0,1]") != std::string::npos);
  const auto s = heed::testing::check_gradient("cube", x, Matrix<double>(2, 2), f);
  CHECK(!s.ok);
}
