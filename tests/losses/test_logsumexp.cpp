#include <doctest/doctest.h>

#include <cmath>
#include <heed/losses/cross_entropy.hpp>

using heed::Matrix;

TEST_CASE_TEMPLATE("detail::logsumexp_row: stable, and leaves exp(z - max) when asked", T, float,
                   double) {
  Matrix<T> z(2, 4);
  z << 1, 2, 3, 4,  //
      1000, 999, -1000, 998;  // exp(1000) overflows: the max shift must keep it finite
  const double l0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0));
  CHECK(static_cast<double>(heed::detail::logsumexp_row(z.row(0))) ==
        doctest::Approx(l0).epsilon(1e-6));
  const double l1 = 1000.0 + std::log(1.0 + std::exp(-1.0) + std::exp(-2.0));
  const T lse = heed::detail::logsumexp_row(z.row(1));
  CHECK(std::isfinite(static_cast<double>(lse)));
  CHECK(static_cast<double>(lse) == doctest::Approx(l1).epsilon(1e-6));

  Matrix<T> e(1, 4);
  const T lse2 = heed::detail::logsumexp_row(z.row(1), e.row(0));
  CHECK(lse2 == lse);  // the same number with or without the exp row
  CHECK(e(0, 0) == T(1));
  CHECK(static_cast<double>(e(0, 1)) == doctest::Approx(std::exp(-1.0)).epsilon(1e-6));
  CHECK(e(0, 2) < T(1e-30));  // exp(-2000): 0, or the tiny value of a clamped vector exp
  // softmax = e / e.sum(), and sum_j exp(z_j - lse) = 1.
  CHECK(static_cast<double>((z.row(1).array() - lse).exp().sum()) == doctest::Approx(1.0));
}
