// libFuzzer target: heed::read_idx_labels on arbitrary bytes, with num_classes taken from the
// input's last byte (1..256). Malformed files and out-of-range labels must raise heed::Error;
// accepted labels must all be in [0, num_classes).
#include <cstdint>
#include <heed/data/idx.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int num_classes = 1 + data[size - 1];  // 1..256
  --size;
  const std::string& path = heed_fuzz::scratch_path("idx_labels");
  heed_fuzz::write_file(path, data, size);
  try {
    const heed::Labels y = heed::read_idx_labels(path, num_classes);
    if (y.size() < 1 || 8 + static_cast<std::size_t>(y.size()) != size) __builtin_trap();
    for (heed::Index i = 0; i < y.size(); ++i)
      if (y(i) < 0 || y(i) >= num_classes || y(i) != data[8 + i]) __builtin_trap();
  } catch (const heed::Error&) {
  }
  return 0;
}
