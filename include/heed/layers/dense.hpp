#pragma once
// Dense<T, Act>: a Linear layer followed by an activation policy, MiniDNN's
// FullyConnected<ReLU>. Dense<float, ReLU> is Linear(in, out) then ReLU.
#include "../activations/identity.hpp"
#include "linear.hpp"

namespace heed {

template <typename T, template <typename> class Act = Identity>
class Dense : public Module<T> {
 public:
  template <typename... ActArgs>
  Dense(Index in_features, Index out_features, bool bias = true,
        Generator& gen = default_generator(), ActArgs&&... act_args)
      : linear_(in_features, out_features, bias, gen), act_(std::forward<ActArgs>(act_args)...) {}

  const Matrix<T>& forward(const ConstRef<T>& x) override {
    return act_.forward(linear_.forward(x));  // y = act(x W^T + b)
  }
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    return linear_.backward(act_.backward(dy));  // chain rule, in reverse order
  }
  // The Linear is a transparent child: its parameters are the Dense's own ("weight", "bias"),
  // so a Dense loads the state_dict of a Linear.
  Children<T> children() override { return {{"", &linear_}}; }
  std::string name() const override { return "Dense<" + act_.name() + ">"; }
  std::string extra_repr() const override { return linear_.extra_repr(); }
  void requires_input_grad(bool on) override {
    Module<T>::requires_input_grad(on);
    linear_.requires_input_grad(on);
  }

  Linear<T>& linear() { return linear_; }
  Act<T>& activation() { return act_; }

 private:
  Linear<T> linear_;
  Act<T> act_;
};

}  // namespace heed
