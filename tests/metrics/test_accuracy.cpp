#include <doctest/doctest.h>

#include <cmath>
#include <heed/metrics/accuracy.hpp>

using heed::Labels;
using heed::Matrix;

TEST_CASE_TEMPLATE("argmax_rows: row maxima, ties to the lowest index", T, float, double) {
  Matrix<T> s(4, 3);
  s << 0.1, 0.7, 0.2,  //
      -1, -3, -2,      //
      5, 5, 1,         // tie -> 0
      0, 0, 9;
  const Labels p = heed::argmax_rows(s);
  REQUIRE(p.size() == 4);
  CHECK(p(0) == 1);
  CHECK(p(1) == 0);
  CHECK(p(2) == 0);
  CHECK(p(3) == 2);
}

TEST_CASE_TEMPLATE("accuracy: fraction of correct argmax", T, float, double) {
  Matrix<T> s(4, 3);
  s << 0.1, 0.7, 0.2, 3, 1, 2, 0, 0, 1, 0.5, 0.4, 0.1;
  Labels y(4);
  y << 1, 0, 1, 2;  // rows 0, 1 right; rows 2, 3 wrong
  CHECK(heed::accuracy(s, y) == 0.5);
  y << 1, 0, 2, 0;
  CHECK(heed::accuracy(s, y) == 1.0);
  // Works on a block without a copy.
  CHECK(heed::accuracy(s.topRows(2), y.head(2)) == 1.0);
}

TEST_CASE("accuracy / argmax_rows: errors") {
  Matrix<float> s(3, 2);
  s.setZero();
  Labels y2(2), y3(3);
  y2 << 0, 1;
  y3 << 0, 1, 2;
  CHECK_THROWS_AS(heed::accuracy(s, y2), heed::ShapeError);
  CHECK_THROWS_AS(heed::accuracy(s, y3), heed::ValueError);  // label 2 with C = 2
  try {
    heed::accuracy(s, y3);
  } catch (const heed::ValueError& e) {
    CHECK(std::string(e.what()) == "accuracy: label 2 at index 2 out of range [0, 2)");
  }
  CHECK_THROWS_AS(heed::accuracy(Matrix<float>(0, 2), Labels(0)), heed::ValueError);
  s(1, 1) = std::nanf("");
  CHECK_THROWS_AS(heed::argmax_rows(s), heed::NumericError);
  CHECK_THROWS_AS(heed::argmax_rows(Matrix<float>(2, 0)), heed::ShapeError);
}
