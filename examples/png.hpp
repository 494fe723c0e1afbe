#pragma once
// PNG files for the examples' attention maps, through stb_image_write (Debian's libstb-dev,
// linked by examples/CMakeLists.txt; libstb holds the implementation).
#include <stb_image_write.h>

#include <cstdint>
#include <heed/heed.hpp>
#include <string>
#include <vector>

namespace examples {

// pixels: h rows of w * channels bytes, top row first; channels 1 (grey) or 3 (RGB).
inline void write_png(const std::string& path, int w, int h, int channels,
                      const std::vector<std::uint8_t>& pixels) {
  if (pixels.size() != static_cast<std::size_t>(w) * h * channels)
    throw heed::ShapeError("write_png: " + std::to_string(pixels.size()) + " bytes for " +
                           std::to_string(w) + "x" + std::to_string(h) + "x" +
                           std::to_string(channels));
  if (!stbi_write_png(path.c_str(), w, h, channels, pixels.data(), w * channels))
    throw heed::IoError("cannot write " + path);
}

}  // namespace examples
