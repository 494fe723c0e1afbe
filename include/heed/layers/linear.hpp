#pragma once
// Linear: y = x W^T + b, as torch.nn.Linear.
#include <cmath>

#include "../core/gemm.hpp"
#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"

namespace heed {

template <typename T>
class Linear : public Module<T> {
 public:
  // PyTorch's default initialisation, U(+-init::linear_bound(in_features)) on W and then b,
  // drawn from `gen` (the default generator unless given) in init.hpp's order.
  Linear(Index in_features, Index out_features, bool bias = true,
         Generator& gen = default_generator())
      : in_(in_features), out_(out_features), has_bias_(bias) {
    detail::require(in_features > 0 && out_features > 0, "Linear",
                    "in_features and out_features must be positive, got " +
                        std::to_string(in_features) + " and " + std::to_string(out_features));
    W_.resize(out_, in_);  // (out, in)
    dW_ = Matrix<T>::Zero(out_, in_);
    const double bound = init::linear_bound(in_);
    init::uniform_(W_, -bound, bound, gen);
    if (has_bias_) {
      b_.resize(1, out_);  // (1, out)
      db_ = Matrix<T>::Zero(1, out_);
      init::uniform_(b_, -bound, bound, gen);
    }
  }

  // forward                                                       x: (B, in) -> y: (B, out)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    detail::check_shape("Linear", "input", x, -1, in_);
    x_ = x;                                   // (B, in) kept for dW
    using detail::Op;
    detail::gemm<T>(y_, x, Op::N, W_, Op::T);        // (1) y = x W^T      (B, out)
    if (has_bias_) y_.rowwise() += b_.row(0); // (2) y += b
    return y_;
  }

  // backward                                                    dy: (B, out) -> dx: (B, in)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(x_.cols() == in_, "Linear");
    detail::check_shape("Linear", "gradient", dy, x_.rows(), out_);
    using detail::Op;
    detail::gemm<T>(dW_, dy, Op::T, x_, Op::N, T(1));  // d(1) wrt W: dW += dy^T x (out, B)(B, in)
    if (has_bias_) db_.row(0) += dy.colwise().sum();         // d(2) wrt b: sum over batch
    if (this->input_grad_) {
      detail::gemm<T>(dx_, dy, Op::N, W_, Op::N);                // d(1) wrt x: (B, out)(out, in)
    } else {
      dx_.resize(0, in_);
    }
    return dx_;
  }

  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps{{"weight", &W_, &dW_}};
    if (has_bias_) ps.push_back(vector_parameter("bias", &b_, &db_));
    return ps;
  }

  std::string name() const override { return "Linear"; }
  std::string extra_repr() const override {
    return "in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
           ", bias=" + (has_bias_ ? "true" : "false");
  }

  Index in_features() const { return in_; }
  Index out_features() const { return out_; }
  Matrix<T>& weight() { return W_; }  // (out, in)
  Matrix<T>& bias() { return b_; }    // (1, out); empty without bias

 private:
  Index in_, out_;
  bool has_bias_;
  Matrix<T> W_, dW_;  // (out, in)
  Matrix<T> b_, db_;  // (1, out)
  Matrix<T> x_;       // (B, in)
  Matrix<T> y_;       // (B, out)
  Matrix<T> dx_;      // (B, in)
};

}  // namespace heed
