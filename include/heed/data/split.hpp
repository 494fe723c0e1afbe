#pragma once
// Hold-out validation split, as torch.utils.data.random_split on a (train, val) pair.
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "byte_matrix.hpp"

namespace heed {

// Moves `num_val` rows chosen at random (seeded) out of (images, labels) into
// (val_images, val_labels). The validation rows are in draw order; the remaining training
// rows keep their original order. images/labels may be the same objects as the inputs.
inline void split_validation(ByteMatrix& images, Labels& labels, ByteMatrix& val_images,
                             Labels& val_labels, Index num_val, std::uint64_t seed) {
  const Index n = images.rows();
  if (labels.size() != n)
    throw ShapeError("split_validation: labels expected (" + std::to_string(n) + "), got (" +
                     std::to_string(labels.size()) + ")");
  if (num_val < 1 || num_val >= n)
    throw ValueError("split_validation: num_val expected in [1, " + std::to_string(n - 1) +
                     "], got " + std::to_string(num_val));
  // Partial Fisher-Yates: the first num_val entries of perm are a uniform random subset.
  Generator gen(seed);
  std::vector<Index> perm(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
  std::vector<bool> is_val(static_cast<std::size_t>(n), false);
  for (Index i = 0; i < num_val; ++i) {
    const auto j = static_cast<std::size_t>(i + static_cast<Index>(gen.below(std::uint64_t(n - i))));
    std::swap(perm[static_cast<std::size_t>(i)], perm[j]);
    is_val[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = true;
  }
  ByteMatrix vx(num_val, images.cols()), tx(n - num_val, images.cols());
  Labels vy(num_val), ty(n - num_val);
  for (Index i = 0; i < num_val; ++i) {
    const Index r = perm[static_cast<std::size_t>(i)];
    vx.row(i) = images.row(r);
    vy(i) = labels(r);
  }
  for (Index r = 0, t = 0; r < n; ++r) {
    if (is_val[static_cast<std::size_t>(r)]) continue;
    tx.row(t) = images.row(r);
    ty(t++) = labels(r);
  }
  images = std::move(tx);
  labels = std::move(ty);
  val_images = std::move(vx);
  val_labels = std::move(vy);
}

}  // namespace heed
