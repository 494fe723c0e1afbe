#include <doctest/doctest.h>

#include <algorithm>
#include <heed/data/data_loader.hpp>
#include <set>
#include <vector>

using heed::ByteMatrix;
using heed::DataLoader;
using heed::Index;
using heed::Labels;
using heed::Matrix;

namespace {
// N samples of D bytes; sample i is tagged by byte i in column 0 and label i % 10, so a batch
// row tells which sample it came from.
struct Toy {
  ByteMatrix x;
  Labels y;
  Toy(Index n, Index d) : x(n, d), y(n) {
    for (Index i = 0; i < n; ++i) {
      for (Index j = 0; j < d; ++j) x(i, j) = static_cast<std::uint8_t>((i + j) % 256);
      y(i) = static_cast<int>(i % 10);
    }
  }
};

template <typename T>
std::vector<Index> epoch_order(DataLoader<T>& dl) {
  Matrix<T> x;
  Labels y;
  std::vector<Index> ids;
  dl.start_epoch();
  while (dl.next(x, y))
    for (Index r = 0; r < x.rows(); ++r) ids.push_back(static_cast<Index>(std::lround(x(r, 0) * 255)));
  return ids;
}
}  // namespace

TEST_CASE_TEMPLATE("DataLoader: batch count, sizes and drop_last", T, float, double) {
  Toy t(250, 4);
  DataLoader<T> a(t.x, t.y, {.batch_size = 100});
  CHECK(a.num_batches() == 3);
  CHECK(a.size() == 250);
  Matrix<T> x;
  Labels y;
  std::vector<Index> sizes;
  a.start_epoch();
  while (a.next(x, y)) {
    CHECK(y.size() == x.rows());
    CHECK(x.cols() == 4);
    sizes.push_back(x.rows());
  }
  CHECK(sizes == std::vector<Index>{100, 100, 50});
  CHECK_FALSE(a.next(x, y));  // stays exhausted until start_epoch

  DataLoader<T> b(t.x, t.y, {.batch_size = 100, .drop_last = true});
  CHECK(b.num_batches() == 2);
  sizes.clear();
  b.start_epoch();
  while (b.next(x, y)) sizes.push_back(x.rows());
  CHECK(sizes == std::vector<Index>{100, 100});

  DataLoader<T> c(t.x, t.y, {.batch_size = 50, .drop_last = true});
  CHECK(c.num_batches() == 5);  // exact multiple: nothing dropped
  CHECK(epoch_order(c).size() == 250);
}

TEST_CASE("DataLoader: every sample exactly once per epoch, reshuffled each epoch") {
  Toy t(200, 3);
  DataLoader<float> dl(t.x, t.y, {.batch_size = 32, .seed = 7});
  const auto e1 = epoch_order(dl), e2 = epoch_order(dl);
  for (const auto& e : {e1, e2}) {
    REQUIRE(e.size() == 200);
    std::vector<Index> sorted = e;
    std::sort(sorted.begin(), sorted.end());
    for (Index i = 0; i < 200; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
  }
  CHECK(e1 != e2);
  std::vector<Index> identity(200);
  for (Index i = 0; i < 200; ++i) identity[static_cast<std::size_t>(i)] = i;
  CHECK(e1 != identity);
}

TEST_CASE("DataLoader: labels follow their samples") {
  Toy t(97, 2);
  DataLoader<double> dl(t.x, t.y, {.batch_size = 10, .seed = 3});
  Matrix<double> x;
  Labels y;
  dl.start_epoch();
  int n = 0;
  while (dl.next(x, y))
    for (Index r = 0; r < x.rows(); ++r, ++n) CHECK(y(r) == std::lround(x(r, 0) * 255) % 10);
  CHECK(n == 97);
}

TEST_CASE("DataLoader: same seed same order, different seed different order, no shuffle") {
  Toy t(100, 1);
  DataLoader<float> a(t.x, t.y, {.batch_size = 16, .seed = 42}), b(t.x, t.y, {.batch_size = 16, .seed = 42}),
      c(t.x, t.y, {.batch_size = 16, .seed = 43});
  const auto oa = epoch_order(a), ob = epoch_order(b), oc = epoch_order(c);
  CHECK(oa == ob);
  CHECK(oa != oc);
  CHECK(epoch_order(a) == epoch_order(b));  // second epochs agree too

  DataLoader<float> s(t.x, t.y, {.batch_size = 16, .shuffle = false});
  const auto os = epoch_order(s);
  for (Index i = 0; i < 100; ++i) CHECK(os[static_cast<std::size_t>(i)] == i);
}

TEST_CASE_TEMPLATE("DataLoader: normalisation (byte / 255 - mean) / std", T, float, double) {
  ByteMatrix img(2, 3);
  img << 0, 255, 51, 128, 1, 204;
  Labels y(2);
  y << 1, 2;
  DataLoader<T> dl(img, y, {.batch_size = 2, .shuffle = false, .mean = T(0.5), .std = T(0.5)});
  Matrix<T> x;
  Labels yb;
  REQUIRE(dl.next(x, yb));  // next() starts the first epoch itself
  CHECK(x(0, 0) == doctest::Approx(-1.0));
  CHECK(x(0, 1) == doctest::Approx(1.0));
  CHECK(x(0, 2) == doctest::Approx(-0.6));  // 51/255 = 0.2
  CHECK(x(1, 0) == doctest::Approx((128 / 255.0 - 0.5) / 0.5));
  CHECK(x(1, 2) == doctest::Approx(0.6));  // 204/255 = 0.8
  CHECK(yb(0) == 1);
  CHECK(yb(1) == 2);
  // Matches the free function bit for bit.
  Matrix<T> z;
  heed::normalize(img, z, T(0.5), T(0.5));
  CHECK(z == x);
  CHECK(heed::normalized<T>(img) == (img.template cast<T>() / T(255)));
}

TEST_CASE("DataLoader: x and y are not reallocated between equal-size batches") {
  Toy t(300, 784);
  DataLoader<float> dl(t.x, t.y, {.batch_size = 100, .seed = 1});
  Matrix<float> x;
  Labels y;
  dl.start_epoch();
  REQUIRE(dl.next(x, y));
  const float* px = x.data();
  const int* py = y.data();
  while (dl.next(x, y)) {
    CHECK(x.data() == px);
    CHECK(y.data() == py);
  }
  dl.start_epoch();
  REQUIRE(dl.next(x, y));
  CHECK(x.data() == px);
}

TEST_CASE("DataLoader: transform hook sees every normalised batch") {
  Toy t(10, 2);
  int calls = 0;
  DataLoader<float> dl(t.x, t.y, {.batch_size = 4, .shuffle = false,
                                  .transform = [&](Matrix<float>& x, Labels& y) {
                                    ++calls;
                                    x.array() += 1;
                                    y.array() *= 0;
                                  }});
  Matrix<float> x;
  Labels y;
  REQUIRE(dl.next(x, y));
  CHECK(x(1, 0) == doctest::Approx(1 + 1 / 255.0));
  CHECK(y(1) == 0);
  while (dl.next(x, y)) {
  }
  CHECK(calls == 3);
}

TEST_CASE("DataLoader: invalid arguments") {
  Toy t(10, 2);
  Labels short_y(9);
  CHECK_THROWS_AS(DataLoader<float>(t.x, short_y), heed::ShapeError);
  CHECK_THROWS_AS(DataLoader<float>(t.x, t.y, {.batch_size = 0}), heed::ValueError);
  CHECK_THROWS_AS(DataLoader<float>(t.x, t.y, {.std = 0.0f}), heed::ValueError);
  ByteMatrix empty(0, 4);
  Labels empty_y(0);
  CHECK_THROWS_AS(DataLoader<float>(empty, empty_y), heed::ValueError);
  try {
    DataLoader<float> dl(t.x, short_y);
  } catch (const heed::ShapeError& e) {
    CHECK(std::string(e.what()).find("DataLoader: labels expected (10)") != std::string::npos);
    CHECK(std::string(e.what()).find("got (9)") != std::string::npos);
  }
}
