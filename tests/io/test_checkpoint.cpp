#include <doctest/doctest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <heed/io.hpp>
#include <heed/layers.hpp>
#include <heed/activations.hpp>

#include "io/scratch.hpp"
using heed_test::slurp;
using heed_test::spit;

namespace fs = std::filesystem;
using heed::Matrix;

namespace {

using heed_test::scratch;

template <typename T>
heed::Sequential<T> net(std::uint64_t seed, heed::Index hidden = 5) {
  heed::Generator g(seed);
  heed::Sequential<T> m;
  m.template emplace<heed::Linear<T>>(4, hidden, true, g);
  m.template emplace<heed::ReLU<T>>();
  m.template emplace<heed::LayerNorm<T>>(hidden);
  m.template emplace<heed::Linear<T>>(hidden, 3, true, g);
  return m;
}

template <typename T>
bool same_params(heed::Module<T>& a, heed::Module<T>& b) {
  auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (*pa[i].value != *pb[i].value) return false;
  return true;
}


}  // namespace

TEST_CASE_TEMPLATE("save/load round trip restores every parameter exactly", T, float, double) {
  const auto path = scratch("roundtrip.heed").string();
  auto a = net<T>(1), b = net<T>(2);
  CHECK(!same_params(a, b));
  heed::save(a, path);
  heed::load(b, path);
  CHECK(same_params(a, b));
}

TEST_CASE("a float checkpoint loads into a double model and back") {
  const auto pf = scratch("f.heed").string(), pd = scratch("d.heed").string();
  auto f = net<float>(3);
  auto d = net<double>(4);
  heed::save(f, pf);
  heed::load(d, pf);
  for (std::size_t i = 0; i < f.parameters().size(); ++i)
    CHECK(f.parameters()[i].value->cast<double>() == *d.parameters()[i].value);
  heed::save(d, pd);
  auto f2 = net<float>(5);
  heed::load(f2, pd);
  CHECK(same_params(f, f2));
}

TEST_CASE("corrupted, truncated and mis-versioned files are refused and the model is untouched") {
  const auto good = scratch("good.heed"), bad = scratch("bad.heed");
  auto a = net<float>(1);
  heed::save(a, good.string());
  const std::string img = slurp(good);
  auto victim = net<float>(9);
  auto before = net<float>(9);
  auto refused = [&](const std::string& bytes, const std::string& needle) {
    spit(bad, bytes);
    INFO(needle);
    CHECK_THROWS_AS(heed::load(victim, bad.string()), heed::FormatError);
    try {
      heed::load(victim, bad.string());
    } catch (const heed::FormatError& e) {
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
      CHECK(std::string(e.what()).find("bad.heed") != std::string::npos);
    }
    CHECK(same_params(victim, before));
  };
  // Truncation at many points, header and payload.
  for (std::size_t n : {std::size_t(0), std::size_t(7), std::size_t(31), std::size_t(32),
                        std::size_t(40), img.size() / 2, img.size() - 1})
    refused(img.substr(0, n), n < 32 ? "truncated" : "payload length");
  refused(img + "x", "payload length");
  // A flipped bit anywhere in the payload fails the checksum.
  for (std::size_t off : {std::size_t(32), std::size_t(45), img.size() / 2, img.size() - 1}) {
    std::string flipped = img;
    flipped[off] ^= 0x10;
    refused(flipped, "checksum");
  }
  std::string magic = img;
  magic[0] = 'X';
  refused(magic, "bad magic");
  std::string newer = img;
  newer[8] = 2;
  refused(newer, "newer");
  std::string scal = img;
  scal[12] = 3;
  refused(scal, "scalar size");
}

TEST_CASE("a file from another architecture is refused with the tensor's name") {
  const auto path = scratch("arch.heed").string();
  auto a = net<float>(1, 5);
  heed::save(a, path);
  auto wider = net<float>(1, 6);
  CHECK_THROWS_WITH_AS(heed::load(wider, path),
                       doctest::Contains("tensor 'model.0.weight' expected (6, 4), file has (5, 4)"),
                       heed::FormatError);
  heed::Sequential<float> shorter;
  shorter.emplace<heed::Linear<float>>(4, 5);
  CHECK_THROWS_WITH_AS(heed::load(shorter, path), doctest::Contains("'model.2.bias' that the model does not have"),
                       heed::FormatError);
  heed::Sequential<float> other;
  other.emplace<heed::Linear<float>>(4, 5);
  other.emplace<heed::Linear<float>>(5, 3);
  other.emplace<heed::Linear<float>>(3, 3);
  CHECK_THROWS_AS(heed::load(other, path), heed::FormatError);
  CHECK_THROWS_AS(heed::load(a, scratch("does-not-exist.heed").string()), heed::IoError);
}

TEST_CASE("a failed write (file size limit, as a full disk) leaves the previous file intact") {
  const auto path = scratch("keep.heed");
  auto a = net<float>(1, 64);
  heed::save(a, path.string());
  const std::string before = slurp(path);
  auto b = net<float>(2, 64);
  // Writes past 1 KiB now fail with EFBIG instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit small = old;
  small.rlim_cur = 1024;
  setrlimit(RLIMIT_FSIZE, &small);
  CHECK_THROWS_WITH_AS(heed::save(b, path.string()), doctest::Contains("is unchanged"), heed::IoError);
  setrlimit(RLIMIT_FSIZE, &old);
  CHECK(slurp(path) == before);
  for (const auto& e : fs::directory_iterator(path.parent_path()))
    CHECK(e.path().filename().string().find("keep.heed.heed-tmp.") == std::string::npos);
  auto c = net<float>(3, 64);
  heed::load(c, path.string());
  CHECK(same_params(a, c));
  CHECK_THROWS_AS(heed::save(a, "/nonexistent-dir/x.heed"), heed::IoError);
}

TEST_CASE("Checkpoint keeps scalars and generator states exactly") {
  const auto path = scratch("train.heed").string();
  auto m = net<double>(1);
  int epoch = 7;
  double best = 0.9812345678901234;
  heed::Generator g(42);
  g.uniform();
  heed::Checkpoint<double>().model(m).value("epoch", epoch).value("best", best).generator("shuffle", g).save(path);
  const double next = heed::Generator(g).uniform();
  int e2 = 0;
  double b2 = 0;
  heed::Generator g2(1);
  auto m2 = net<double>(2);
  heed::Checkpoint<double>().model(m2).value("epoch", e2).value("best", b2).generator("shuffle", g2).load(path);
  CHECK(e2 == 7);
  CHECK(b2 == best);
  CHECK(g2.uniform() == next);
  CHECK(same_params(m, m2));
}
