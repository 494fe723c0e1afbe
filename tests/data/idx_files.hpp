#pragma once
// Test helpers: write (possibly broken) IDX files into a per-process scratch directory.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace idx_test {

namespace fs = std::filesystem;

// Created on first use, removed when the test process exits.
inline fs::path scratch_dir() {
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("heed_test_data_" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

inline void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

inline std::string write_bytes(const std::string& name, const std::vector<std::uint8_t>& bytes) {
  const fs::path p = scratch_dir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return p.string();
}

// Image n has pixel j = (n * 7 + j) % 256.
inline std::vector<std::uint8_t> image_bytes(std::uint32_t n, std::uint32_t rows, std::uint32_t cols,
                                             std::uint32_t magic = 0x803) {
  std::vector<std::uint8_t> b;
  put_be32(b, magic);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t j = 0; j < rows * cols; ++j) b.push_back(static_cast<std::uint8_t>((i * 7 + j) % 256));
  return b;
}

inline std::vector<std::uint8_t> label_bytes(const std::vector<std::uint8_t>& labels,
                                             std::uint32_t magic = 0x801) {
  std::vector<std::uint8_t> b;
  put_be32(b, magic);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

}  // namespace idx_test
