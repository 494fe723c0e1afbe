#pragma once
// heed's error hierarchy. Every public entry point validates its input and throws a subclass of
// heed::Error whose message names the module, what was expected and what it got.
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <algorithm>
#include <string>
#include <string_view>

namespace heed {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A tensor of the wrong shape was passed, e.g. "Linear: input expected (*, 784), got (100, 783)".
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A file (IDX data, a saved model) is malformed: wrong magic, truncated, inconsistent counts.
class FormatError : public Error {
 public:
  using Error::Error;
};

// A file could not be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// A hyperparameter or argument is out of range (negative lr, dropout p >= 1, zero sizes, ...).
class ValueError : public Error {
 public:
  using Error::Error;
};

// A loss or gradient became NaN or infinite during training.
class NumericError : public Error {
 public:
  using Error::Error;
};

namespace detail {

inline std::string shape_str(std::int64_t rows, std::int64_t cols) {
  std::ostringstream s;
  s << '(' << rows << ", " << cols << ')';
  return s.str();
}

// "(*, 784)" style: a negative extent means "any".
inline std::string dim_str(std::int64_t d) { return d < 0 ? std::string("*") : std::to_string(d); }
inline std::string shape_spec(std::int64_t rows, std::int64_t cols) {
  return '(' + dim_str(rows) + ", " + dim_str(cols) + ')';
}

// The checks below run on every forward and backward, so the module name is a string_view:
// a literal or a module's cached name is passed without building a std::string, and one is
// made only for the message of an error actually thrown.

// Throws ShapeError unless (rows, cols) matches (exp_rows, exp_cols); -1 in the expectation
// matches any extent.
inline void check_shape(std::string_view module, const char* what, std::int64_t rows,
                        std::int64_t cols, std::int64_t exp_rows, std::int64_t exp_cols) {
  if ((exp_rows >= 0 && rows != exp_rows) || (exp_cols >= 0 && cols != exp_cols))
    throw ShapeError(std::string(module) + ": " + what + " expected " +
                     shape_spec(exp_rows, exp_cols) + ", got " + shape_str(rows, cols));
}

template <typename M>
void check_shape(std::string_view module, const char* what, const M& m, std::int64_t exp_rows,
                 std::int64_t exp_cols) {
  check_shape(module, what, m.rows(), m.cols(), exp_rows, exp_cols);
}

// The positions per channel S of an (N, C*S) input whose channel count C a module knows
// (BatchNorm's num_features, Dropout2d's channels): ShapeError unless cols is a positive
// multiple of C (and rows >= min_rows), naming `what` C is.
inline std::int64_t channel_positions(std::string_view module, std::int64_t rows, std::int64_t cols, std::int64_t C,
                                      const char* what, std::int64_t min_rows = 0) {
  if (cols == 0 || cols % C != 0 || rows < min_rows) {
    std::string m(module);  // appended piece by piece (g++ 12's false -Wrestrict on "x" + s chains)
    m.append(": input expected (N, ").append(std::to_string(C)).append("*S) with ");
    m.append(min_rows > 0 ? "N, S >= 1 (" : "S >= 1 (").append(what).append(" ").append(std::to_string(C));
    m.append("), got ").append(shape_str(rows, cols));
    throw ShapeError(m);
  }
  return cols / C;
}

// For constructor arguments: msg is built whether or not it is thrown, so keep it out of
// per-step code (throw directly there).
inline void require(bool ok, std::string_view module, const std::string& msg) {
  if (!ok) throw ValueError(std::string(module) + ": " + msg);
}

// A double as summary() and messages print it: shortest form, "0.1", "1e-05".
inline std::string num_repr(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// A batch of B sequences stacked as (B*T, ...) rows: B positive (ValueError) and rows a
// positive multiple of B (ShapeError, "<module>: <what> rows r not a positive multiple of batch
// size B").
inline void check_batch_rows(std::string_view module, std::string_view what, std::int64_t rows,
                             std::int64_t B) {
  if (B <= 0)
    throw ValueError(std::string(module) + ": batch size must be positive, got " + std::to_string(B));
  if (rows == 0 || rows % B != 0)
    throw ShapeError(std::string(module) + ": " + std::string(what) + " rows " +
                     std::to_string(rows) + " not a positive multiple of batch size " +
                     std::to_string(B));
}

// A backward with nothing cached to differentiate.
inline void require_forward(bool done, std::string_view module) {
  if (!done) throw ValueError(std::string(module) + ": backward called before forward");
}

// A name as error messages show it: bytes outside printable ASCII (0x20-0x7e) and the backslash
// are escaped as \xNN, and a name longer than `max` bytes is cut to its first `max` bytes
// followed by "...(N bytes)". So a file-supplied name can neither cut a message short (NUL),
// nor send escape sequences to a terminal, nor make a message megabytes long.
inline std::string printable_name(std::string_view name, std::size_t max = 200) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min(name.size(), max);
  out.reserve(n + 16);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (name.size() > max) out += "...(" + std::to_string(name.size()) + " bytes)";
  return out;
}

}  // namespace detail
}  // namespace heed
