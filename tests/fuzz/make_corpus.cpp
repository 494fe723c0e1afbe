// Writes the seed corpora under tests/fuzz/corpus/ (run from the repository root):
//   g++ -std=c++20 -Iinclude -I/usr/include/eigen3 tests/fuzz/make_corpus.cpp -o /tmp/mc && /tmp/mc
// A few valid files and near-misses per target, each tiny.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <heed/heed.hpp>
#include <string>

#include "fuzz_common.hpp"

namespace fs = std::filesystem;

namespace {

void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string be32(std::uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

std::string images(std::uint32_t n, std::uint32_t r, std::uint32_t c) {
  std::string s = be32(0x803) + be32(n) + be32(r) + be32(c);
  for (std::uint32_t i = 0; i < n * r * c; ++i) s += char(i * 37);
  return s;
}

std::string labels(std::uint32_t n, int classes) {
  std::string s = be32(0x801) + be32(n);
  for (std::uint32_t i = 0; i < n; ++i) s += char(i % classes);
  return s + char(classes - 1);  // the target's num_classes byte
}

template <typename T>
std::string checkpoint() {
  heed_fuzz::CheckpointFixture<T> fx(4, 7);
  const auto tmp = fs::temp_directory_path() / "heed_make_corpus.heed";
  fx.checkpoint().save(tmp.string());
  std::ifstream f(tmp, std::ios::binary);
  std::string img{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  fs::remove(tmp);
  return img;
}

// A payload (entry count + entries) from decoded entries, names written as they are (no
// checks), so seeds can hold what heed's Writer refuses. Tensors are written as float.
std::string payload(const heed::io::Entries& es, std::uint64_t count_override = 0) {
  std::string out;
  auto put_raw = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put_raw(std::uint64_t{count_override ? count_override : es.size()});
  for (const auto& [name, e] : es) {
    put_raw(std::uint32_t{e.is_tensor ? 0u : 1u});
    put_raw(static_cast<std::uint32_t>(name.size()));
    out += name;
    if (e.is_tensor) {
      put_raw(static_cast<std::uint64_t>(e.rows));
      put_raw(static_cast<std::uint64_t>(e.cols));
      for (double v : e.values) put_raw(static_cast<float>(v));
    } else {
      put_raw(static_cast<std::uint64_t>(e.bytes.size()));
      out += e.bytes;
    }
  }
  return out;
}

std::string double_bytes(double v) {
  std::string b(8, '\0');
  std::memcpy(b.data(), &v, 8);
  return b;
}

}  // namespace

int main() {
  const fs::path root = "tests/fuzz/corpus";
  put(root / "idx_images/valid_2x3x2", images(2, 3, 2));
  put(root / "idx_images/valid_1x1x1", images(1, 1, 1));
  put(root / "idx_images/truncated", images(2, 3, 2).substr(0, 25));
  put(root / "idx_images/trailing", images(1, 2, 2) + "x");
  put(root / "idx_images/zero_count", images(0, 3, 3));
  put(root / "idx_images/huge_dims", be32(0x803) + be32(0xFFFFFFFF) + be32(0xFFFF) + be32(0xFFFF));
  put(root / "idx_images/label_magic", labels(3, 10));
  put(root / "idx_labels/valid_10", labels(10, 10));
  put(root / "idx_labels/valid_1", labels(1, 1));
  put(root / "idx_labels/out_of_range", labels(5, 10).substr(0, 13) + char(1));
  put(root / "idx_labels/truncated", labels(10, 10).substr(0, 12) + char(9));
  put(root / "idx_labels/image_magic", images(1, 1, 1) + char(9));
  // Checkpoints: mode byte (bit 0: fix the header up, bit 1: double header, bit 2: load as
  // double), then the image or, for the fix-up modes, the payload only.
  const std::string f = checkpoint<float>(), d = checkpoint<double>();
  put(root / "checkpoint/float_raw", char(0) + f);
  put(root / "checkpoint/double_raw_into_double", char(4) + d);
  put(root / "checkpoint/float_payload", char(1) + f.substr(32));
  put(root / "checkpoint/double_payload_into_double", char(7) + d.substr(32));
  std::string bad = f;
  bad[40] ^= 1;
  put(root / "checkpoint/bad_crc", char(0) + bad);
  put(root / "checkpoint/truncated", char(0) + f.substr(0, 40));
  put(root / "idx_images/gzip", std::string("\x1f\x8b\x08\x00", 4) + images(1, 2, 2).substr(4));
  put(root / "idx_labels/gzip", std::string("\x1f\x8b\x08\x00", 4) + labels(3, 10).substr(4));
  put(root / "idx_labels/huge_count", be32(0x801) + be32(0xFFFFFFFF) + "abc" + char(9));

  // Near-misses of the reliability issue, as payloads (mode 1: the target adds a valid header).
  const heed::io::Entries base = heed::io::parse(f, "seed");
  auto seed = [&](const std::string& name, const heed::io::Entries& es, std::uint64_t count = 0) {
    put(root / ("checkpoint/" + name), char(1) + payload(es, count));
  };
  auto with = [&](const std::string& key, auto edit) {
    heed::io::Entries es = base;
    if (!es.count(key)) throw std::runtime_error("make_corpus: the fixture has no entry " + key);
    edit(es.at(key));
    return es;
  };
  // Decoded values out of range for their binding (validated before anything is assigned).
  seed("count_1e300", with("train.count", [](auto& e) { e.bytes = double_bytes(1e300); }));
  seed("count_nan", with("train.count", [](auto& e) { e.bytes = double_bytes(NAN); }));
  seed("count_minus_3e9", with("train.count", [](auto& e) { e.bytes = double_bytes(-3e9); }));
  seed("count_fraction", with("train.count", [](auto& e) { e.bytes = double_bytes(2.5); }));
  seed("step_minus_1", with("optimizer.step", [](auto& e) { e.values = {-1.0}; }));
  seed("lr_nan", with("optimizer.lr", [](auto& e) { e.values = {NAN}; }));
  seed("exp_avg_sq_negative", with("optimizer.0.weight.exp_avg_sq", [](auto& e) { e.values[0] = -1; }));
  seed("exp_avg_sq_inf", with("optimizer.0.weight.exp_avg_sq", [](auto& e) { e.values[0] = INFINITY; }));
  seed("generator_garbage", with("train.shuffle", [](auto& e) { e.bytes = "12 34 not a state"; }));
  seed("value_as_tensor", with("train.epoch", [](auto& e) {
    e.is_tensor = true; e.rows = 1; e.cols = 1; e.values = {1.0}; e.bytes.clear(); }));
  seed("tensor_wrong_shape", with("model.0.bias", [](auto& e) { e.cols = 3; e.values.push_back(0); }));
  // Names: control characters, NUL, a long name, an entry the model does not have, one missing.
  {
    heed::io::Entries es = base;
    es[std::string("train.a\0b", 9)] = es["train.epoch"];
    seed("name_nul", es);
    es = base;
    es["train.\x1b]0;title\x07"] = es["train.epoch"];
    seed("name_escape", es);
    es = base;
    es["model." + std::string(300, 'x')] = es["model.0.bias"];
    seed("name_long", es);
    es = base;
    es["model.9.weight"] = es["model.0.bias"];
    seed("stray_entry", es);
    es = base;
    es.erase("model.0.bias");
    seed("missing_entry", es);
  }
  // Structure: a duplicate name (the map cannot hold one: the count claims one entry more and
  // the last entry is appended again) and an entry count that cannot fit.
  {
    std::string p = payload(base, base.size() + 1);
    heed::io::Entries last;
    last.insert(*base.rbegin());
    p += payload(last).substr(8);
    put(root / "checkpoint/duplicate_name", char(1) + p);
    seed("count_huge", base, 1ull << 40);
  }

  // torch.save files (mode byte 0: the image as is) from tests/data/torch, and views.pt's
  // data.pkl alone (mode 1: the target zips it with views.pt's storages), with near-misses.
  const auto slurp = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("make_corpus: cannot read " + p.string());
    return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  };
  const fs::path torch = "tests/data/torch";
  for (const char* n : {"views.pt", "module.pt", "checkpoint.pt", "dtypes.pt", "zip64_full.pt", "legacy.pt",
                        "hostile_system.pt"})
    put(root / "torch_file" / n, char(0) + slurp(torch / n));
  {
    const std::string v = slurp(torch / "views.pt");
    put(root / "torch_file/views_truncated", char(0) + v.substr(0, v.size() - 30));
    // views.pt's data.pkl: the first entry's bytes (its local header is 64-aligned by torch:
    // the data starts after the 30-byte header, the name and the extra field).
    const std::size_t nlen = static_cast<unsigned char>(v[26]) | static_cast<unsigned char>(v[27]) << 8;
    const std::size_t xlen = static_cast<unsigned char>(v[28]) | static_cast<unsigned char>(v[29]) << 8;
    std::uint32_t psize = 0;
    // The size is in the central directory (torch defers the local one to a data descriptor):
    // the first central header is the one naming views/data.pkl.
    const std::size_t c = v.find("PK\x01\x02");
    std::memcpy(&psize, v.data() + c + 24, 4);
    const std::string pkl = v.substr(30 + nlen + xlen, psize);
    put(root / "torch_file/pickle_views", char(1) + pkl);
    put(root / "torch_file/pickle_nested", char(1) + std::string("\x80\x02}X\x01\x00\x00\x00m}X\x01\x00\x00\x00n]ss.", 20));
    put(root / "torch_file/pickle_top_list", char(1) + std::string("\x80\x02].", 4));
  }

  // safetensors: the fixture, a file from save_safetensors, and near-misses.
  {
    const std::string st = slurp("tests/data/safetensors/fixture.safetensors");
    put(root / "safetensors/fixture", st);
    put(root / "safetensors/truncated", st.substr(0, st.size() - 5));
    const auto tmp = fs::temp_directory_path() / "heed_make_corpus.safetensors";
    heed::Matrix<float> m(2, 2);
    m << 1, -2, 3.5f, 0;
    heed::io::save_safetensors(tmp.string(), {heed::io::safetensors_entry("w", m), heed::io::safetensors_entry("b", m, {4})},
                               {{"format", "pt"}});
    const std::string saved = slurp(tmp);
    fs::remove(tmp);
    put(root / "safetensors/saved", saved);
    std::string bad = saved;
    bad[8 + 10] = 'X';
    put(root / "safetensors/bad_json", bad);
  }
}
