#pragma once
// The module interface: a forward/backward pair over batch-first matrices.
//
//   y  = forward(x)    x: (B, in)   -> y: (B, out); caches what backward needs
//   dx = backward(dy)  dy: (B, out) -> dx: (B, in); *accumulates* (+=) parameter gradients
//
// forward and backward return references to buffers owned by the module, valid until its next
// forward/backward call. Buffers are resized only when the batch shape changes, so a training
// loop with a fixed batch size allocates nothing per step.
#include <string>
#include <vector>

#include "error.hpp"
#include "tensor.hpp"

namespace heed {

// A learnable tensor and its gradient, both owned by a module.
template <typename T>
struct Parameter {
  std::string name;  // PyTorch state_dict style: "weight", "0.bias", "layers.2.weight"
  Matrix<T>* value;
  Matrix<T>* grad;
};

// What every learnable component has, whatever the signature of its forward: named parameters,
// zero_grad, and a train/eval mode. Components with several inputs (attention, recurrent layers,
// Embedding on ids) derive from this directly; single-input layers derive from Module below.
template <typename T>
class ModuleBase {
 public:
  using Scalar = T;

  virtual ~ModuleBase() = default;

  // The learnable tensors, with hierarchical names. Empty for parameter-free modules.
  virtual std::vector<Parameter<T>> parameters() { return {}; }

  // Short type name used in error messages and summaries ("Linear", "ReLU", ...).
  virtual std::string name() const = 0;

  void zero_grad() {
    for (auto& p : parameters()) p.grad->setZero();
  }

  Index num_parameters() {
    Index n = 0;
    for (auto& p : parameters()) n += p.value->size();
    return n;
  }

  // Training mode switches Dropout on and makes LayerNorm etc. behave as in training.
  // Containers override it to reach their children.
  virtual void train(bool on = true) { training_ = on; }
  void eval() { train(false); }
  bool training() const { return training_; }

 protected:
  bool training_ = true;
};

// A single-input module: y = forward(x), dx = backward(dy).
template <typename T>
class Module : public ModuleBase<T> {
 public:
  virtual const Matrix<T>& forward(const ConstRef<T>& x) = 0;
  virtual const Matrix<T>& backward(const ConstRef<T>& dy) = 0;

  // When false, backward may skip computing dx (returns an empty matrix) and only accumulates
  // parameter gradients. The first layer of a network never needs dx: skipping it saves a
  // (B, out) x (out, in) product per step.
  virtual void requires_input_grad(bool on) { input_grad_ = on; }
  bool requires_input_grad() const { return input_grad_; }

 protected:
  bool input_grad_ = true;
};

// Prefix every parameter name with "<prefix>." (used by containers).
template <typename T>
void prefix_names(std::vector<Parameter<T>>& ps, const std::string& prefix) {
  for (auto& p : ps) p.name = prefix + "." + p.name;
}

}  // namespace heed
