#pragma once
// The module contract, as torch.nn.Module.
//
// A module declares what it has, once, through four hooks (all default to "nothing"):
//   children()          its submodules, by name, in order       {"encoder", &enc}, {"0", m0}
//   local_parameters()  its own learnable tensors (not its children's)   {"weight", &W, &dW}
//   local_buffers()     its own non-learnable state (running statistics)
//   local_generator()   the random stream it draws from at run time (dropout), if any
// and everything else follows from that registry, with PyTorch's names and order:
// parameters() ("encoder.layers.0.self_attn.in_proj_weight"), named_modules(), buffers(),
// generators(), train()/eval(), zero_grad(), num_parameters(), state_dict(),
// load_state_dict(), heed::save/load/Checkpoint and heed::summary.
//
// A child registered under the empty name is transparent: its tensors, stream and mode are the
// parent's own, under the parent's path (Dense's Linear: "weight", not "linear.weight"), for a
// module that wraps another and must keep its state_dict names.
//
// children() is computed on every call rather than stored, so a module holds no pointers to
// itself and stays copyable and movable like any C++ value. A composite lists its members:
//
//   struct Net : heed::ModuleBase<float> {
//     heed::Linear<float> fc1{784, 64}, fc2{64, 10};
//     heed::Children<float> children() override { return {{"fc1", &fc1}, {"fc2", &fc2}}; }
//     std::string name() const override { return "Net"; }
//   };
//
// Single-input modules (Module<T>) add a forward/backward pair over batch-first matrices:
//   y  = forward(x)    x: (B, in)   -> y: (B, out); caches what backward needs
//   dx = backward(dy)  dy: (B, out) -> dx: (B, in); *accumulates* (+=) parameter gradients
// forward and backward return references to buffers owned by the module, valid until its next
// forward/backward call. Buffers are resized only when the batch shape changes, so a training
// loop with a fixed batch size allocates nothing per step.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "random.hpp"
#include "state_dict.hpp"
#include "tensor.hpp"

namespace heed {

// A learnable tensor and its gradient, both owned by a module.
// (Constructors rather than default member initializers: g++ 12 crashes, "internal compiler
// error: in nothrow_spec_p", on {"w", &W, &dW} inside a lambda when `shape` has one.)
template <typename T>
struct Parameter {
  std::string name;  // PyTorch state_dict style: "weight", "0.bias", "layers.2.weight"
  Matrix<T>* value = nullptr;
  Matrix<T>* grad = nullptr;
  // PyTorch's shape of this tensor when it is not the matrix's (rows, cols): {n} for a bias
  // heed keeps as a (1, n) row. heed::save_safetensors writes it, heed::load_weights expects it.
  std::vector<Index> shape;

  Parameter() = default;
  Parameter(std::string n, Matrix<T>* v, Matrix<T>* g, std::vector<Index> s = {})
      : name(std::move(n)), value(v), grad(g), shape(std::move(s)) {}
};

// A tensor saved with the model but not learned (BatchNorm's running_mean, ...).
template <typename T>
struct Buffer {
  std::string name;
  Matrix<T>* value = nullptr;
  std::vector<Index> shape;  // as Parameter::shape
  // A count PyTorch keeps as a 0-D int64 tensor (BatchNorm's num_batches_tracked), held here
  // as a (1, 1) matrix of T: PyTorch's shape is (), heed::save_safetensors writes it as I64 and
  // heed::load_weights reads an integer (or float) tensor into it. Exact up to 2^24 in float.
  bool count = false;

  Buffer() = default;
  Buffer(std::string n, Matrix<T>* v, std::vector<Index> s = {}) : name(std::move(n)), value(v), shape(std::move(s)) {}
};

// A (1, n) row PyTorch stores 1-D as (n,): running statistics.
template <typename T>
Buffer<T> vector_buffer(std::string name, Matrix<T>* value) {
  return {std::move(name), value, {value->cols()}};
}

// A (1, 1) count PyTorch stores as a 0-D int64 tensor; see Buffer::count.
template <typename T>
Buffer<T> count_buffer(std::string name, Matrix<T>* value) {
  Buffer<T> b(std::move(name), value);
  b.count = true;
  return b;
}

// A (1, n) row PyTorch stores 1-D as (n,): biases, norm scales and shifts.
template <typename T>
Parameter<T> vector_parameter(std::string name, Matrix<T>* value, Matrix<T>* grad) {
  return {std::move(name), value, grad, {value->cols()}};
}

// The shape PyTorch gives a parameter or buffer: its declared shape, else (rows, cols); () for
// a count.
template <class Item>
std::vector<Index> torch_shape(const Item& item) {
  if constexpr (requires { item.count; })
    if (item.count) return {};
  if (!item.shape.empty()) return item.shape;
  return {item.value->rows(), item.value->cols()};
}

template <typename T>
class ModuleBase;

template <typename T>
using NamedModule = std::pair<std::string, ModuleBase<T>*>;
template <typename T>
using Children = std::vector<NamedModule<T>>;

// What every component has, whatever the signature of its forward. Components with several
// inputs (attention, recurrent layers, Embedding on ids) derive from this directly;
// single-input layers derive from Module below.
template <typename T>
class ModuleBase {
 public:
  using Scalar = T;

  ModuleBase() = default;
  virtual ~ModuleBase() = default;
  // Declared because the destructor is: without them a module would copy where it could move
  // (a std::vector of modules growing, a module returned by value).
  ModuleBase(const ModuleBase&) = default;
  ModuleBase(ModuleBase&&) noexcept = default;
  ModuleBase& operator=(const ModuleBase&) = default;
  ModuleBase& operator=(ModuleBase&&) noexcept = default;

  // ---- what a module declares -----------------------------------------------------------
  // Short type name used in error messages and summaries ("Linear", "ReLU", ...).
  virtual std::string name() const = 0;
  virtual Children<T> children() { return {}; }
  virtual std::vector<Parameter<T>> local_parameters() { return {}; }
  virtual std::vector<Buffer<T>> local_buffers() { return {}; }
  virtual Generator* local_generator() { return nullptr; }
  // The constructor arguments summary() prints after the type, "784, 256, bias=true".
  virtual std::string extra_repr() const { return {}; }

  // ---- what follows from it ---------------------------------------------------------------
  // This module as "" and every submodule by its dotted path, depth first in children()
  // order (a transparent child shares its parent's path). Refuses (ValueError) a null child, a
  // repeated child name, and a module reachable twice (a shared or cyclic child would have its
  // parameters stepped twice).
  std::vector<NamedModule<T>> named_modules() {
    std::vector<NamedModule<T>> out;
    std::set<const ModuleBase*> seen{this};
    collect_modules("", this, out, seen);
    return out;
  }

  // Every learnable tensor, named by its module path: "encoder.rnn.weight_ih_l0". Refuses two
  // tensors of one name (a state_dict that could never be loaded back).
  std::vector<Parameter<T>> parameters() { return collect(&ModuleBase::local_parameters); }
  std::vector<Buffer<T>> buffers() { return collect(&ModuleBase::local_buffers); }

  // Every run-time random stream, named by its module's path ("" for this module itself), so
  // a checkpoint can save and restore each one.
  std::vector<std::pair<std::string, Generator*>> generators() {
    std::vector<std::pair<std::string, Generator*>> gs;
    for (auto& [path, m] : named_modules())
      if (Generator* g = m->local_generator()) gs.emplace_back(path, g);
    return gs;
  }

  void zero_grad() {
    for (auto& p : parameters()) p.grad->setZero();
  }

  Index num_parameters() {
    Index n = 0;
    for (auto& p : parameters()) n += p.value->size();
    return n;
  }

  // Training mode switches Dropout on; it reaches every submodule.
  void train(bool on = true) {
    for (auto& [path, m] : named_modules()) m->training_ = on;
  }
  void eval() { train(false); }
  bool training() const { return training_; }

  // When false, backward may skip computing the input gradient (returns it empty) and only
  // accumulates parameter gradients: the first layer of a network never needs it, which saves
  // a (B, out) x (out, in) product per step. Containers pass it to the child that sees their
  // input (Sequential: its first module).
  virtual void requires_input_grad(bool on) { input_grad_ = on; }
  bool requires_input_grad() const { return input_grad_; }

  // Copies of every parameter and buffer by name, parameters first (PyTorch's state_dict).
  StateDict<T> state_dict() const {
    auto& self = const_cast<ModuleBase&>(*this);  // the hooks hand out mutable pointers; only read
    StateDict<T> d;
    for (const auto& p : self.parameters()) d.insert(p.name, *p.value);
    for (const auto& b : self.buffers()) d.insert(b.name, *b.value);
    return d;
  }

  // Copies dict's tensors into the model, as torch's load_state_dict. Every key is checked
  // first: missing and unexpected keys (errors when strict) and every shape mismatch (always
  // an error) are all listed in one message, and on any error nothing is modified. Throws
  // ShapeError when only shapes disagree, ValueError otherwise.
  IncompatibleKeys load_state_dict(const StateDict<T>& dict, LoadStateDictOptions opt = {}) {
    std::vector<std::pair<std::string, Matrix<T>*>> targets;
    for (auto& p : parameters()) targets.emplace_back(p.name, p.value);
    for (auto& b : buffers()) targets.emplace_back(b.name, b.value);
    IncompatibleKeys keys;
    std::vector<std::string> mismatched;
    std::set<std::string> known;
    for (const auto& [key, m] : targets) {
      known.insert(key);
      const Matrix<T>* src = dict.find(key);
      if (!src) {
        keys.missing_keys.push_back(key);
      } else if (src->rows() != m->rows() || src->cols() != m->cols()) {
        mismatched.push_back("'" + key + "' expected " + detail::shape_str(m->rows(), m->cols()) +
                             ", got " + detail::shape_str(src->rows(), src->cols()));
      }
    }
    for (const auto& [key, m] : dict)
      if (!known.count(key)) keys.unexpected_keys.push_back(key);
    if ((opt.strict && (!keys.missing_keys.empty() || !keys.unexpected_keys.empty())) || !mismatched.empty())
      detail::throw_load_error(name() + ": load_state_dict", keys, opt.strict, {}, mismatched);
    for (const auto& [key, m] : targets)
      if (const Matrix<T>* src = dict.find(key)) *m = *src;
    return keys;
  }

 protected:
  static std::string join(const std::string& path, const std::string& leaf) {
    return path.empty() ? leaf : path + "." + leaf;
  }

  bool training_ = true;
  bool input_grad_ = true;

 private:
  // Every module's local tensors (local_parameters or local_buffers), named by module path.
  template <class Item>
  std::vector<Item> collect(std::vector<Item> (ModuleBase::*local)()) {
    std::vector<Item> out;
    std::set<std::string> names;
    for (auto& [path, m] : named_modules())
      for (auto item : (m->*local)()) {
        item.name = join(path, item.name);
        claim(names, item.name);
        out.push_back(std::move(item));
      }
    return out;
  }

  void claim(std::set<std::string>& names, const std::string& n) const {
    if (!names.insert(n).second)
      throw ValueError(name() + ": two tensors named '" + n + "'");
  }

  void collect_modules(const std::string& path, ModuleBase* m, std::vector<NamedModule<T>>& out,
                       std::set<const ModuleBase*>& seen) {
    out.emplace_back(path, m);
    std::set<std::string> names;
    for (auto& [child_name, child] : m->children()) {
      const std::string where = path.empty() ? m->name() : "'" + path + "' (" + m->name() + ")";
      const std::string child_path = child_name.empty() ? path : join(path, child_name);
      if (!child_name.empty() && !names.insert(child_name).second)
        throw ValueError(name() + ": " + where + " has two children named '" + child_name + "'");
      if (child == nullptr)
        throw ValueError(name() + ": child '" + child_path + "' is null");
      if (!seen.insert(child).second)
        throw ValueError(name() + ": module '" + child_path + "' (" + child->name() +
                         ") is registered more than once; give each position its own module");
      collect_modules(child_path, child, out, seen);
    }
  }
};

// A single-input module: y = forward(x), dx = backward(dy).
template <typename T>
class Module : public ModuleBase<T> {
 public:
  virtual const Matrix<T>& forward(const ConstRef<T>& x) = 0;
  virtual const Matrix<T>& backward(const ConstRef<T>& dy) = 0;
};

}  // namespace heed
