#pragma once
// PNG files for the examples' attention maps, through stb_image_write (Debian's libstb-dev,
// linked by examples/CMakeLists.txt; libstb holds the implementation).
#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <heed/heed.hpp>
#include <string>
#include <vector>

namespace examples {

// Black -> red -> yellow -> white for v in [0, 1] (the examples' heat maps).
inline std::array<double, 3> heat_color(double v) {
  v = std::clamp(v, 0.0, 1.0);
  return {std::min(1.0, 3 * v), std::clamp(3 * v - 1, 0.0, 1.0), std::clamp(3 * v - 2, 0.0, 1.0)};
}

// One RGB pixel of a heat map over a digit: heat_color(heat), with the strokes (ink in [0, 1],
// the pixel's grey value) drawn over it in light blue, so the digit shows through the map.
inline void heat_over_ink(std::uint8_t* rgb, double heat, double ink) {
  const auto c = heat_color(heat);
  const double s[3] = {0.55, 0.8, 1.0};
  for (int ch = 0; ch < 3; ++ch)
    rgb[ch] = static_cast<std::uint8_t>(255 * ((1 - 0.6 * ink) * c[ch] + 0.6 * ink * s[ch]));
}

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
