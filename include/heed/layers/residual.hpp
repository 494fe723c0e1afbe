#pragma once
// Residual: y = x + fn(x), llm.c's residual_forward/backward as a module, so a residual block
// is data, not code:
//
//   heed::Sequential<float> block;
//   block.emplace<heed::Residual<float>>(heed::Sequential<float>(
//       heed::LayerNorm<float>(64), heed::Linear<float>(64, 256), heed::GELU<float>(),
//       heed::Linear<float>(256, 64)));
//
//   y  = x + fn(x)                    (1)     x, y: (B, F); fn must keep the shape
//   dx = dy + fn.backward(dy)         d(1): the identity path plus the branch
//
// The branch is the child "fn": parameter names "fn.0.weight", ...
#include <memory>
#include <string>
#include <type_traits>

#include "../core/module.hpp"

namespace heed {

template <typename T>
class Residual : public Module<T> {
 public:
  explicit Residual(std::unique_ptr<Module<T>> fn) : fn_(std::move(fn)) {
    if (!fn_) throw ValueError("Residual: got a null module");
  }
  // Takes the branch by value: Residual<float>(heed::Linear<float>(64, 64)).
  template <class M>
    requires(std::is_base_of_v<Module<T>, std::decay_t<M>> &&
             !std::is_same_v<std::decay_t<M>, Residual>)
  explicit Residual(M&& fn) : fn_(std::make_unique<std::decay_t<M>>(std::forward<M>(fn))) {}

  // forward                                                      x (B, F) -> y (B, F)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    const Matrix<T>& f = fn_->forward(x);
    if (f.rows() != x.rows() || f.cols() != x.cols())
      throw ShapeError("Residual: fn (" + fn_->name() + ") must keep the shape: input " +
                       detail::shape_str(x.rows(), x.cols()) + ", its output " +
                       detail::shape_str(f.rows(), f.cols()));
    y_.resize(x.rows(), x.cols());
    y_ = x + f;  // (1)
    return y_;
  }

  // backward                                                    dy (B, F) -> dx (B, F)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(y_.cols() != 0 || y_.rows() != 0, "Residual");
    detail::check_shape("Residual", "gradient", dy, y_.rows(), y_.cols());
    const Matrix<T>& df = fn_->backward(dy);
    if (!this->input_grad_) {
      dx_.resize(0, dy.cols());
      return dx_;
    }
    dx_.resize(dy.rows(), dy.cols());
    dx_ = dy + df;  // d(1)
    return dx_;
  }

  Children<T> children() override { return {{"fn", fn_.get()}}; }
  std::string name() const override { return "Residual"; }
  void requires_input_grad(bool on) override {
    Module<T>::requires_input_grad(on);
    fn_->requires_input_grad(on);
  }

  Module<T>& fn() { return *fn_; }

 private:
  std::unique_ptr<Module<T>> fn_;
  Matrix<T> y_;   // (B, F)
  Matrix<T> dx_;  // (B, F)
};

}  // namespace heed
