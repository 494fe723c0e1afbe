#pragma once
// StateDict<T>: a module's tensors by name, as PyTorch's state_dict(): an ordered name ->
// matrix map (parameters first, in registration order, then buffers). It owns copies, so it
// can outlive the model, be edited, and be loaded into another model of the same architecture.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "tensor.hpp"

namespace heed {

template <typename T>
class StateDict {
 public:
  using Entry = std::pair<std::string, Matrix<T>>;

  // Adds `name`; a name already present is refused (a file or a model with two tensors of one
  // name could never be loaded back unambiguously).
  void insert(std::string name, Matrix<T> value) {
    if (index_.count(name))
      throw ValueError("StateDict: duplicate key '" + name + "'");
    index_.emplace(name, entries_.size());
    entries_.emplace_back(std::move(name), std::move(value));
  }

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // nullptr when absent.
  const Matrix<T>* find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  Matrix<T>* find(const std::string& name) {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  const Matrix<T>& at(const std::string& name) const {
    const Matrix<T>* m = find(name);
    if (!m) throw ValueError("StateDict: no key '" + name + "'");
    return *m;
  }
  Matrix<T>& at(const std::string& name) {
    return const_cast<Matrix<T>&>(static_cast<const StateDict&>(*this).at(name));
  }
  // Removes `name` if present (PyTorch users pop keys before a non-strict load).
  void erase(const std::string& name) {
    const auto it = index_.find(name);
    if (it == index_.end()) return;
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
    index_.clear();
    for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
  }

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& e : entries_) k.push_back(e.first);
    return k;
  }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  auto begin() { return entries_.begin(); }
  auto end() { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t> index_;
};

// What a non-strict load_state_dict skipped, as PyTorch's _IncompatibleKeys.
struct IncompatibleKeys {
  std::vector<std::string> missing_keys;     // in the model, not in the dict
  std::vector<std::string> unexpected_keys;  // in the dict, not in the model
};

struct LoadStateDictOptions {
  bool strict = true;  // missing or unexpected keys are errors (shape mismatches always are)
};

}  // namespace heed
