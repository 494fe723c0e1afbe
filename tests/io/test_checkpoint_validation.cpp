// Entry names are checked (no NUL or control characters) and escaped and cut in messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <heed/heed.hpp>
#include <limits>
#include <memory>

namespace fs = std::filesystem;
using heed::Matrix;

namespace {

std::string tmp(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "heed_test_io";
  fs::create_directories(dir);
  return (dir / name).string();
}

void put_bytes(std::string& out, const void* p, std::size_t n) {
  out.append(static_cast<const char*>(p), n);
}
template <class V>
void put(std::string& out, V v) {
  put_bytes(out, &v, sizeof v);
}

// A raw file image with double tensors and byte entries, names as given (no checks), so the
// tests can write what heed's Writer refuses to.
struct RawFile {
  std::string payload;
  std::uint64_t count = 0;
  void tensor(const std::string& name, const std::vector<double>& v, std::uint64_t rows,
              std::uint64_t cols) {
    head(0, name);
    put<std::uint64_t>(payload, rows);
    put<std::uint64_t>(payload, cols);
    put_bytes(payload, v.data(), v.size() * sizeof(double));
  }
  void bytes(const std::string& name, const std::string& b) {
    head(1, name);
    put<std::uint64_t>(payload, b.size());
    payload += b;
  }
  void head(std::uint32_t kind, const std::string& name) {
    put<std::uint32_t>(payload, kind);
    put<std::uint32_t>(payload, static_cast<std::uint32_t>(name.size()));
    payload += name;
    ++count;
  }
  void write(const std::string& path) const {
    std::string body;
    put<std::uint64_t>(body, count);
    body += payload;
    std::string img(heed::io::kMagic, 8);
    put<std::uint32_t>(img, heed::io::kFormatVersion);
    put<std::uint32_t>(img, 8);
    put<std::uint64_t>(img, body.size());
    put<std::uint32_t>(img, heed::io::crc32(body.data(), body.size()));
    put<std::uint32_t>(img, 0);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << img << body;
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const heed::FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception: ") + e.what();
  }
  return "no exception";
}

}  // namespace

TEST_CASE("entry names with NUL or control characters are refused on write") {
  const std::string path = tmp("bad_names.heed");
  fs::remove(path);
  Matrix<float> m = Matrix<float>::Ones(1, 2);
  heed::io::Writer<float> w;
  CHECK_THROWS_WITH_AS(w.tensor(std::string("model.a\0b", 9), m),
                       "save: entry name 'model.a\\x00b' has a NUL byte (byte \\x00) at offset 7",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(w.bytes("train.\x1b[2J", "x"),
                       "save: entry name 'train.\\x1b[2J' has a control character (byte \\x1b) at offset 6",
                       heed::ValueError);
  CHECK_THROWS_AS(w.tensor("a\x7f", m), heed::ValueError);
  CHECK_THROWS_AS(w.tensor("a\nb", m), heed::ValueError);
  CHECK_NOTHROW(w.tensor("model.weight \xc3\xa9", m));  // spaces and UTF-8 are names
  int epoch = 1;
  CHECK_THROWS_WITH_AS(heed::Checkpoint<float>().tensor("model.w", m).value("ep\toch", epoch).save(path),
                       ("save: '" + path + "': name 'train.ep\\x09och' has a control character "
                        "(byte \\x09) at offset 8").c_str(),
                       heed::ValueError);
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("entry names with NUL or control characters are refused on read, and shown escaped") {
  const std::string path = tmp("bad_names_read.heed");
  heed::Linear<double> lin(2, 2);
  const Matrix<double> w = lin.weight();
  auto load_msg = [&](const std::string& name) {
    RawFile f;
    f.tensor("model.weight", std::vector<double>(4, 1.0), 2, 2);
    f.tensor("model.bias", std::vector<double>(2, 1.0), 1, 2);
    f.bytes(name, "x");
    f.write(path);
    const std::string msg = message_of([&] { heed::load(lin, path); });
    CHECK(lin.weight() == w);
    return msg;
  };
  // The NUL no longer cuts the message: it reads to the end.
  std::string msg = load_msg(std::string("model.weight\0 is fine", 21));
  CHECK(msg == "load: '" + path + "': entry name 'model.weight\\x00 is fine' has a NUL byte (byte \\x00) at offset 12");
  CHECK(std::strlen(msg.c_str()) == msg.size());
  msg = load_msg("train.\x1b]0;owned\x07");
  CHECK(msg == "load: '" + path + "': entry name 'train.\\x1b]0;owned\\x07' has a control character (byte \\x1b) at offset 6");
  for (char c : msg) CHECK(static_cast<unsigned char>(c) >= 0x20);
  CHECK(load_msg("model.\x7f").find("has a control character (byte \\x7f)") != std::string::npos);
  // parse() alone refuses such a name too.
  CHECK_THROWS_AS(heed::io::read_file(path), heed::FormatError);
}

TEST_CASE("a huge entry name is cut in messages; bytes outside printable ASCII are escaped") {
  const std::string path = tmp("long_name.heed");
  heed::Linear<double> lin(2, 2);
  heed::save(lin, path);
  const std::string huge = "model." + std::string(1000000, 'a');
  RawFile f;
  f.tensor("model.weight", std::vector<double>(4, 1.0), 2, 2);
  f.tensor("model.bias", std::vector<double>(2, 1.0), 1, 2);
  f.bytes(huge, "x");
  f.write(path);
  std::string msg = message_of([&] { heed::load(lin, path); });
  CHECK(msg.size() < 400);
  CHECK(msg.find("has entry 'model." + std::string(194, 'a') + "...(1000006 bytes)' that the model does not have") !=
        std::string::npos);
  // A user-supplied name: a binding that the file lacks, and names bound twice.
  Matrix<double> m = Matrix<double>::Ones(2, 2);
  heed::save(lin, path);
  msg = message_of([&] { heed::Checkpoint<double>().tensor("model.\xff" + huge, m).load(path); });
  CHECK(msg.size() < 400);
  CHECK(msg.find("has no entry 'model.\\xffmodel.aaa") != std::string::npos);
  CHECK(msg.find("...(1000013 bytes)'") != std::string::npos);
  try {
    heed::Checkpoint<double>().tensor(huge, m).tensor(huge, m).save(path);
    FAIL("no exception");
  } catch (const heed::ValueError& e) {
    CHECK(std::string(e.what()).size() < 600);
    CHECK(std::string(e.what()).find("...(1000006 bytes)'") != std::string::npos);
  }
  // A backslash is escaped too, so an escaped byte cannot be forged.
  msg = message_of([&] { heed::Checkpoint<double>().tensor("model.a\\x00", m).load(path); });
  CHECK(msg.find("has no entry 'model.a\\x5cx00'") != std::string::npos);
}
