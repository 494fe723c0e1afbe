#pragma once
// Flatten, as torch.nn.Flatten(): (N, C, H, W) -> (N, C*H*W). A heed batch is already one row
// per sample in that order, so forward and backward are the identity (copied: they return a
// buffer the module owns). It keeps a ported nn.Sequential's positions, and so its state_dict
// names ("0.weight", "3.weight"), the same as PyTorch's.
#include "../core/module.hpp"

namespace heed {

template <typename T>
class Flatten : public Module<T> {
 public:
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    y_ = x;  // (N, F)
    ran_ = true;
    return y_;
  }
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(ran_, "Flatten");
    detail::check_shape("Flatten", "gradient", dy, y_.rows(), y_.cols());
    dx_ = dy;  // (N, F)
    return dx_;
  }
  std::string name() const override { return "Flatten"; }
  std::string extra_repr() const override { return "start_dim=1, end_dim=-1"; }

 private:
  bool ran_ = false;
  Matrix<T> y_, dx_;  // (N, F)
};

}  // namespace heed
