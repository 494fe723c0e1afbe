#pragma once
// heed::summary(model): the module tree as PyTorch's repr prints it, with each module's own
// parameter shapes and counts beside it, and torchinfo's totals underneath.
//
//   Classifier
//     (emb): Embedding(50, 32, padding_idx=0)                     1,600  weight (50, 32)
//     (head): Linear(in_features=32, out_features=2, bias=true)      66  weight (2, 32), bias (1, 2)
//   Total params: 1,666 (6.5 KiB as float)
//
// std::cout << model prints the same.
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>

#include "module.hpp"

namespace heed {
namespace detail {

// 1234567 -> "1,234,567"
inline std::string thousands(Index n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The tensors a module shows on its own line: its own and those of its transparent children.
template <typename T>
void own_tensors(ModuleBase<T>& m, Index& count, std::string& shapes) {
  for (const auto& p : m.local_parameters()) {
    count += p.value->size();
    shapes += (shapes.empty() ? "" : ", ") + p.name + " " + shape_str(p.value->rows(), p.value->cols());
  }
  for (const auto& b : m.local_buffers())
    shapes += (shapes.empty() ? "" : ", ") + b.name + " " + shape_str(b.value->rows(), b.value->cols()) +
              " (buffer)";
  for (auto& [name, child] : m.children())
    if (name.empty()) own_tensors(*child, count, shapes);
}

template <typename T>
void summary_lines(ModuleBase<T>& m, const std::string& label, int depth, std::ostringstream& out) {
  std::string head(static_cast<std::size_t>(2 * depth), ' ');
  head += label.empty() ? "" : "(" + label + "): ";
  head += m.name();
  const std::string args = m.extra_repr();
  if (!args.empty()) head += "(" + args + ")";
  Index own = 0;
  std::string shapes;
  own_tensors(m, own, shapes);
  if (shapes.empty()) {
    out << head << '\n';
  } else {
    const std::string count = thousands(own);
    const std::size_t col = 64;  // counts right-aligned here unless the head is longer
    const std::size_t used = head.size() + count.size();
    out << head << std::string(used + 1 < col ? col - used : 1, ' ') << count << "  " << shapes << '\n';
  }
  for (auto& [name, child] : m.children()) {
    if (name.empty()) {  // transparent: its own children are listed as the parent's
      for (auto& [n2, c2] : child->children())
        if (!n2.empty()) summary_lines(*c2, n2, depth + 1, out);
    } else {
      summary_lines(*child, name, depth + 1, out);
    }
  }
}

}  // namespace detail

template <typename T>
std::string summary(const ModuleBase<T>& model) {
  auto& m = const_cast<ModuleBase<T>&>(model);  // the registry hooks are non-const; only read
  m.named_modules();                            // validates the tree (duplicates, cycles) first
  std::ostringstream out;
  detail::summary_lines(m, "", 0, out);
  Index total = 0, bufs = 0;
  for (const auto& p : m.parameters()) total += p.value->size();
  for (const auto& b : m.buffers()) bufs += b.value->size();
  char kib[32];
  std::snprintf(kib, sizeof kib, "%.1f", static_cast<double>((total + bufs) * static_cast<Index>(sizeof(T))) / 1024.0);
  out << "Total params: " << detail::thousands(total);
  if (bufs) out << " (+ " << detail::thousands(bufs) << " in buffers)";
  out << " (" << kib << " KiB as " << (sizeof(T) == 4 ? "float" : "double") << ")\n";
  return out.str();
}

template <typename T>
std::ostream& operator<<(std::ostream& os, const ModuleBase<T>& model) {
  return os << summary(model);
}

}  // namespace heed
