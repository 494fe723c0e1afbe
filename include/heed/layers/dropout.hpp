#pragma once
// Dropout (inverted): in training, y = x .* m / (1 - p) with m_ij ~ Bernoulli(1 - p);
// in eval mode, y = x. Backward: dx = dy .* m / (1 - p).
#include <cmath>
#include <cstdint>

#include "../core/module.hpp"
#include "../core/random.hpp"

namespace heed {
namespace detail {

// Inverted dropout's mask, shared by Dropout and the attention modules: M (rows, cols) with
// each entry 0 with probability p, else 1/(1 - p). One 64-bit draw gen.bits() serves two
// entries in row-major order: entry 2k reads its low 32 bits, entry 2k+1 its high 32 bits
// (an odd last entry the low half of one more draw), and an entry is dropped when its 32 bits,
// as an integer, are below p * 2^32 rounded to nearest. Half the draws of one per entry: the
// generator was a sixth of a small transformer's training step.
template <typename T>
void dropout_mask(Matrix<T>& M, Index rows, Index cols, double p, Generator& gen) {
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  const auto threshold = static_cast<std::uint64_t>(std::llround(p * 0x1.0p32));  // p < 1
  M.resize(rows, cols);
  T* m = M.data();
  const Index n = M.size();
  Index i = 0;
  for (; i + 1 < n; i += 2) {
    const std::uint64_t b = gen.bits();
    m[i] = (b & 0xFFFFFFFFu) < threshold ? T(0) : scale;
    m[i + 1] = (b >> 32) < threshold ? T(0) : scale;
  }
  if (i < n) m[i] = (gen.bits() & 0xFFFFFFFFu) < threshold ? T(0) : scale;
}

}  // namespace detail

template <typename T>
class Dropout : public Module<T> {
 public:
  explicit Dropout(double p = 0.5, std::uint64_t seed = 0xD409) : p_(p), gen_(seed) {
    detail::require(p >= 0.0 && p < 1.0, "Dropout",
                    "p must be in [0, 1), got " + std::to_string(p));
  }

  const Matrix<T>& forward(const ConstRef<T>& x) override {
    rows_ = x.rows();
    cols_ = x.cols();
    if (!this->training_ || p_ == 0.0) {  // the identity, copied: the return is a Matrix&
      active_ = false;
      y_ = x;
      return y_;
    }
    active_ = true;
    detail::dropout_mask(mask_, x.rows(), x.cols(), p_, gen_);  // (B, F): 0 or 1/(1-p)
    y_.resize(x.rows(), x.cols());
    y_ = x.cwiseProduct(mask_);         // (1) y = x .* m/(1-p)
    return y_;
  }

  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(cols_ >= 0, "Dropout");
    detail::check_shape("Dropout", "gradient", dy, rows_, cols_);
    if (active_) dx_ = dy.cwiseProduct(mask_);  // d(1)
    else dx_ = dy;
    return dx_;
  }

  // forward and backward for a composite that owns its Dropout: when inactive (eval mode or
  // p = 0) they return a view of their argument instead of a copy, so an inactive dropout costs
  // no buffer and no pass over the data. The view is valid while the argument is: forward_view
  // takes only a named matrix (a temporary is refused at compile time); backward_view's view
  // of a Ref that had to copy its argument lives only as long as that Ref.
  ConstRef<T> forward_view(const Matrix<T>& x) {
    if (this->training_ && p_ > 0.0) return forward(x);
    rows_ = x.rows();
    cols_ = x.cols();
    active_ = false;
    return x;
  }
  ConstRef<T> forward_view(Matrix<T>&&) = delete;
  ConstRef<T> backward_view(const ConstRef<T>& dy) {
    if (active_) return backward(dy);
    detail::require_forward(cols_ >= 0, "Dropout");
    detail::check_shape("Dropout", "gradient", dy, rows_, cols_);
    return dy;
  }

  std::string name() const override { return "Dropout"; }
  std::string extra_repr() const override { return "p=" + detail::num_repr(p_); }
  // Its own stream, reached through the registry so a Checkpoint saves and restores it.
  Generator* local_generator() override { return &gen_; }
  double p() const { return p_; }
  Generator& generator() { return gen_; }

 private:
  double p_;
  Generator gen_;
  bool active_ = false;
  Index rows_ = -1, cols_ = -1;  // (B, F) of the last forward
  Matrix<T> mask_;  // (B, F)
  Matrix<T> y_;     // (B, F)
  Matrix<T> dx_;    // (B, F)
};

}  // namespace heed
