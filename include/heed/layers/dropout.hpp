#pragma once
// Dropout (inverted): in training, y = x .* m / (1 - p) with m_ij ~ Bernoulli(1 - p);
// in eval mode, y = x. Backward: dx = dy .* m / (1 - p).
// Dropout2d: the same with one m per (sample, channel), as torch.nn.Dropout2d: whole feature
// maps are dropped.
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

// torch.nn.Dropout2d(p) on (N, C*S) (S = H*W, channel c of sample n at columns [c*S, (c+1)*S)):
// in training each of the N*C feature maps is zeroed with probability p and the others scaled by
// 1/(1 - p); in eval mode y = x. PyTorch reads C from the tensor's shape; a heed matrix does not
// carry it, so it is the constructor's `channels`.
//   y_(n, c*S + s) = x_(n, c*S + s) m_nc / (1 - p)                                      (1)
//   dx_(n, c*S + s) = dy_(n, c*S + s) m_nc / (1 - p)                                   d(1)
template <typename T>
class Dropout2d : public Module<T> {
 public:
  explicit Dropout2d(double p, Index channels, std::uint64_t seed = 0xD402) : p_(p), C_(channels), gen_(seed) {
    detail::require(p >= 0.0 && p < 1.0, "Dropout2d", "p must be in [0, 1), got " + std::to_string(p));
    detail::require(channels > 0, "Dropout2d", "channels must be positive, got " + std::to_string(channels));
  }

  const Matrix<T>& forward(const ConstRef<T>& x) override {
    detail::channel_positions("Dropout2d", x.rows(), x.cols(), C_, "channels");
    rows_ = x.rows();
    cols_ = x.cols();
    active_ = this->training_ && p_ > 0.0;
    if (!active_) {  // the identity, copied: the return is a Matrix&
      y_ = x;
      return y_;
    }
    detail::dropout_mask(mask_, x.rows(), C_, p_, gen_);  // (N, C): 0 or 1/(1-p)
    apply(x, y_);                                          // (1)
    return y_;
  }

  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(cols_ >= 0, "Dropout2d");
    detail::check_shape("Dropout2d", "gradient", dy, rows_, cols_);
    if (active_) apply(dy, dx_);  // d(1)
    else dx_ = dy;
    return dx_;
  }

  std::string name() const override { return "Dropout2d"; }
  std::string extra_repr() const override { return "p=" + detail::num_repr(p_) + ", channels=" + std::to_string(C_); }
  Generator* local_generator() override { return &gen_; }
  double p() const { return p_; }
  Index channels() const { return C_; }

 private:
  // out = in with each (n, c) block of S columns times mask_(n, c).
  void apply(const ConstRef<T>& in, Matrix<T>& out) const {
    const Index S = in.cols() / C_;
    out.resize(in.rows(), in.cols());
    for (Index n = 0; n < in.rows(); ++n)
      for (Index c = 0; c < C_; ++c)
        out.row(n).segment(c * S, S) = in.row(n).segment(c * S, S) * mask_(n, c);
  }

  double p_;
  Index C_;
  Generator gen_;
  bool active_ = false;
  Index rows_ = -1, cols_ = -1;  // (N, C*S) of the last forward
  Matrix<T> mask_;  // (N, C)
  Matrix<T> y_;     // (N, C*S)
  Matrix<T> dx_;    // (N, C*S)
};

}  // namespace heed
