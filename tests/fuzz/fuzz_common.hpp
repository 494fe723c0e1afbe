#pragma once
// Shared by the libFuzzer targets and make_corpus.cpp: the readers under test take a path, so
// each input is written to a per-process scratch file first; the checkpoint target loads into
// the same objects the corpus's checkpoints are saved from, and the torch_file target wraps a
// fuzzed pickle in the same archive the corpus's pickles come from.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <heed/heed.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace heed_fuzz {

// One scratch file per target and process, removed at exit.
inline const std::string& scratch_path(const char* name) {
  struct Scratch {
    std::string path;
    ~Scratch() { std::remove(path.c_str()); }
  };
  static const Scratch s{(std::filesystem::temp_directory_path() /
                          (std::string("heed_fuzz_") + name + "_" + std::to_string(::getpid())))
                             .string()};
  return s.path;
}

inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
}

// A stored (uncompressed) zip archive of (name, bytes) entries, as torch.save lays them out
// (no data descriptors, no zip64): the torch_file target wraps a fuzzed data.pkl in one.
inline std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, cd;
  const auto put = [](std::string& s, auto v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); };
  for (const auto& [name, bytes] : entries) {
    const auto off = static_cast<std::uint32_t>(out.size());
    const std::uint32_t crc = heed::io::crc32(bytes.data(), bytes.size());
    const auto size = static_cast<std::uint32_t>(bytes.size());
    const auto nlen = static_cast<std::uint16_t>(name.size());
    put(out, std::uint32_t{0x04034b50});
    for (std::uint16_t v : {20, 0, 0, 0, 0x21}) put(out, v);
    for (std::uint32_t v : {crc, size, size}) put(out, v);
    put(out, nlen);
    put(out, std::uint16_t{0});
    out += name + bytes;
    put(cd, std::uint32_t{0x02014b50});
    for (std::uint16_t v : {20, 20, 0, 0, 0, 0x21}) put(cd, v);
    for (std::uint32_t v : {crc, size, size}) put(cd, v);
    for (std::uint16_t v : {nlen, std::uint16_t{0}, std::uint16_t{0}, std::uint16_t{0}, std::uint16_t{0}}) put(cd, v);
    put(cd, std::uint32_t{0});
    put(cd, off);
    cd += name;
  }
  const auto cd_off = static_cast<std::uint32_t>(out.size());
  out += cd;
  put(out, std::uint32_t{0x06054b50});
  const auto n = static_cast<std::uint16_t>(entries.size());
  for (std::uint16_t v : {std::uint16_t{0}, std::uint16_t{0}, n, n}) put(out, v);
  put(out, static_cast<std::uint32_t>(cd.size()));
  put(out, cd_off);
  put(out, std::uint16_t{0});
  return out;
}

// The archive the torch_file target's odd mode puts a fuzzed data.pkl in: the storages of
// tests/data/torch/views.pt (data/0: 24 floats 0..23, data/1: one float 1) and a version.
inline std::string torch_zip_around(const std::string& pkl) {
  std::string s0(96, '\0'), s1(4, '\0');
  for (int k = 0; k < 24; ++k) {
    const float v = static_cast<float>(k);
    std::memcpy(s0.data() + 4 * k, &v, 4);
  }
  const float one = 1;
  std::memcpy(s1.data(), &one, 4);
  return stored_zip({{"archive/data.pkl", pkl}, {"archive/data/0", s0}, {"archive/data/1", s1}, {"archive/version", "3\n"}});
}

// A small model, its Adam state, two values and a generator, bound to a checkpoint. The fuzz
// target loads into it, make_corpus saves from it: one definition keeps the seed files loadable.
template <typename T>
struct CheckpointFixture {
  heed::Sequential<T> model;
  std::unique_ptr<heed::Adam<T>> opt;  // built once the model's parameters exist
  double epoch;
  int count;
  heed::Generator gen{2};

  CheckpointFixture(double epoch_, int count_) : epoch(epoch_), count(count_) {
    heed::Generator init(1);
    model.template emplace<heed::Linear<T>>(3, 2, true, init);
    model.template emplace<heed::ReLU<T>>();
    model.template emplace<heed::LayerNorm<T>>(2);
    opt = std::make_unique<heed::Adam<T>>(model.parameters());
  }
  heed::Checkpoint<T> checkpoint() {
    return heed::Checkpoint<T>().model(model).optimizer(*opt).value("epoch", epoch)
        .value("count", count).generator("shuffle", gen);
  }
};

}  // namespace heed_fuzz
