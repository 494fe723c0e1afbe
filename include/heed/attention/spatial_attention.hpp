#pragma once
// SpatialAttention2d: attention over the H x W positions of a feature map, CBAM's spatial
// attention (Woo et al., 2018). Each position gets a weight in (0, 1) from what all channels
// hold there, and every channel is scaled by it:
//
//   x (N, C*H*W), channel c of sample n at columns [c*P, (c+1)*P), P = H*W
//   a_n = [mean_c x_ncp ; max_c x_ncp]          (N, 2*P): two maps, mean then max         (1)
//   s   = Conv2d(2, 1, k, padding k/2, no bias)(a)   (N, P)                                 (2)
//   m   = sigmoid(s)                            (N, P), the attention map                 (3)
//   y_ncp = x_ncp m_np                          (N, C*P)                                  (4)
//
// The map m (attention_map()) shows where the model looks. As PyTorch, the module is
//   class SpatialAttention(nn.Module):
//       def __init__(self, k=7): self.conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)
//       def forward(self, x):
//           a = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
//           return x * torch.sigmoid(self.conv(a))
// with the state_dict key "conv.weight" (1, 2, k, k). The max's gradient is split evenly among
// the channels that hold the maximum, as amax's: after a ReLU, a position where every channel
// is 0 is such a tie. (A NaN maximum sends it all to the first NaN.)
//
// Threads: the loops of (1) and (4) and their backward run sample by sample on different threads
// (detail::for_each_slice), each writing only its own rows; the conv is Conv2d's (the same bits
// for any thread count), so the module's results are too.
#include <cmath>
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "../core/parallel.hpp"
#include "../layers/conv.hpp"

namespace heed {

struct SpatialAttention2dOptions {
  Size2 input = 0;         // (H, W) of the feature map; required
  Index kernel_size = 7;   // odd, so that padding k/2 keeps H x W
};

template <typename T>
class SpatialAttention2d : public Module<T> {
 public:
  explicit SpatialAttention2d(const SpatialAttention2dOptions& o, Generator& gen = default_generator())
      : P_(checked_positions(o)), conv_(2, 1, o.kernel_size, {.input = o.input, .padding = o.kernel_size / 2, .bias = false}, gen) {}

  // forward                                      x (N, C*P) -> y (N, C*P)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    const Index P = P_;
    if (x.cols() == 0 || x.cols() % P != 0)
      throw ShapeError("SpatialAttention2d: input expected (N, C*" + std::to_string(P) + ") for a " +
                       std::to_string(conv_.geometry().H) + "x" + std::to_string(conv_.geometry().W) +
                       " map, got " + detail::shape_str(x.rows(), x.cols()));
    const Index N = x.rows(), C = x.cols() / P;
    x_ = x;                      // (N, C*P)
    pooled_.resize(N, 2 * P);    // (N, 2*P)
    argmax_.resize(N, P);        // (N, P) channel of the max (the first)
    ties_.resize(N, P);          // (N, P) how many channels hold it
    // Sample by sample (threads over the batch), each channel's P values contiguous.
    detail::for_each_slice(N, static_cast<double>(N) * C * P * 4, scratch_, [&](Index n, char&) {
      auto mean = pooled_.row(n).head(P);
      auto mx = pooled_.row(n).tail(P);
      auto arg = argmax_.row(n);
      mean = x.row(n).head(P);
      mx = mean;
      arg.setZero();
      for (Index c = 1; c < C; ++c) {                                      // (1)
        const auto xc = x.row(n).segment(c * P, P);
        mean += xc;
        for (Index p = 0; p < P; ++p)
          if (xc(p) > mx(p) || (std::isnan(xc(p)) && !std::isnan(mx(p)))) mx(p) = xc(p), arg(p) = c;
      }
      mean /= static_cast<T>(C);
      auto ties = ties_.row(n);  // channels holding the maximum, for d(1)
      ties.setZero();
      for (Index c = 0; c < C; ++c) ties += (x.row(n).segment(c * P, P).array() == mx.array()).template cast<T>().matrix();
    });
    map_ = conv_.forward(pooled_);                                         // (2)
    map_ = (T(1) + (-map_.array()).exp()).inverse().matrix();              // (3)
    y_.resize(N, C * P);
    detail::for_each_slice(N, static_cast<double>(N) * C * P * 2, scratch_, [&](Index n, char&) {
      for (Index c = 0; c < C; ++c)                                        // (4)
        y_.row(n).segment(c * P, P) = x.row(n).segment(c * P, P).cwiseProduct(map_.row(n));
    });
    return y_;
  }

  // backward                                     dy (N, C*P) -> dx (N, C*P)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(map_.rows() > 0, "SpatialAttention2d");
    detail::check_shape("SpatialAttention2d", "gradient", dy, x_.rows(), x_.cols());
    const Index N = x_.rows(), P = P_, C = x_.cols() / P;
    dmap_.resize(N, P);
    detail::for_each_slice(N, static_cast<double>(N) * C * P * 2, scratch_, [&](Index n, char&) {
      auto dm = dmap_.row(n);                                              // d(4) wrt m
      dm = dy.row(n).head(P).cwiseProduct(x_.row(n).head(P));
      for (Index c = 1; c < C; ++c) dm += dy.row(n).segment(c * P, P).cwiseProduct(x_.row(n).segment(c * P, P));
      dm.array() *= map_.row(n).array() * (T(1) - map_.row(n).array());   // d(3): ds
    });
    const Matrix<T>& dpooled = conv_.backward(dmap_);                      // d(2): (N, 2*P)
    if (!this->input_grad_) {
      dx_.resize(0, x_.cols());
      return dx_;
    }
    dx_.resize(N, C * P);
    detail::for_each_slice(N, static_cast<double>(N) * C * P * 4, scratch_, [&](Index n, char&) {
      const auto dmean = dpooled.row(n).head(P) / static_cast<T>(C);
      const auto mx = pooled_.row(n).tail(P).array();
      const auto dmax = dpooled.row(n).tail(P).array() / ties_.row(n).array().max(T(1));  // a share per tie
      for (Index c = 0; c < C; ++c) {   // d(4) wrt x, d(1) mean and max (each tied channel its share)
        const auto xc = x_.row(n).segment(c * P, P).array();
        dx_.row(n).segment(c * P, P).array() = dy.row(n).segment(c * P, P).array() * map_.row(n).array() + dmean.array() +
                                               (xc == mx).select(dmax, T(0));
      }
      for (Index p = 0; p < P; ++p)     // a NaN maximum (no tie counted): all to the first NaN
        if (ties_(n, p) == 0) dx_(n, argmax_(n, p) * P + p) += dpooled(n, P + p);
    });
    return dx_;
  }

  // Without the input gradient, the conv's (of the pooled maps) is not needed either.
  void requires_input_grad(bool on) override {
    this->input_grad_ = on;
    conv_.requires_input_grad(on);
  }

  Children<T> children() override { return {{"conv", &conv_}}; }
  std::string name() const override { return "SpatialAttention2d"; }
  std::string extra_repr() const override {
    return "kernel_size=" + std::to_string(conv_.geometry().kh);
  }

  // The last forward's attention map m (N, H*W), row n sample n's map in row-major order.
  const Matrix<T>& attention_map() const { return map_; }
  Conv2d<T>& conv() { return conv_; }

 private:
  static Index checked_positions(const SpatialAttention2dOptions& o) {
    detail::require(o.input.h > 0 && o.input.w > 0, "SpatialAttention2d",
                    "input size must be positive, got (" + std::to_string(o.input.h) + ", " +
                        std::to_string(o.input.w) + ") (set the options' .input)");
    detail::require(o.kernel_size > 0 && o.kernel_size % 2 == 1, "SpatialAttention2d",
                    "kernel_size must be odd and positive (the map keeps H x W), got " + std::to_string(o.kernel_size));
    return o.input.h * o.input.w;
  }

  Index P_;
  Conv2d<T> conv_;
  Matrix<T> x_, y_, dx_;          // (N, C*P)
  Matrix<T> pooled_;              // (N, 2*P)
  Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> argmax_;  // (N, P)
  Matrix<T> map_, dmap_;          // (N, P)
  Matrix<T> ties_;                // (N, P) channels holding the max
  std::vector<char> scratch_;     // for_each_slice's per-thread slot (unused)
};

}  // namespace heed
