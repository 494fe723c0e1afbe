#pragma once
// Shared by the libFuzzer targets: the readers under test take a path, so each input is written
// to a per-process scratch file first.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

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

}  // namespace heed_fuzz
