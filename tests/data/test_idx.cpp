#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <heed/data/idx.hpp>
#include <heed/data/mnist.hpp>
#include <string>

#include "common/errors.hpp"
#include "idx_files.hpp"

using namespace idx_test;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("read_idx_images: reads header and pixels in row-major order") {
  const auto path = write_bytes("ok-images", image_bytes(3, 2, 4));
  const heed::IdxImages img = heed::read_idx_images(path);
  CHECK(img.rows == 2);
  CHECK(img.cols == 4);
  CHECK(img.size() == 3);
  REQUIRE(img.pixels.rows() == 3);
  REQUIRE(img.pixels.cols() == 8);
  CHECK(img.pixels(0, 0) == 0);
  CHECK(img.pixels(0, 7) == 7);
  CHECK(img.pixels(2, 5) == (2 * 7 + 5));
}

TEST_CASE("read_idx_labels: reads labels as int32") {
  const auto path = write_bytes("ok-labels", label_bytes({3, 0, 9, 1}));
  const heed::Labels y = heed::read_idx_labels(path);
  REQUIRE(y.size() == 4);
  CHECK(y(0) == 3);
  CHECK(y(1) == 0);
  CHECK(y(2) == 9);
  CHECK(y(3) == 1);
  // A label file with more classes than 10.
  const auto p2 = write_bytes("ok-labels-200", label_bytes({199, 5}));
  CHECK(heed::read_idx_labels(p2, 200)(0) == 199);
}

TEST_CASE("read_idx_images: bad magic names the file and both magics") {
  const auto path = write_bytes("bad-magic-images", label_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(path); });
  CHECK(contains(msg, "read_idx_images"));
  CHECK(contains(msg, "bad-magic-images"));
  CHECK(contains(msg, "bad magic 0x00000801"));
  CHECK(contains(msg, "expected 0x00000803 (IDX images)"));
}

TEST_CASE("read_idx_images: gzip-compressed file gets a hint") {
  const auto path = write_bytes("gz-images", {0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(path); });
  CHECK(contains(msg, "gunzip"));
}

TEST_CASE("read_idx_labels: bad magic") {
  const auto path = write_bytes("bad-magic-labels", image_bytes(1, 1, 1));
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_labels(path); });
  CHECK(contains(msg, "bad-magic-labels"));
  CHECK(contains(msg, "bad magic 0x00000803 expected 0x00000801 (IDX labels)"));
}

TEST_CASE("read_idx_images: truncated payload reports expected vs actual bytes") {
  auto b = image_bytes(3, 2, 4);  // 16 + 24 = 40 bytes
  b.resize(b.size() - 5);
  const auto path = write_bytes("truncated-images", b);
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(path); });
  CHECK(contains(msg, "truncated-images"));
  CHECK(contains(msg, "expected 40 bytes"));
  CHECK(contains(msg, "got 35"));
  CHECK(contains(msg, "truncated"));
}

TEST_CASE("read_idx_images: truncated header") {
  auto b = image_bytes(3, 2, 4);
  b.resize(10);
  const auto path = write_bytes("short-header", b);
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(path); });
  CHECK(contains(msg, "short-header"));
  CHECK(contains(msg, "truncated header"));
  CHECK(contains(msg, "got 10"));
}

TEST_CASE("read_idx_images: trailing bytes") {
  auto b = image_bytes(3, 2, 4);
  b.push_back(0);
  b.push_back(0);
  const auto path = write_bytes("trailing-images", b);
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(path); });
  CHECK(contains(msg, "trailing-images"));
  CHECK(contains(msg, "expected 40 bytes"));
  CHECK(contains(msg, "got 42"));
  CHECK(contains(msg, "2 trailing bytes"));
}

TEST_CASE("read_idx_labels: truncated and trailing") {
  auto b = label_bytes({1, 2, 3});
  b.pop_back();
  const auto p1 = write_bytes("truncated-labels", b);
  const auto m1 = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_labels(p1); });
  CHECK(contains(m1, "truncated-labels"));
  CHECK(contains(m1, "expected 11 bytes"));
  CHECK(contains(m1, "got 10"));
  b.push_back(1);
  b.push_back(1);
  const auto p2 = write_bytes("trailing-labels", b);
  const auto m2 = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_labels(p2); });
  CHECK(contains(m2, "1 trailing bytes"));
}

TEST_CASE("read_idx_images: zero and overflowing dimensions") {
  const auto p0 = write_bytes("zero-dim", image_bytes(0, 28, 28));
  const auto m0 = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(p0); });
  CHECK(contains(m0, "zero-dim"));
  CHECK(contains(m0, "count 0"));
  // 2^32-1 images of 2^31-1 x 2^31-1: the byte count does not fit in 64 bits.
  std::vector<std::uint8_t> b;
  put_be32(b, 0x803);
  put_be32(b, 0xFFFFFFFFu);
  put_be32(b, 0x7FFFFFFFu);
  put_be32(b, 0x7FFFFFFFu);
  const auto p1 = write_bytes("overflow-dim", b);
  const auto m1 = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(p1); });
  CHECK(contains(m1, "overflow"));
  // Huge but representable: rejected by the length check, without allocating 4 GB.
  std::vector<std::uint8_t> c;
  put_be32(c, 0x803);
  put_be32(c, 65536);
  put_be32(c, 256);
  put_be32(c, 256);
  const auto p2 = write_bytes("huge-dim", c);
  const auto m2 = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_images(p2); });
  CHECK(contains(m2, "expected 4294967312 bytes"));
}

TEST_CASE("read_idx_labels: label out of range names value, index and range") {
  const auto path = write_bytes("range-labels", label_bytes({1, 2, 10, 3}));
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::read_idx_labels(path); });
  CHECK(contains(msg, "range-labels"));
  CHECK(contains(msg, "label 10 at index 2 out of range [0, 10)"));
  CHECK_THROWS_AS(heed::read_idx_labels(path, 0), heed::ValueError);
  CHECK(heed::read_idx_labels(path, 11)(2) == 10);
}

TEST_CASE("read_idx: missing file and directory are IoError naming the path") {
  const auto missing = (scratch_dir() / "no-such-file").string();
  const auto m1 = heed_test::error_of<heed::IoError>([&] { heed::read_idx_images(missing); });
  CHECK(contains(m1, "no-such-file"));
  CHECK(contains(m1, "cannot open"));
  const auto m2 = heed_test::error_of<heed::IoError>([&] { heed::read_idx_labels(missing); });
  CHECK(contains(m2, "read_idx_labels"));
  const auto m3 = heed_test::error_of<heed::IoError>([&] { heed::read_idx_images(scratch_dir().string()); });
  CHECK(contains(m3, "directory"));
}

TEST_CASE("load_mnist: missing files point at scripts/fetch-mnist.sh") {
  const auto dir = scratch_dir() / "mnist-empty";
  fs::create_directories(dir);
  const auto msg = heed_test::error_of<heed::IoError>([&] { heed::load_mnist(dir.string()); });
  CHECK(contains(msg, "train-images-idx3-ubyte"));
  CHECK(contains(msg, "scripts/fetch-mnist.sh"));
}

namespace {
void write_mnist_like(const fs::path& dir, std::uint32_t n_train_img, std::uint32_t n_train_lab,
                      std::uint32_t side = 28) {
  fs::create_directories(dir);
  const auto name = dir.filename().string();
  auto w = [&](const char* f, const std::vector<std::uint8_t>& b) { write_bytes(name + "/" + f, b); };
  w("train-images-idx3-ubyte", image_bytes(n_train_img, side, side));
  w("train-labels-idx1-ubyte", label_bytes(std::vector<std::uint8_t>(n_train_lab, 4)));
  w("t10k-images-idx3-ubyte", image_bytes(2, side, side));
  w("t10k-labels-idx1-ubyte", label_bytes({7, 2}));
}
}  // namespace

TEST_CASE("load_mnist: small valid set, count mismatch, wrong image size") {
  const auto ok = scratch_dir() / "mnist-ok";
  write_mnist_like(ok, 5, 5);
  const heed::MnistData d = heed::load_mnist(ok.string());
  CHECK(d.train_images.rows() == 5);
  CHECK(d.train_images.cols() == 784);
  CHECK(d.test_labels(0) == 7);
  CHECK(d.test_labels(1) == 2);

  const auto bad = scratch_dir() / "mnist-mismatch";
  write_mnist_like(bad, 5, 4);
  const auto msg = heed_test::error_of<heed::FormatError>([&] { heed::load_mnist(bad.string()); });
  CHECK(contains(msg, "train-images-idx3-ubyte has 5 images"));
  CHECK(contains(msg, "train-labels-idx1-ubyte has 4 labels"));

  const auto small = scratch_dir() / "mnist-small";
  write_mnist_like(small, 3, 3, 8);
  const auto m2 = heed_test::error_of<heed::FormatError>([&] { heed::load_mnist(small.string()); });
  CHECK(contains(m2, "expected 28 x 28, got 8 x 8"));
}

TEST_CASE("read_idx: FIFOs and devices are IoError before they are read, never a hang") {
  const auto fifo = (scratch_dir() / "idx.fifo").string();
  fs::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  ::alarm(20);  // the old reader blocked in open() forever; SIGALRM ends the test run instead
  const auto m1 = heed_test::error_of<heed::IoError>([&] { heed::read_idx_images(fifo); });
  const auto m2 = heed_test::error_of<heed::IoError>([&] { heed::read_idx_labels(fifo); });
  ::alarm(0);
  fs::remove(fifo);
  CHECK(m1 == "read_idx_images: " + fifo + ": is a FIFO (named pipe), expected a regular file");
  CHECK(m2 == "read_idx_labels: " + fifo + ": is a FIFO (named pipe), expected a regular file");
  // The old reader opened /dev/zero and only then failed to take its size.
  CHECK(heed_test::error_of<heed::IoError>([&] { heed::read_idx_images("/dev/zero"); }) ==
        "read_idx_images: /dev/zero: is a character device, expected a regular file");
  const auto m3 = heed_test::error_of<heed::IoError>([&] { heed::read_idx_labels(scratch_dir().string()); });
  CHECK(contains(m3, "is a directory, expected a regular file"));
}
