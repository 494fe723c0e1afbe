#pragma once
// Bytes -> T as torchvision's ToTensor + Normalize: x = (byte / 255 - mean) / std.
// The 256 possible values are computed once in double into a lookup table, so the per-pixel
// work is one load, and the DataLoader and normalize() produce bit-identical values.
#include <array>
#include <cmath>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "byte_matrix.hpp"

namespace heed {
namespace detail {

template <typename T>
void check_mean_std(const char* fn, T mean, T sd) {
  if (!std::isfinite(static_cast<double>(mean)))
    throw ValueError(std::string(fn) + ": mean expected finite, got " + std::to_string(mean));
  if (!std::isfinite(static_cast<double>(sd)) || sd == T(0))
    throw ValueError(std::string(fn) + ": std expected finite and non-zero, got " +
                     std::to_string(sd));
}

template <typename T>
std::array<T, 256> byte_lut(T mean, T sd) {
  std::array<T, 256> lut;
  for (int b = 0; b < 256; ++b)
    lut[b] = static_cast<T>((b / 255.0 - static_cast<double>(mean)) / static_cast<double>(sd));
  return lut;
}

// out.row(i) = lut[src.row(rows[i])] for a gathered batch; rows == nullptr means i itself.
template <typename T>
void gather_normalized(const ByteMatrixRef& src, const Index* rows, Index n,
                       const std::array<T, 256>& lut, Matrix<T>& out) {
  const Index D = src.cols();
  for (Index i = 0; i < n; ++i) {
    const std::uint8_t* s = src.data() + (rows ? rows[i] : i) * src.outerStride();
    T* d = out.data() + i * D;
    for (Index j = 0; j < D; ++j) d[j] = lut[s[j]];
  }
}

}  // namespace detail

// bytes (N, D) -> out (N, D); out is resized only if its shape differs.
template <typename T>
void normalize(const ByteMatrixRef& bytes, Matrix<T>& out, T mean = T(0), T sd = T(1)) {
  detail::check_mean_std("normalize", mean, sd);
  out.resize(bytes.rows(), bytes.cols());
  detail::gather_normalized(bytes, nullptr, bytes.rows(), detail::byte_lut(mean, sd), out);
}

// Returning form, e.g. for the whole test set: auto x = heed::normalized<float>(test_images).
template <typename T>
Matrix<T> normalized(const ByteMatrixRef& bytes, T mean = T(0), T sd = T(1)) {
  Matrix<T> out;
  normalize(bytes, out, mean, sd);
  return out;
}

}  // namespace heed
