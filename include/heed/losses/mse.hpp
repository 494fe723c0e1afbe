#pragma once
// MSELoss (mean reduction), as torch.nn.MSELoss:
//   L = (1/N) sum (x - y)^2,  N = number of elements;   dL/dx = 2 (x - y) / N
#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "loss_common.hpp"

namespace heed {

template <typename T>
class MSELoss {
 public:
  // input, target: same shape (B, F) -> mean squared error; keeps dL/dinput.
  T forward(const ConstRef<T>& input, const ConstRef<T>& target) {
    Matrix<T>& g = grad_.begin();
    detail::check_shape("MSELoss", "target", target, input.rows(), input.cols());
    detail::check_nonempty("MSELoss", input);
    g.resize(input.rows(), input.cols());
    g = input - target;                              // (1) r = x - y
    const T n = static_cast<T>(input.size());
    const T loss = g.squaredNorm() / n;              // (2) L = sum r^2 / N
    g *= T(2) / n;                                   // d(2) d(1): 2 r / N
    grad_.end();
    return loss;
  }
  const Matrix<T>& backward() const { return grad_.get(); }  // (B, F)

 private:
  detail::LossGrad<T> grad_{"MSELoss"};
};

}  // namespace heed
