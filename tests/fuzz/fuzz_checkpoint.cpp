// libFuzzer target: the checkpoint reader. The first input byte picks a mode:
//   even: the rest is a raw file image, given to heed::io::parse (header, length, CRC checks);
//   odd:  the rest gets a valid header (magic, version 1, scalar size from the mode byte, its
//         length, its CRC-32) so the fuzzer reaches the entry parser and Checkpoint::load.
// Either way the image is then loaded with heed::Checkpoint into a small model + Adam +
// values + a generator, through a scratch file. Anything malformed must raise heed::Error and
// leave the bound objects untouched; nothing may crash, leak or read out of bounds.
#include <cstdint>
#include <cstring>
#include <heed/heed.hpp>

#include "fuzz_common.hpp"

namespace {

template <class V>
void put(std::string& out, V v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
void load_into_model(const std::string& path) {
  heed_fuzz::CheckpointFixture<T> fx(0, 0);
  const auto before = heed::snapshot_parameters(fx.model.parameters());
  heed::Generator gen_before = fx.gen;
  try {
    fx.checkpoint().load(path);
  } catch (const heed::Error&) {
    // All-or-nothing: a refused file changes nothing.
    const auto after = heed::snapshot_parameters(fx.model.parameters());
    for (std::size_t i = 0; i < before.size(); ++i)
      if (before[i] != after[i]) __builtin_trap();
    if (fx.gen.engine() != gen_before.engine() || fx.epoch != 0 || fx.count != 0) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  std::string img;
  if (mode & 1) {
    const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
    img.assign(heed::io::kMagic, 8);
    put<std::uint32_t>(img, heed::io::kFormatVersion);
    put<std::uint32_t>(img, (mode & 2) ? 8 : 4);
    put<std::uint64_t>(img, payload.size());
    put<std::uint32_t>(img, heed::io::crc32(payload.data(), payload.size()));
    put<std::uint32_t>(img, 0);
    img += payload;
  } else {
    img.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  }
  try {
    const heed::io::Entries entries = heed::io::parse(img, "fuzz");
    for (const auto& [name, e] : entries)
      if (e.is_tensor && e.values.size() != static_cast<std::size_t>(e.rows * e.cols)) __builtin_trap();
  } catch (const heed::Error&) {
  }
  const std::string& path = heed_fuzz::scratch_path("checkpoint");
  heed_fuzz::write_file(path, reinterpret_cast<const std::uint8_t*>(img.data()), img.size());
  if (mode & 4) load_into_model<double>(path);
  else load_into_model<float>(path);
  return 0;
}
