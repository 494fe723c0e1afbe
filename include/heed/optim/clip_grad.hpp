#pragma once
// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_. Call between
// backward and opt.step().
//
//   total = (sum_i ||g_i||_p^p)^(1/p)        over all parameters (max_i max|g_i| for p = inf)
//   coef  = max_norm / (total + 1e-6);  if coef < 1: g_i = g_i * coef
//
// so grads are scaled to norm ~max_norm only when they exceed it. Returns total, the norm
// before clipping (log it: spikes show instability). A norm whose sum of squares overflows T
// (a spike above ~1.8e19 in float) is recomputed with scaling, so it is still finite and
// clipped: clip_grad_norm_ before step() is the remedy the optimizers' overflow error suggests.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "optimizer.hpp"

namespace heed {

template <class T>
T clip_grad_norm_(const std::vector<Parameter<T>>& params, T max_norm, T norm_type = T(2),
                  bool error_if_nonfinite = false) {
  detail::check_nonneg("clip_grad_norm_", "max_norm", static_cast<double>(max_norm));
  const bool inf = std::isinf(norm_type) && norm_type > 0;
  detail::check_hyper(inf || (std::isfinite(norm_type) && norm_type > 0), "clip_grad_norm_",
                      "norm_type", "a value > 0 or inf", static_cast<double>(norm_type));
  T total = 0;
  for (const auto& p : params) {
    if (p.grad == nullptr)
      throw ValueError("clip_grad_norm_: parameter '" + p.name + "' expected a grad, got null");
    if (p.grad->size() == 0) continue;
    const auto g = p.grad->array();
    if (inf)
      total = std::max(total, g.abs().maxCoeff());
    else if (norm_type == T(2))
      total += g.square().sum();
    else
      total += g.abs().pow(norm_type).sum();
  }
  if (!inf) total = norm_type == T(2) ? std::sqrt(total) : std::pow(total, T(1) / norm_type);
  // The sum of |g|^p overflows long before the norm does (|g| > 1.8e19 squares past the float
  // range). Then, if every grad is finite, the norm is recomputed scaled by the largest |g|, so
  // a spike is clipped to max_norm, direction kept, instead of zeroing every grad (coef 0) and
  // reporting inf. Normal grads never take this path: their results are unchanged.
  if (!inf && std::isinf(total)) {
    T scale = 0;
    bool finite = true;
    for (const auto& p : params) {
      if (p.grad->size() == 0) continue;
      finite = finite && p.grad->allFinite();
      scale = std::max(scale, p.grad->array().abs().maxCoeff());
    }
    if (finite && scale > 0) {
      T sum = 0;
      for (const auto& p : params) {
        if (p.grad->size() == 0) continue;
        const auto g = p.grad->array().abs() / scale;
        sum += norm_type == T(2) ? g.square().sum() : g.pow(norm_type).sum();
      }
      total = scale * (norm_type == T(2) ? std::sqrt(sum) : std::pow(sum, T(1) / norm_type));
    }
  }
  if (error_if_nonfinite && !std::isfinite(total))
    throw NumericError("clip_grad_norm_: total norm of order " +
                       detail::num_str(static_cast<double>(norm_type)) +
                       " expected finite, got " + detail::num_str(static_cast<double>(total)));
  const T coef = max_norm / (total + T(1e-6));
  if (coef < T(1))
    for (const auto& p : params) *p.grad *= coef;
  return total;
}

// Clamps every gradient element into [-clip_value, clip_value].
template <class T>
void clip_grad_value_(const std::vector<Parameter<T>>& params, T clip_value) {
  detail::check_nonneg("clip_grad_value_", "clip_value", static_cast<double>(clip_value));
  for (const auto& p : params) {
    if (p.grad == nullptr)
      throw ValueError("clip_grad_value_: parameter '" + p.name + "' expected a grad, got null");
    p.grad->array() = p.grad->array().max(-clip_value).min(clip_value);
  }
}

}  // namespace heed
