#pragma once
// Stochastic gradient descent with momentum, as torch.optim.SGD. For each parameter p, grad g:
//
//   g = g + weight_decay * p                          (L2 penalty, if weight_decay != 0)
//   if momentum != 0:
//     b = g                                 on the first step
//     b = momentum * b + (1 - dampening) * g  afterwards
//     g = g + momentum * b   if nesterov,   else g = b
//   p = p - lr * g
//
// The decayed grad is never stored: it is re-read as the expression g + wd * p, so the update
// is a few fused element-wise passes and the caller's grads are left untouched.
//
// Unlike Adam and RMSprop, step() has no overflow guard: the momentum buffer holds no squares
// and can only overflow for gradients near max<T>, which overflow the weights anyway. NaN and
// inf gradients pass through, as in PyTorch; heed::check_finite before step() stops them.
#include <string>
#include <utility>
#include <vector>

#include "optimizer.hpp"

namespace heed {

template <class T>
struct SGDOptions {
  T lr = T(1e-3);
  T momentum = 0;
  T dampening = 0;
  T weight_decay = 0;
  bool nesterov = false;
};

template <class T>
class SGD : public Optimizer<T> {
 public:
  SGD(std::vector<Parameter<T>> params, const SGDOptions<T>& o = {})
      : Optimizer<T>(std::move(params), o.lr, "SGD"), o_(o) {
    detail::check_nonneg("SGD", "momentum", static_cast<double>(o.momentum));
    detail::check_hyper(std::isfinite(static_cast<double>(o.dampening)), "SGD", "dampening",
                        "a finite value", static_cast<double>(o.dampening));
    detail::check_nonneg("SGD", "weight_decay", static_cast<double>(o.weight_decay));
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
      throw ValueError("SGD: nesterov requires momentum > 0 and dampening = 0, got momentum " +
                       detail::num_str(static_cast<double>(o.momentum)) + " and dampening " +
                       detail::num_str(static_cast<double>(o.dampening)));
    if (o.momentum != 0) buf_ = this->zeros_like_params();
  }

  std::string name() const override { return "SGD"; }
  const SGDOptions<T>& options() const { return o_; }

 protected:
  void update(std::int64_t t) override {
    const T lr = this->lr(), wd = o_.weight_decay, mu = o_.momentum;
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      auto p = this->params_[i].value->array();
      const auto g = this->params_[i].grad->array() + wd * p;
      if (mu == 0) {
        p -= lr * g;
        continue;
      }
      auto b = buf_[i].array();
      if (t == 1)
        b = g;
      else
        b = mu * b + (T(1) - o_.dampening) * g;
      if (o_.nesterov)
        p -= lr * (g + mu * b);  // element-wise: reading p in g before writing it is safe
      else
        p -= lr * b;
    }
  }

  void append_state(typename Optimizer<T>::State& s) override {
    for (std::size_t i = 0; i < buf_.size(); ++i)
      s.push_back({this->key(i) + ".momentum_buffer", &buf_[i]});
  }

 private:
  SGDOptions<T> o_;
  std::vector<Matrix<T>> buf_;
};

}  // namespace heed
