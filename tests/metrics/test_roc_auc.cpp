#include <doctest/doctest.h>

#include <cmath>
#include <heed/metrics/roc_auc.hpp>

#include "common/helpers.hpp"

using heed::Matrix;
using heed_test::labels;

TEST_CASE_TEMPLATE("roc_auc: hand-computed examples", T, float, double) {
  // Pairs (pos, neg): (0.35 vs 0.1) win, (0.35 vs 0.4) lose, (0.8 vs both) win -> 3/4.
  heed::Vector<T> s(4);
  s << T(0.1), T(0.4), T(0.35), T(0.8);
  CHECK(heed::roc_auc(s, labels({0, 0, 1, 1})) == doctest::Approx(0.75));
  // Perfect and reversed rankings.
  CHECK(heed::roc_auc(s, labels({0, 1, 0, 1})) == doctest::Approx(1.0));
  CHECK(heed::roc_auc(s, labels({1, 0, 1, 0})) == doctest::Approx(0.0));
}

TEST_CASE("roc_auc: ties count one half") {
  // scores {0.5, 0.5, 0.2, 0.9}, targets {1, 0, 0, 1}
  // positive 0.5: vs 0.5 tie (1/2), vs 0.2 win -> 1.5; positive 0.9: beats both -> 2.
  // AUC = 3.5 / 4 = 0.875
  Eigen::VectorXd s(4);
  s << 0.5, 0.5, 0.2, 0.9;
  CHECK(heed::roc_auc(s, labels({1, 0, 0, 1})) == doctest::Approx(0.875));
  // All scores equal -> 0.5.
  Eigen::VectorXd c = Eigen::VectorXd::Constant(5, 0.3);
  CHECK(heed::roc_auc(c, labels({1, 0, 0, 1, 0})) == doctest::Approx(0.5));
  // Row vectors are accepted too.
  Eigen::RowVectorXd r = s.transpose();
  CHECK(heed::roc_auc(r, labels({1, 0, 0, 1})) == doctest::Approx(0.875));
}

TEST_CASE("roc_auc: errors") {
  Eigen::VectorXd s(3);
  s << 0.1, 0.2, 0.3;
  CHECK_THROWS_AS(heed::roc_auc(s, labels({0, 1})), heed::ShapeError);
  CHECK_THROWS_AS(heed::roc_auc(s, labels({0, 2, 1})), heed::ValueError);
  CHECK_THROWS_AS(heed::roc_auc(s, labels({1, 1, 1})), heed::ValueError);  // one class only
  CHECK_THROWS_AS(heed::roc_auc(Eigen::MatrixXd::Zero(2, 2), labels({0, 1, 0, 1})),
                  heed::ShapeError);
  s(1) = std::nan("");
  CHECK_THROWS_AS(heed::roc_auc(s, labels({0, 1, 1})), heed::NumericError);
}

TEST_CASE("roc_curve: points and thresholds, area equals roc_auc") {
  Eigen::VectorXd s(4);
  s << 0.1, 0.4, 0.35, 0.8;
  const heed::RocCurve r = heed::roc_curve(s, labels({0, 0, 1, 1}));
  // sklearn.metrics.roc_curve(..., drop_intermediate=False):
  //   thresholds inf, 0.8, 0.4, 0.35, 0.1; fpr 0, 0, .5, .5, 1; tpr 0, .5, .5, 1, 1
  const std::vector<double> fpr{0, 0, 0.5, 0.5, 1}, tpr{0, 0.5, 0.5, 1, 1};
  CHECK(r.fpr == fpr);
  CHECK(r.tpr == tpr);
  REQUIRE(r.thresholds.size() == 5);
  CHECK(std::isinf(r.thresholds[0]));
  CHECK(r.thresholds[1] == 0.8);
  CHECK(r.thresholds[4] == 0.1);
  double area = 0;
  for (std::size_t i = 1; i < r.fpr.size(); ++i)
    area += (r.fpr[i] - r.fpr[i - 1]) * (r.tpr[i] + r.tpr[i - 1]) / 2;
  CHECK(area == doctest::Approx(heed::roc_auc(s, labels({0, 0, 1, 1}))));
  // Ties collapse into one point.
  Eigen::VectorXd t(4);
  t << 0.5, 0.5, 0.2, 0.9;
  CHECK(heed::roc_curve(t, labels({1, 0, 0, 1})).fpr.size() == 4);
}

TEST_CASE_TEMPLATE("roc_auc_ovr: macro average of per-class AUCs", T, float, double) {
  // 3 classes, 4 samples, labels {0, 1, 2, 0}.
  Matrix<T> s(4, 3);
  s << T(0.8), T(0.1), T(0.1),  //
      T(0.2), T(0.5), T(0.3),   //
      T(0.3), T(0.3), T(0.4),   //
      T(0.5), T(0.4), T(0.1);
  // class 0: pos {0.8, 0.5}, neg {0.2, 0.3} -> 1
  // class 1: pos {0.5}, neg {0.1, 0.3, 0.4} -> 1
  // class 2: pos {0.4}, neg {0.1, 0.3, 0.1} -> 1
  CHECK(heed::roc_auc_ovr(s, labels({0, 1, 2, 0})) == doctest::Approx(1.0));
  // labels {1, 0, 2, 0}:
  // class 0: pos {0.2, 0.5} neg {0.8, 0.3}: 0.2 beats none, 0.5 beats 0.3 -> 1/4
  // class 1: pos {0.1} neg {0.5, 0.3, 0.4} -> 0
  // class 2: pos {0.4} neg {0.1, 0.3, 0.1} -> 1
  CHECK(heed::roc_auc_ovr(s, labels({1, 0, 2, 0})) == doctest::Approx((0.25 + 0 + 1) / 3));
  // class 2 absent: skipped, mean of classes 0 and 1.
  int skipped = -1;
  // class 0: pos {0.8, 0.2, 0.3} neg {0.5}: 0.8 wins -> 1/3; class 1: pos {0.4} neg {0.1,0.5,0.3} -> 2/3
  CHECK(heed::roc_auc_ovr(s, labels({0, 0, 0, 1}), &skipped) ==
        doctest::Approx((1.0 / 3 + 2.0 / 3) / 2));
  CHECK(skipped == 1);
}

TEST_CASE("roc_auc_ovr: errors") {
  Matrix<double> s(3, 2);
  s.setRandom();
  CHECK_THROWS_AS(heed::roc_auc_ovr(s, labels({0, 1})), heed::ShapeError);
  CHECK_THROWS_AS(heed::roc_auc_ovr(s, labels({0, 1, 2})), heed::ValueError);
  CHECK_THROWS_AS(heed::roc_auc_ovr(s, labels({0, 0, 0})), heed::ValueError);  // no class usable
  CHECK_THROWS_AS(heed::roc_auc_ovr(Matrix<double>(3, 1), labels({0, 0, 0})), heed::ShapeError);
}
