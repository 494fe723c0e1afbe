#pragma once
// BCEWithLogitsLoss (mean reduction), as torch.nn.BCEWithLogitsLoss, on logits x and targets
// y in [0, 1], with optional pos_weight p per column:
//   l = -[p y log s(x) + (1 - y) log(1 - s(x))],  s = sigmoid
//     = (1 - y) x + (1 + (p - 1) y) softplus(-x),  softplus(-x) = max(-x, 0) + log1p(exp(-|x|))
//   dl/dx = (1 + (p - 1) y) s(x) - p y   (= s(x) - y when p = 1);   L = mean l
#include <cmath>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "loss_common.hpp"

namespace heed {

template <typename T>
struct BCEWithLogitsLossOptions {
  std::vector<T> pos_weight{};  // (F) weight of positives per column; empty = 1
};

template <typename T>
class BCEWithLogitsLoss {
 public:
  explicit BCEWithLogitsLoss(BCEWithLogitsLossOptions<T> opt = {}) : opt_(std::move(opt)) {}

  T forward(const ConstRef<T>& input, const ConstRef<T>& target) {
    Matrix<T>& g = grad_.begin();
    detail::check_shape("BCEWithLogitsLoss", "target", target, input.rows(), input.cols());
    if (!opt_.pos_weight.empty() && Index(opt_.pos_weight.size()) != input.cols())
      throw ShapeError("BCEWithLogitsLoss: pos_weight expected (" + std::to_string(input.cols()) +
                       "), got (" + std::to_string(opt_.pos_weight.size()) + ")");
    detail::check_nonempty("BCEWithLogitsLoss", input);
    g.resize(input.rows(), input.cols());
    const T n = static_cast<T>(input.size());
    double total = 0;
    for (Index i = 0; i < input.rows(); ++i)
      for (Index j = 0; j < input.cols(); ++j) {
        const T x = input(i, j), y = target(i, j);
        const T p = opt_.pos_weight.empty() ? T(1) : opt_.pos_weight[j];
        const T sp = std::max(-x, T(0)) + std::log1p(std::exp(-std::abs(x)));  // softplus(-x)
        const T c = T(1) + (p - T(1)) * y;
        total += (T(1) - y) * x + c * sp;
        const T s = T(0.5) * (std::tanh(T(0.5) * x) + T(1));                   // sigmoid(x)
        g(i, j) = (c * s - p * y) / n;
      }
    grad_.end();
    return static_cast<T>(total / n);
  }
  const Matrix<T>& backward() const { return grad_.get(); }  // (B, F)

 private:
  BCEWithLogitsLossOptions<T> opt_;
  detail::LossGrad<T> grad_{"BCEWithLogitsLoss"};
};

}  // namespace heed
