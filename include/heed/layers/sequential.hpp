#pragma once
// Sequential: modules applied in order; backward runs them in reverse. Parameter names are
// prefixed by the module's name, its index by default ("0.weight", "2.bias"), as PyTorch's
// nn.Sequential state_dict; add(name, m) / emplace_named<M>(name, ...) name it as
// nn.Sequential(OrderedDict(...)) or add_module does ("fc1.weight").
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/module.hpp"

namespace heed {

template <typename T>
class Sequential : public Module<T> {
 public:
  Sequential() = default;
  Sequential(Sequential&&) = default;
  Sequential& operator=(Sequential&&) = default;

  // Sequential<float>(Linear<float>(784, 256), ReLU<float>(), Linear<float>(256, 10)):
  // each module is moved in, in order.
  template <class... Ms>
    requires(sizeof...(Ms) > 0 && (std::is_base_of_v<Module<T>, std::decay_t<Ms>> && ...) &&
             !(sizeof...(Ms) == 1 && (std::is_same_v<std::decay_t<Ms>, Sequential> && ...)))
  explicit Sequential(Ms&&... ms) {
    (emplace<std::decay_t<Ms>>(std::forward<Ms>(ms)), ...);
  }

  // Constructs a module in place and returns it: net.emplace<Linear<float>>(784, 256).
  template <class M, class... Args>
  M& emplace(Args&&... args) {
    auto m = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *m;
    add(std::move(m));
    return ref;
  }

  // The same under a name of its own: net.emplace_named<Linear<float>>("fc1", 784, 256).
  template <class M, class... Args>
  M& emplace_named(std::string name, Args&&... args) {
    auto m = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *m;
    add(std::move(name), std::move(m));
    return ref;
  }

  // Appends m under its index ("3"), as nn.Sequential.append.
  Module<T>& add(std::unique_ptr<Module<T>> m) { return add(std::to_string(modules_.size()), std::move(m)); }

  // Appends m as `name`; a name that is empty, holds a '.', or is taken is a ValueError
  // (PyTorch's add_module refuses the first two; the third would make two children one).
  Module<T>& add(std::string name, std::unique_ptr<Module<T>> m) {
    if (!m) throw ValueError("Sequential: add() got a null module");
    if (name.empty() || name.find('.') != std::string::npos)
      throw ValueError("Sequential: module name '" + name + "' is empty or contains '.'");
    for (const std::string& n : names_)
      if (n == name) throw ValueError("Sequential: a module is already named '" + name + "'");
    m->train(this->training_);  // a module added to an eval()'d Sequential is in eval mode
    modules_.push_back(std::move(m));
    names_.push_back(std::move(name));
    sync_input_grad();
    return *modules_.back();
  }

  // A ShapeError from module i is re-thrown with its position: "Sequential[2] (Linear): ...".
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    if (modules_.empty()) throw ValueError("Sequential: forward() on an empty Sequential");
    const Matrix<T>* h = nullptr;
    for (std::size_t i = 0; i < modules_.size(); ++i)
      h = at_index(i, [&] { return &modules_[i]->forward(i == 0 ? x : ConstRef<T>(*h)); });
    return *h;
  }

  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    if (modules_.empty()) throw ValueError("Sequential: backward() on an empty Sequential");
    const Matrix<T>* g = nullptr;
    for (std::size_t i = modules_.size(); i-- > 0;)
      g = at_index(i, [&] {
        return &modules_[i]->backward(i + 1 == modules_.size() ? dy : ConstRef<T>(*g));
      });
    return *g;
  }

  // Children by name, "0", "1", ... unless named: parameter names "0.weight", "2.bias" (or
  // "fc1.weight") as nn.Sequential's.
  Children<T> children() override {
    Children<T> c;
    for (std::size_t i = 0; i < modules_.size(); ++i) c.emplace_back(names_[i], modules_[i].get());
    return c;
  }

  std::string name() const override { return "Sequential"; }

  // Only the first module's input gradient is the Sequential's; inner ones are always needed.
  void requires_input_grad(bool on) override {
    Module<T>::requires_input_grad(on);
    sync_input_grad();
  }

  std::size_t size() const { return modules_.size(); }
  Module<T>& operator[](std::size_t i) {
    if (i >= modules_.size())
      throw ValueError("Sequential: index " + std::to_string(i) + " out of range, size " +
                       std::to_string(modules_.size()));
    return *modules_[i];
  }

 private:
  // Runs f() for module i; a ShapeError or ValueError it throws gains the index.
  template <class F>
  auto at_index(std::size_t i, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const ShapeError& e) {
      throw ShapeError(where(i) + e.what());
    } catch (const ValueError& e) {
      throw ValueError(where(i) + e.what());
    }
  }
  std::string where(std::size_t i) const {
    return "Sequential[" + std::to_string(i) + "] (" + modules_[i]->name() + "): ";
  }

  void sync_input_grad() {
    for (std::size_t i = 0; i < modules_.size(); ++i)
      modules_[i]->requires_input_grad(i == 0 ? this->input_grad_ : true);
  }
  std::vector<std::unique_ptr<Module<T>>> modules_;
  std::vector<std::string> names_;  // one per module
};

}  // namespace heed
