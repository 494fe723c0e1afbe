#pragma once
// ModuleList<T, M>: modules held by position, as torch.nn.ModuleList. It has no forward of its
// own; it registers its elements as children "0", "1", ..., so a model's blocks are named
// "blocks.0.attn.in_proj_weight" like PyTorch's. M is the element type (any ModuleBase<T> by
// default), so blocks[i] gives back the caller's own class without a cast.
//
//   heed::ModuleList<float, Block> blocks;
//   for (int i = 0; i < 4; ++i) blocks.emplace(dim, gen);
//   heed::Children<float> children() override { return {{"blocks", &blocks}, ...}; }
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/module.hpp"

namespace heed {

template <typename T, class M = ModuleBase<T>>
class ModuleList : public ModuleBase<T> {
  static_assert(std::is_base_of_v<ModuleBase<T>, M>, "ModuleList: M must be a ModuleBase<T>");

 public:
  ModuleList() = default;

  // Constructs an element in place at the end and returns it.
  template <class E = M, class... Args>
  E& emplace(Args&&... args) {
    auto m = std::make_unique<E>(std::forward<Args>(args)...);
    E& ref = *m;
    push(std::move(m));
    return ref;
  }
  M& push(std::unique_ptr<M> m) {
    if (!m) throw ValueError("ModuleList: got a null module");
    m->train(this->training_);  // an element added to an eval()'d list is in eval mode
    items_.push_back(std::move(m));
    return *items_.back();
  }

  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  M& operator[](std::size_t i) { return *items_[check(i)]; }
  const M& operator[](std::size_t i) const { return *items_[check(i)]; }
  M& back() { return (*this)[size() - 1]; }
  const M& back() const { return (*this)[size() - 1]; }

  Children<T> children() override {
    Children<T> c;
    for (std::size_t i = 0; i < items_.size(); ++i) c.emplace_back(std::to_string(i), items_[i].get());
    return c;
  }
  std::string name() const override { return "ModuleList"; }

 private:
  std::size_t check(std::size_t i) const {
    if (i >= items_.size())
      throw ValueError("ModuleList: index " + std::to_string(i) + " out of range, size " +
                       std::to_string(items_.size()));
    return i;
  }
  std::vector<std::unique_ptr<M>> items_;
};

}  // namespace heed
