// Loads the real MNIST files if present: $HEED_MNIST_DIR, else <repo>/data/mnist found
// relative to this source file. Skipped (with a message) when absent.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <heed/data/mnist.hpp>
#include <heed/data/normalize.hpp>

namespace {
std::filesystem::path mnist_dir() {
  if (const char* env = std::getenv("HEED_MNIST_DIR")) return env;
  return std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "data" / "mnist";
}
}  // namespace

TEST_CASE("load_mnist: the real files") {
  const auto dir = mnist_dir();
  if (!std::filesystem::exists(dir / "train-images-idx3-ubyte")) {
    MESSAGE("skipped: no MNIST in " << dir.string() << " (run scripts/fetch-mnist.sh)");
    return;
  }
  const heed::MnistData d = heed::load_mnist(dir.string());
  REQUIRE(d.train_images.rows() == 60000);
  REQUIRE(d.train_images.cols() == 784);
  REQUIRE(d.train_labels.size() == 60000);
  REQUIRE(d.test_images.rows() == 10000);
  REQUIRE(d.test_labels.size() == 10000);
  const int train_first[] = {5, 0, 4, 1, 9}, test_first[] = {7, 2, 1, 0, 4};
  for (int i = 0; i < 5; ++i) {
    CHECK(d.train_labels(i) == train_first[i]);
    CHECK(d.test_labels(i) == test_first[i]);
  }
  // Every class present in known proportions: the test set has 980 zeros and 1135 ones.
  CHECK((d.test_labels.array() == 0).count() == 980);
  CHECK((d.test_labels.array() == 1).count() == 1135);
  // Background is black, strokes reach 255; the pixel mean is the well-known 0.1307 * 255.
  CHECK(d.train_images(0, 0) == 0);
  CHECK(d.train_images.maxCoeff() == 255);
  const auto x = heed::normalized<double>(d.train_images);
  CHECK(x.mean() == doctest::Approx(0.1307).epsilon(0.001));
}
