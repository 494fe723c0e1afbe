#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include <heed/attention.hpp>
#include <heed/layers/dropout.hpp>

using heed::Index;
using heed::Matrix;

TEST_CASE_TEMPLATE("detail::dropout_mask: 0 or 1/(1-p), two entries per 64-bit draw, row-major", T,
                   float, double) {
  const double p = 0.3;
  const auto threshold = static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
  for (Index cols : {50, 7}) {  // 2000 entries, and an odd 287 (the last takes a draw alone)
    CAPTURE(cols);
    const Index rows = cols == 50 ? 40 : 41;
    Matrix<T> M;
    heed::Generator g(21), ref(21);
    heed::detail::dropout_mask(M, rows, cols, p, g);
    REQUIRE(M.rows() == rows);
    REQUIRE(M.cols() == cols);
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    Index dropped = 0;
    std::uint64_t b = 0;
    for (Index i = 0; i < rows * cols; ++i) {
      if (i % 2 == 0) b = ref.bits();
      const std::uint64_t half = i % 2 == 0 ? (b & 0xFFFFFFFFu) : (b >> 32);
      const bool drop = half < threshold;
      CHECK(M.data()[i] == (drop ? T(0) : scale));
      dropped += drop;
    }
    CHECK(g.bits() == ref.bits());  // exactly ceil(rows * cols / 2) draws
    CHECK(double(dropped) / double(rows * cols) == doctest::Approx(p).epsilon(0.15));
  }
  // Bounds: p = 0 drops nothing; a p just below 1 drops (nearly) everything.
  Matrix<T> M;
  heed::Generator g(3);
  heed::detail::dropout_mask(M, 10, 10, 0.0, g);
  CHECK(M.isConstant(T(1)));
  heed::detail::dropout_mask(M, 10, 10, 0.999999, g);
  CHECK((M.array() == T(0)).count() >= 99);
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

TEST_CASE("Dropout::forward_view / backward_view: the argument itself when inactive, forward when active") {
  heed::Dropout<double> drop(0.5, 3);
  const Matrix<double> x = Matrix<double>::Random(4, 6), dy = Matrix<double>::Random(4, 6);
  drop.eval();  // inactive: views of the arguments, no copy
  const heed::ConstRef<double> y = drop.forward_view(x);
  CHECK(y.data() == x.data());
  const heed::ConstRef<double> dx = drop.backward_view(dy);
  CHECK(dx.data() == dy.data());
  CHECK_THROWS_AS(drop.backward_view(Matrix<double>::Zero(3, 6)), heed::ShapeError);
  drop.train();  // active: exactly forward and backward (the same mask for both)
  heed::Dropout<double> ref(0.5, 3);
  ref.train();
  const Matrix<double> yv = drop.forward_view(x);
  CHECK(yv == ref.forward(x));
  CHECK(Matrix<double>(drop.backward_view(dy)) == ref.backward(dy));
  // p = 0 in training mode is inactive too.
  heed::Dropout<double> none(0.0);
  none.train();
  CHECK(none.forward_view(x).data() == x.data());
}
