#pragma once
// heed::init: parameter initialisation, as torch.nn.init, for every module's constructor.
//
//   heed::init::uniform_(W, -0.1, 0.1, gen);          U(a, b)
//   heed::init::normal_(W, 0.0, 0.02, gen);           N(mean, std^2)
//   heed::init::xavier_uniform_(W, 1.0, gen);         U(+-gain sqrt(6 / (fan_in + fan_out)))
//   heed::init::xavier_normal_(W, 1.0, gen);          N(0, (gain sqrt(2 / (fan_in + fan_out)))^2)
//   heed::init::kaiming_uniform_(W, 0.0, gen);        U(+-gain sqrt(3 / fan_in)), gain sqrt(2/(1+a^2))
//   heed::init::kaiming_normal_(W, 0.0, gen);         N(0, (gain / sqrt(fan_in))^2)
//   heed::init::constant_(W, v), zeros_(W), ones_(W)  no draws
//   heed::init::linear_bound(fan_in)                  1/sqrt(fan_in), nn.Linear's default bound
//
// Fans are those of an (out, in) weight, PyTorch's layout: fan_in = cols, fan_out = rows (a
// (1, n) vector has fan_in n). Each function fills the matrix as it is already sized and returns
// it; `gen` defaults to heed::default_generator() (torch's default generator).
//
// Draw order, the one rule every module follows (and PyTorch's): a model's parameters are drawn
// in its state_dict order (constructor order), and each matrix element by element in row-major
// order (row 0 left to right, then row 1, ...; heed matrices are row-major, so that is storage
// order), one Generator call per element: uniform_ is one gen.uniform(a, b) = a + (b - a) u,
// normal_ one gen.normal(mean, std). heed's Generator is not torch's, so the values differ
// from torch's, but with the same seed the same model gets the same numbers on every platform,
// in the same order and from the same distributions as PyTorch's.
#include <cmath>

#include "random.hpp"
#include "tensor.hpp"

namespace heed::init {
namespace detail {

// The one fill loop: element i of storage (row-major) order gets the i-th draw().
template <typename T, class Draw>
Matrix<T>& fill_each(Matrix<T>& m, Draw&& draw) {
  T* p = m.data();
  for (Index i = 0; i < m.size(); ++i) p[i] = static_cast<T>(draw());
  return m;
}

}  // namespace detail

// fan_in and fan_out of an (out, in) weight.
template <typename T>
Index fan_in(const Matrix<T>& m) {
  return m.cols();
}
template <typename T>
Index fan_out(const Matrix<T>& m) {
  return m.rows();
}

// PyTorch's default bound for nn.Linear (and the attention scores' weights): its weight gets
// kaiming_uniform_(a = sqrt 5), i.e. gain sqrt(2 / 6) times sqrt(3 / fan_in) = 1/sqrt(fan_in),
// and its bias U(+-1/sqrt(fan_in)) with the weight's fan_in. Computed as 1/sqrt(fan_in)
// directly, not through kaiming_uniform_, whose rounding differs in the last bit.
inline double linear_bound(Index fan_in) { return 1.0 / std::sqrt(static_cast<double>(fan_in)); }

// U(a, b), one gen.uniform(a, b) per element in row-major order.
template <typename T>
Matrix<T>& uniform_(Matrix<T>& m, double a = 0.0, double b = 1.0,
                    Generator& gen = default_generator()) {
  return detail::fill_each(m, [&] { return gen.uniform(a, b); });
}

// N(mean, std^2), one gen.normal(mean, std) per element in row-major order.
template <typename T>
Matrix<T>& normal_(Matrix<T>& m, double mean = 0.0, double std = 1.0,
                   Generator& gen = default_generator()) {
  return detail::fill_each(m, [&] { return gen.normal(mean, std); });
}

// Glorot & Bengio: U(-bound, bound), bound = gain sqrt(6 / (fan_in + fan_out)).
template <typename T>
Matrix<T>& xavier_uniform_(Matrix<T>& m, double gain = 1.0, Generator& gen = default_generator()) {
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in(m) + fan_out(m)));
  return uniform_(m, -bound, bound, gen);
}

// N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out)).
template <typename T>
Matrix<T>& xavier_normal_(Matrix<T>& m, double gain = 1.0, Generator& gen = default_generator()) {
  const double sd = gain * std::sqrt(2.0 / static_cast<double>(fan_in(m) + fan_out(m)));
  return normal_(m, 0.0, sd, gen);
}

// calculate_gain("leaky_relu", a) = sqrt(2 / (1 + a^2)); a = 0 is ReLU's sqrt 2.
inline double leaky_relu_gain(double a = 0.0) { return std::sqrt(2.0 / (1.0 + a * a)); }

// He et al., PyTorch's defaults (mode "fan_in", nonlinearity "leaky_relu" with slope a):
// U(-bound, bound), bound = gain sqrt(3 / fan_in).
template <typename T>
Matrix<T>& kaiming_uniform_(Matrix<T>& m, double a = 0.0, Generator& gen = default_generator()) {
  const double bound = leaky_relu_gain(a) * std::sqrt(3.0 / static_cast<double>(fan_in(m)));
  return uniform_(m, -bound, bound, gen);
}

// N(0, std^2), std = gain / sqrt(fan_in).
template <typename T>
Matrix<T>& kaiming_normal_(Matrix<T>& m, double a = 0.0, Generator& gen = default_generator()) {
  const double sd = leaky_relu_gain(a) / std::sqrt(static_cast<double>(fan_in(m)));
  return normal_(m, 0.0, sd, gen);
}

// No draws.
template <typename T>
Matrix<T>& constant_(Matrix<T>& m, double value) {
  m.setConstant(static_cast<T>(value));
  return m;
}
template <typename T>
Matrix<T>& zeros_(Matrix<T>& m) {
  m.setZero();
  return m;
}
template <typename T>
Matrix<T>& ones_(Matrix<T>& m) {
  m.setOnes();
  return m;
}

}  // namespace heed::init
