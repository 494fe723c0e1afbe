// libFuzzer target: the torch.save reader (zip + pickle). The first input byte picks a mode:
//   even: the rest is a raw file image, given to heed::io::TorchFile;
//   odd:  the rest is a data.pkl, put in a valid stored zip with tests/data/torch/views.pt's
//         two storages (heed_fuzz::torch_zip_around), so the fuzzer reaches the pickle machine,
//         the views and the flattening without having to get the zip's CRCs right.
// Anything malformed must raise heed::Error; nothing may crash, leak, read out of bounds or
// hang. A file that loads must hand out consistent tensors: every entry's bytes are its shape
// times its dtype's size, and reading each (matrix<double>() or integers()) stays in bounds.
#include <cstdint>
#include <cstring>
#include <heed/heed.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string img(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) img = heed_fuzz::torch_zip_around(img);
  const std::string& path = heed_fuzz::scratch_path("torch_file");
  heed_fuzz::write_file(path, reinterpret_cast<const std::uint8_t*>(img.data()), img.size());
  try {
    const heed::io::TorchFile f(path);
    for (const heed::io::TensorInfo& t : f.entries()) {
      std::uint64_t need = 0;
      if (!heed::io::detail_tensor::nbytes(t.shape, t.dtype, need) || need != t.end - t.begin) __builtin_trap();
      if (f.bytes(t.name).size() != need) __builtin_trap();
      try {
        if (heed::io::dtype_is_float(t.dtype)) (void)f.matrix<double>(t.name);
        else (void)f.integers(t.name);
      } catch (const heed::ValueError&) {  // too large for a matrix
      }
    }
    (void)f.skipped();
  } catch (const heed::Error&) {
  }
  return 0;
}
