#pragma once
// Conv2d and Conv1d, as torch.nn.Conv2d / nn.Conv1d (padding_mode "zeros"), over one im2col core.
//
// heed modules take matrices, so the spatial size of the input is a constructor option and
// each sample is one row in PyTorch's memory order:
//   Conv2d: x (N, C*H*W), sample n's (c, h, w) at column (c*H + h)*W + w  ->  y (N, O*Ho*Wo)
//   Conv1d: x (N, C*L)                                                    ->  y (N, O*Lo)
// (a 1-D convolution is the 2-D one with H = 1 and a 1 x k kernel). output_size() is the next
// layer's input width; output_hw() / output_length() its spatial size.
//
//   Ho = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1     (and Wo alike)
//
// padding "same" (stride 1 only, as PyTorch) pads d*(k-1) in total, half of it (rounded down)
// before and the rest after, PyTorch's split: an even kernel gets the extra row at the bottom
// and the extra column on the right. "valid" is padding 0.
//
// The weight is kept as an (O, C/g*kh*kw) matrix, row o being PyTorch's weight[o] flattened,
// so that for group g (Cg = C/g input channels, Og = O/g outputs), per sample,
//   cols_g = im2col(x_n, channels g*Cg..)       (Cg*kh*kw, Ho*Wo)                       (1)
//   Y_g    = W_g cols_g                          (Og, Cg*kh*kw)(Cg*kh*kw, Ho*Wo)         (2)
//   Y      += b  (b_o added to every position of output channel o)                      (3)
// Parameter::shape gives PyTorch's 4-D (O, C/g, kh, kw) (Conv1d: 3-D (O, C/g, k)), so
// heed::load_weights reads a PyTorch state_dict and heed::save_safetensors writes one.
//
// Threads: forward runs samples on different threads (detail::for_each_slice), each with its
// own column buffer, and Eigen's products single-threaded inside (see conv_slices). backward splits the batch into a number of chunks that depends only on N,
// each chunk summing its dW serially, and adds the chunks in order: the results are the same
// bits whatever the thread count.
#include <algorithm>
#include <concepts>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/gemm.hpp"
#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/parallel.hpp"
#include "../core/random.hpp"

namespace heed {

// A size per spatial dimension: one number for all (3), or {h, w}.
struct Size2 {
  Index h = 0, w = 0;
  Size2(Index v = 0) : h(v), w(v) {}  // NOLINT: implicit, `.stride = 2`
  Size2(Index h_, Index w_) : h(h_), w(w_) {}
  Size2(std::pair<Index, Index> hw) : h(hw.first), w(hw.second) {}  // NOLINT: `.input = conv.output_hw()`
  bool operator==(const Size2&) const = default;
};

// Conv padding: a number, {h, w}, or the string "same" / "valid".
struct Padding {
  Size2 size = 0;
  std::string mode;  // "" (numeric), "same", "valid"; anything else is refused by the conv
  Padding() = default;
  // A template, so that a literal 0 is this exact match rather than ambiguous with const char*.
  template <std::integral I>
  Padding(I v) : size(static_cast<Index>(v)) {}  // NOLINT: implicit, `.padding = 1`
  Padding(Index h, Index w) : size(h, w) {}
  Padding(const char* m) : mode(m) {}  // NOLINT: implicit, `.padding = "same"`
  Padding(std::string m) : mode(std::move(m)) {}  // NOLINT
  bool same() const { return mode == "same"; }
};

struct Conv2dOptions {
  Size2 input = 0;  // (H, W) of the input; required
  Size2 stride = 1;
  Padding padding = {};  // a number, {h, w}, "same" or "valid"
  Size2 dilation = 1;
  Index groups = 1;
  bool bias = true;
  std::string padding_mode = "zeros";  // the only one supported
};

struct Conv1dOptions {
  Index input = 0;  // L of the input; required
  Index stride = 1;
  Padding padding = {};  // a number, "same" or "valid"
  Index dilation = 1;
  Index groups = 1;
  bool bias = true;
  std::string padding_mode = "zeros";
};

namespace detail {

// for_each_slice, made independent of the thread count for one slice or a small job too.
// for_each_slice runs those serially, and then Eigen may thread a product itself with a
// blocking (depth split) that depends on the thread count, so dW (depth Ho*Wo) of a batch of
// one would change in the last bits between 1 and 2 threads. Such a job runs instead on one
// thread of a team of two, where Eigen's products are serial. Below 1e5 multiply-adds no
// product is large enough for Eigen to thread (its minimum is 5e4 per thread).
template <class Scratch, class F>
void conv_slices(Index n, double flops, std::vector<Scratch>& scratch, F&& f) {
#ifdef _OPENMP
  if (Eigen::nbThreads() > 1 && !omp_in_parallel() && flops > 1e5 && !(n > 1 && flops > 1e6)) {
    if (scratch.empty()) scratch.resize(1);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      for (Index i = 0; i < n; ++i) f(i, scratch[0]);
    }
    return;
  }
#endif
  for_each_slice(n, flops, scratch, std::forward<F>(f));
}

// PyTorch's tuple of a size: "(3, 2)" for a 2-D module, "(2,)" for a 1-D one (the w extent).
// Appended piece by piece: g++ 12 warns (-Wrestrict, a false positive) on "(" + s + ",)".
inline std::string size_tuple(int dims, Index h, Index w) {
  std::string s = "(";
  if (dims == 2) {
    s += std::to_string(h);
    s += ", ";
  }
  s += std::to_string(w);
  s += dims == 2 ? ")" : ",)";
  return s;
}

// Everything the im2col core needs, validated by the constructor of ConvCore.
struct ConvGeometry {
  Index C = 0, O = 0, groups = 1;
  Index H = 0, W = 0;                   // input
  Index kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  Index pt = 0, pb = 0, pl = 0, pr = 0;  // padding top/bottom/left/right
  Index Ho = 0, Wo = 0;                  // output
  Index Cg() const { return C / groups; }
  Index Og() const { return O / groups; }
  Index K() const { return Cg() * kh * kw; }  // rows of a group's column buffer
  Index P() const { return Ho * Wo; }         // output positions
};

template <typename T>
class ConvCore : public Module<T> {
 public:
  // forward                                         x (N, C*H*W) -> y (N, O*Ho*Wo)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    const ConvGeometry& g = geo_;
    if (x.cols() != g.C * g.H * g.W)
      throw ShapeError(std::string(name_) + ": input expected (*, " + std::to_string(g.C * g.H * g.W) +
                       ") = (*, " + input_desc() + "), got " + detail::shape_str(x.rows(), x.cols()));
    using detail::Op;
    const Index N = x.rows(), K = g.K(), P = g.P(), Og = g.Og();
    x_ = x;  // (N, C*H*W) kept for backward's im2col
    y_.resize(N, g.O * P);
    conv_slices(N, static_cast<double>(N) * g.O * K * P, scratch_, [&](Index n, Scratch& s) {
      s.cols.resize(K, P);
      Eigen::Map<Matrix<T>> Y(y_.row(n).data(), g.O, P);  // (O, P) of sample n
      for (Index gr = 0; gr < g.groups; ++gr) {
        im2col(x_.row(n).data(), gr, s.cols);                                   // (1)
        detail::gemm<T>(Y.middleRows(gr * Og, Og), W_.middleRows(gr * Og, Og), Op::N, s.cols, Op::N);  // (2)
      }
      if (has_bias_) Y.colwise() += b_.row(0).transpose();                      // (3)
    });
    return y_;
  }

  // backward                                      dy (N, O*Ho*Wo) -> dx (N, C*H*W)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    const ConvGeometry& g = geo_;
    detail::require_forward(x_.cols() == g.C * g.H * g.W && x_.rows() > 0, name_);
    detail::check_shape(name_, "gradient", dy, x_.rows(), g.O * g.P());
    using detail::Op;
    const Index N = x_.rows(), K = g.K(), P = g.P(), Og = g.Og();
    const bool want_dx = this->input_grad_;
    if (want_dx) dx_.setZero(N, g.C * g.H * g.W);
    else dx_.resize(0, g.C * g.H * g.W);
    // Chunks of consecutive samples, their number fixed by N alone (not by the thread count).
    const Index chunks = std::min<Index>(N, kChunks);
    if (static_cast<Index>(partial_dW_.size()) < chunks) partial_dW_.resize(chunks);
    conv_slices(chunks, 2.0 * N * g.O * K * P, scratch_, [&](Index c, Scratch& s) {
      Matrix<T>& dWc = partial_dW_[c];
      dWc.setZero(g.O, K);
      s.cols.resize(K, P);
      if (want_dx) s.dcols.resize(K, P);
      for (Index n = c * N / chunks; n < (c + 1) * N / chunks; ++n) {
        Eigen::Map<const Matrix<T>> dY(dy.row(n).data(), g.O, P);  // (O, P) of sample n
        for (Index gr = 0; gr < g.groups; ++gr) {
          const auto dYg = dY.middleRows(gr * Og, Og);               // (Og, P)
          im2col(x_.row(n).data(), gr, s.cols);                      // (1) again, (K, P)
          detail::gemm<T>(dWc.middleRows(gr * Og, Og), dYg, Op::N, s.cols, Op::T, T(1));  // d(2) wrt W: (Og, P)(P, K)
          if (want_dx) {
            detail::gemm<T>(s.dcols, W_.middleRows(gr * Og, Og), Op::T, dYg, Op::N);  // d(2) wrt cols: (K, Og)(Og, P)
            col2im(s.dcols, gr, dx_.row(n).data());                  // d(1): scatter-add into dx_n
          }
        }
      }
    });
    for (Index c = 0; c < chunks; ++c) dW_ += partial_dW_[c];  // in chunk order
    if (has_bias_)
      for (Index n = 0; n < N; ++n)                                // d(3) wrt b: sum over n and positions
        db_.row(0) += Eigen::Map<const Matrix<T>>(dy.row(n).data(), g.O, P).rowwise().sum().transpose();
    return dx_;
  }

  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps{{"weight", &W_, &dW_, weight_shape()}};
    if (has_bias_) ps.push_back(vector_parameter("bias", &b_, &db_));
    return ps;
  }

  std::string name() const override { return std::string(name_); }

  Index in_channels() const { return geo_.C; }
  Index out_channels() const { return geo_.O; }
  Index groups() const { return geo_.groups; }
  Index output_size() const { return geo_.O * geo_.P(); }  // columns of y
  const ConvGeometry& geometry() const { return geo_; }
  Matrix<T>& weight() { return W_; }  // (O, C/g*kh*kw)
  Matrix<T>& bias() { return b_; }    // (1, O); empty without bias

 protected:
  // geo holds C, O, groups, H, W, kernel, stride, dilation; pad the numeric padding (used
  // unless padding is "same" or "valid"). Computes the padding split and the output size.
  ConvCore(std::string_view name, int dims, ConvGeometry geo, const Padding& pad, bool bias,
           const std::string& padding_mode, Generator& gen)
      : name_(name), dims_(dims), geo_(geo), pad_(pad), has_bias_(bias) {
    ConvGeometry& g = geo_;
    const std::string m(name);
    require(g.C > 0 && g.O > 0, m, "in_channels and out_channels must be positive, got " +
                                       std::to_string(g.C) + " and " + std::to_string(g.O));
    require(g.kh > 0 && g.kw > 0, m, "kernel_size must be positive, got " + tuple(g.kh, g.kw));
    require(g.sh > 0 && g.sw > 0, m, "stride must be positive, got " + tuple(g.sh, g.sw));
    require(g.dh > 0 && g.dw > 0, m, "dilation must be positive, got " + tuple(g.dh, g.dw));
    require(g.H > 0 && g.W > 0, m, "input size must be positive, got " + tuple(g.H, g.W) +
                                       " (set the options' .input)");
    require(g.groups > 0, m, "groups must be positive, got " + std::to_string(g.groups));
    require(g.C % g.groups == 0 && g.O % g.groups == 0, m,
            "groups " + std::to_string(g.groups) + " must divide in_channels " + std::to_string(g.C) +
                " and out_channels " + std::to_string(g.O));
    require(padding_mode == "zeros", m,
            "padding_mode '" + padding_mode + "' is not supported (only 'zeros')");
    require(pad.mode.empty() || pad.mode == "same" || pad.mode == "valid", m,
            "padding must be a number, \"same\" or \"valid\", got \"" + pad.mode + "\"");
    if (pad.same()) {
      require(g.sh == 1 && g.sw == 1, m,
              "padding=\"same\" is not supported for strided convolutions, got stride " + tuple(g.sh, g.sw));
      const Index th = g.dh * (g.kh - 1), tw = g.dw * (g.kw - 1);  // total; PyTorch's split
      g.pt = th / 2, g.pb = th - th / 2, g.pl = tw / 2, g.pr = tw - tw / 2;
    } else if (pad.mode.empty()) {
      require(pad.size.h >= 0 && pad.size.w >= 0, m,
              "padding must be non-negative, got " + tuple(pad.size.h, pad.size.w));
      g.pt = g.pb = pad.size.h, g.pl = g.pr = pad.size.w;
    }
    const Index nh = g.H + g.pt + g.pb - g.dh * (g.kh - 1) - 1;
    const Index nw = g.W + g.pl + g.pr - g.dw * (g.kw - 1) - 1;
    g.Ho = nh < 0 ? 0 : nh / g.sh + 1;
    g.Wo = nw < 0 ? 0 : nw / g.sw + 1;
    if (g.Ho < 1 || g.Wo < 1)
      throw ShapeError(m + ": output size " + tuple(g.Ho, g.Wo) + " is too small for input " +
                       tuple(g.H, g.W) + " with kernel_size=" + tuple(g.kh, g.kw) +
                       ", padding=" + tuple(g.pt + g.pb, g.pl + g.pr) + " (total), dilation=" +
                       tuple(g.dh, g.dw) + ", stride=" + tuple(g.sh, g.sw));
    // PyTorch's reset_parameters: kaiming_uniform_(a = sqrt 5) on the weight, i.e.
    // U(+-1/sqrt(fan_in)), then U(+-1/sqrt(fan_in)) on the bias; fan_in = C/g * kh * kw.
    const Index K = g.K();
    W_.resize(g.O, K);  // (O, C/g*kh*kw)
    dW_ = Matrix<T>::Zero(g.O, K);
    const double bound = init::linear_bound(K);
    init::uniform_(W_, -bound, bound, gen);
    if (has_bias_) {
      b_.resize(1, g.O);  // (1, O)
      db_ = Matrix<T>::Zero(1, g.O);
      init::uniform_(b_, -bound, bound, gen);
    }
  }

  // PyTorch's repr: "1, 32, kernel_size=(3, 3), stride=(1, 1)" plus what is not the default.
  std::string conv_repr() const {
    const ConvGeometry& g = geo_;
    std::string s = std::to_string(g.C) + ", " + std::to_string(g.O) + ", kernel_size=" + tuple(g.kh, g.kw) +
                    ", stride=" + tuple(g.sh, g.sw);
    if (!pad_.mode.empty()) s += ", padding=" + pad_.mode;
    else if (pad_.size.h != 0 || pad_.size.w != 0) s += ", padding=" + tuple(pad_.size.h, pad_.size.w);
    if (g.dh != 1 || g.dw != 1) s += ", dilation=" + tuple(g.dh, g.dw);
    if (g.groups != 1) s += ", groups=" + std::to_string(g.groups);
    if (!has_bias_) s += ", bias=false";
    return s;
  }

  // "(3, 3)" for Conv2d, "(3,)" for Conv1d.
  std::string tuple(Index h, Index w) const { return size_tuple(dims_, h, w); }

 private:
  static constexpr Index kChunks = 16;

  struct Scratch {
    Matrix<T> cols;   // (K, P)
    Matrix<T> dcols;  // (K, P)
  };

  std::vector<Index> weight_shape() const {
    if (dims_ == 2) return {geo_.O, geo_.Cg(), geo_.kh, geo_.kw};
    return {geo_.O, geo_.Cg(), geo_.kw};
  }

  std::string input_desc() const {
    if (dims_ == 2) return std::to_string(geo_.C) + "*" + std::to_string(geo_.H) + "*" + std::to_string(geo_.W);
    return std::to_string(geo_.C) + "*" + std::to_string(geo_.W);
  }

  // cols(((c*kh + i)*kw + j), oh*Wo + ow) = x(gr*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw),
  // 0 outside the input.
  void im2col(const T* x, Index gr, Matrix<T>& cols) const {
    const ConvGeometry& g = geo_;
    T* out = cols.data();
    for (Index c = 0; c < g.Cg(); ++c) {
      const T* xc = x + (gr * g.Cg() + c) * g.H * g.W;
      for (Index i = 0; i < g.kh; ++i)
        for (Index j = 0; j < g.kw; ++j) {
          const auto [lo, hi, off] = valid_cols(j);
          for (Index oh = 0; oh < g.Ho; ++oh, out += g.Wo) {
            const Index ih = oh * g.sh - g.pt + i * g.dh;
            if (ih < 0 || ih >= g.H) {
              std::fill(out, out + g.Wo, T(0));
              continue;
            }
            const T* row = xc + ih * g.W;  // input column ow*sw + off for output column ow
            std::fill(out, out + lo, T(0));
            if (g.sw == 1) std::copy(row + lo + off, row + hi + off, out + lo);
            else for (Index ow = lo; ow < hi; ++ow) out[ow] = row[ow * g.sw + off];
            std::fill(out + hi, out + g.Wo, T(0));
          }
        }
    }
  }

  // The transpose of im2col: dx(gr*Cg + c, ih, iw) += dcols(row, p) over every (row, p) that
  // im2col read from (ih, iw).
  void col2im(const Matrix<T>& dcols, Index gr, T* dx) const {
    const ConvGeometry& g = geo_;
    const T* in = dcols.data();
    for (Index c = 0; c < g.Cg(); ++c) {
      T* dxc = dx + (gr * g.Cg() + c) * g.H * g.W;
      for (Index i = 0; i < g.kh; ++i)
        for (Index j = 0; j < g.kw; ++j) {
          const auto [lo, hi, off] = valid_cols(j);
          for (Index oh = 0; oh < g.Ho; ++oh, in += g.Wo) {
            const Index ih = oh * g.sh - g.pt + i * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            T* row = dxc + ih * g.W;
            if (g.sw == 1) for (Index ow = lo; ow < hi; ++ow) row[ow + off] += in[ow];
            else for (Index ow = lo; ow < hi; ++ow) row[ow * g.sw + off] += in[ow];
          }
        }
    }
  }

  // For kernel column j: the output columns [lo, hi) whose input column ow*sw + off
  // (off = j*dw - pl) lies inside [0, W); the others read padding.
  struct ValidCols {
    Index lo, hi, off;
  };
  ValidCols valid_cols(Index j) const {
    const ConvGeometry& g = geo_;
    const Index off = j * g.dw - g.pl;
    const Index lo = off >= 0 ? 0 : std::min(g.Wo, (-off + g.sw - 1) / g.sw);
    const Index hi = off > g.W - 1 ? lo : std::max(lo, std::min(g.Wo, (g.W - 1 - off) / g.sw + 1));
    return {lo, hi, off};
  }

  std::string_view name_;
  int dims_;
  ConvGeometry geo_;
  Padding pad_;
  bool has_bias_;
  Matrix<T> W_, dW_;  // (O, C/g*kh*kw)
  Matrix<T> b_, db_;  // (1, O)
  Matrix<T> x_;       // (N, C*H*W)
  Matrix<T> y_;       // (N, O*Ho*Wo)
  Matrix<T> dx_;      // (N, C*H*W)
  std::vector<Scratch> scratch_;       // one per thread
  std::vector<Matrix<T>> partial_dW_;  // one (O, K) per batch chunk
};

inline ConvGeometry conv2d_geometry(Index in, Index out, Size2 kernel, const Conv2dOptions& o) {
  ConvGeometry g;
  g.C = in, g.O = out, g.groups = o.groups, g.H = o.input.h, g.W = o.input.w;
  g.kh = kernel.h, g.kw = kernel.w, g.sh = o.stride.h, g.sw = o.stride.w;
  g.dh = o.dilation.h, g.dw = o.dilation.w;
  return g;
}

inline ConvGeometry conv1d_geometry(Index in, Index out, Index kernel, const Conv1dOptions& o) {
  ConvGeometry g;
  g.C = in, g.O = out, g.groups = o.groups, g.H = 1, g.W = o.input;
  g.kh = 1, g.kw = kernel, g.sh = 1, g.sw = o.stride, g.dh = 1, g.dw = o.dilation;
  return g;
}

// A 1-D conv's padding is one number: as a 2-D one, none on H.
inline Padding conv1d_padding(const Padding& p) {
  if (!p.mode.empty()) return p;
  if (p.size.h != p.size.w)
    throw ValueError("Conv1d: padding must be one number, got (" + std::to_string(p.size.h) + ", " +
                     std::to_string(p.size.w) + ")");
  return Padding(0, p.size.w);
}

}  // namespace detail

// torch.nn.Conv2d(in, out, kernel, stride, padding, dilation, groups, bias) on (N, C*H*W).
//   heed::Conv2d<float> conv(1, 32, 3, {.input = {28, 28}, .padding = 1}, gen);  // y (N, 32*28*28)
template <typename T>
class Conv2d : public detail::ConvCore<T> {
 public:
  Conv2d(Index in_channels, Index out_channels, Size2 kernel_size, const Conv2dOptions& opt = {},
         Generator& gen = default_generator())
      : detail::ConvCore<T>("Conv2d", 2, detail::conv2d_geometry(in_channels, out_channels, kernel_size, opt),
                            opt.padding, opt.bias, opt.padding_mode, gen) {}

  std::pair<Index, Index> output_hw() const { return {this->geometry().Ho, this->geometry().Wo}; }
  std::string extra_repr() const override { return this->conv_repr(); }
};

// torch.nn.Conv1d(in, out, kernel, stride, padding, dilation, groups, bias) on (N, C*L).
template <typename T>
class Conv1d : public detail::ConvCore<T> {
 public:
  Conv1d(Index in_channels, Index out_channels, Index kernel_size, const Conv1dOptions& opt = {},
         Generator& gen = default_generator())
      : detail::ConvCore<T>("Conv1d", 1, detail::conv1d_geometry(in_channels, out_channels, kernel_size, opt),
                            detail::conv1d_padding(opt.padding), opt.bias, opt.padding_mode, gen) {}

  Index output_length() const { return this->geometry().Wo; }
  std::string extra_repr() const override { return this->conv_repr(); }
};

}  // namespace heed
