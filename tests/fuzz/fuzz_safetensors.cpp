// libFuzzer target: the safetensors reader. The input is a raw file image, given to
// heed::io::Safetensors through a scratch file. Anything malformed must raise heed::Error;
// nothing may crash, leak, read out of bounds or hang. A file that loads must tile its data
// buffer with consistent tensors, and reading each (matrix<float>() or integers()) stays in
// bounds.
#include <cstdint>
#include <heed/heed.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = heed_fuzz::scratch_path("safetensors");
  heed_fuzz::write_file(path, data, size);
  try {
    const heed::io::Safetensors f(path);
    std::uint64_t total = 0;
    for (const heed::io::TensorInfo& t : f.entries()) {
      std::uint64_t need = 0;
      if (!heed::io::detail_tensor::nbytes(t.shape, t.dtype, need) || need != t.end - t.begin) __builtin_trap();
      total += need;
      try {
        if (heed::io::dtype_is_float(t.dtype)) (void)f.matrix<float>(t.name);
        else (void)f.integers(t.name);
      } catch (const heed::ValueError&) {  // out of float's range, or too large for a matrix
      }
    }
    if (total > size) __builtin_trap();
  } catch (const heed::Error&) {
  }
  return 0;
}
