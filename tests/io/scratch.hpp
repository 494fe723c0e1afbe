#pragma once
// The io tests' scratch files: one folder under the system temp dir, made on first use.
#include <filesystem>
#include <string>

namespace heed_test {

inline std::filesystem::path scratch(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "heed_test_io";
  std::filesystem::create_directories(dir);
  return dir / name;
}

}  // namespace heed_test
