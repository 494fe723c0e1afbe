#include <doctest/doctest.h>

#include <heed/attention.hpp>
#include <heed/layers/dropout.hpp>

using heed::Index;
using heed::Matrix;

TEST_CASE_TEMPLATE("detail::dropout_mask: 0 or 1/(1-p), one uniform draw per entry, row-major", T,
                   float, double) {
  const double p = 0.3;
  Matrix<T> M;
  heed::Generator g(21), ref(21);
  heed::detail::dropout_mask(M, 40, 50, p, g);
  REQUIRE(M.rows() == 40);
  REQUIRE(M.cols() == 50);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  Index dropped = 0;
  for (Index r = 0; r < 40; ++r)
    for (Index c = 0; c < 50; ++c) {
      const bool drop = ref.uniform() < p;
      CHECK(M(r, c) == (drop ? T(0) : scale));
      dropped += drop;
    }
  CHECK(g.bits() == ref.bits());  // exactly rows * cols draws
  CHECK(double(dropped) / 2000.0 == doctest::Approx(p).epsilon(0.15));
}

TEST_CASE("Dropout's mask is detail::dropout_mask from its own stream") {
  heed::Dropout<double> drop(0.4, 5);
  drop.train();
  const Matrix<double> x = Matrix<double>::Ones(3, 7);
  const Matrix<double> y = drop.forward(x);
  Matrix<double> M;
  heed::Generator g(5);
  heed::detail::dropout_mask(M, 3, 7, 0.4, g);
  CHECK(y == M);
}
