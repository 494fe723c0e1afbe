#include <doctest/doctest.h>

#include <heed/metrics/confusion_matrix.hpp>

using heed::ConfusionMatrix;
using heed::Labels;

// Hand-worked example, 3 classes, 10 samples (rows true, cols predicted):
//            pred 0  1  2
//   true 0        3  1  0     row sum 4
//   true 1        0  2  1     row sum 3
//   true 2        1  0  2     row sum 3
//   col sums      4  3  3
// precision = 3/4, 2/3, 2/3; recall = 3/4, 2/3, 2/3; accuracy = 7/10.
TEST_CASE("ConfusionMatrix: hand-computed 3-class example") {
  Labels y(10), p(10);
  y << 0, 0, 0, 0, 1, 1, 1, 2, 2, 2;
  p << 0, 0, 0, 1, 1, 1, 2, 0, 2, 2;
  ConfusionMatrix cm(3);
  cm.update(p.head(5), y.head(5));  // two batches add up
  cm.update(p.tail(5), y.tail(5));
  CHECK(cm.total() == 10);
  CHECK(cm(0, 0) == 3);
  CHECK(cm(0, 1) == 1);
  CHECK(cm(1, 2) == 1);
  CHECK(cm(2, 0) == 1);
  CHECK(cm(2, 1) == 0);
  CHECK(cm.support(0) == 4);
  CHECK(cm.precision(0) == doctest::Approx(0.75));
  CHECK(cm.recall(0) == doctest::Approx(0.75));
  CHECK(cm.precision(1) == doctest::Approx(2.0 / 3));
  CHECK(cm.recall(2) == doctest::Approx(2.0 / 3));
  CHECK(cm.f1(0) == doctest::Approx(0.75));
  CHECK(cm.accuracy() == doctest::Approx(0.7));
  CHECK(cm.macro_precision() == doctest::Approx((0.75 + 2.0 / 3 + 2.0 / 3) / 3));
  CHECK(cm.macro_f1() == doctest::Approx((0.75 + 2.0 / 3 + 2.0 / 3) / 3));
  CHECK(cm.to_string() ==
        "true\\pred    0    1    2\n"
        "        0    3    1    0\n"
        "        1    0    2    1\n"
        "        2    1    0    2\n");
  cm.reset();
  CHECK(cm.total() == 0);
  CHECK(cm.accuracy() == 0.0);
}

// Asymmetric precision/recall: true = {0,0,0,1}, pred = {0,1,1,1}.
// class 0: P = 1/1, R = 1/3, F1 = 2*(1/3)/(4/3) = 0.5; class 1: P = 1/3, R = 1, F1 = 0.5.
TEST_CASE("ConfusionMatrix: F1 differs from P and R; zero_division = 0") {
  Labels y(4), p(4);
  y << 0, 0, 0, 1;
  p << 0, 1, 1, 1;
  ConfusionMatrix cm(3);  // class 2 never appears
  cm.update(p, y);
  CHECK(cm.precision(0) == doctest::Approx(1.0));
  CHECK(cm.recall(0) == doctest::Approx(1.0 / 3));
  CHECK(cm.f1(0) == doctest::Approx(0.5));
  CHECK(cm.precision(1) == doctest::Approx(1.0 / 3));
  CHECK(cm.recall(1) == doctest::Approx(1.0));
  CHECK(cm.f1(1) == doctest::Approx(0.5));
  CHECK(cm.precision(2) == 0.0);  // never predicted
  CHECK(cm.recall(2) == 0.0);     // no samples
  CHECK(cm.f1(2) == 0.0);
  CHECK(cm.macro_recall() == doctest::Approx((1.0 / 3 + 1.0) / 3));
  // A class predicted but with P = R = 0.
  Labels y2(1), p2(1);
  y2 << 0;
  p2 << 1;
  ConfusionMatrix c2(2);
  c2.update(p2, y2);
  CHECK(c2.f1(0) == 0.0);
  CHECK(c2.f1(1) == 0.0);
}

TEST_CASE("ConfusionMatrix: errors leave the counts unchanged") {
  ConfusionMatrix cm(2);
  Labels a(3), b(2);
  a << 0, 1, 1;
  b << 0, 1;
  CHECK_THROWS_AS(cm.update(a, b), heed::ShapeError);
  Labels bad(3);
  bad << 0, 1, 2;
  CHECK_THROWS_AS(cm.update(a, bad), heed::ValueError);
  CHECK_THROWS_AS(cm.update(bad, a), heed::ValueError);
  CHECK(cm.total() == 0);
  CHECK_THROWS_AS(cm.precision(2), heed::ValueError);
  CHECK_THROWS_AS(cm(-1, 0), heed::ValueError);
  CHECK_THROWS_AS(ConfusionMatrix(0), heed::ValueError);
}
