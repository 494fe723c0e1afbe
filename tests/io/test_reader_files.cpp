// The checkpoint reader opens only regular files, checks the header against the file's size
// before it reads or allocates the payload, and spends no memory on entries nothing binds;
// saving holds one copy of the file. (The IDX readers' special-file cases are in
// tests/data/test_idx.cpp.)
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <heed/heed.hpp>
#include <string>

#include "io/alloc_counter.hpp"
#include "io/scratch.hpp"

namespace fs = std::filesystem;
using heed::Matrix;

namespace {

std::string tmp(const std::string& name) { return heed_test::scratch(name).string(); }

template <class F>
std::string io_error_of(F&& f) {
  try {
    f();
  } catch (const heed::IoError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected heed::IoError, got: " << e.what());
    return {};
  }
  FAIL("no exception thrown");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A regression that opens a FIFO blocks forever; this turns that into a failed test: SIGALRM's
// default action ends the process, which ctest reports.
struct Watchdog {
  explicit Watchdog(unsigned seconds) { ::alarm(seconds); }
  ~Watchdog() { ::alarm(0); }
};

// A sparse file of `size` bytes starting with `head`.
void sparse_file(const std::string& path, const std::string& head, std::uint64_t size) {
  fs::remove(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, head.data(), head.size()) == static_cast<ssize_t>(head.size()));
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  ::close(fd);
}

std::string header(std::uint32_t scalar, std::uint64_t payload) {
  std::string h(heed::io::kMagic, 8);
  auto put = [&](auto v) { h.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(std::uint32_t{1});
  put(scalar);
  put(payload);
  put(std::uint32_t{0});
  put(std::uint32_t{0});
  return h;
}

}  // namespace

TEST_CASE("checkpoint reader: FIFOs, devices and directories are IoError, never a hang") {
  heed::Linear<float> lin(2, 2);
  const Matrix<float> w = lin.weight();
  const std::string fifo = tmp("reader.fifo");
  fs::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  {
    Watchdog dog(20);  // the old reader blocked here forever (no writer on the FIFO)
    const std::string m = io_error_of([&] { heed::load(lin, fifo); });
    CHECK(m == "load: '" + fifo + "': is a FIFO (named pipe), expected a regular file");
  }
  fs::remove(fifo);
  // The old reader read /dev/zero until std::bad_alloc.
  CHECK(io_error_of([&] { heed::load(lin, "/dev/zero"); }) ==
        "load: '/dev/zero': is a character device, expected a regular file");
  // ... and threw std::ios_base::failure for a directory.
  const std::string dir = tmp("reader_dir");
  fs::create_directories(dir);
  CHECK(io_error_of([&] { heed::load(lin, dir); }) ==
        "load: '" + dir + "': is a directory, expected a regular file");
  CHECK(contains(io_error_of([&] { heed::load(lin, tmp("no_such_file.heed")); }),
                 "cannot open: No such file or directory"));
  CHECK(lin.weight() == w);
}

TEST_CASE("checkpoint reader: a symlink to a checkpoint loads") {
  heed::Linear<double> a(3, 2), b(3, 2);
  const std::string path = tmp("reader_target.heed"), link = tmp("reader_link.heed");
  heed::save(a, path);
  fs::remove(link);
  fs::create_symlink(path, link);
  heed::load(b, link);
  CHECK(b.weight() == a.weight());
}

TEST_CASE("checkpoint reader: a huge file is refused from its header, without reading it") {
  heed::Linear<float> lin(2, 2);
  const std::uint64_t size = 512ull << 20;  // sparse: no disk space used
  const std::string path = tmp("reader_sparse.heed");
  // The old reader took 3.6 s and 963 MB to refuse this (it read the whole file first).
  sparse_file(path, "NOTHEED!", size);
  {
    heed_test::AllocPeak peak;
    CHECK_THROWS_WITH_AS(heed::load(lin, path),
                         ("load: '" + path + "': not a heed checkpoint (bad magic)").c_str(),
                         heed::FormatError);
    CHECK(peak.bytes() < (64u << 10));
  }
  // A valid header whose payload length disagrees with the file's size.
  sparse_file(path, header(4, 1000), size);
  {
    heed_test::AllocPeak peak;
    CHECK_THROWS_WITH_AS(heed::load(lin, path),
                         ("load: '" + path + "': payload length 1000 bytes in the header, but the file has " +
                          std::to_string(size - 32) + " (truncated or extended)").c_str(),
                         heed::FormatError);
    CHECK(peak.bytes() < (64u << 10));
  }
  fs::remove(path);
}

TEST_CASE("checkpoint reader: an entry count that cannot fit is refused before anything is sized") {
  // 16 bytes of payload cannot hold 2^40 entries (each takes at least 16 bytes).
  std::string payload;
  const std::uint64_t count = 1ull << 40;
  payload.append(reinterpret_cast<const char*>(&count), 8);
  payload.append(8, '\0');
  std::string img = header(8, payload.size());
  const std::uint32_t crc = heed::io::crc32(payload.data(), payload.size());
  std::memcpy(img.data() + 24, &crc, 4);
  img += payload;
  heed_test::AllocPeak peak;
  CHECK_THROWS_WITH_AS(heed::io::parse(img, "x"),
                       "load: 'x': entry count 1099511627776 cannot fit in 8 bytes",
                       heed::FormatError);
  CHECK(peak.bytes() < (64u << 10));
}

TEST_CASE("checkpoint reader: entries nothing binds cost no memory") {
  // 200,000 tiny entries in a namespace the model does not bind, plus the model's own.
  const std::string path = tmp("reader_many.heed");
  heed::Linear<float> lin(4, 3), back(4, 3);
  {
    heed::io::Writer<float> w;
    w.tensor("model.weight", lin.weight());
    w.tensor("model.bias", lin.bias());
    const Matrix<float> one = Matrix<float>::Ones(1, 1);
    for (int i = 0; i < 200000; ++i) w.tensor("extra.t" + std::to_string(i), one);
    w.write(path);
  }
  const auto file_size = static_cast<std::size_t>(fs::file_size(path));
  heed_test::AllocPeak peak;
  heed::load(back, path);
  CHECK(back.weight() == lin.weight());
  CHECK(back.bias() == lin.bias());
  // The file image plus 8 bytes per entry. The old reader decoded every entry into a map: about
  // 5x the file (545 MB for a 75 MB file of 3 M entries).
  INFO("file " << file_size << " bytes, peak " << peak.bytes());
  CHECK(peak.bytes() < file_size + 8 * 200000 + (256u << 10));
}

TEST_CASE("checkpoint save and load hold one copy of the file") {
  heed::Linear<double> big(1000, 500), back(1000, 500);  // 4 MB of weights
  const std::string path = tmp("reader_big.heed");
  std::size_t save_peak = 0, load_peak = 0;
  {
    heed_test::AllocPeak peak;
    heed::save(big, path);
    save_peak = peak.bytes();
  }
  const auto file_size = static_cast<std::size_t>(fs::file_size(path));
  {
    heed_test::AllocPeak peak;
    heed::load(back, path);
    load_peak = peak.bytes();
  }
  CHECK(back.weight() == big.weight());
  INFO("file " << file_size << ", save peak " << save_peak << ", load peak " << load_peak);
  // The old writer built the payload, then the payload with its count, then the whole image
  // (3x); the old reader held the image and every value again in double (2x, 3x for float).
  CHECK(save_peak < file_size + file_size / 8);
  CHECK(load_peak < file_size + file_size / 8);
  // Loading a float file into a double model decodes straight into the model too.
  heed::Linear<float> small(1000, 500);
  const std::string fpath = tmp("reader_big_float.heed");
  heed::save(small, fpath);
  const auto fsize = static_cast<std::size_t>(fs::file_size(fpath));
  heed_test::AllocPeak peak;
  heed::load(back, fpath);
  CHECK(peak.bytes() < fsize + fsize / 8);
  CHECK(back.weight() == small.weight().cast<double>());
}

TEST_CASE_TEMPLATE("empty tensors save and load (found by fuzzing: memcpy to a null pointer)", T, float, double) {
  // An empty Eigen matrix has data() == nullptr; the reader must not memcpy into it (UBSan in
  // the asan preset reports that, even for 0 bytes).
  const std::string path = tmp("reader_empty.heed");
  Matrix<T> empty(0, 3), also(3, 0), back(0, 3), back2(3, 0);
  heed::Checkpoint<T>().tensor("model.e", empty).tensor("model.f", also).save(path);
  heed::Checkpoint<T>().tensor("model.e", back).tensor("model.f", back2).load(path);
  CHECK(back.rows() == 0);
  CHECK(back2.cols() == 0);
  // And from a file of the other scalar type (the converting path).
  using U = std::conditional_t<sizeof(T) == 4, double, float>;
  Matrix<U> other(0, 3), other2(3, 0);
  heed::Checkpoint<U>().tensor("model.e", other).tensor("model.f", other2).save(path);
  heed::Checkpoint<T>().tensor("model.e", back).tensor("model.f", back2).load(path);
  CHECK(back.size() == 0);
}
