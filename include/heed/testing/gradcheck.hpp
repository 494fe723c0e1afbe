#pragma once
// Finite-difference gradient checking (central differences, double precision).
//
// For a scalar function f and a tensor x it perturbs every element by +-eps and compares
//   numeric_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
// with the analytic gradient, element by element, within atol + rtol * |numeric_i|.
// check_module() wraps a module as f(x) = sum(R .* forward(x)) for a fixed random R, so that
// backward(R) must return df/dx and accumulate df/dparam for every parameter.
#include <cmath>
#include <functional>
#include <sstream>
#include <string>

#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"

namespace heed::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0;  // largest |analytic - numeric| seen
  Index checked = 0;       // number of elements compared
  std::string detail;      // first failure, "" when ok
};

// Compares `analytic` (same shape as x) with central differences of f at x. x is restored.
template <class F>
GradcheckResult check_gradient(const std::string& label, Matrix<double>& x,
                               const Matrix<double>& analytic, F&& f,
                               const GradcheckOptions& opt = {}) {
  GradcheckResult r;
  if (analytic.rows() != x.rows() || analytic.cols() != x.cols()) {
    r.ok = false;
    r.detail = label + ": analytic gradient " + detail::shape_str(analytic.rows(), analytic.cols()) +
               " vs tensor " + detail::shape_str(x.rows(), x.cols());
    return r;
  }
  for (Index i = 0; i < x.size(); ++i) {
    double& xi = x.data()[i];
    const double saved = xi;
    xi = saved + opt.eps;
    const double fp = f();
    xi = saved - opt.eps;
    const double fm = f();
    xi = saved;
    const double numeric = (fp - fm) / (2 * opt.eps);
    const double a = analytic.data()[i];
    const double err = std::abs(a - numeric);
    r.max_abs_err = std::max(r.max_abs_err, err);
    ++r.checked;
    if (!(err <= opt.atol + opt.rtol * std::abs(numeric)) && r.ok) {
      r.ok = false;
      std::ostringstream s;
      s.precision(10);
      s << label << "[" << i / x.cols() << "," << i % x.cols() << "]: analytic " << a
        << " vs numeric " << numeric << " (err " << err << ")";
      r.detail = s.str();
    }
  }
  return r;
}

inline void merge(GradcheckResult& into, const GradcheckResult& r) {
  into.max_abs_err = std::max(into.max_abs_err, r.max_abs_err);
  into.checked += r.checked;
  if (into.ok && !r.ok) {
    into.ok = false;
    into.detail = r.detail;
  }
}

// Checks dL/dx and dL/dparam for L = sum(R .* m.forward(x)), R fixed and random.
// `before_forward` runs before every forward (e.g. to reset a dropout generator so the same
// mask is drawn each time).
inline GradcheckResult check_module(Module<double>& m, Matrix<double> x, std::uint64_t seed = 7,
                                    const GradcheckOptions& opt = {},
                                    const std::function<void()>& before_forward = {}) {
  auto fwd = [&]() -> const Matrix<double>& {
    if (before_forward) before_forward();
    return m.forward(x);
  };
  Generator g(seed);
  const Matrix<double> y0 = fwd();
  Matrix<double> R(y0.rows(), y0.cols());
  init::uniform_(R, -1.0, 1.0, g);
  auto loss = [&]() { return fwd().cwiseProduct(R).sum(); };

  m.zero_grad();
  fwd();
  const Matrix<double> dx = m.backward(R);
  GradcheckResult res;
  merge(res, check_gradient(m.name() + " input", x, dx, loss, opt));
  for (auto& p : m.parameters()) {
    const Matrix<double> grad = *p.grad;
    merge(res, check_gradient(m.name() + " " + p.name, *p.value, grad, loss, opt));
  }
  return res;
}

}  // namespace heed::testing
