#pragma once
// Checks of the counters that schedulers and EarlyStopping keep as (1, 1) tensors, for their
// validate_state(name, value): Checkpoint::load passes each decoded state tensor through it
// before anything is assigned, so a file with last_epoch = 1e30 or NaN (undefined behaviour
// once cast to an integer) is refused instead of loaded.
#include <cmath>
#include <string>

#include "optimizer.hpp"

namespace heed::detail {

// Empty if `v` is (1, 1) and holds a whole number in [lo, 2^53], else why not.
template <class T>
std::string counter_problem(const char* cls, const std::string& name, const Matrix<T>& v,
                            double lo = 0) {
  if (v.size() != 1) return "expected a (1, 1) tensor";
  const double d = static_cast<double>(v(0, 0));
  if (!(std::isfinite(d) && d >= lo && d == std::trunc(d) && d <= 0x1p53))
    return std::string(cls) + " " + name + " must be a whole number in [" + num_str(lo) +
           ", 2^53], got " + num_str(d);
  return {};
}

// Empty if `v` is (1, 1) and not NaN (a best metric may be +-inf before the first epoch).
template <class T>
std::string metric_problem(const char* cls, const std::string& name, const Matrix<T>& v) {
  if (v.size() != 1) return "expected a (1, 1) tensor";
  if (std::isnan(static_cast<double>(v(0, 0))))
    return std::string(cls) + " " + name + " must not be NaN";
  return {};
}

}  // namespace heed::detail
