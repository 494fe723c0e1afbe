#pragma once
// Small helpers shared by tests in several folders: a seeded random matrix, and label and
// token batches written out as lists. Included as "common/helpers.hpp" (tests/ is on the include path).
#include <cstdint>
#include <heed/core.hpp>
#include <initializer_list>
#include <stdexcept>

namespace heed_test {

// (r, c) of independent N(0, scale^2) draws from heed::Generator(seed), row-major order.
template <typename T = double>
heed::Matrix<T> randn(heed::Index r, heed::Index c, std::uint64_t seed, double scale = 1.0) {
  heed::Generator g(seed);
  heed::Matrix<T> x(r, c);
  for (heed::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(scale * g.normal());
  return x;
}

// labels({2, 0, 1}): class ids (or token ids) as a heed::Labels vector.
inline heed::Labels labels(std::initializer_list<int> v) {
  heed::Labels y(static_cast<heed::Index>(v.size()));
  heed::Index i = 0;
  for (int x : v) y(i++) = x;
  return y;
}

// tokens(2, 3, {1, 2, 3, 4, 5, 6}): a (rows, cols) heed::Tokens batch, row-major. The list must
// hold rows * cols ids (std::invalid_argument otherwise: no doctest here).
inline heed::Tokens tokens(heed::Index rows, heed::Index cols, std::initializer_list<int> v) {
  if (static_cast<heed::Index>(v.size()) != rows * cols)
    throw std::invalid_argument("tokens: list size does not match rows * cols");
  heed::Tokens t(rows, cols);
  heed::Index i = 0;
  for (int x : v) t.data()[i++] = x;
  return t;
}

}  // namespace heed_test
