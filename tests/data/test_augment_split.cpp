#include <doctest/doctest.h>

#include <algorithm>
#include <heed/data/augment.hpp>
#include <heed/data/normalize.hpp>
#include <heed/data/split.hpp>
#include <set>

using heed::Index;
using heed::Matrix;

namespace {
// Reference shift: out(r, c) = in(r - dy, c - dx) or background.
template <typename T>
Matrix<T> shifted(const Matrix<T>& img, Index h, Index w, Index dx, Index dy, T bg) {
  Matrix<T> out(1, h * w);
  for (Index r = 0; r < h; ++r)
    for (Index c = 0; c < w; ++c) {
      const Index sr = r - dy, sc = c - dx;
      out(0, r * w + c) = (sr >= 0 && sr < h && sc >= 0 && sc < w) ? img(0, sr * w + sc) : bg;
    }
  return out;
}
}  // namespace

TEST_CASE_TEMPLATE("random_shift: matches a reference shift for the drawn offsets", T, float, double) {
  const Index h = 5, w = 6, B = 64, k = 2;
  Matrix<T> x(B, h * w);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = T(i % 97 + 1);  // no pixel equals bg
  const Matrix<T> orig = x;
  heed::Generator g(11), replay(11);
  heed::random_shift(x, h, w, k, T(-1), g);
  std::set<std::pair<Index, Index>> seen;
  for (Index b = 0; b < B; ++b) {
    // Replays the documented draw order: dx then dy, each uniform in [-k, k].
    const Index dx = static_cast<Index>(replay.below(2 * k + 1)) - k;
    const Index dy = static_cast<Index>(replay.below(2 * k + 1)) - k;
    seen.insert({dx, dy});
    const Matrix<T> want = shifted<T>(orig.row(b), h, w, dx, dy, T(-1));
    CHECK(x.row(b) == want);
  }
  CHECK(seen.size() > 15);  // the 25 offsets are actually explored
}

TEST_CASE("random_shift: hand-checked 3x3 case and larger-than-image shifts") {
  Matrix<float> img(1, 9);
  img << 1, 2, 3, 4, 5, 6, 7, 8, 9;
  Matrix<float> want(1, 9);
  want << 0, 0, 0, 0, 1, 2, 0, 4, 5;  // dx = 1, dy = 1
  CHECK(shifted<float>(img, 3, 3, 1, 1, 0.0f) == want);
  // k = 0 is the identity; huge k mostly blanks the image but never writes out of bounds.
  heed::Generator g(1);
  Matrix<float> same = img;
  heed::random_shift(same, 3, 3, 0, 0.0f, g);
  CHECK(same == img);
  Matrix<float> many = img.replicate(50, 1);
  heed::random_shift(many, 3, 3, 10, -5.0f, g);
  CHECK(many.minCoeff() >= -5.0f);
  CHECK(many.maxCoeff() <= 9.0f);
}

TEST_CASE("random_shift: invalid arguments") {
  heed::Generator g(1);
  Matrix<float> x(2, 10);
  CHECK_THROWS_AS(heed::random_shift(x, 3, 3, 1, 0.0f, g), heed::ShapeError);
  CHECK_THROWS_AS(heed::random_shift(x, 2, 5, -1, 0.0f, g), heed::ValueError);
  CHECK_THROWS_AS(heed::random_shift(x, 0, 5, 1, 0.0f, g), heed::ValueError);
}

TEST_CASE("normalize: values, views of row blocks, errors") {
  heed::ByteMatrix b(3, 2);
  b << 0, 255, 51, 102, 153, 204;
  Matrix<double> x;
  heed::normalize(b.middleRows(1, 2), x, 0.1307, 0.3081);
  REQUIRE(x.rows() == 2);
  CHECK(x(0, 0) == doctest::Approx((0.2 - 0.1307) / 0.3081));
  CHECK(x(1, 1) == doctest::Approx((0.8 - 0.1307) / 0.3081));
  CHECK_THROWS_AS(heed::normalize(b, x, 0.0, 0.0), heed::ValueError);
  CHECK_THROWS_AS(heed::normalized<float>(b, std::nanf(""), 1.0f), heed::ValueError);
}

TEST_CASE("split_validation: disjoint, complete, seeded") {
  const Index n = 50;
  heed::ByteMatrix x(n, 2);
  heed::Labels y(n);
  for (Index i = 0; i < n; ++i) {
    x(i, 0) = static_cast<std::uint8_t>(i);
    x(i, 1) = static_cast<std::uint8_t>(2 * i);
    y(i) = static_cast<int>(i);
  }
  heed::ByteMatrix tx = x, vx, tx2 = x, vx2;
  heed::Labels ty = y, vy, ty2 = y, vy2;
  heed::split_validation(tx, ty, vx, vy, 10, 5);
  heed::split_validation(tx2, ty2, vx2, vy2, 10, 5);
  CHECK(vy == vy2);
  REQUIRE(tx.rows() == 40);
  REQUIRE(vx.rows() == 10);
  std::set<int> all;
  for (Index i = 0; i < 40; ++i) {
    all.insert(ty(i));
    CHECK(tx(i, 0) == ty(i));  // rows and labels stay paired
    CHECK(tx(i, 1) == 2 * ty(i));
    if (i) CHECK(ty(i) > ty(i - 1));  // training rows keep their order
  }
  for (Index i = 0; i < 10; ++i) {
    all.insert(vy(i));
    CHECK(vx(i, 0) == vy(i));
  }
  CHECK(all.size() == 50);
  heed::ByteMatrix tx3 = x, vx3;
  heed::Labels ty3 = y, vy3;
  heed::split_validation(tx3, ty3, vx3, vy3, 10, 6);
  CHECK(vy3 != vy);
  CHECK_THROWS_AS(heed::split_validation(tx3, ty3, vx3, vy3, 40, 1), heed::ValueError);
  heed::Labels bad(3);
  CHECK_THROWS_AS(heed::split_validation(tx3, bad, vx3, vy3, 1, 1), heed::ShapeError);
}
