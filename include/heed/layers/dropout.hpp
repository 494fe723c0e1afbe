#pragma once
// Dropout (inverted): in training, y = x .* m / (1 - p) with m_ij ~ Bernoulli(1 - p);
// in eval mode, y = x. Backward: dx = dy .* m / (1 - p).
#include "../core/module.hpp"
#include "../core/random.hpp"

namespace heed {
namespace detail {

// Inverted dropout's mask, shared by Dropout and the attention modules: M (rows, cols) with
// each entry 0 with probability p, else 1/(1 - p), one gen.uniform() per entry in row-major
// order (an entry is dropped when its draw is < p).
template <typename T>
void dropout_mask(Matrix<T>& M, Index rows, Index cols, double p, Generator& gen) {
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  M.resize(rows, cols);
  T* m = M.data();
  for (Index i = 0; i < M.size(); ++i) m[i] = gen.uniform() < p ? T(0) : scale;
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
