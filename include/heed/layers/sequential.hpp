#pragma once
// Sequential: modules applied in order; backward runs them in reverse. Parameter names are
// prefixed by the module's index ("0.weight", "2.bias"), as PyTorch's nn.Sequential state_dict.
#include <memory>
#include <utility>
#include <vector>

#include "../core/module.hpp"

namespace heed {

template <typename T>
class Sequential : public Module<T> {
 public:
  Sequential() = default;

  // Constructs a module in place and returns it: net.emplace<Linear<float>>(784, 256).
  template <class M, class... Args>
  M& emplace(Args&&... args) {
    auto m = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *m;
    add(std::move(m));
    return ref;
  }

  Module<T>& add(std::unique_ptr<Module<T>> m) {
    if (!m) throw ValueError("Sequential: add() got a null module");
    m->train(this->training_);
    modules_.push_back(std::move(m));
    sync_input_grad();
    return *modules_.back();
  }

  const Matrix<T>& forward(const ConstRef<T>& x) override {
    if (modules_.empty()) throw ValueError("Sequential: forward() on an empty Sequential");
    const Matrix<T>* h = &modules_[0]->forward(x);
    for (std::size_t i = 1; i < modules_.size(); ++i) h = &modules_[i]->forward(*h);
    return *h;
  }

  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    if (modules_.empty()) throw ValueError("Sequential: backward() on an empty Sequential");
    const Matrix<T>* g = &modules_.back()->backward(dy);
    for (std::size_t i = modules_.size() - 1; i-- > 0;) g = &modules_[i]->backward(*g);
    return *g;
  }

  std::vector<Parameter<T>> parameters() override {
    std::vector<Parameter<T>> all;
    for (std::size_t i = 0; i < modules_.size(); ++i) {
      auto ps = modules_[i]->parameters();
      prefix_names(ps, std::to_string(i));
      all.insert(all.end(), ps.begin(), ps.end());
    }
    return all;
  }

  std::string name() const override { return "Sequential"; }

  void train(bool on = true) override {
    Module<T>::train(on);
    for (auto& m : modules_) m->train(on);
  }

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
  void sync_input_grad() {
    for (std::size_t i = 0; i < modules_.size(); ++i)
      modules_[i]->requires_input_grad(i == 0 ? this->input_grad_ : true);
  }
  std::vector<std::unique_ptr<Module<T>>> modules_;
};

}  // namespace heed
