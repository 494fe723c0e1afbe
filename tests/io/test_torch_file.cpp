// io::TorchFile: the fixtures torch 1.13 wrote (tests/io/torch_fixture.py), values, shapes
// and dtypes checked exactly, the shared views not copied; then one failing file per rule of
// include/heed/io/torch_file.hpp, each built from a good fixture (its entries unpacked, edited
// and zipped again here, so the CRCs are right unless the rule is the CRC), each checking the
// error's type, that its message starts with the path, and a distinctive part of it.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <heed/heed.hpp>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "io/scratch.hpp"

namespace fs = std::filesystem;
namespace io = heed::io;
using heed::Matrix;

namespace {

using heed_test::error_of;
using namespace std::string_literals;

std::string fixture(const std::string& name) { return std::string(HEED_TEST_DATA_DIR) + "/torch/" + name; }
std::string tmp(const std::string& name) { return heed_test::scratch(name).string(); }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::uint32_t rd32(const std::string& s, std::size_t at) {
  std::uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
std::uint16_t rd16(const std::string& s, std::size_t at) {
  std::uint16_t v;
  std::memcpy(&v, s.data() + at, 2);
  return v;
}
template <class V>
void put(std::string& out, V v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

struct Entry {
  std::string name, bytes;
  std::uint16_t method = 0, flags = 0;
};
using Zip = std::vector<Entry>;

// A good fixture's entries (trusting: its end record has no comment and no zip64).
Zip unzip(const std::string& img) {
  const std::size_t eocd = img.size() - 22;
  REQUIRE(rd32(img, eocd) == 0x06054b50u);
  const std::size_t n = rd16(img, eocd + 10);
  std::size_t p = rd32(img, eocd + 16);
  Zip out;
  for (std::size_t k = 0; k < n; ++k) {
    REQUIRE(rd32(img, p) == 0x02014b50u);
    const std::size_t nlen = rd16(img, p + 28), xlen = rd16(img, p + 30), clen = rd16(img, p + 32);
    const std::size_t size = rd32(img, p + 24), local = rd32(img, p + 42);
    const std::size_t data = local + 30 + rd16(img, local + 26) + rd16(img, local + 28);
    out.push_back({img.substr(p + 46, nlen), img.substr(data, size)});
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

// A stored zip of `es` (no data descriptors, no zip64).
std::string zip(const Zip& es) {
  std::string out, cd;
  for (const Entry& e : es) {
    const auto off = static_cast<std::uint32_t>(out.size());
    const std::uint32_t crc = io::crc32(e.bytes.data(), e.bytes.size());
    const auto size = static_cast<std::uint32_t>(e.bytes.size());
    const auto nlen = static_cast<std::uint16_t>(e.name.size());
    put<std::uint32_t>(out, 0x04034b50);
    for (std::uint16_t v : {std::uint16_t{20}, e.flags, e.method, std::uint16_t{0}, std::uint16_t{0x21}}) put(out, v);
    for (std::uint32_t v : {crc, size, size}) put(out, v);
    put(out, nlen);
    put<std::uint16_t>(out, 0);
    out += e.name + e.bytes;
    put<std::uint32_t>(cd, 0x02014b50);
    for (std::uint16_t v : {std::uint16_t{20}, std::uint16_t{20}, e.flags, e.method, std::uint16_t{0}, std::uint16_t{0x21}})
      put(cd, v);
    for (std::uint32_t v : {crc, size, size}) put(cd, v);
    for (std::uint16_t v : {nlen, std::uint16_t{0}, std::uint16_t{0}, std::uint16_t{0}, std::uint16_t{0}}) put(cd, v);
    put<std::uint32_t>(cd, 0);
    put(cd, off);
    cd += e.name;
  }
  const auto cd_off = static_cast<std::uint32_t>(out.size());
  out += cd;
  put<std::uint32_t>(out, 0x06054b50);
  for (std::uint16_t v : {std::uint16_t{0}, std::uint16_t{0}, static_cast<std::uint16_t>(es.size()),
                          static_cast<std::uint16_t>(es.size())})
    put(out, v);
  put(out, static_cast<std::uint32_t>(cd.size()));
  put(out, cd_off);
  put<std::uint16_t>(out, 0);
  return out;
}

Entry& entry(Zip& z, const std::string& suffix) {
  for (Entry& e : z)
    if (e.name.size() >= suffix.size() && e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return e;
  FAIL("no entry " << suffix);
  return z[0];
}
// s with the one occurrence of `from` replaced by `to`.
std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const std::size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(s.find(from, at + 1) == std::string::npos);
  return s.replace(at, from.size(), to);
}

Zip views() { return unzip(heed_test::slurp(fixture("views.pt"))); }
// views.pt with data.pkl replaced.
Zip with_pickle(const std::string& pkl) {
  Zip z = views();
  entry(z, "/data.pkl").bytes = pkl;
  return z;
}
std::string views_pickle() {
  Zip z = views();
  return entry(z, "/data.pkl").bytes;
}
const std::string P2 = std::string("\x80\x02", 2);  // PROTO 2

// The error (of type E) that reading the image `img` throws; its message starts with the path.
template <class E = heed::FormatError>
std::string error_for(const std::string& img) {
  const std::string path = tmp("bad.pt");
  heed_test::spit(path, img);
  const std::string msg = error_of<E>([&] { io::TorchFile f(path); });
  CHECK(starts_with(msg, path + ": "));
  return msg;
}

template <typename T>
Matrix<T> mat(Eigen::Index r, Eigen::Index c, std::vector<double> v) {
  Matrix<T> m(r, c);
  for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<T>(v[static_cast<std::size_t>(k)]);
  return m;
}

// a = arange(24.).reshape(4, 6) and its views.
template <typename T>
void check_views(const io::TorchFile& f) {
  CHECK(f.names() == std::vector<std::string>{"a", "col", "exp", "row", "rows", "t"});
  Matrix<T> a(4, 6);
  for (int k = 0; k < 24; ++k) a(k / 6, k % 6) = T(k);
  CHECK(f.shape("a") == std::vector<std::uint64_t>{4, 6});
  CHECK(f.matrix<T>("a") == a);
  CHECK(f.shape("row") == std::vector<std::uint64_t>{6});
  CHECK(f.matrix<T>("row") == Matrix<T>(a.row(2)));
  CHECK(f.shape("rows") == std::vector<std::uint64_t>{2, 6});
  CHECK(f.matrix<T>("rows") == Matrix<T>(a.middleRows(1, 2)));
  CHECK(f.shape("col") == std::vector<std::uint64_t>{4});
  CHECK(f.matrix<T>("col") == Matrix<T>(a.col(1).transpose()));
  CHECK(f.shape("t") == std::vector<std::uint64_t>{6, 4});
  CHECK(f.matrix<T>("t") == Matrix<T>(a.transpose()));
  CHECK(f.shape("exp") == std::vector<std::uint64_t>{5});
  CHECK(f.matrix<T>("exp") == Matrix<T>::Ones(1, 5));
  // The contiguous views are not copied: they point into a's bytes (one storage).
  const std::string_view A = f.bytes("a"), row = f.bytes("row"), rows = f.bytes("rows");
  CHECK(A.size() == 96);
  CHECK(row.data() == A.data() + 12 * 4);
  CHECK(rows.data() == A.data() + 6 * 4);
  CHECK(row.size() == 24);
  CHECK(rows.size() == 48);
  // The strided ones are gathered outside it.
  for (const char* n : {"col", "t", "exp"}) {
    const std::string_view b = f.bytes(n);
    CAPTURE(n);
    CHECK((b.data() >= A.data() + A.size() || b.data() + b.size() <= A.data()));
  }
  CHECK(f.skipped().empty());
}

template <typename T>
void check_module(const io::TorchFile& f, const std::string& prefix) {
  CHECK(f.shape(prefix + "fc.weight") == std::vector<std::uint64_t>{2, 3});
  CHECK(f.matrix<T>(prefix + "fc.weight") == mat<T>(2, 3, {-0.5, -0.25, 0, 0.25, 0.5, 0.75}));
  CHECK(f.shape(prefix + "fc.bias") == std::vector<std::uint64_t>{2});
  CHECK(f.matrix<T>(prefix + "fc.bias") == mat<T>(1, 2, {0.25, -0.75}));
  CHECK(f.matrix<T>(prefix + "norm.weight") == mat<T>(1, 2, {1.5, -2}));
  CHECK(f.matrix<T>(prefix + "norm.bias") == mat<T>(1, 2, {0.125, 0}));
  for (const auto& e : f.entries()) CHECK(e.dtype == io::Dtype::F32);
}

}  // namespace

TEST_CASE_TEMPLATE("torch: a module's state_dict (with _metadata) and its named_parameters", T, float, double) {
  for (const char* name : {"module.pt", "params.pt"}) {
    CAPTURE(name);
    const io::TorchFile f(fixture(name));
    const io::TensorFile& base = f;  // read through the base class, as load_weights will
    CHECK(std::string(base.format()) == "torch.save");
    CHECK(f.path() == fixture(name));
    REQUIRE(f.entries().size() == 4);
    const std::vector<std::string> order = {"fc.weight", "fc.bias", "norm.weight", "norm.bias"};
    for (std::size_t k = 0; k < 4; ++k) CHECK(f.entries()[k].name == order[k]);  // the state_dict's order
    check_module<T>(f, "");
    CHECK(f.skipped().empty());  // _metadata is an attribute (BUILD), not an item
    CHECK(f.metadata().empty());
  }
}

TEST_CASE_TEMPLATE("torch: six dtypes, exact values, 0-D and empty tensors", T, float, double) {
  const io::TorchFile f(fixture("dtypes.pt"));
  CHECK(f.dtype("f32") == io::Dtype::F32);
  CHECK(f.dtype("f64") == io::Dtype::F64);
  CHECK(f.dtype("f16") == io::Dtype::F16);
  CHECK(f.dtype("bf16") == io::Dtype::BF16);
  CHECK(f.dtype("i64") == io::Dtype::I64);
  CHECK(f.dtype("i32") == io::Dtype::I32);
  CHECK(f.matrix<T>("f32") == mat<T>(1, 3, {1, -2.5, 3.25}));
  const T inf = std::numeric_limits<T>::infinity();
  const Matrix<T> h = f.matrix<T>("f16");
  REQUIRE((h.rows() == 2 && h.cols() == 4));
  CHECK(h(0, 0) == T(1));
  CHECK(h(0, 1) == T(-2.5));
  CHECK(h(0, 2) == T(65504));
  CHECK(h(0, 3) == std::ldexp(T(1), -24));
  CHECK(h(1, 0) == inf);
  CHECK(std::isnan(h(1, 1)));
  CHECK((h(1, 2) == 0 && std::signbit(h(1, 2))));
  CHECK(h(1, 3) == T(0.5));
  const Matrix<T> bf = f.matrix<T>("bf16");
  REQUIRE((bf.rows() == 2 && bf.cols() == 4));
  CHECK(bf(0, 0) == T(1));
  CHECK(bf(0, 1) == T(-2.5));
  CHECK(bf(0, 2) == T(std::bit_cast<float>(0x7f7f0000u)));
  CHECK(bf(0, 3) == std::ldexp(T(1), -133));
  CHECK(bf(1, 0) == -inf);
  CHECK(std::isnan(bf(1, 1)));
  CHECK((bf(1, 2) == 0 && std::signbit(bf(1, 2))));
  CHECK(bf(1, 3) == T(0.5));
  CHECK(f.integers("i64") == std::vector<std::int64_t>{-1, std::int64_t{1} << 40, std::numeric_limits<std::int64_t>::max()});
  CHECK(f.shape("i32") == std::vector<std::uint64_t>{2, 3});
  CHECK(f.integers("i32") == std::vector<std::int64_t>{-2147483648LL, 0, 7, 1, 2, 3});
  CHECK(f.shape("scalar").empty());
  CHECK(f.matrix<T>("scalar") == mat<T>(1, 1, {42}));
  CHECK(f.shape("empty") == std::vector<std::uint64_t>{0, 3});
  CHECK(f.matrix<T>("empty").size() == 0);
  CHECK(f.bytes("empty").empty());
  if constexpr (std::is_same_v<T, double>) {
    CHECK(f.matrix<double>("f64") == mat<double>(1, 3, {0.1, -1e300, 3}));
  } else {
    CHECK(contains(error_of<heed::ValueError>([&] { (void)f.matrix<float>("f64"); }),
                   "tensor 'f64' element 1 (-1e+300) is out of float's range"));
  }
}

TEST_CASE_TEMPLATE("torch: views of one storage: shared ones not copied, strided ones gathered", T, float, double) {
  check_views<T>(io::TorchFile(fixture("views.pt")));
}

TEST_CASE_TEMPLATE("torch: byteorder and serialization_id (newer torch), zip64 local and full", T, float, double) {
  for (const char* name : {"newer.pt", "zip64_forced.pt", "zip64_full.pt"}) {
    CAPTURE(name);
    check_views<T>(io::TorchFile(fixture(name)));
  }
}

TEST_CASE_TEMPLATE("torch: a nested checkpoint, flattened with '.', scalars skipped", T, float, double) {
  const io::TorchFile f(fixture("checkpoint.pt"));
  check_module<T>(f, "model.");
  const std::vector<std::string> order = {"model.fc.weight", "model.fc.bias", "model.norm.weight", "model.norm.bias",
                                          "optimizer.state.0.momentum_buffer", "optimizer.state.1.momentum_buffer",
                                          "optimizer.state.2.momentum_buffer", "optimizer.state.3.momentum_buffer"};
  REQUIRE(f.entries().size() == order.size());
  for (std::size_t k = 0; k < order.size(); ++k) CHECK(f.entries()[k].name == order[k]);
  // Int keys in the optimizer's state; every gradient was 0.5, so every buffer is.
  CHECK(f.matrix<T>("optimizer.state.0.momentum_buffer") == Matrix<T>::Constant(2, 3, T(0.5)));
  CHECK(f.matrix<T>("optimizer.state.3.momentum_buffer") == Matrix<T>::Constant(1, 2, T(0.5)));
  CHECK(f.skipped() == std::vector<std::string>{"optimizer.param_groups", "epoch", "lr", "name", "flags"});
}

TEST_CASE("torch: accepted edge cases (nesting at the limit, tensors in lists skipped, empty dict)") {
  const std::string path = tmp("ok.pt");
  SUBCASE("dicts nested 100 deep") {
    std::string p = P2 + "}";
    for (int k = 0; k < 99; ++k) p += "X\x01\x00\x00\x00k}"s;
    p += std::string(99, 's') + ".";
    heed_test::spit(path, zip(with_pickle(p)));
    const io::TorchFile f(path);
    CHECK(f.names().empty());
    CHECK(f.skipped().empty());
  }
  SUBCASE("a tensor inside a list is skipped and named") {
    // views.pt's dict, then d['l'] = [a] (a is memo 13) before STOP.
    const std::string p = replace_once(views_pickle(), "u.", std::string("uX\x01\x00\x00\x00l]h\x0d" "as.", 13));
    heed_test::spit(path, zip(with_pickle(p)));
    const io::TorchFile f(path);
    CHECK(f.names().size() == 6);
    CHECK(f.skipped() == std::vector<std::string>{"l"});
  }
  SUBCASE("an empty top-level dict") {
    heed_test::spit(path, zip(with_pickle(P2 + "}.")));
    CHECK(io::TorchFile(path).names().empty());
  }
}

TEST_CASE("torch: a malformed zip archive is a FormatError naming the problem") {
  const std::string good = heed_test::slurp(fixture("views.pt"));
  SUBCASE("truncated") {
    CHECK(contains(error_for(good.substr(0, good.size() / 2)), "no end-of-central-directory record"));
  }
  SUBCASE("shorter than an end record") {
    CHECK(contains(error_for("PK\x05\x06"), "fewer than a zip archive's 22-byte end-of-central-directory record"));
  }
  SUBCASE("not a zip") {
    CHECK(contains(error_for(std::string(100, 'x')), "not a zip archive"));
  }
  // The end-record edits on a zip without zip64 records (zip()); torch's own has both.
  const std::string plain = zip(views());
  SUBCASE("bad end record: central directory offset") {
    std::string img = plain;
    img[img.size() - 22 + 16] ^= 1;
    CHECK(contains(error_for(img), "does not end where the end-of-central-directory record begins"));
  }
  SUBCASE("bad end record: entry count") {
    std::string img = plain;
    img[img.size() - 22 + 10] = 100;
    img[img.size() - 22 + 8] = 100;
    CHECK(contains(error_for(img), "claims 100 entries"));
  }
  SUBCASE("bad end record: a comment longer than the file's rest") {
    std::string img = plain;
    img[img.size() - 2] = 1;
    CHECK(contains(error_for(img), "no end-of-central-directory record"));
  }
  SUBCASE("multi-disk") {
    std::string img = plain;
    img[img.size() - 22 + 4] = 1;
    CHECK(contains(error_for(img), "multi-disk"));
  }
  SUBCASE("end record and zip64 end record disagree") {
    std::string img = good;
    img[img.size() - 22 + 16] ^= 1;
    CHECK(contains(error_for(img), "the end-of-central-directory record and the zip64 one disagree on the central "
                                   "directory's offset"));
  }
  SUBCASE("zip64 locator pointing nowhere") {
    std::string img = good;
    img[img.size() - 22 - 20 + 8] ^= 4;
    CHECK(contains(error_for(img), "zip64 end-of-central-directory record"));
  }
  SUBCASE("compressed entry (method 8)") {
    Zip z = views();
    entry(z, "/data/0").method = 8;
    CHECK(contains(error_for(zip(z)), "zip entry 'views/data/0' is compressed (method 8, deflate)"));
  }
  SUBCASE("encrypted entry") {
    Zip z = views();
    entry(z, "/data/0").flags = 1;
    CHECK(contains(error_for(zip(z)), "zip entry 'views/data/0' is encrypted"));
  }
  SUBCASE("CRC mismatch") {
    std::string img = good;
    const Zip z = views();
    const std::string& s0 = z[1].bytes;  // views/data/0
    REQUIRE(z[1].name == "views/data/0");
    const std::size_t at = img.find(s0);
    REQUIRE(at != std::string::npos);
    img[at + 5] ^= 0x40;
    CHECK(contains(error_for(img), "zip entry 'views/data/0': CRC-32 mismatch"));
  }
  SUBCASE("CRC mismatch in data.pkl (checked before it is interpreted)") {
    std::string img = good;
    const std::size_t at = img.find("storage");
    REQUIRE(at != std::string::npos);
    img[at] = 'S';
    CHECK(contains(error_for(img), "zip entry 'views/data.pkl': CRC-32 mismatch"));
  }
  SUBCASE("local header disagrees") {
    std::string img = zip(views());
    img[30] = 'W';  // the first local header's name
    CHECK(contains(error_for(img), "its local header names 'Wiews/data.pkl'"));
  }
  SUBCASE("duplicate entry") {
    Zip z = views();
    z.push_back(z[1]);
    CHECK(contains(error_for(zip(z)), "duplicate zip entry 'views/data/0'"));
  }
  SUBCASE("entries under two prefixes") {
    Zip z = views();
    z[2].name = "other/data/1";
    CHECK(contains(error_for(zip(z)), "zip entry 'other/data/1' is not under the archive's prefix 'views/'"));
  }
  SUBCASE("missing data.pkl") {
    Zip z = views();
    z.erase(z.begin());
    CHECK(contains(error_for(zip(z)), "no views/data.pkl in the zip archive"));
  }
  SUBCASE("big-endian byteorder") {
    Zip z = views();
    z.push_back({"views/byteorder", "big"});
    CHECK(contains(error_for(zip(z)), "byteorder is \"big\": big-endian torch.save files are not supported"));
  }
  SUBCASE("TorchScript archive") {
    Zip z = views();
    z.push_back({"views/constants.pkl", P2 + ")."});
    CHECK(contains(error_for(zip(z)), "a TorchScript archive (it has views/constants.pkl)"));
  }
  SUBCASE("legacy format") {
    CHECK(contains(error_for(heed_test::slurp(fixture("legacy.pt"))),
                   "a legacy torch.save file (torch < 1.6, or _use_new_zipfile_serialization=False), not the zip "
                   "format: re-save it with a current torch.save"));
  }
}

TEST_CASE("torch: storages and views are checked against the zip's entries") {
  const std::string pkl = views_pickle();
  SUBCASE("missing storage record") {
    Zip z = views();
    z.erase(z.begin() + 2);  // views/data/1, exp's storage
    CHECK(contains(error_for(zip(z)), "storage '1': no zip entry views/data/1"));
  }
  SUBCASE("storage size != numel x element size") {
    Zip z = views();
    entry(z, "/data/1").bytes += "pad!";
    CHECK(contains(error_for(zip(z)), "storage '1' of 1 F32 elements needs 4 bytes, but its zip entry has 8"));
  }
  SUBCASE("view past the storage's end") {
    const std::string p = replace_once(pkl, std::string("K\x00K\x04K\x06\x86", 7), std::string("K\x01K\x04K\x06\x86", 7));
    CHECK(contains(error_for(zip(with_pickle(p))),
                   "a tensor of shape (4, 6) on storage '0' (offset 1, strides (6, 1)) reaches element 24, past the end "
                   "of its 24-element storage"));
  }
  SUBCASE("a storage of another dtype: its tensors skipped, the rest read; its size still checked") {
    // The memoised FloatStorage class as ByteStorage: both storages (24 and 1 floats) are
    // uint8 now, of 96 and 4 elements, and every tensor is skipped; the file still reads.
    std::string p = replace_once(pkl, "FloatStorage", "ByteStorage");
    for (const auto& [from, to] : {std::pair{std::string("K\x18t", 3), std::string("K\x60t", 3)},
                                   std::pair{std::string("K\x01t", 3), std::string("K\x04t", 3)}})
      for (std::size_t at = p.find(from); at != std::string::npos; at = p.find(from, at + 3)) p.replace(at, 3, to);
    const std::string path = tmp("bytes.pt");
    heed_test::spit(path, zip(with_pickle(p)));
    io::TorchFile f(path);
    CHECK(f.names().empty());
    CHECK(f.skipped() == std::vector<std::string>{"a", "row", "rows", "col", "t", "exp"});
    // 24 elements of one byte would need 24 bytes; the entry has 96.
    const std::string q = replace_once(pkl, "FloatStorage", "BoolStorage");
    CHECK(contains(error_for(zip(with_pickle(q))), "storage '0' of 24 BoolStorage elements needs 24 bytes, but its zip entry has 96"));
  }
  SUBCASE("more than 64 dimensions") {
    std::string ones = "(";
    for (int k = 0; k < 65; ++k) ones += std::string("K\x01", 2);
    const std::string p = replace_once(pkl, std::string("K\x04K\x06\x86", 5), ones + "t");
    CHECK(contains(error_for(zip(with_pickle(p))), "a tensor's size has 65 dimensions, more than 64"));
  }
  SUBCASE("one key, two storage types") {
    // 'row' names storage '0' (the memoised key) as a DoubleStorage of 12 elements.
    std::string p = pkl;  // the first replay of storage 0's persistent id is row's
    const std::string from("h\x03h\x04h\x05h\x06K\x18t", 11);
    const std::size_t at = p.find(from);
    REQUIRE(at != std::string::npos);
    p.replace(at, from.size(), std::string("h\x03" "ctorch\nDoubleStorage\nh\x05h\x06K\x0c" "t", 30));
    CHECK(contains(error_for(zip(with_pickle(p))), "storage '0' is used as 12 F64 and as 24 F32 elements"));
  }
  SUBCASE("gathering more than the file's size (expand(10**6))") {
    const std::string p = replace_once(pkl, std::string("K\x05\x85", 3), std::string("J\x40\x42\x0f\x00\x85", 6));
    CHECK(contains(error_for(zip(with_pickle(p))), "tensor 'exp': gathering the non-contiguous views"));
  }
}

TEST_CASE("torch: the pickle machine refuses what torch.save does not write") {
  struct Bad {
    const char* rule;
    std::string pkl;
    const char* expect;
  };
  const std::vector<Bad> cases = {
      {"unknown opcode (DICT)", P2 + "}d.", "data.pkl byte 3: opcode 0x64 ('d') is not one torch.save's pickler writes"},
      {"protocol 4", std::string("\x80\x04}.", 4), "data.pkl byte 0: pickle protocol 4 is not supported"},
      {"protocol 0", std::string("\x80\x00}.", 4), "pickle protocol 0 is not supported"},
      {"top-level list", P2 + "].", "the top-level object is a list, not a dict"},
      {"top-level tensor-less int", P2 + "K\x01.", "the top-level object is an int, not a dict"},
      {"non-str key", P2 + "}K\x01K\x02s.", "a key of the top-level dict is an int, not a str"},
      {"tuple key nested", P2 + "}X\x01\x00\x00\x00m}))s"s + "s.", "a key of a nested dict 'm' is a tuple, not a str or an int"},
      {"no STOP", P2 + "}", "data.pkl ends without a STOP opcode"},
      {"bytes after STOP", P2 + "}.N", "data.pkl byte 4: 1 bytes after the STOP opcode"},
      {"two values at STOP", P2 + "}}.", "STOP with 2 values and 0 marks"},
      {"stack underflow", P2 + "s.", "pops from an empty stack"},
      {"pop below a MARK", P2 + "}(s.", "pops from an empty stack"},
      {"TUPLE without MARK", P2 + "t.", "without a MARK"},
      {"memo miss", P2 + "h\x05.", "memo key 5 was never stored"},
      {"SETITEM on a list", P2 + "]NNs.", "sets items on a list, not a dict"},
      {"truncated argument", P2 + "X\xff\x00\x00\x00" "ab"s, "needs 255 argument bytes: data.pkl is truncated"},
      {"LONG1 too long", P2 + "\x8a\x09" + std::string(9, '\1') + ".", "9-byte integer (LONG1) does not fit in 64 bits"},
      {"invalid UTF-8", P2 + "}X\x01\x00\x00\x00\xffNs."s, "string is not UTF-8"},
      {"cycle", P2 + "}q\x00X\x01\x00\x00\x00" "ah\x00s."s, "the dict at 'a' is reached twice (a cycle, or a shared dict)"},
      {"REDUCE of a non-global", P2 + "})R.", "REDUCE calls a dict, not a whitelisted global"},
      {"OrderedDict with arguments", P2 + "ccollections\nOrderedDict\nN\x85R.", "OrderedDict() with arguments"},
      {"BUILD on a list", P2 + "]}b.", "BUILD on a list, expected an OrderedDict"},
      {"calling a storage class", P2 + "ctorch\nFloatStorage\n)R.", "a storage class is called"},
      {"bad persistent id", P2 + "X\x01\x00\x00\x00xQ."s, "a persistent id that is not ('storage', type, key, location, numel)"},
      {"unknown torch global", P2 + "ctorch\nload\n.", "global 'torch load' is not allowed"},
      {"GLOBAL truncated", P2 + "cposix", "GLOBAL without its two newline-terminated names"},
  };
  for (const Bad& c : cases) {
    CAPTURE(c.rule);
    const std::string msg = error_for(zip(with_pickle(c.pkl)));
    CHECK_MESSAGE(contains(msg, c.expect), msg);
  }
  SUBCASE("a 100 KB key reused (memo) at every level: the names are bounded before they are built") {
    std::string p = P2 + "}X" + std::string("\xa0\x86\x01\x00", 4) + std::string(100000, 'k') + "q\x00}"s;
    for (int k = 0; k < 98; ++k) p += "h\x00}"s;
    p += std::string(99, 's') + ".";
    CHECK(contains(error_for(zip(with_pickle(p))), "data.pkl: the flattened names take more than 2655056 bytes"));
  }
  SUBCASE("dicts nested 101 deep") {
    std::string p = P2 + "}";
    for (int k = 0; k < 100; ++k) p += "X\x01\x00\x00\x00k}"s;
    p += std::string(100, 's') + ".";
    CHECK(contains(error_for(zip(with_pickle(p))), "dicts nested more than 100 deep"));
  }
}

TEST_CASE("torch: a non-whitelisted GLOBAL is refused by name and nothing runs") {
  const std::string marker = "/tmp/heed_torch_hostile_ran";
  for (const auto& c : {std::pair{"hostile_system.pt", "global 'posix system' is not allowed"},
                        std::pair{"hostile_eval.pt", "global 'builtins eval' is not allowed"}}) {
    const std::string path = fixture(c.first);
    CAPTURE(path);
    fs::remove(marker);
    const std::string msg = error_of<heed::FormatError>([&] { io::TorchFile f(path); });
    CHECK(starts_with(msg, path + ": data.pkl byte 13: " + c.second));
    CHECK(contains(msg, "nothing is executed"));
    CHECK_FALSE(fs::exists(marker));
  }
}

TEST_CASE("torch: FIFOs, directories and missing files are refused by RegularFile") {
  const std::string dir = tmp("torch_dir.pt");
  fs::create_directories(dir);
  CHECK(starts_with(error_of<heed::IoError>([&] { io::TorchFile f(dir); }), dir + ": is a directory"));
  const std::string fifo = tmp("torch_fifo.pt");
  fs::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(starts_with(error_of<heed::IoError>([&] { io::TorchFile f(fifo); }), fifo + ": is a FIFO (named pipe)"));
  fs::remove(fifo);
  CHECK(starts_with(error_of<heed::IoError>([&] { io::TorchFile f(dir + "/missing.pt"); }), dir + "/missing.pt: cannot open"));
}
