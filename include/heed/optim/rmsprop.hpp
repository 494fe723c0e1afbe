#pragma once
// RMSprop, as torch.optim.RMSprop. For each parameter p, grad g:
//
//   g = g + weight_decay * p                          (L2 penalty)
//   v = alpha * v + (1 - alpha) * g^2                 (square_avg)
//   centered:  a = alpha * a + (1 - alpha) * g;  denom = sqrt(v - a^2) + eps
//   else:      denom = sqrt(v) + eps
//   momentum > 0:  b = momentum * b + g / denom;  p = p - lr * b
//   else:          p = p - lr * g / denom
//
// Unlike SGD, the momentum buffer starts at zero (PyTorch does the same).
//
// Unlike PyTorch, a step that would make square_avg (or grad_avg) non-finite, e.g. |g| above
// ~1.8e19 in float or a NaN/inf g, throws NumericError before anything changes: see Adam's
// check_update(), which this one mirrors. The momentum buffer accumulates g / denom, bounded by
// 1 / sqrt(1 - alpha) when not centered; it is not checked.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "optimizer.hpp"

namespace heed {

template <class T>
struct RMSpropOptions {
  T lr = T(1e-2);
  double alpha = 0.99;  // double, as Adam's betas (adam.hpp): (1 - alpha) is PyTorch's
  T eps = T(1e-8);
  T weight_decay = 0;
  T momentum = 0;
  bool centered = false;
};

template <class T>
class RMSprop : public Optimizer<T> {
 public:
  RMSprop(std::vector<Parameter<T>> params, const RMSpropOptions<T>& o = {})
      : Optimizer<T>(std::move(params), o.lr, "RMSprop"), o_(o) {
    detail::check_nonneg("RMSprop", "alpha", o.alpha);
    detail::check_nonneg("RMSprop", "eps", static_cast<double>(o.eps));
    detail::check_nonneg("RMSprop", "weight_decay", static_cast<double>(o.weight_decay));
    detail::check_nonneg("RMSprop", "momentum", static_cast<double>(o.momentum));
    sq_ = this->zeros_like_params();
    if (o.centered) avg_ = this->zeros_like_params();
    if (o.momentum > 0) buf_ = this->zeros_like_params();
  }

  std::string name() const override { return "RMSprop"; }
  const RMSpropOptions<T>& options() const { return o_; }

 protected:
  void update(std::int64_t) override {
    const T wd = o_.weight_decay, alpha = T(o_.alpha), one_m_alpha = T(1 - o_.alpha), eps = o_.eps;
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      auto p = this->params_[i].value->array();
      const auto g = this->params_[i].grad->array() + wd * p;
      auto v = sq_[i].array();
      v = alpha * v + one_m_alpha * g.square();
      if (o_.centered) {
        auto a = avg_[i].array();
        a = alpha * a + one_m_alpha * g;
        apply(i, p, g, (v - a.square()).sqrt() + eps);
      } else {
        apply(i, p, g, v.sqrt() + eps);
      }
    }
  }

  void check_update(std::int64_t t) const override {
    const T wd = o_.weight_decay, alpha = T(o_.alpha), one_m_alpha = T(1 - o_.alpha);
    T lim = detail::ema_grad_limit<T>(o_.alpha, 2);
    if (o_.centered) lim = std::min(lim, detail::ema_grad_limit<T>(o_.alpha, 1));
    const T top = std::numeric_limits<T>::max() / (1 + 16 * std::numeric_limits<T>::epsilon());
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      const Matrix<T>& param = *this->params_[i].value;
      const Matrix<T>& grad = *this->params_[i].grad;
      if (detail::grad_within(grad, param, wd, lim)) continue;
      const T* pd = param.data();
      const T* gd = grad.data();
      const T* vd = sq_[i].data();
      for (Index j = 0; j < grad.size(); ++j) {
        const T g = gd[j] + wd * pd[j];
        const T v = alpha * vd[j] + one_m_alpha * (g * g);
        if (!(v <= top)) throw this->overflow_error(i, "square_avg", t, j, g, wd != T(0));
        if (o_.centered && !(std::abs(alpha * avg_[i].data()[j] + one_m_alpha * g) <= top))
          throw this->overflow_error(i, "grad_avg", t, j, g, wd != T(0));
      }
    }
  }

  // square_avg averages g^2: finite and >= 0 (a negative one makes sqrt NaN).
  std::string validate_buffer(const std::string& buffer, double x) const override {
    if (buffer == "square_avg" && !(std::isfinite(x) && x >= 0)) return "must be finite and >= 0";
    return Optimizer<T>::validate_buffer(buffer, x);
  }

  void append_state(typename Optimizer<T>::State& s) override {
    for (std::size_t i = 0; i < sq_.size(); ++i) {
      s.push_back({this->key(i) + ".square_avg", &sq_[i]});
      if (o_.momentum > 0) s.push_back({this->key(i) + ".momentum_buffer", &buf_[i]});
      if (o_.centered) s.push_back({this->key(i) + ".grad_avg", &avg_[i]});
    }
  }

 private:
  // p -= lr * g / denom, through the momentum buffer when there is one.
  template <class P, class G, class D>
  void apply(std::size_t i, P& p, const G& g, const D& denom) {
    if (o_.momentum > 0) {
      auto b = buf_[i].array();
      b = o_.momentum * b + g / denom;
      p -= this->lr() * b;
    } else {
      p -= this->lr() * (g / denom);
    }
  }

  RMSpropOptions<T> o_;
  std::vector<Matrix<T>> sq_, avg_, buf_;
};

}  // namespace heed
