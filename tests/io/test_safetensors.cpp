// io::Safetensors and io::save_safetensors: a round trip, the fixture written by
// tests/io/safetensors_fixture.py (torch + struct + json), and one hand-built failing file per
// validation rule of include/heed/io/safetensors.hpp, each checking the error's type, that its
// message starts with the path, and a distinctive part of it.
#include <doctest/doctest.h>

#include "common/errors.hpp"
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <heed/heed.hpp>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "io/alloc_counter.hpp"
#include "io/scratch.hpp"

namespace fs = std::filesystem;
namespace io = heed::io;
using heed::Matrix;

namespace {

using heed_test::error_of;

std::string tmp(const std::string& name) { return heed_test::scratch(name).string(); }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::string u64le(std::uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
// A file image: the header's length, the header, the data.
std::string image(const std::string& header, const std::string& data) { return u64le(header.size()) + header + data; }

// A tensor entry's JSON: "name":{"dtype":..,"shape":[..],"data_offsets":[b,e]}.
std::string E(const std::string& name, const std::string& dtype, const std::string& shape, std::uint64_t b,
              std::uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}
const std::string A = E("a", "F32", "2", 0, 8);  // a valid entry over 8 bytes of data

// The FormatError that reading image(header, data) throws.
std::string load_error(const std::string& path, const std::string& header, const std::string& data) {
  heed_test::spit(path, image(header, data));
  return error_of<heed::FormatError>([&] { io::Safetensors s(path); });
}

void sparse_file(const std::string& path, const std::string& head, std::uint64_t size) {
  fs::remove(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, head.data(), head.size()) == static_cast<ssize_t>(head.size()));
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  ::close(fd);
}

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

struct Bad {
  std::string rule;
  std::string header;
  std::size_t data_bytes;
  const char* expect;
};

}  // namespace

TEST_CASE("safetensors: F16 and BF16 convert exactly (known bit patterns)") {
  CHECK(io::f16_to_float(0x3c00) == 1.0f);
  CHECK(io::f16_to_float(0xc100) == -2.5f);
  CHECK(io::f16_to_float(0x7bff) == 65504.0f);
  CHECK(io::f16_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(io::f16_to_float(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(io::f16_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(io::f16_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(io::f16_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(io::f16_to_float(0x7e00)));
  CHECK(bits(io::f16_to_float(0x8000)) == 0x80000000u);  // -0
  CHECK(bits(io::f16_to_float(0x0000)) == 0u);
  CHECK(bits(io::f16_to_float(0x8001)) == bits(-std::ldexp(1.0f, -24)));
  CHECK(io::bf16_to_float(0x3f80) == 1.0f);
  CHECK(io::bf16_to_float(0xc020) == -2.5f);
  CHECK(io::bf16_to_float(0x7f7f) == std::bit_cast<float>(0x7f7f0000u));
  CHECK(io::bf16_to_float(0x0001) == std::ldexp(1.0f, -133));  // smallest subnormal
  CHECK(io::bf16_to_float(0x7f80) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(io::bf16_to_float(0x7fc0)));
  CHECK(bits(io::bf16_to_float(0x8000)) == 0x80000000u);
}

TEST_CASE_TEMPLATE("safetensors: save and read back, bit-identical, with metadata", T, float, double) {
  Matrix<T> w(2, 3), b(1, 4), cube(2, 4);
  w << T(1), T(-2.5), T(1e-30), T(3), std::numeric_limits<T>::infinity(), T(-0.0);
  b << std::numeric_limits<T>::quiet_NaN(), T(0.1), T(-7), std::numeric_limits<T>::denorm_min();
  cube.setRandom();
  const Matrix<T> none(0, 3);
  const Matrix<T> one = Matrix<T>::Constant(1, 1, T(-0.75));
  const std::vector<std::int64_t> ids = {-1, 0, std::numeric_limits<std::int64_t>::max()};
  const std::string odd = "q\"uote\\back\nline\x01 \xc3\xa9\xf0\x9f\x99\x82";  // escaped on write
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "a \"b\"\t\xcf\x80"}};
  const std::string path = tmp("roundtrip.safetensors");
  io::save_safetensors(path,
                       {io::safetensors_entry("w", w), io::safetensors_entry("b", b, {4}),
                        io::safetensors_entry("cube", cube, {2, 2, 2}), io::safetensors_entry("none", none),
                        io::safetensors_entry(odd, b), io::safetensors_entry("s", one, {}),
                        {"ids", io::Dtype::I64, {3}, {reinterpret_cast<const char*>(ids.data()), 24}}},
                       meta);
  const std::string img = heed_test::slurp(path);
  std::uint64_t n = 0;
  std::memcpy(&n, img.data(), 8);
  CHECK(n % 8 == 0);  // the data buffer starts 8-aligned
  CHECK(img[8] == '{');
  CHECK(img.substr(8, 16) == "{\"__metadata__\":");
  CHECK(img[8 + n - 1] != '\t');

  const io::Safetensors f(path);
  const std::vector<std::string> names = {"b", "cube", "ids", "none", odd, "s", "w"};
  CHECK(f.names() == names);
  // The writer sorts by name, so file order is name order too.
  REQUIRE(f.entries().size() == 7);
  for (std::size_t k = 0; k < names.size(); ++k) CHECK(f.entries()[k].name == names[k]);
  CHECK(f.metadata() == meta);
  const io::Dtype want = std::is_same_v<T, float> ? io::Dtype::F32 : io::Dtype::F64;
  CHECK(f.dtype("w") == want);
  CHECK(f.shape("w") == std::vector<std::uint64_t>{2, 3});
  CHECK(f.shape("b") == std::vector<std::uint64_t>{4});
  CHECK(f.shape("cube") == std::vector<std::uint64_t>{2, 2, 2});
  CHECK(f.shape("s").empty());  // 0-D
  CHECK(f.shape("none") == std::vector<std::uint64_t>{0, 3});
  const auto same_bits = [](const Matrix<T>& x, const Matrix<T>& y) {
    return x.rows() == y.rows() && x.cols() == y.cols() &&
           std::memcmp(x.data(), y.data(), sizeof(T) * static_cast<std::size_t>(x.size())) == 0;
  };
  CHECK(same_bits(f.matrix<T>("w"), w));
  CHECK(same_bits(f.matrix<T>("b"), b));  // (4) -> (1, 4)
  CHECK(same_bits(f.matrix<T>("cube"), cube));  // (2, 2, 2) -> (2, 4)
  CHECK(same_bits(f.matrix<T>(odd), b));
  CHECK(same_bits(f.matrix<T>("s"), one));  // () -> (1, 1)
  CHECK(f.matrix<T>("none").rows() == 0);
  CHECK(f.matrix<T>("none").cols() == 3);
  CHECK(f.integers("ids") == ids);
  // The other precision converts (exact for float -> double).
  using U = std::conditional_t<std::is_same_v<T, float>, double, float>;
  CHECK(f.matrix<U>("cube") == cube.template cast<U>());

  // Deterministic: another entry order gives the same bytes.
  io::save_safetensors(path, {io::safetensors_entry("w", w), io::safetensors_entry("none", none),
                              io::safetensors_entry(odd, b), io::safetensors_entry("s", one, {}),
                              io::safetensors_entry("cube", cube, {2, 2, 2}),
                              {"ids", io::Dtype::I64, {3}, {reinterpret_cast<const char*>(ids.data()), 24}},
                              io::safetensors_entry("b", b, {4})},
                       meta);
  CHECK(heed_test::slurp(path) == img);
}

TEST_CASE("safetensors: padding makes the header a multiple of 8 for every name length") {
  const Matrix<float> m = Matrix<float>::Ones(1, 1);
  for (std::string name = "x"; name.size() <= 9; name += 'x') {
    const std::string path = tmp("pad.safetensors");
    io::save_safetensors(path, {io::safetensors_entry(name, m)});
    const std::string img = heed_test::slurp(path);
    std::uint64_t n = 0;
    std::memcpy(&n, img.data(), 8);
    CAPTURE(name);
    CHECK(n % 8 == 0);
    CHECK(img.size() == 8 + n + 4);
    CHECK(io::Safetensors(path).matrix<float>(name)(0, 0) == 1.0f);
  }
}

TEST_CASE_TEMPLATE("safetensors: the fixture written by safetensors_fixture.py (torch)", T, float, double) {
  const std::string path = std::string(HEED_TEST_DATA_DIR) + "/safetensors/fixture.safetensors";
  const io::Safetensors f(path);
  const std::vector<std::string> file_order = {"f32_matrix", "f64_vector", "f16_cube", "bf16_scalar", "bf16_cube",
                                               "i64_vector", "i32_matrix", "f32_scalar", "empty"};
  REQUIRE(f.entries().size() == file_order.size());
  for (std::size_t k = 0; k < file_order.size(); ++k) CHECK(f.entries()[k].name == file_order[k]);
  std::vector<std::string> sorted = file_order;
  std::sort(sorted.begin(), sorted.end());
  CHECK(f.names() == sorted);
  const auto by_name = f.entries_by_name();
  for (std::size_t k = 0; k < sorted.size(); ++k) CHECK(by_name[k]->name == sorted[k]);
  CHECK(f.metadata() == std::map<std::string, std::string>{
                            {"format", "pt"},
                            {"source", "heed"},
                            {"text", "pi \xcf\x80, e-acute \xc3\xa9, \"quoted\", emoji \xf0\x9f\x99\x82"}});
  CHECK(f.dtype("bf16_cube") == io::Dtype::BF16);
  CHECK(f.shape("bf16_scalar").empty());
  CHECK(f.shape("f16_cube") == std::vector<std::uint64_t>{2, 2, 2});

  Matrix<T> m(2, 3);
  m << T(1), T(-2.5), T(3.25), T(0.5), T(-0.0), T(0.001f);
  CHECK(f.matrix<T>("f32_matrix") == m);
  CHECK(std::signbit(f.matrix<T>("f32_matrix")(1, 1)));
  const Matrix<T> s = f.matrix<T>("f32_scalar");
  CHECK((s.rows() == 1 && s.cols() == 1 && s(0, 0) == T(42)));
  CHECK(f.matrix<T>("bf16_scalar")(0, 0) == T(-2.5));

  const T inf = std::numeric_limits<T>::infinity();
  const Matrix<T> h = f.matrix<T>("f16_cube");  // (2, 2, 2) -> (2, 4)
  REQUIRE((h.rows() == 2 && h.cols() == 4));
  CHECK(h(0, 0) == T(1));
  CHECK(h(0, 1) == T(-2.5));
  CHECK(h(0, 2) == T(65504));
  CHECK(h(0, 3) == std::ldexp(T(1), -24));
  CHECK(h(1, 0) == inf);
  CHECK(std::isnan(h(1, 1)));
  CHECK((h(1, 2) == 0 && std::signbit(h(1, 2))));
  CHECK(h(1, 3) == T(0.5));
  const Matrix<T> bf = f.matrix<T>("bf16_cube");
  CHECK(bf(0, 0) == T(1));
  CHECK(bf(0, 1) == T(-2.5));
  CHECK(bf(0, 2) == T(std::bit_cast<float>(0x7f7f0000u)));
  CHECK(bf(0, 3) == std::ldexp(T(1), -133));
  CHECK(bf(1, 0) == -inf);
  CHECK(std::isnan(bf(1, 1)));
  CHECK((bf(1, 2) == 0 && std::signbit(bf(1, 2))));
  CHECK(bf(1, 3) == T(0.5));

  CHECK(f.integers("i64_vector") ==
        std::vector<std::int64_t>{-1, std::int64_t{1} << 40, std::numeric_limits<std::int64_t>::max()});
  CHECK(f.integers("i32_matrix") == std::vector<std::int64_t>{-2147483648LL, 0, 7, 1, 2, 3});
  CHECK(f.matrix<T>("empty").size() == 0);

  if constexpr (std::is_same_v<T, double>) {
    const Matrix<double> v = f.matrix<double>("f64_vector");
    CHECK((v.rows() == 1 && v.cols() == 3));
    CHECK(v(0, 0) == 0.1);
    CHECK(v(0, 1) == -1e300);
  } else {
    // -1e300 has no float: an error naming the tensor and the element.
    const std::string msg = error_of<heed::ValueError>([&] { (void)f.matrix<float>("f64_vector"); });
    CHECK(starts_with(msg, path + ": tensor 'f64_vector' element 1 (-1e+300) is out of float's range"));
  }
}

TEST_CASE("safetensors: matrix shapes, F64 -> float range, inf and nan kept") {
  const std::string path = tmp("shapes.safetensors");
  const double vals[] = {1.5, std::numeric_limits<double>::infinity(), std::nan(""), -1e-320, 3.5e38};
  std::string data(reinterpret_cast<const char*>(vals), sizeof vals);
  heed_test::spit(path, image("{" + E("v", "F64", "4", 0, 32) + "," + E("big", "F64", "", 32, 40) + "," +
                                  E("z", "F32", "9223372036854775808,0", 40, 40) + "}",
                              data));
  const io::Safetensors f(path);
  const Matrix<float> v = f.matrix<float>("v");
  CHECK((v.rows() == 1 && v.cols() == 4));
  CHECK(v(0, 0) == 1.5f);
  CHECK(std::isinf(v(0, 1)));
  CHECK(std::isnan(v(0, 2)));
  CHECK(v(0, 3) == 0.0f);  // underflow rounds, it is not out of range
  CHECK(contains(error_of<heed::ValueError>([&] { (void)f.matrix<float>("big"); }),
                 "tensor 'big' element 0 (3.5e+38) is out of float's range"));
  CHECK(f.matrix<double>("big")(0, 0) == 3.5e38);
  // A valid zero-size tensor whose first extent does not fit an Eigen index.
  CHECK(contains(error_of<heed::ValueError>([&] { (void)f.matrix<float>("z"); }),
                 "tensor 'z' of shape (9223372036854775808, 0) is too large for a matrix"));
  CHECK(starts_with(error_of<heed::ValueError>([&] { (void)f.matrix<float>("nope"); }),
                    path + ": no tensor named 'nope'"));
  CHECK(contains(error_of<heed::ValueError>([&] { (void)f.integers("v"); }),
                 "tensor 'v' is F64, not an integer dtype (I64, I32)"));
  CHECK(contains(error_of<heed::ValueError>([&] { (void)f.dtype("nope"); }), "no tensor named 'nope'"));
  CHECK_FALSE(f.contains("nope"));
  CHECK(f.contains("z"));
}

TEST_CASE("safetensors: what the spec allows is accepted") {
  const std::string path = tmp("ok.safetensors");
  SUBCASE("no tensors, no data") {
    heed_test::spit(path, image("{}", ""));
    CHECK(io::Safetensors(path).names().empty());
  }
  SUBCASE("zero-size tensors at any boundary, an empty data buffer") {
    heed_test::spit(path, image("{" + E("z0", "F32", "0", 0, 0) + "," + A + "," + E("z8", "I64", "3,0", 8, 8) +
                                    "," + E("zz", "BF16", "0,0", 8, 8) + "}",
                                std::string(8, '\0')));
    const io::Safetensors f(path);
    CHECK(f.names().size() == 4);
    CHECK(f.integers("z8").empty());
    heed_test::spit(path, image("{" + E("z", "F16", "0", 0, 0) + "}", ""));
    CHECK(io::Safetensors(path).matrix<float>("z").cols() == 0);
  }
  SUBCASE("JSON whitespace between tokens, space padding after the object, empty metadata") {
    heed_test::spit(path, image("{ \"__metadata__\" : { } ,\n\t\"a\" :\r\n{\"dtype\": \"F32\", \"shape\": [ 2 ], "
                                "\"data_offsets\": [0, 8] } }      ",
                                std::string(8, '\0')));
    const io::Safetensors f(path);
    CHECK(f.metadata().empty());
    CHECK(f.shape("a") == std::vector<std::uint64_t>{2});
  }
  SUBCASE("every escape, raw multi-byte UTF-8, \\u0000") {
    heed_test::spit(path, image(R"J({"\"\\\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude42\u0000 )J"
                                "\xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82\x7f"
                                R"J(":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})J",
                                std::string(8, '\0')));
    const io::Safetensors f(path);
    REQUIRE(f.names().size() == 1);
    const std::string want = std::string("\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82") + '\0' +
                             " \xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82\x7f";
    CHECK(f.names()[0] == want);
  }
}

TEST_CASE("safetensors: a file refused from its header, before allocating (sparse files)") {
  const std::string path = tmp("sparse.safetensors");
  const std::uint64_t size = 512ull << 20;  // sparse: no disk space used
  {
    sparse_file(path, u64le(1ull << 40), size);
    heed_test::AllocPeak peak;
    const std::string msg = error_of<heed::FormatError>([&] { io::Safetensors s(path); });
    CHECK(msg == path + ": header length 1099511627776 exceeds the limit of 100000000 bytes");
    CHECK(peak.bytes() < (64u << 10));
  }
  {
    sparse_file(path, u64le(100'000'001), size);
    CHECK(contains(error_of<heed::FormatError>([&] { io::Safetensors s(path); }),
                   "header length 100000001 exceeds the limit"));
  }
  {
    sparse_file(path, u64le(100'000'000), 64ull << 20);  // within the limit, past the file
    heed_test::AllocPeak peak;
    const std::string msg = error_of<heed::FormatError>([&] { io::Safetensors s(path); });
    CHECK(msg == path + ": header length 100000000 needs 100000008 bytes, but the file has 67108864 (truncated)");
    CHECK(peak.bytes() < (64u << 10));
  }
  {
    heed_test::spit(path, std::string("\x10\0\0\0", 4));
    CHECK(error_of<heed::FormatError>([&] { io::Safetensors s(path); }) ==
          path + ": the file has 4 bytes, fewer than the 8-byte header length");
  }
  {
    const std::string dir = tmp("st_dir.safetensors");
    fs::create_directories(dir);
    CHECK(starts_with(error_of<heed::IoError>([&] { io::Safetensors s(dir); }), dir + ": is a directory"));
    CHECK(starts_with(error_of<heed::IoError>([&] { io::Safetensors s(dir + "/missing"); }), dir + "/missing: cannot open"));
  }
}

TEST_CASE("safetensors: header_only checks everything but the values, in memory bounded by the header") {
  const std::string path = tmp("header_only.safetensors");
  // A valid header for a 4 GiB tensor; the file is sparse, so nothing is written or read.
  const std::string h = "{" + E("w", "F32", "1073741824", 0, 4ull << 30) + "}";
  sparse_file(path, image(h, ""), 8 + h.size() + (4ull << 30));
  heed_test::AllocPeak peak;
  io::Safetensors f(path, io::header_only);
  CHECK(peak.bytes() < (64u << 10));
  CHECK_FALSE(f.has_data());
  CHECK(f.shape("w") == std::vector<std::uint64_t>{1073741824});
  CHECK(error_of<heed::ValueError>([&] { (void)f.bytes("w"); }) ==
        path + ": tensor 'w': the file was opened for its header only");
  CHECK(contains(error_of<heed::ValueError>([&] { (void)f.matrix<float>("w"); }), "opened for its header only"));
  // The tiling is still checked against the file's size.
  sparse_file(path, image(h, ""), 8 + h.size() + (4ull << 30) + 1);
  CHECK(contains(error_of<heed::FormatError>([&] { io::Safetensors g(path, io::header_only); }), "1 trailing bytes"));
  heed_test::spit(path, image("{" + A + "}", std::string(8, '\0')));
  CHECK(io::Safetensors(path).has_data());
}

TEST_CASE("safetensors: every malformed header is a FormatError naming the path and the problem") {
  const std::string E8 = E("a", "F32", "2", 0, 8);
  const std::string pre = "{\"a\":{\"dtype\":\"F32\",\"shape\":[";   // shape under test follows
  const std::string post = "],\"data_offsets\":[0,8]}}";
  const std::string name_pre = "{\"";                                 // a tensor name under test follows
  const std::string name_post = "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  const std::vector<Bad> cases = {
      // The JSON grammar.
      {"must begin with {", " {" + E8 + "}", 8, "header byte 0: the header must begin with '{' (0x7b), got byte 0x20"},
      {"empty header", "", 8, "the header must begin with '{' (0x7b), got the end of the header"},
      {"float", pre + "2.0" + post, 8, "tensor 'a' (header byte 30): a fraction or exponent: only non-negative integers are allowed"},
      {"exponent", pre + "2e0" + post, 8, "a fraction or exponent"},
      {"negative", pre + "-2" + post, 8, "expected a non-negative integer, got a negative number"},
      {"leading zero", pre + "02" + post, 8, "integer with a leading zero"},
      {"u64 overflow", pre + "18446744073709551616" + post, 8, "integer does not fit in 64 bits"},
      {"true", pre + "true" + post, 8, "got a literal (true, false and null are not allowed)"},
      {"null", "{\"a\":{\"dtype\":\"F32\",\"shape\":null,\"data_offsets\":[0,8]}}", 8,
       "expected an array of non-negative integers, got a literal"},
      {"false as metadata value", "{\"__metadata__\":{\"k\":false}," + E8 + "}", 8, "got a literal"},
      {"trailing comma in an array", pre + "2," + post, 8, "trailing comma before ']'"},
      {"trailing comma in an object", "{" + E8 + ",}", 8, "trailing comma before '}'"},
      {"comment", "{/* c */" + E8 + "}", 8, "got a comment (comments are not allowed)"},
      {"line comment", "{" + E8 + "// c\n}", 8, "got a comment"},
      {"control character", name_pre + "a\tb" + name_post, 8, "control character byte 0x09 in a string"},
      {"bad escape", name_pre + "a\\x" + name_post, 8, "invalid escape sequence in a string"},
      {"bad \\u hex", name_pre + "\\u12G4" + name_post, 8, "\\u escape needs 4 hex digits"},
      {"lone high surrogate", name_pre + "\\ud83d" + name_post, 8,
       "high surrogate escape not followed by a low surrogate escape"},
      {"high + non-low surrogate", name_pre + "\\ud83d\\u0041" + name_post, 8,
       "high surrogate escape not followed by a low surrogate escape"},
      {"lone low surrogate", name_pre + "\\ude42" + name_post, 8, "lone low surrogate escape"},
      {"overlong 2-byte", name_pre + "\xc0\xaf" + name_post, 8, "invalid UTF-8: an overlong encoding"},
      {"overlong 3-byte", name_pre + "\xe0\x80\xaf" + name_post, 8, "invalid UTF-8: an overlong encoding"},
      {"overlong 4-byte", name_pre + "\xf0\x80\x80\xaf" + name_post, 8, "invalid UTF-8: an overlong encoding"},
      {"encoded surrogate", name_pre + "\xed\xa0\x80" + name_post, 8, "invalid UTF-8: an encoded surrogate"},
      {"above U+10FFFF", name_pre + "\xf4\x90\x80\x80" + name_post, 8, "invalid UTF-8: a code point above U+10FFFF"},
      {"stray continuation", name_pre + "\x80" + name_post, 8, "invalid UTF-8: a continuation byte without a lead"},
      {"truncated sequence", name_pre + "\xe2\x82" + name_post, 8, "invalid UTF-8: a truncated sequence"},
      {"0xff", name_pre + "\xff" + name_post, 8, "invalid UTF-8: a byte that never occurs in UTF-8"},
      {"unterminated string", "{\"a", 0, "unterminated string"},
      {"missing colon", "{\"a\" 1}", 0, "expected ':' after a key, got a number"},
      {"missing comma", "{" + E8 + " " + E("b", "F32", "0", 8, 8) + "}", 8, "expected ',' or '}', got a string"},
      {"unclosed object", "{" + E8, 8, "expected ',' or '}', got the end of the header"},
      {"non-string key", "{1:{}}", 0, "expected a tensor name (a string), got a number"},
      {"nesting deeper than the grammar", pre + "[2]" + post, 8, "expected a non-negative integer, got an array"},
      {"100000 nested arrays (no recursion)", pre + std::string(100000, '[') + post, 8,
       "tensor 'a' (header byte 29): expected a non-negative integer, got an array"},
      {"newline after the object", "{" + E8 + "}\n", 8,
       "only spaces (0x20) may follow the header object, got byte 0x0a"},
      {"tab padding", "{" + E8 + "}  \t", 8, "only spaces (0x20) may follow the header object, got byte 0x09"},
      {"a second object", "{" + E8 + "} {}", 8, "only spaces (0x20) may follow the header object, got an object"},
      {"NUL padding", "{" + E8 + "}" + std::string(3, '\0'), 8, "got byte 0x00"},
      // Duplicate keys, at every level.
      {"duplicate tensor", "{" + E8 + "," + E("a", "F32", "2", 8, 16) + "}", 16, "duplicate tensor name 'a'"},
      {"duplicate tensor, spelled differently", "{" + E8 + "," + E("\\u0061", "F32", "2", 8, 16) + "}", 16,
       "duplicate tensor name 'a'"},
      {"duplicate entry key", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'a' (header byte 20): duplicate key \"dtype\""},
      {"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key \"__metadata__\""},
      {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
       "duplicate key 'k' in \"__metadata__\""},
      // The schema.
      {"metadata not an object", "{\"__metadata__\":[\"x\"]}", 0,
       "\"__metadata__\" must be an object of strings, got an array"},
      {"metadata value a number", "{\"__metadata__\":{\"k\":1}}", 0,
       "\"__metadata__\" value of 'k': expected a string, got a number"},
      {"metadata value an object", "{\"__metadata__\":{\"k\":{}}}", 0, "value of 'k': expected a string, got an object"},
      {"entry not an object", "{\"a\":[0,8]}", 8,
       "tensor 'a' (header byte 5): expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got an array"},
      {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 'a' (header byte 32): missing key \"data_offsets\""},
      {"missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing key \"dtype\""},
      {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing key \"shape\""},
      {"unknown key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"offsets\":[0,8]}}", 8,
       "tensor 'a' (header byte 32): unknown key \"offsets\" (expected dtype, shape, data_offsets)"},
      {"unsupported dtype U8", "{" + E("a", "U8", "8", 0, 8) + "}", 8,
       "tensor 'a' (header byte 18): dtype U8 is a safetensors dtype heed does not support (supported: F64, F32, F16, "
       "BF16, I64, I32)"},
      {"unsupported dtype BOOL", "{" + E("a", "BOOL", "8", 0, 8) + "}", 8, "dtype BOOL is a safetensors dtype heed does not support"},
      {"unsupported dtype F8_E4M3", "{" + E("a", "F8_E4M3", "8", 0, 8) + "}", 8,
       "dtype F8_E4M3 is a safetensors dtype heed does not support"},
      {"unknown dtype", "{" + E("a", "F128", "1", 0, 8) + "}", 8, "tensor 'a' (header byte 20): unknown dtype \"F128\" (not a safetensors dtype)"},
      {"unknown dtype, lower case", "{" + E("a", "f32", "2", 0, 8) + "}", 8, "unknown dtype \"f32\""},
      {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'a' (header byte 14): dtype: expected a string, got a number"},
      {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
       "expected an array of non-negative integers, got a number"},
      {"data_offsets of one", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
       "tensor 'a' (header byte 50): data_offsets must be [begin, end], got 1 integers"},
      {"data_offsets of three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8,
       "data_offsets must be [begin, end], got 3 integers"},
      {"begin > end", "{" + E("a", "F32", "0", 8, 0) + "}", 8, "tensor 'a': data_offsets [8, 0] have begin > end"},
      {"shape product overflow", "{" + E("a", "F32", "4294967296,4294967296", 0, 8) + "}", 8,
       "tensor 'a': shape (4294967296, 4294967296) of F32 overflows 64 bits"},
      {"dtype size overflow", "{" + E("a", "F32", "4611686018427387904", 0, 8) + "}", 8,
       "tensor 'a': shape (4611686018427387904,) of F32 overflows 64 bits"},
      {"overflow before a zero", "{" + E("a", "F32", "4294967296,4294967296,0", 0, 0) + "}", 0, "overflows 64 bits"},
      {"bytes != shape * size", "{" + E("a", "F32", "3", 0, 8) + "}", 8,
       "tensor 'a': shape (3,) of F32 needs 12 bytes, but data_offsets [0, 8] span 8"},
      {"bytes != shape * size (F16, 0-D)", "{" + E("a", "F16", "", 0, 4) + "}", 4,
       "tensor 'a': shape () of F16 needs 2 bytes, but data_offsets [0, 4] span 4"},
      // The tiling of the data buffer.
      {"first not at 0", "{" + E("a", "F32", "2", 4, 12) + "}", 12,
       "tensor 'a', the first by offset, begins at byte 4 of the data buffer, expected 0"},
      {"gap", "{" + E8 + "," + E("b", "F32", "2", 12, 20) + "}", 20,
       "tensor 'b' begins at byte 12, but the previous tensor 'a' ends at byte 8: a gap of 4 bytes"},
      {"overlap", "{" + E("b", "F32", "2", 4, 12) + "," + E8 + "}", 12,
       "tensor 'b' begins at byte 4, but the previous tensor 'a' ends at byte 8: they overlap by 4 bytes"},
      {"zero-size tensor inside another", "{" + E8 + "," + E("z", "F32", "0", 4, 4) + "}", 8,
       "tensor 'z' begins at byte 4, but the previous tensor 'a' ends at byte 8: they overlap by 4 bytes"},
      {"trailing bytes", "{" + E8 + "}", 12, "the tensors end at byte 8, but the data buffer has 12 bytes: 4 trailing bytes"},
      {"past the end", "{" + E8 + "}", 4, "tensor 'a' ends at byte 8, past the end of the 4-byte data buffer"},
      {"no tensors, some data", "{}", 4, "there are no tensors, but the data buffer has 4 bytes: 4 trailing bytes"},
      {"metadata only, some data", "{\"__metadata__\":{\"k\":\"v\"}}", 1, "there are no tensors"},
  };
  const std::string path = tmp("bad.safetensors");
  for (const Bad& c : cases) {
    CAPTURE(c.rule);
    const std::string msg = load_error(path, c.header, std::string(c.data_bytes, '\0'));
    CHECK(starts_with(msg, path + ": "));
    CHECK_MESSAGE(contains(msg, c.expect), msg);
  }
}

TEST_CASE("safetensors: save_safetensors refuses what it cannot write") {
  const std::string path = tmp("refused.safetensors");
  const Matrix<float> m = Matrix<float>::Zero(2, 2);
  const auto refused = [&](const std::vector<io::SafetensorsEntry>& e, const std::map<std::string, std::string>& meta = {}) {
    return error_of<heed::ValueError>([&] { io::save_safetensors(path, e, meta); });
  };
  CHECK(refused({io::safetensors_entry("", m)}) == path + ": save_safetensors: empty tensor name");
  CHECK(contains(refused({io::safetensors_entry("__metadata__", m)}), "\"__metadata__\" is reserved"));
  CHECK(contains(refused({io::safetensors_entry("w", m), io::safetensors_entry("v", m), io::safetensors_entry("w", m)}),
                 "duplicate tensor name 'w'"));
  CHECK(contains(refused({io::safetensors_entry("bad\xc0\xaf", m)}),
                 "tensor 'bad\\xc0\\xaf': name is not UTF-8: an overlong encoding at byte 3"));
  CHECK(contains(refused({io::safetensors_entry("w", m)}, {{"k", "\xed\xa0\x80"}}),
                 "metadata 'k' is not UTF-8: an encoded surrogate"));
  CHECK(contains(refused({{"w", io::Dtype::F32, {3}, {reinterpret_cast<const char*>(m.data()), 16}}}),
                 "tensor 'w': shape (3,) of F32 needs 12 bytes, got 16"));
  CHECK(contains(error_of<heed::ValueError>([&] { (void)io::safetensors_entry("w", m, {3}); }),
                 "shape (3,) does not hold the matrix's 4 elements"));
  CHECK_FALSE(fs::exists(path));
}
