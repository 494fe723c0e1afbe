#pragma once
// The io tests' scratch files: one folder under the system temp dir, made on first use, and
// whole-file read and write.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace heed_test {

inline std::filesystem::path scratch(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "heed_test_io";
  std::filesystem::create_directories(dir);
  return dir / name;
}

// A whole file's bytes, and a file replaced by `s`.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
inline void spit(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

}  // namespace heed_test
