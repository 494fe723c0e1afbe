// Checkpoint::load validates decoded values before assigning anything (scalars bound to
// integers, optimizer state), and entry names are checked and escaped in messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <heed/heed.hpp>

#include "io/scratch.hpp"
#include <limits>
#include <memory>

namespace fs = std::filesystem;
using heed::Matrix;

namespace {

std::string tmp(const std::string& name) { return heed_test::scratch(name).string(); }

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

// Rewrites the file at `path` with entry `name` replaced by `v` (a tensor) or by the 8 bytes
// of `v[0]` (a value).
void tamper(const std::string& path, const std::string& name, const std::vector<double>& v) {
  const heed::io::Entries entries = heed::io::read_file(path);
  RawFile out;
  for (const auto& [n, e] : entries) {
    if (n == name) {
      REQUIRE(v.size() == (e.is_tensor ? e.values.size() : 1));
      if (e.is_tensor)
        out.tensor(n, v, e.rows, e.cols);
      else
        out.bytes(n, std::string(reinterpret_cast<const char*>(v.data()), sizeof(double)));
    } else if (e.is_tensor) {
      out.tensor(n, e.values, e.rows, e.cols);
    } else {
      out.bytes(n, e.bytes);
    }
  }
  REQUIRE(entries.count(name) == 1);
  out.write(path);
}

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

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("Checkpoint::value refuses a stored double that an integer variable cannot hold") {
  const std::string path = tmp("int_values.heed");
  heed::Linear<double> lin(2, 2);
  int count = 5;
  std::uint8_t small = 7;
  std::int64_t big = 9;
  bool flag = true;
  auto ck = [&] {
    return heed::Checkpoint<double>().model(lin).value("count", count).value("small", small)
        .value("big", big).value("flag", flag);
  };
  ck().save(path);
  const Matrix<double> w = lin.weight();
  struct Case {
    const char* entry;
    double v;
    const char* shown;
  };
  for (const Case c : {Case{"train.count", 1e300, "1e+300"}, Case{"train.count", kNaN, "nan"},
                       Case{"train.count", -3e9, "-3e+09"}, Case{"train.count", 2.5, "2.5"},
                       Case{"train.count", kInf, "inf"}, Case{"train.count", 2147483648.0, "2147483648"},
                       Case{"train.small", 256, "256"}, Case{"train.small", -1, "-1"},
                       Case{"train.big", 0x1p63, "9223372036854775808"}, Case{"train.flag", 2, "2"}}) {
    ck().save(path);
    tamper(path, c.entry, {c.v});
    count = 0;
    small = 0;
    big = 0;
    flag = false;
    lin.weight().setZero();
    const std::string msg = message_of([&] { ck().load(path); });
    INFO(msg);
    CHECK(msg.find("load: '" + path + "': value '" + c.entry + "' = " + c.shown +
                   " is invalid: expected a whole number in [") != std::string::npos);
    // All or nothing: neither the values nor the model changed.
    CHECK(count == 0);
    CHECK(small == 0);
    CHECK(big == 0);
    CHECK(flag == false);
    CHECK(lin.weight().isZero());
    count = 5;
    small = 7;
    big = 9;
    flag = true;
    lin.weight() = w;
  }
  // The bounds themselves load.
  for (const double v : {2147483647.0, -2147483648.0}) {
    ck().save(path);
    tamper(path, "train.count", {v});
    ck().load(path);
    CHECK(count == static_cast<int>(v));
  }
  ck().save(path);
  tamper(path, "train.big", {-0x1p63});
  ck().load(path);
  CHECK(big == std::numeric_limits<std::int64_t>::min());
}

TEST_CASE("Checkpoint::value: a float variable keeps NaN and inf but refuses an overflowing value") {
  const std::string path = tmp("float_values.heed");
  float best = 0.5f;
  heed::Checkpoint<float>().value("best", best).save(path);
  for (const double v : {kNaN, kInf, -kInf, 3e38}) {
    tamper(path, "train.best", {v});
    heed::Checkpoint<float>().value("best", best).load(path);
    CHECK(std::isnan(best) == std::isnan(v));
    if (!std::isnan(v)) CHECK(best == static_cast<float>(v));
  }
  best = 0.5f;
  tamper(path, "train.best", {1e300});
  CHECK_THROWS_WITH_AS(heed::Checkpoint<float>().value("best", best).load(path),
                       doctest::Contains("value 'train.best' = 1e+300 is invalid: out of range"),
                       heed::FormatError);
  CHECK(best == 0.5f);
  double d = 0;
  heed::Checkpoint<double>().value("best", d).load(path);  // a double holds it
  CHECK(d == 1e300);
}

namespace {

// A model and an optimizer, saved once; then each bad entry is written into the file and the
// load must be refused with the entry named and nothing changed.
template <class T, class Opt, class Options>
void check_state_refused(const Options& options, const char* entry, double bad, const char* needle) {
  const std::string path = tmp("opt_state.heed");
  heed::Generator g(3);
  heed::Linear<T> lin(3, 2, true, g);
  Opt opt(lin.parameters(), options);
  for (auto& p : lin.parameters()) p.grad->setConstant(T(0.25));
  opt.step();
  opt.step();
  heed::Checkpoint<T>().model(lin).optimizer(opt).save(path);
  const auto entries = heed::io::read_file(path);
  REQUIRE(entries.count(entry) == 1);
  std::vector<double> v = entries.at(entry).values;
  v.back() = bad;
  tamper(path, entry, v);

  heed::Generator g2(4);
  heed::Linear<T> lin2(3, 2, true, g2);
  Opt opt2(lin2.parameters(), options);
  const Matrix<T> w2 = lin2.weight();
  std::vector<Matrix<T>> before;
  for (auto& [n, m] : opt2.state()) before.push_back(*m);
  const std::string msg = message_of([&] { heed::Checkpoint<T>().model(lin2).optimizer(opt2).load(path); });
  INFO(msg);
  CHECK(msg.find("load: '" + path + "': entry '" + std::string(entry) + "' is invalid: ") !=
        std::string::npos);
  CHECK(msg.find(needle) != std::string::npos);
  CHECK(lin2.weight() == w2);
  std::size_t i = 0;
  // .first/.second, not a structured binding: CHECK_MESSAGE's lambda cannot capture one with
  // clang < 16 (the tsan preset builds with clang 14).
  for (auto& e : opt2.state()) CHECK_MESSAGE(*e.second == before[i++], e.first);
  // The untampered values load, and a step after them is finite.
  heed::Checkpoint<T>().model(lin).optimizer(opt).save(path);
  heed::Checkpoint<T>().model(lin2).optimizer(opt2).load(path);
  opt2.step();
  CHECK(lin2.weight().allFinite());
}

}  // namespace

TEST_CASE_TEMPLATE("Checkpoint::optimizer refuses state that set_step_count/set_lr refuse or that makes step() NaN",
                   T, float, double) {
  using heed::AdamOptions;
  const AdamOptions<T> adam{.lr = T(0.01)};
  const AdamOptions<T> ams{.lr = T(0.01), .amsgrad = true};
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.step", -1, "Adam step count must be a whole number in [0, 2^53], got -1");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.step", 2.5, "got 2.5");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.step", kNaN, "got nan");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.step", 1e300, "step count");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.lr", kNaN, "Adam lr must be a finite value >= 0, got nan");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.lr", -0.5, "got -0.5");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.lr", kInf, "got inf");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.weight.exp_avg_sq", -1,
                                        "Adam exp_avg_sq must be finite and >= 0, got -1 at element 5");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.bias.exp_avg_sq", kNaN, "exp_avg_sq must be finite and >= 0");
  check_state_refused<T, heed::Adam<T>>(adam, "optimizer.bias.exp_avg", kInf, "Adam exp_avg must be finite, got inf");
  check_state_refused<T, heed::Adam<T>>(ams, "optimizer.weight.max_exp_avg_sq", -2, "max_exp_avg_sq must be finite and >= 0");
  check_state_refused<T, heed::AdamW<T>>(heed::AdamWOptions<T>{}, "optimizer.weight.exp_avg_sq", -1, "AdamW exp_avg_sq");
  // A double file's 1e300 is inf once converted to float: refused in float, valid in double.
  if constexpr (sizeof(T) == 4)
    check_state_refused<T, heed::Adam<T>>(adam, "optimizer.bias.exp_avg", 1e300, "must be finite, got inf");
  const heed::SGDOptions<T> sgd{.lr = T(0.1), .momentum = T(0.9)};
  check_state_refused<T, heed::SGD<T>>(sgd, "optimizer.weight.momentum_buffer", kNaN, "SGD momentum_buffer must be finite");
  check_state_refused<T, heed::SGD<T>>(sgd, "optimizer.step", -3, "SGD step count");
  const heed::RMSpropOptions<T> rms{.momentum = T(0.5), .centered = true};
  check_state_refused<T, heed::RMSprop<T>>(rms, "optimizer.weight.square_avg", -1, "RMSprop square_avg must be finite and >= 0");
  check_state_refused<T, heed::RMSprop<T>>(rms, "optimizer.weight.grad_avg", -kInf, "grad_avg must be finite");
  check_state_refused<T, heed::RMSprop<T>>(rms, "optimizer.bias.momentum_buffer", kNaN, "momentum_buffer must be finite");
}

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

TEST_CASE_TEMPLATE("scheduler and early-stopping counters are validated before loading", T, float, double) {
  const std::string path = tmp("sched_state.heed");
  heed::Linear<T> lin(2, 2);
  heed::SGD<T> opt(lin.parameters(), {.lr = T(0.1)});
  heed::StepLR<T> sched(opt, {.step_size = 2});
  heed::ReduceLROnPlateau<T> plateau(opt);
  heed::EarlyStopping<T> early;
  for (int e = 0; e < 3; ++e) {
    sched.step();
    plateau.step(T(1));
    early.step(T(1));
  }
  auto ck = [&](heed::StepLR<T>& s, heed::ReduceLROnPlateau<T>& p, heed::EarlyStopping<T>& es) {
    return heed::Checkpoint<T>().optimizer(s, "scheduler").optimizer(p, "plateau").optimizer(es, "early");
  };
  ck(sched, plateau, early).save(path);
  struct Case {
    const char* entry;
    double v;
    const char* needle;
  };
  const Case cases[] = {
      {"scheduler.last_epoch", 1e30, "StepLR last_epoch must be a whole number in [0, 2^53], got 1e+30"},
      {"scheduler.last_epoch", -1, "got -1"},
      {"scheduler.last_epoch", 2.5, "got 2.5"},
      {"plateau.cooldown_counter", kNaN, "ReduceLROnPlateau cooldown_counter must be a whole number"},
      {"plateau.best", kNaN, "ReduceLROnPlateau best must not be NaN"},
      {"early.best_epoch", -2, "EarlyStopping best_epoch must be a whole number in [-1, 2^53], got -2"},
      {"early.num_bad_epochs", kInf, "EarlyStopping num_bad_epochs"},
      {"early.best", kNaN, "EarlyStopping best must not be NaN"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.entry);
    ck(sched, plateau, early).save(path);
    tamper(path, c.entry, {c.v});
    heed::SGD<T> opt2(lin.parameters(), {.lr = T(0.1)});
    heed::StepLR<T> s2(opt2, {.step_size = 2});
    heed::ReduceLROnPlateau<T> p2(opt2);
    heed::EarlyStopping<T> e2;
    const std::string msg = message_of([&] { ck(s2, p2, e2).load(path); });
    CHECK(msg.find("entry '" + std::string(c.entry) + "' is invalid: ") != std::string::npos);
    CHECK(msg.find(c.needle) != std::string::npos);
    CHECK(s2.last_epoch() == 0);
    CHECK(e2.epochs() == 0);
    CHECK(e2.best_epoch() == -1);
  }
  // The untampered file loads.
  ck(sched, plateau, early).save(path);
  heed::SGD<T> opt3(lin.parameters(), {.lr = T(0.1)});
  heed::StepLR<T> s3(opt3, {.step_size = 2});
  heed::ReduceLROnPlateau<T> p3(opt3);
  heed::EarlyStopping<T> e3;
  ck(s3, p3, e3).load(path);
  CHECK(s3.last_epoch() == 3);
  CHECK(e3.epochs() == 3);
  CHECK(e3.best_epoch() == 0);
}

TEST_CASE("crc32: the IEEE check value, any split, every length and alignment against the byte-wise definition") {
  CHECK(heed::io::crc32("123456789", 9) == 0xCBF43926u);  // the standard check value
  CHECK(heed::io::crc32("", 0) == 0u);
  std::string s(300, '\0');
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 37 + 11);
  // The definition, one bit at a time.
  const auto slow = [](const char* p, std::size_t n) {
    std::uint32_t c = ~0u;
    for (std::size_t i = 0; i < n; ++i) {
      c ^= static_cast<unsigned char>(p[i]);
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
  };
  for (std::size_t off = 0; off < 8; ++off)
    for (std::size_t n = 0; n + off <= s.size(); n += 13) {
      CAPTURE(off);
      CAPTURE(n);
      REQUIRE(heed::io::crc32(s.data() + off, n) == slow(s.data() + off, n));
      const std::size_t half = n / 3;
      REQUIRE(heed::io::crc32(s.data() + off + half, n - half, heed::io::crc32(s.data() + off, half)) ==
              slow(s.data() + off, n));
    }
}
