// libFuzzer target: heed::read_idx_images on arbitrary bytes. A malformed file must raise a
// heed::Error (FormatError/IoError), never crash, read out of bounds or allocate unboundedly;
// an accepted file must be consistent with its header.
#include <cstdint>
#include <heed/data/idx.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = heed_fuzz::scratch_path("idx_images");
  heed_fuzz::write_file(path, data, size);
  try {
    const heed::IdxImages img = heed::read_idx_images(path);
    if (img.rows < 1 || img.cols < 1 || img.size() < 1 ||
        img.pixels.cols() != static_cast<heed::Index>(img.rows) * img.cols ||
        16 + static_cast<std::size_t>(img.pixels.size()) != size)
      __builtin_trap();
    for (heed::Index i = 0; i < img.pixels.size(); ++i)
      if (img.pixels.data()[i] != data[16 + i]) __builtin_trap();
  } catch (const heed::Error&) {
  }
  return 0;
}
