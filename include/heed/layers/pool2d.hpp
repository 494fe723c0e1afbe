#pragma once
// MaxPool2d, MaxPool1d, AvgPool2d and AdaptiveAvgPool2d, as torch.nn's (CPU kernels, exactly),
// over one window core.
//
// As for the convolutions (conv.hpp) the spatial size is a constructor option and each sample
// is one row in PyTorch's memory order; pooling has no channel count of its own, so C is
// inferred on every call from the input width, unless the options' .channels fixes it (then a
// wrong .input is caught even when its H*W divides the width):
//   2-D: x (N, C*H*W), sample n's (c, h, w) at column (c*H + h)*W + w  ->  y (N, C*Ho*Wo)
//   1-D: x (N, C*L)                                                    ->  y (N, C*Lo)
// (MaxPool1d is MaxPool2d with H = 1 and a 1 x k window). output_hw() / output_length() give
// the output's spatial size and output_size(C) the next layer's input width.
//
// Output size (PyTorch's pooling_output_shape; AvgPool2d has d = 1):
//   Ho = floor((H + 2 ph - dh (kh - 1) - 1 + (ceil_mode ? sh - 1 : 0)) / sh) + 1
//   and with ceil_mode, Ho -= 1 when (Ho - 1) sh >= H + ph: the last window must start inside
//   the input or the top padding. (Wo alike.) Padding may be at most half the kernel
//   (ph <= kh / 2, PyTorch's check).
//
// Window (oh, ow) reads rows r(oh) and columns c(ow) of the input, every one inside it:
//   max:      r = oh sh - ph + i dh for i < kh, those in [0, H)
//   avg:      r in [max(s, 0), min(s + kh, H + ph, H)), s = oh sh - ph
//   adaptive: r in [floor(oh H / Ho), ceil((oh + 1) H / Ho))
// and, per channel c of sample n,
//   max:  y = x(c, a),  a = the first maximum in row-major scan order, or the last NaN when
//         the window holds one (PyTorch's `val > maxval || isnan(val)`: NaN propagates)      (1)
//   avg:  y = sum_{window} x(c, h, w) / D(oh, ow)                                             (2)
// with D the window's count over the padded input (the window clipped to [-ph, H + ph)) when
// count_include_pad, its count over the input itself otherwise, divisor_override when > 0,
// and for the adaptive pool kh*kw, its size (divided as sum / kh / kw, PyTorch's rounding).
// Padding (-inf for max, 0 for avg) never changes a result, so it is never read. A window that
// holds no input element (possible only with dilation) gives -inf (max; no gradient) or 0
// (avg), as PyTorch's forward.
//
// Threads: samples on different threads (detail::for_each_slice); each writes only its own rows
// of y, the argmax and dx, so the results are the same bits for any thread count.
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/module.hpp"
#include "../core/parallel.hpp"
#include "conv.hpp"  // Size2

namespace heed {

struct MaxPool2dOptions {
  Size2 input = 0;     // (H, W) of the input; required
  Index channels = 0;  // C; 0: read from each input's width (a wrong .input is then caught only
                       // when its H*W does not divide the width)
  Size2 stride = 0;    // 0: the kernel size (PyTorch's stride=None)
  Size2 padding = 0;   // on each side, -inf; at most half the kernel
  Size2 dilation = 1;
  bool ceil_mode = false;
};

struct MaxPool1dOptions {
  Index input = 0;  // L of the input; required
  Index channels = 0;  // C; 0: read from each input's width (a wrong .input is then caught only
                       // when its H*W does not divide the width)
  Index stride = 0;  // 0: the kernel size
  Index padding = 0;
  Index dilation = 1;
  bool ceil_mode = false;
};

struct AvgPool2dOptions {
  Size2 input = 0;    // (H, W) of the input; required
  Index channels = 0;  // C; 0: read from each input's width (a wrong .input is then caught only
                       // when its H*W does not divide the width)
  Size2 stride = 0;   // 0: the kernel size
  Size2 padding = 0;  // on each side, 0; at most half the kernel
  bool ceil_mode = false;
  bool count_include_pad = true;
  Index divisor_override = 0;  // > 0: divide every window's sum by this; 0: none
};

struct AdaptiveAvgPool2dOptions {
  Size2 input = 0;  // (H, W) of the input; required
  Index channels = 0;  // C; 0: read from each input's width (a wrong .input is then caught only
                       // when its H*W does not divide the width)
};

namespace detail {

// The windows along one spatial axis: output position o reads input positions
// begin[o], begin[o] + step, ... < end[o]; extent[o] is AvgPool's count over the padded input.
struct PoolAxis {
  Index in = 0, out = 0, step = 1;
  std::vector<Index> begin, end, extent;
};

// floor(a / b) for b > 0 (PyTorch's div_rtn).
inline Index floor_div(Index a, Index b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// PyTorch's pooling_output_shape (see the top of this file).
inline Index pool_output_extent(Index in, Index k, Index pad, Index s, Index d, bool ceil_mode) {
  Index out = floor_div(in + 2 * pad - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad) --out;
  return out;
}

// Max pooling's windows: k taps d apart from o*s - pad, those inside [0, in).
inline PoolAxis max_pool_axis(Index in, Index k, Index s, Index pad, Index d, bool ceil_mode) {
  PoolAxis a{in, pool_output_extent(in, k, pad, s, d, ceil_mode), d, {}, {}, {}};
  for (Index o = 0; o < a.out; ++o) {
    Index b = o * s - pad;
    const Index e = std::min(b + (k - 1) * d + 1, in);
    if (b < 0) b += (-b + d - 1) / d * d;  // the first tap inside
    a.begin.push_back(b);
    a.end.push_back(std::max(b, e));
    a.extent.push_back(0);
  }
  return a;
}

// Average pooling's windows: [o*s - pad, o*s - pad + k) clipped to the padded input (extent),
// then to the input (begin, end).
inline PoolAxis avg_pool_axis(Index in, Index k, Index s, Index pad, bool ceil_mode) {
  PoolAxis a{in, pool_output_extent(in, k, pad, s, 1, ceil_mode), 1, {}, {}, {}};
  for (Index o = 0; o < a.out; ++o) {
    const Index b = o * s - pad, e = std::min(b + k, in + pad);
    a.extent.push_back(e - b);
    a.begin.push_back(std::max<Index>(b, 0));
    a.end.push_back(std::max(a.begin.back(), std::min(e, in)));
  }
  return a;
}

// Adaptive pooling's windows: [floor(o*in/out), ceil((o+1)*in/out)).
inline PoolAxis adaptive_pool_axis(Index in, Index out) {
  PoolAxis a{in, out, 1, {}, {}, {}};
  for (Index o = 0; o < out; ++o) {
    a.begin.push_back(o * in / out);
    a.end.push_back(((o + 1) * in + out - 1) / out);
    a.extent.push_back(a.end.back() - a.begin.back());
  }
  return a;
}

// PyTorch's repr of a size argument: the number when it is one for all dimensions, else the
// tuple. (heed's Size2 does not remember whether it was given as 2 or (2, 2); both print "2".)
inline std::string pool_size_repr(int dims, Size2 v) {
  return dims == 1 || v.h == v.w ? std::to_string(v.w) : size_tuple(2, v.h, v.w);
}

// A max or average pool's arguments; stride 0 means the kernel size.
struct PoolSpec {
  int dims = 2;
  Size2 input = 0, kernel = 0, stride = 0, padding = 0, dilation = 1;
  bool ceil_mode = false;
};

// PyTorch's checks of the kernel, stride, padding and dilation (ValueError); returns s with
// the stride resolved.
inline PoolSpec checked_pool_spec(std::string_view name, PoolSpec s) {
  const std::string m(name);
  auto t = [&s](Size2 v) { return size_tuple(s.dims, v.h, v.w); };
  require(s.kernel.h > 0 && s.kernel.w > 0, m, "kernel_size must be positive, got " + t(s.kernel));
  if (s.stride == Size2(0)) s.stride = s.kernel;
  require(s.stride.h > 0 && s.stride.w > 0, m, "stride must be positive (0: the kernel size), got " + t(s.stride));
  require(s.dilation.h > 0 && s.dilation.w > 0, m, "dilation must be positive, got " + t(s.dilation));
  require(s.padding.h >= 0 && s.padding.w >= 0, m, "padding must be non-negative, got " + t(s.padding));
  require(s.padding.h <= s.kernel.h / 2 && s.padding.w <= s.kernel.w / 2, m,
          "padding must be at most half the kernel size, got padding=" + t(s.padding) + " for kernel_size=" +
              t(s.kernel));
  require(s.input.h > 0 && s.input.w > 0, m,
          "input size must be positive, got " + t(s.input) + " (set the options' .input)");
  return s;
}

// ShapeError unless the output has at least one position, as PyTorch's "Output size is too small".
inline void check_pool_output(std::string_view name, const PoolSpec& s, const PoolAxis& rows, const PoolAxis& cols) {
  if (rows.out >= 1 && cols.out >= 1) return;
  auto t = [&s](Size2 v) { return size_tuple(s.dims, v.h, v.w); };
  std::string msg(name);
  msg += ": output size " + t({rows.out, cols.out});
  msg += " is too small for input " + t(s.input);
  msg += " with kernel_size=" + t(s.kernel);
  msg += ", stride=" + t(s.stride);
  msg += ", padding=" + t(s.padding);
  if (s.dilation != Size2(1)) msg += ", dilation=" + t(s.dilation);
  if (s.ceil_mode) msg += ", ceil_mode=true";
  throw ShapeError(msg);
}

struct NoScratch {};

// What a PoolCore computes over each window: (1), or (2) with D from a table (AvgPool2d) or
// as PyTorch's adaptive pool does, sum / kh / kw (two divisions: the same bits as PyTorch).
enum class PoolKind { max, avg, adaptive };

// Marks the private constructors that take checked arguments, out of the public ones' overloads.
struct CheckedTag {};

// The module: windows along H (rows_) and W (cols_), max or average over each.
template <typename T>
class PoolCore : public Module<T> {
 public:
  // forward                                         x (N, C*H*W) -> y (N, C*Ho*Wo)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    const Index HW = rows_.in * cols_.in, P = rows_.out * cols_.out;
    if (x.cols() == 0 || x.cols() % HW != 0)
      throw ShapeError(std::string(name_) + ": input expected (*, C*" + input_desc() + ") = (*, a positive multiple of " +
                       std::to_string(HW) + "), got " + detail::shape_str(x.rows(), x.cols()));
    const Index N = x.rows(), C = x.cols() / HW;
    if (channels_ > 0 && C != channels_)
      throw ShapeError(std::string(name_) + ": input expected (*, " + std::to_string(channels_ * HW) + ") = (*, " +
                       std::to_string(channels_) + "*" + input_desc() + "), got " + detail::shape_str(x.rows(), x.cols()));
    N_ = N, C_ = C;
    y_.resize(N, C * P);
    if (max_) argmax_.resize(N, C * P);
    for_each_slice(N, static_cast<double>(N) * C * P * window_, scratch_, [&](Index n, NoScratch&) {
      const T* xn = x.row(n).data();
      T* yn = y_.row(n).data();
      if (max_) max_sample(xn, C, yn, argmax_.row(n).data());
      else avg_sample(xn, C, yn);
    });
    return y_;
  }

  // backward                                      dy (N, C*Ho*Wo) -> dx (N, C*H*W)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(N_ >= 0, name_);
    const Index HW = rows_.in * cols_.in, P = rows_.out * cols_.out, N = N_, C = C_;
    detail::check_shape(name_, "gradient", dy, N, C * P);
    if (!this->input_grad_) {
      dx_.resize(0, C * HW);
      return dx_;
    }
    dx_.setZero(N, C * HW);
    for_each_slice(N, static_cast<double>(N) * C * P * window_, scratch_, [&](Index n, NoScratch&) {
      const T* dyn = dy.row(n).data();
      T* dxn = dx_.row(n).data();
      if (max_) {
        const Index* an = argmax_.row(n).data();
        for (Index j = 0; j < C * P; ++j)  // d(1): dy to the argmax, added where windows overlap
          if (an[j] >= 0) dxn[an[j]] += dyn[j];
      } else {
        avg_sample_backward(dyn, C, dxn);
      }
    });
    return dx_;
  }

  std::string name() const override { return std::string(name_); }

  std::pair<Index, Index> output_hw() const { return {rows_.out, cols_.out}; }
  Index output_size(Index channels) const { return channels * rows_.out * cols_.out; }  // columns of y
  std::pair<Index, Index> input_hw() const { return {rows_.in, cols_.in}; }
  Index channels() const { return C_; }  // of the last forward; -1 before the first

 protected:
  // divisor (Ho, Wo): D of (2) for PoolKind::avg, else empty.
  PoolCore(std::string_view name, int dims, PoolKind kind, PoolAxis rows, PoolAxis cols, Matrix<T> divisor,
           Index window)
      : name_(name), dims_(dims), kind_(kind), max_(kind == PoolKind::max), rows_(std::move(rows)), cols_(std::move(cols)),
        divisor_(std::move(divisor)), window_(std::max<Index>(window, 1)) {}

  // The options' .channels: when positive, every input must have exactly that many.
  void expect_channels(Index c) {
    require(c >= 0, std::string(name_), "channels must be >= 0 (0: any), got " + std::to_string(c));
    channels_ = c;
  }

  const PoolAxis& rows() const { return rows_; }  // the windows along H
  const PoolAxis& cols() const { return cols_; }  // and along W

 private:
  // (1) for every channel of one sample; argmax a: the column c*H*W + h*W + w, -1 for no input.
  void max_sample(const T* x, Index C, T* y, Index* a) const {
    const Index H = rows_.in, W = cols_.in, dh = rows_.step, dw = cols_.step;
    for (Index c = 0; c < C; ++c) {
      const Index base = c * H * W;
      for (Index oh = 0; oh < rows_.out; ++oh)
        for (Index ow = 0; ow < cols_.out; ++ow, ++y, ++a) {
          const Index h0 = rows_.begin[oh], h1 = rows_.end[oh], w0 = cols_.begin[ow], w1 = cols_.end[ow];
          T best = -std::numeric_limits<T>::infinity();
          Index arg = h0 < h1 && w0 < w1 ? base + h0 * W + w0 : -1;  // PyTorch's start: all -inf
          for (Index h = h0; h < h1; h += dh)
            for (Index w = w0; w < w1; w += dw) {
              const T v = x[base + h * W + w];
              if (v > best || std::isnan(v)) {
                best = v;
                arg = base + h * W + w;
              }
            }
          *y = best;
          *a = arg;
        }
    }
  }

  // (2) for every channel of one sample.
  void avg_sample(const T* x, Index C, T* y) const {
    const Index H = rows_.in, W = cols_.in;
    for (Index c = 0; c < C; ++c) {
      const T* xc = x + c * H * W;
      for (Index oh = 0; oh < rows_.out; ++oh)
        for (Index ow = 0; ow < cols_.out; ++ow, ++y) {
          const Index h0 = rows_.begin[oh], h1 = rows_.end[oh], w0 = cols_.begin[ow], w1 = cols_.end[ow];
          if (h0 >= h1 || w0 >= w1) {
            *y = T(0);
            continue;
          }
          T sum = 0;
          for (Index h = h0; h < h1; ++h)
            for (Index w = w0; w < w1; ++w) sum += xc[h * W + w];
          *y = divide(sum, oh, ow);
        }
    }
  }

  // d(2): dx(c, h, w) += dy(c, oh, ow) / D(oh, ow) over every window holding (h, w).
  void avg_sample_backward(const T* dy, Index C, T* dx) const {
    const Index H = rows_.in, W = cols_.in;
    for (Index c = 0; c < C; ++c) {
      T* dxc = dx + c * H * W;
      for (Index oh = 0; oh < rows_.out; ++oh)
        for (Index ow = 0; ow < cols_.out; ++ow, ++dy) {
          const Index h0 = rows_.begin[oh], h1 = rows_.end[oh], w0 = cols_.begin[ow], w1 = cols_.end[ow];
          if (h0 >= h1 || w0 >= w1) continue;
          const T g = divide(*dy, oh, ow);
          for (Index h = h0; h < h1; ++h)
            for (Index w = w0; w < w1; ++w) dxc[h * W + w] += g;
        }
    }
  }

  // v / D(oh, ow) of (2).
  T divide(T v, Index oh, Index ow) const {
    if (kind_ == PoolKind::adaptive) return v / static_cast<T>(rows_.extent[oh]) / static_cast<T>(cols_.extent[ow]);
    return v / divisor_(oh, ow);
  }

  std::string input_desc() const {
    if (dims_ == 2) return std::to_string(rows_.in) + "*" + std::to_string(cols_.in);
    return std::to_string(cols_.in);
  }

  std::string_view name_;
  int dims_;
  PoolKind kind_;
  bool max_;
  PoolAxis rows_, cols_;
  Matrix<T> divisor_;  // (Ho, Wo) D of (2) for PoolKind::avg; else empty
  Index window_;       // taps per window (kh*kw), for the threading threshold
  Index N_ = -1, C_ = -1;  // batch and channels of the last forward
  Index channels_ = 0;     // the options' .channels; 0: any
  Matrix<T> y_;             // (N, C*Ho*Wo)
  Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> argmax_;  // (N, C*Ho*Wo)
  Matrix<T> dx_;            // (N, C*H*W)
  std::vector<NoScratch> scratch_;
};

// The max pools' shared part: MaxPool2d, and MaxPool1d as H = 1.
template <typename T>
class MaxPoolCore : public PoolCore<T> {
 public:
  // PyTorch's repr (heed spells booleans true/false): "kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=false".
  std::string extra_repr() const override {
    const int d = spec_.dims;
    std::string s = "kernel_size=" + pool_size_repr(d, spec_.kernel);
    s += ", stride=" + pool_size_repr(d, spec_.stride);
    s += ", padding=" + pool_size_repr(d, spec_.padding);
    s += ", dilation=" + pool_size_repr(d, spec_.dilation);
    s += spec_.ceil_mode ? ", ceil_mode=true" : ", ceil_mode=false";
    return s;
  }

  const PoolSpec& spec() const { return spec_; }  // stride resolved

 protected:
  MaxPoolCore(std::string_view name, const PoolSpec& s) : MaxPoolCore(CheckedTag{}, checked_pool_spec(name, s), name) {}

 private:
  MaxPoolCore(CheckedTag, const PoolSpec& s, std::string_view name)
      : PoolCore<T>(name, s.dims, PoolKind::max, max_pool_axis(s.input.h, s.kernel.h, s.stride.h, s.padding.h, s.dilation.h, s.ceil_mode),
                    max_pool_axis(s.input.w, s.kernel.w, s.stride.w, s.padding.w, s.dilation.w, s.ceil_mode),
                    Matrix<T>(), s.kernel.h * s.kernel.w),
        spec_(s) {
    check_pool_output(name, s, this->rows(), this->cols());
  }

  PoolSpec spec_;
};

// D of (2) for AvgPool2d, (Ho, Wo).
template <typename T>
Matrix<T> avg_pool_divisor(const PoolAxis& rows, const PoolAxis& cols, bool count_include_pad, Index divisor_override) {
  Matrix<T> D(rows.out, cols.out);
  for (Index oh = 0; oh < rows.out; ++oh)
    for (Index ow = 0; ow < cols.out; ++ow) {
      Index d = divisor_override;
      if (d <= 0 && count_include_pad) d = rows.extent[oh] * cols.extent[ow];
      else if (d <= 0) d = (rows.end[oh] - rows.begin[oh]) * (cols.end[ow] - cols.begin[ow]);
      D(oh, ow) = static_cast<T>(std::max<Index>(d, 1));  // 0 only for an empty window, which gives 0
    }
  return D;
}

}  // namespace detail

// torch.nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode) on (N, C*H*W).
//   heed::MaxPool2d<float> pool(2, {.input = {28, 28}});  // y (N, C*14*14)
template <typename T>
class MaxPool2d : public detail::MaxPoolCore<T> {
 public:
  explicit MaxPool2d(Size2 kernel_size, const MaxPool2dOptions& o = {})
      : detail::MaxPoolCore<T>("MaxPool2d", {2, o.input, kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode})  {
    this->expect_channels(o.channels);
  }
};

// torch.nn.MaxPool1d(kernel_size, stride, padding, dilation, ceil_mode) on (N, C*L).
template <typename T>
class MaxPool1d : public detail::MaxPoolCore<T> {
 public:
  explicit MaxPool1d(Index kernel_size, const MaxPool1dOptions& o = {})
      : detail::MaxPoolCore<T>("MaxPool1d", {1, Size2(1, o.input), Size2(1, kernel_size), stride1d(o.stride),
                                             Size2(0, o.padding), Size2(1, o.dilation), o.ceil_mode}) {
    this->expect_channels(o.channels);
  }

  Index output_length() const { return this->output_hw().second; }

 private:
  static Size2 stride1d(Index s) { return s == 0 ? Size2(0) : Size2(1, s); }
};

// torch.nn.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad,
// divisor_override) on (N, C*H*W).
template <typename T>
class AvgPool2d : public detail::PoolCore<T> {
 public:
  explicit AvgPool2d(Size2 kernel_size, const AvgPool2dOptions& o = {})
      : AvgPool2d(detail::CheckedTag{}, checked(kernel_size, o), o) {}

  // PyTorch's repr: "kernel_size=2, stride=2, padding=0".
  std::string extra_repr() const override {
    std::string s = "kernel_size=" + detail::pool_size_repr(2, spec_.kernel);
    s += ", stride=" + detail::pool_size_repr(2, spec_.stride);
    s += ", padding=" + detail::pool_size_repr(2, spec_.padding);
    return s;
  }

  const detail::PoolSpec& spec() const { return spec_; }  // stride resolved
  bool count_include_pad() const { return count_include_pad_; }
  Index divisor_override() const { return divisor_override_; }

 private:
  static detail::PoolSpec checked(Size2 kernel_size, const AvgPool2dOptions& o) {
    detail::require(o.divisor_override >= 0, "AvgPool2d",
                    "divisor_override must be positive (0: none), got " + std::to_string(o.divisor_override));
    return detail::checked_pool_spec("AvgPool2d", {2, o.input, kernel_size, o.stride, o.padding, 1, o.ceil_mode});
  }
  AvgPool2d(detail::CheckedTag t, const detail::PoolSpec& s, const AvgPool2dOptions& o)
      : AvgPool2d(t, s, o, detail::avg_pool_axis(s.input.h, s.kernel.h, s.stride.h, s.padding.h, s.ceil_mode),
                  detail::avg_pool_axis(s.input.w, s.kernel.w, s.stride.w, s.padding.w, s.ceil_mode)) {}
  AvgPool2d(detail::CheckedTag, const detail::PoolSpec& s, const AvgPool2dOptions& o, detail::PoolAxis rows,
            detail::PoolAxis cols)
      : detail::PoolCore<T>("AvgPool2d", 2, detail::PoolKind::avg, rows, cols,
                            detail::avg_pool_divisor<T>(rows, cols, o.count_include_pad, o.divisor_override),
                            s.kernel.h * s.kernel.w),
        spec_(s),
        count_include_pad_(o.count_include_pad),
        divisor_override_(o.divisor_override) {
    detail::check_pool_output("AvgPool2d", s, rows, cols);
    this->expect_channels(o.channels);
  }

  detail::PoolSpec spec_;
  bool count_include_pad_;
  Index divisor_override_;
};

// torch.nn.AdaptiveAvgPool2d(output_size) on (N, C*H*W): output position (oh, ow) averages
// rows [floor(oh H / Ho), ceil((oh + 1) H / Ho)) and the columns alike.
template <typename T>
class AdaptiveAvgPool2d : public detail::PoolCore<T> {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size, const AdaptiveAvgPool2dOptions& o = {})
      : AdaptiveAvgPool2d(detail::CheckedTag{}, checked(output_size, o), o.input) {
    this->expect_channels(o.channels);
  }

  // PyTorch's repr: "output_size=(3, 4)".
  std::string extra_repr() const override { return "output_size=" + detail::pool_size_repr(2, out_); }

 private:
  static Size2 checked(Size2 out, const AdaptiveAvgPool2dOptions& o) {
    auto t = [](Size2 v) { return detail::size_tuple(2, v.h, v.w); };
    detail::require(out.h > 0 && out.w > 0, "AdaptiveAvgPool2d", "output_size must be positive, got " + t(out));
    detail::require(o.input.h > 0 && o.input.w > 0, "AdaptiveAvgPool2d",
                    "input size must be positive, got " + t(o.input) + " (set the options' .input)");
    return out;
  }
  AdaptiveAvgPool2d(detail::CheckedTag t, Size2 out, Size2 in)
      : AdaptiveAvgPool2d(t, out, detail::adaptive_pool_axis(in.h, out.h), detail::adaptive_pool_axis(in.w, out.w)) {}
  AdaptiveAvgPool2d(detail::CheckedTag, Size2 out, detail::PoolAxis rows, detail::PoolAxis cols)
      : detail::PoolCore<T>("AdaptiveAvgPool2d", 2, detail::PoolKind::adaptive, rows, cols, Matrix<T>(),
                            ((rows.in + rows.out - 1) / rows.out + 1) * ((cols.in + cols.out - 1) / cols.out + 1)),
        out_(out) {}

  Size2 out_;
};

}  // namespace heed
