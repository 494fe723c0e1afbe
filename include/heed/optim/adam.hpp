#pragma once
// Adam and AdamW, as torch.optim.Adam / AdamW (PyTorch 1.13). For each parameter p, grad g, at
// step t:
//
//   AdamW only:  p = p * (1 - lr * weight_decay)          (decoupled weight decay)
//   Adam only:   g = g + weight_decay * p                 (L2 penalty)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   v_max = max(v_max, v)                                  (amsgrad; then v_max replaces v below)
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - lr / (1 - beta1^t) * m / denom
//
// AdamW is Adam with the decay mode switched, one update routine for both. The bias corrections
// are computed in double (as PyTorch does in Python) and rounded to T once.
//
// Unlike PyTorch, a step that would make m or v non-finite (|g| above ~1.8e19 in float squares
// past the float range; a NaN or inf g) throws NumericError before anything changes, instead of
// leaving v = inf, which freezes the weight for good (m / sqrt(v) = 0) and poisons checkpoints.
// See check_update().
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "optimizer.hpp"

namespace heed {

// betas are double whatever T is, as PyTorch's are Python floats: (1 - beta) and the bias
// corrections are formed from the double and only then rounded to T. In float, 1 - 0.9f is
// 0.10000002 where PyTorch uses float(1 - 0.9) = 0.1f; that alone moves the article's MNIST
// run off PyTorch's (tests/interop/mnist_parity).
template <class T>
struct AdamOptions {
  T lr = T(1e-3);
  std::array<double, 2> betas{0.9, 0.999};
  T eps = T(1e-8);
  T weight_decay = 0;
  bool amsgrad = false;
};

// Same fields, AdamW's default weight_decay.
template <class T>
struct AdamWOptions {
  T lr = T(1e-3);
  std::array<double, 2> betas{0.9, 0.999};
  T eps = T(1e-8);
  T weight_decay = T(1e-2);
  bool amsgrad = false;
};

template <class T>
class Adam : public Optimizer<T> {
 public:
  Adam(std::vector<Parameter<T>> params, const AdamOptions<T>& o = {})
      : Adam(std::move(params), o, false, "Adam") {}

  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  const AdamOptions<T>& options() const { return o_; }

 protected:
  Adam(std::vector<Parameter<T>> params, const AdamOptions<T>& o, bool decoupled,
       const char* cls)
      : Optimizer<T>(std::move(params), o.lr, cls), o_(o), decoupled_(decoupled) {
    detail::check_nonneg(cls, "eps", static_cast<double>(o.eps));
    for (int k = 0; k < 2; ++k)
      detail::check_hyper(o.betas[k] >= 0 && o.betas[k] < 1, cls,
                          k == 0 ? "beta at index 0" : "beta at index 1", "a value in [0, 1)",
                          o.betas[k]);
    detail::check_nonneg(cls, "weight_decay", static_cast<double>(o.weight_decay));
    m_ = this->zeros_like_params();
    v_ = this->zeros_like_params();
    if (o.amsgrad) vmax_ = this->zeros_like_params();
  }

  void update(std::int64_t t) override {
    const double b1 = o_.betas[0], b2 = o_.betas[1];
    const double td = static_cast<double>(t);
    const T lr = this->lr();
    const T step_size = static_cast<T>(static_cast<double>(lr) / (1 - std::pow(b1, td)));
    const T bc2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(b2, td)));
    const T beta1 = T(b1), beta2 = T(b2), eps = o_.eps;
    const T one_m_b1 = T(1 - b1), one_m_b2 = T(1 - b2);  // PyTorch's alpha= and value= of add_
    // L2 goes into the grad (Adam) or shrinks p first (AdamW); the other term is zero.
    const T l2 = decoupled_ ? T(0) : o_.weight_decay;
    const T shrink =
        decoupled_ ? static_cast<T>(1 - static_cast<double>(lr) * static_cast<double>(o_.weight_decay))
                   : T(1);
    // The update is memory-bound: three whole-tensor statements would stream p, g, m and v
    // through the cache three times. So each tensor is updated in chunks small enough to stay
    // in L1, with Eigen's vectorised array expressions inside a chunk. Same arithmetic, in the
    // same order, as PyTorch's single-tensor Adam:
    //   g = grad + l2 p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
    //   p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps)      (v -> max(vmax, v) with amsgrad)
    // with / sqrt(bc2) done as * (1 / sqrt(bc2)): one division per element instead of two
    // (rounding differs from PyTorch's by an ulp at most).
    const T inv_bc2_sqrt = T(1) / bc2_sqrt;
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    using Map = Eigen::Map<Arr>;
    using CMap = Eigen::Map<const Arr>;
    constexpr Index kChunk = 512;
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      T* pd = this->params_[i].value->data();
      const T* gd = this->params_[i].grad->data();
      const Index n = m_[i].size();
      // Chunks are independent: large tensors are shared out over Eigen's threads (results are
      // the same for any thread count, each element's arithmetic being unchanged).
      const Index chunks = (n + kChunk - 1) / kChunk;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(Eigen::nbThreads()) if (n >= 65536)
#endif
      for (Index c = 0; c < chunks; ++c) {
        const Index j0 = c * kChunk, len = std::min(kChunk, n - j0);
        Map p(pd + j0, len), m(m_[i].data() + j0, len), v(v_[i].data() + j0, len);
        const CMap grad(gd + j0, len);
        if (shrink != T(1)) p *= shrink;
        const auto g = grad + l2 * p;
        m = beta1 * m + one_m_b1 * g;
        v = beta2 * v + one_m_b2 * g.square();
        if (o_.amsgrad) {
          Map vmax(vmax_[i].data() + j0, len);
          vmax = vmax.max(v);
          p -= step_size * (m / (vmax.sqrt() * inv_bc2_sqrt + eps));
        } else {
          p -= step_size * (m / (v.sqrt() * inv_bc2_sqrt + eps));
        }
      }
    }
  }

  // Would update(t) make exp_avg_sq or exp_avg non-finite? A prescan bounding max |g| per
  // tensor (g = grad + l2 * p, as in update(); detail::grad_within) against
  // detail::ema_grad_limit() clears normal steps; only a tensor above the limit (a gradient near 1.8e19 in float, or NaN/inf) is re-checked
  // exactly, element by element, with update()'s own arithmetic, so a gradient that does not
  // overflow is never refused. v within 16 ulps of max<T> is refused too, so that a contracted
  // multiply-add in update() cannot overflow where this check did not. max_exp_avg_sq is
  // max(max_exp_avg_sq, v): finite when v is.
  void check_update(std::int64_t t) const override {
    const T beta1 = T(o_.betas[0]), beta2 = T(o_.betas[1]);
    const T one_m_b1 = T(1 - o_.betas[0]), one_m_b2 = T(1 - o_.betas[1]);
    const T l2 = decoupled_ ? T(0) : o_.weight_decay;
    const T lim = std::min(detail::ema_grad_limit<T>(o_.betas[1], 2), detail::ema_grad_limit<T>(o_.betas[0], 1));
    const T top = std::numeric_limits<T>::max() / (1 + 16 * std::numeric_limits<T>::epsilon());
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      const Matrix<T>& param = *this->params_[i].value;
      const Matrix<T>& grad = *this->params_[i].grad;
      if (detail::grad_within(grad, param, l2, lim)) continue;
      const T* pd = param.data();
      const T* gd = grad.data();
      const T* md = m_[i].data();
      const T* vd = v_[i].data();
      for (Index j = 0; j < grad.size(); ++j) {
        const T g = gd[j] + l2 * pd[j];
        const T v = beta2 * vd[j] + one_m_b2 * (g * g);
        const T m = beta1 * md[j] + one_m_b1 * g;
        if (!(v <= top)) throw this->overflow_error(i, "exp_avg_sq", t, j, g, l2 != T(0));
        if (!(std::abs(m) <= top)) throw this->overflow_error(i, "exp_avg", t, j, g, l2 != T(0));
      }
    }
  }

  // The second moments are averages of g^2: finite and >= 0 (a negative one makes sqrt NaN).
  std::string validate_buffer(const std::string& buffer, double x) const override {
    if ((buffer == "exp_avg_sq" || buffer == "max_exp_avg_sq") && !(std::isfinite(x) && x >= 0))
      return "must be finite and >= 0";
    return Optimizer<T>::validate_buffer(buffer, x);
  }

  void append_state(typename Optimizer<T>::State& s) override {
    for (std::size_t i = 0; i < m_.size(); ++i) {
      s.push_back({this->key(i) + ".exp_avg", &m_[i]});
      s.push_back({this->key(i) + ".exp_avg_sq", &v_[i]});
      if (o_.amsgrad) s.push_back({this->key(i) + ".max_exp_avg_sq", &vmax_[i]});
    }
  }

 private:
  AdamOptions<T> o_;
  bool decoupled_;
  std::vector<Matrix<T>> m_, v_, vmax_;
};

template <class T>
class AdamW : public Adam<T> {
 public:
  AdamW(std::vector<Parameter<T>> params, const AdamWOptions<T>& o = {})
      : Adam<T>(std::move(params),
                AdamOptions<T>{.lr = o.lr, .betas = o.betas, .eps = o.eps,
                               .weight_decay = o.weight_decay, .amsgrad = o.amsgrad},
                true, "AdamW") {}
};

}  // namespace heed
