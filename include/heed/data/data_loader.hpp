#pragma once
// Mini-batches over an in-memory byte dataset, as torch.utils.data.DataLoader:
//
//   heed::DataLoader<float> loader(images, labels, {.batch_size = 100, .seed = 1,
//                                                   .mean = 0.5f, .std = 0.5f});
//   for (int epoch = 0; epoch < E; ++epoch) {
//     loader.start_epoch();                 // reshuffles (Fisher-Yates with a seeded Generator)
//     while (loader.next(x, y)) { ... }     // x (B, D) = (byte / 255 - mean) / std, y (B)
//   }
//
// Pixels stay bytes until a batch is drawn, so x is normalised per batch; x and y are resized
// only when the batch size changes (the last, short batch), so steps allocate nothing.
// The loader keeps references to images and labels: they must outlive it.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "byte_matrix.hpp"
#include "normalize.hpp"

namespace heed {

template <typename T>
struct DataLoaderOptions {
  Index batch_size = 100;
  bool shuffle = true;
  std::uint64_t seed = 0;
  bool drop_last = false;  // drop the final batch if it is smaller than batch_size
  T mean = 0;
  T std = 1;
  // Called on every batch after normalisation (augmentation, e.g. random_shift). Optional.
  std::function<void(Matrix<T>& x, Labels& y)> transform = {};
};

template <typename T>
class DataLoader {
 public:
  using Options = DataLoaderOptions<T>;

  DataLoader(const ByteMatrix& images, const Labels& labels, Options opt = {})
      : images_(images), labels_(labels), opt_(std::move(opt)), gen_(opt_.seed) {
    if (images.rows() != labels.size())
      throw ShapeError("DataLoader: labels expected (" + std::to_string(images.rows()) +
                       ") to match images " + detail::shape_str(images.rows(), images.cols()) +
                       ", got (" + std::to_string(labels.size()) + ")");
    if (images.rows() == 0 || images.cols() == 0)
      throw ValueError("DataLoader: images expected non-empty, got " +
                       detail::shape_str(images.rows(), images.cols()));
    if (opt_.batch_size < 1)
      throw ValueError("DataLoader: batch_size expected >= 1, got " +
                       std::to_string(opt_.batch_size));
    detail::check_mean_std("DataLoader", opt_.mean, opt_.std);
    lut_ = detail::byte_lut(opt_.mean, opt_.std);
    order_.resize(static_cast<std::size_t>(images.rows()));
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<Index>(i);
  }
  // The loader stores references: refuse temporaries that would dangle.
  DataLoader(ByteMatrix&&, const Labels&, Options = {}) = delete;
  DataLoader(const ByteMatrix&, Labels&&, Options = {}) = delete;
  DataLoader(ByteMatrix&&, Labels&&, Options = {}) = delete;

  // Begins an epoch: rewinds and, with shuffle, draws a new permutation. next() calls it
  // itself the first time, so a single pass needs no start_epoch().
  void start_epoch() {
    pos_ = 0;
    started_ = true;
    if (!opt_.shuffle) return;
    for (std::size_t i = order_.size() - 1; i > 0; --i)
      std::swap(order_[i], order_[static_cast<std::size_t>(gen_.below(i + 1))]);
  }

  // Fills the next batch: x (B, D), y (B). Returns false when the epoch is exhausted (and
  // keeps returning false until start_epoch()).
  bool next(Matrix<T>& x, Labels& y) {
    if (!started_) start_epoch();
    const Index n = size(), left = n - pos_;
    const Index B = std::min(opt_.batch_size, left);
    if (B <= 0 || (opt_.drop_last && B < opt_.batch_size)) {
      pos_ = n;
      return false;
    }
    x.resize(B, images_.cols());
    y.resize(B);
    const Index* rows = order_.data() + pos_;
    detail::gather_normalized(ByteMatrixRef(images_), rows, B, lut_, x);
    for (Index i = 0; i < B; ++i) y(i) = labels_(rows[i]);
    pos_ += B;
    if (opt_.transform) opt_.transform(x, y);
    return true;
  }

  Index num_batches() const {
    const Index n = size(), b = opt_.batch_size;
    return opt_.drop_last ? n / b : (n + b - 1) / b;
  }
  Index size() const { return images_.rows(); }
  Index batch_size() const { return opt_.batch_size; }
  const Options& options() const { return opt_; }
  // Dataset row indices in this epoch's order.
  const std::vector<Index>& order() const { return order_; }
  // The shuffling generator, for checkpoints. Each epoch shuffles the previous epoch's order,
  // so a resumed run rebuilds the loader with the same seed and calls start_epoch() once per
  // completed epoch; generator() then equals the checkpointed state (a cheap consistency check).
  Generator& generator() { return gen_; }

 private:
  const ByteMatrix& images_;  // (N, D)
  const Labels& labels_;      // (N)
  Options opt_;
  Generator gen_;
  std::array<T, 256> lut_{};
  std::vector<Index> order_;  // permutation of 0..N-1
  Index pos_ = 0;
  bool started_ = false;
};

}  // namespace heed
