#pragma once
// StateDict<T>: a module's tensors by name, as PyTorch's state_dict(): an ordered name ->
// matrix map (parameters first, in registration order, then buffers). It owns copies, so it
// can outlive the model, be edited, and be loaded into another model of the same architecture.
#include <algorithm>
#include <map>
#include <set>
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

namespace detail {

// The error of a failed load (load_state_dict, load_weights), every problem in one message:
//   "<head>: missing keys (2): 'a', 'b'; unexpected keys (1): 'c'; shape mismatches (1): ...;
//    the model is unchanged"
// ValueError when a key or another problem is listed, ShapeError when only shapes disagree.
// A hint follows when every missing key is an unexpected key minus one common prefix (a
// checkpoint dict or DataParallel's "module."): hint_option names the option to pass, whose
// value is hint_base + that prefix.
[[noreturn]] inline void throw_load_error(const std::string& head, const IncompatibleKeys& keys, bool strict,
                                          const std::vector<std::string>& problems,
                                          const std::vector<std::string>& mismatched,
                                          const std::string& hint_option = {},
                                          const std::string& hint_base = {}) {
  // Appends only: g++ 12 reports a false -Wrestrict on chains of const char* + std::string.
  std::string msg = head;
  msg.append(":");
  auto list = [&msg](const char* what, const std::vector<std::string>& v, bool quote) {
    if (v.empty()) return;
    msg.append(" ").append(what).append(" (").append(std::to_string(v.size())).append("):");
    for (std::size_t i = 0; i < v.size(); ++i) {
      msg.append(i ? ", " : " ");
      if (quote) msg.append("'").append(printable_name(v[i])).append("'");
      else msg.append(v[i]);
    }
    msg.append(";");
  };
  if (strict) list("missing keys", keys.missing_keys, true);
  if (strict) list("unexpected keys", keys.unexpected_keys, true);
  list("errors", problems, false);
  list("shape mismatches", mismatched, false);
  msg.pop_back();
  msg.append("; the model is unchanged");
  const bool key_error = strict && (!keys.missing_keys.empty() || !keys.unexpected_keys.empty());
  if (key_error && !hint_option.empty() && !keys.missing_keys.empty()) {
    // The prefix that turns the first missing key into an unexpected one, if it does for all.
    const std::string& m0 = keys.missing_keys.front();
    for (const std::string& u : keys.unexpected_keys) {
      if (u.size() <= m0.size() || !u.ends_with(m0)) continue;
      const std::string p = u.substr(0, u.size() - m0.size());
      std::set<std::string> un(keys.unexpected_keys.begin(), keys.unexpected_keys.end());
      if (std::all_of(keys.missing_keys.begin(), keys.missing_keys.end(),
                      [&](const std::string& m) { return un.count(p + m) != 0; })) {
        msg.append(" (every missing key is in the file under '").append(printable_name(p));
        msg.append("': pass ").append(hint_option).append(" = \"").append(printable_name(hint_base + p)).append("\")");
        break;
      }
    }
  }
  if (key_error || !problems.empty()) throw ValueError(msg);
  throw ShapeError(msg);
}

}  // namespace detail

}  // namespace heed
