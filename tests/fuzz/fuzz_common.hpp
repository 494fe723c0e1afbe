#pragma once
// Shared by the libFuzzer targets and make_corpus.cpp: the readers under test take a path, so
// each input is written to a per-process scratch file first; the checkpoint target loads into
// the same objects the corpus's checkpoints are saved from.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <heed/heed.hpp>
#include <memory>
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
