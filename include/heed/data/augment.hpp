#pragma once
// Data augmentation on an already normalised batch.
#include <algorithm>
#include <cstring>
#include <string>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace heed {

// Shifts each image of x (B, h*w) by its own random integer (dx, dy), each uniform in
// [-k, k], filling uncovered pixels with `background` (the normalised value of a black pixel,
// e.g. -1 after Normalize(0.5, 0.5)). In place, no allocation. Per image, dx is drawn before
// dy; dx > 0 moves content right, dy > 0 moves it down.
template <typename T>
void random_shift(Matrix<T>& x, Index h, Index w, Index k, T background, Generator& gen) {
  if (h < 1 || w < 1)
    throw ValueError("random_shift: image size expected >= 1 x 1, got " + std::to_string(h) +
                     " x " + std::to_string(w));
  if (k < 0) throw ValueError("random_shift: k expected >= 0, got " + std::to_string(k));
  detail::check_shape("random_shift", "x", x, -1, h * w);
  if (k == 0) return;
  const std::uint64_t span = static_cast<std::uint64_t>(2 * k + 1);
  for (Index b = 0; b < x.rows(); ++b) {
    const Index dx = static_cast<Index>(gen.below(span)) - k;
    const Index dy = static_cast<Index>(gen.below(span)) - k;
    if (dx == 0 && dy == 0) continue;
    T* img = x.data() + b * h * w;
    // dst row r reads src row r - dy: walk away from the source (bottom-up when moving down)
    // so no source row is overwritten before it is read.
    for (Index i = 0; i < h; ++i) {
      const Index r = dy > 0 ? h - 1 - i : i;
      const Index sr = r - dy;
      T* dst = img + r * w;
      if (sr < 0 || sr >= h || dx >= w || -dx >= w) {
        std::fill(dst, dst + w, background);
        continue;
      }
      const T* src = img + sr * w;
      // Columns [max(0, dx), min(w, w + dx)) come from src columns shifted by -dx.
      const Index c0 = std::max<Index>(0, dx), c1 = std::min<Index>(w, w + dx);
      std::memmove(dst + c0, src + c0 - dx, static_cast<std::size_t>(c1 - c0) * sizeof(T));
      std::fill(dst, dst + c0, background);
      std::fill(dst + c1, dst + w, background);
    }
  }
}

}  // namespace heed
