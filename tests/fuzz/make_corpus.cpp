// Writes the seed corpora under tests/fuzz/corpus/ (run from the repository root):
//   g++ -std=c++20 -Iinclude -I/usr/include/eigen3 tests/fuzz/make_corpus.cpp -o /tmp/mc && /tmp/mc
// A few valid files and near-misses per target, each tiny.
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
}
