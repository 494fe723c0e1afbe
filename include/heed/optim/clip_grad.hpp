#pragma once
// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_. Call between
// backward and opt.step().
//
//   total = (sum_i ||g_i||_p^p)^(1/p)        over all parameters (max_i max|g_i| for p = inf)
//   coef  = max_norm / (total + 1e-6);  if coef < 1: g_i = g_i * coef
//
// so grads are scaled to norm ~max_norm only when they exceed it. Returns total, the norm
// before clipping (log it: spikes show instability).
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
