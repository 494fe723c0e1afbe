#pragma once
// Moving weights between heed and PyTorch by state_dict name.
//
//   heed::load_weights(model, "net.safetensors");        // or a torch.save .pt/.pth file
//   heed::load_weights(model, "ckpt.pt", {.prefix = "model."});
//   heed::save_safetensors(model, "net.safetensors");    // PyTorch: load_state_dict(load_file(...))
//
// Names are the model's state_dict keys (heed uses PyTorch's), shapes are PyTorch's: a bias or
// norm vector heed keeps as a (1, n) row is (n,) in the file (Parameter::shape), a count
// (Buffer::count, BatchNorm's num_batches_tracked) is a 0-D int64 (), every other tensor is
// (rows, cols). The format comes from the file's first bytes, not its name.
//
// load_weights checks everything before any value is assigned, as load_state_dict does: every
// missing, unexpected and mis-shaped name, integer tensor where a float one belongs, and count
// that is not a whole number in [0, 2^digits of T] is listed in one message, and on any error
// the model is unchanged. Values convert to the model's scalar (F64 to float rounds; a finite
// value beyond float's range is a ValueError naming the element). save_safetensors writes F32
// or F64, and a count as I64.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iomanip>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "regular_file.hpp"
#include "safetensors.hpp"
#include "tensor_file.hpp"
#include "torch_file.hpp"

namespace heed {

struct LoadWeightsOptions {
  // Missing or unexpected names are errors (shape and dtype mismatches always are).
  bool strict = true;
  // Only the file's names that start with it are read, with it removed: "module." for a
  // DataParallel state_dict, "model." for a {"model": state_dict, ...} checkpoint, "encoder."
  // to load one part of a larger model. The others are ignored, not unexpected.
  std::string prefix = {};
  // Maps a file name (after the prefix is removed) to the model's name; "" skips the tensor.
  std::function<std::string(const std::string&)> rename = {};
};

namespace io {

// What a file holds, from its first 9 bytes. safetensors is tested first, by the '{' that
// starts its header at byte 8, because its first bytes are the header's length and may be
// anything: 0x80 (a length of 128 mod 256) or "PK". At byte 8 a zip has its compression method
// (0), torch's legacy pickle its magic number (0xf9) and a heed checkpoint its version (1).
enum class FileFormat { safetensors, torch_zip, torch_legacy, heed_checkpoint, unknown };

inline FileFormat detect_format(const std::string& path) {
  unsigned char h[9] = {};
  std::uint64_t size = 0;
  {
    RegularFile f(path, path);
    size = f.size();
    f.read_exact(h, std::min<std::uint64_t>(size, 9), "first bytes");
  }
  const auto starts = [&](std::initializer_list<unsigned char> p) {
    return size >= p.size() && std::equal(p.begin(), p.end(), h);
  };
  if (size >= 9 && h[8] == '{') return FileFormat::safetensors;
  if (starts({'P', 'K', 3, 4}) || starts({'P', 'K', 5, 6})) return FileFormat::torch_zip;
  if (starts({0x80, 0x02, 0x8a, 0x0a})) return FileFormat::torch_legacy;
  if (size >= 8 && std::memcmp(h, kMagic, 8) == 0) return FileFormat::heed_checkpoint;
  return FileFormat::unknown;
}

namespace detail_weights {
// A count's one value as the file holds it (shape () checked by the caller): an integer
// (I64, I32) or a float tensor's element, as a double (an I64 beyond 2^53 rounds, still > 2^24).
inline double count_raw(const TensorFile& f, const TensorInfo& t) {
  if (!dtype_is_float(t.dtype)) return static_cast<double>(f.integers(t.name).at(0));
  return f.matrix<double>(t.name)(0, 0);
}
// A count's value in a message: every digit of a whole number ("16777217"), else 17 digits.
inline std::string count_str(double v) {
  std::ostringstream s;
  s << std::setprecision(17) << v;
  return s.str();
}
// The same when it is a whole number (PyTorch's copy_ of a float into num_batches_tracked would
// truncate silently), else NaN.
inline double count_value(const TensorFile& f, const TensorInfo& t) {
  const double v = count_raw(f, t);
  return std::isfinite(v) && v == std::trunc(v) ? v : std::numeric_limits<double>::quiet_NaN();
}

template <class... Mode>
std::unique_ptr<TensorFile> open_tensors(const std::string& path, Mode... mode) {
  switch (detect_format(path)) {
    case FileFormat::safetensors: return std::make_unique<Safetensors>(path, mode...);
    case FileFormat::torch_zip:
    case FileFormat::torch_legacy: return std::make_unique<TorchFile>(path);  // it names a legacy file
    case FileFormat::heed_checkpoint:
      throw FormatError(path + ": is a heed checkpoint, not a safetensors or torch.save file; "
                               "load it with heed::load(model, path)");
    case FileFormat::unknown: break;
  }
  throw FormatError(path + ": is neither a safetensors file (8-byte length, then '{') nor a "
                           "torch.save file (a zip archive)");
}
}  // namespace detail_weights

// Opens a weights file by its content (detect_format): a safetensors or a torch.save file; a
// heed checkpoint and anything else are FormatErrors saying what the file looks like. With
// header_only, a safetensors file is read for its header only; a torch.save file is read whole
// either way (its tensors' shapes are in its pickle, read after the zip is checked).
inline std::unique_ptr<TensorFile> open_tensors(const std::string& path) {
  return detail_weights::open_tensors(path);
}
inline std::unique_ptr<TensorFile> open_tensors(const std::string& path, HeaderOnly h) {
  return detail_weights::open_tensors(path, h);
}

}  // namespace io

// Loads `file`'s tensors into `model` by name; see the file comment. Throws ValueError for
// missing or unexpected names (when strict) and dtype errors, ShapeError when only shapes
// disagree. Returns the names skipped by a non-strict load.
template <typename T>
IncompatibleKeys load_weights(ModuleBase<T>& model, const io::TensorFile& file, const LoadWeightsOptions& opt = {}) {
  struct Target {
    std::string name;
    Matrix<T>* value;
    std::vector<Index> shape;  // PyTorch's
    bool count = false;        // a 0-D int64 count (Buffer::count): integer or float in the file
  };
  std::vector<Target> targets;
  for (const auto& p : model.parameters()) targets.push_back({p.name, p.value, torch_shape(p)});
  for (const auto& b : model.buffers()) targets.push_back({b.name, b.value, torch_shape(b), b.count});

  // The model's name of each file tensor that is read (rename is called once per tensor).
  std::map<std::string, const io::TensorInfo*> by_key;
  std::map<const io::TensorInfo*, std::string> key_of;
  std::vector<std::string> problems;  // two file names for one model name, dtypes
  for (const io::TensorInfo& t : file.entries()) {
    if (!t.name.starts_with(opt.prefix)) continue;
    std::string key = t.name.substr(opt.prefix.size());
    if (opt.rename) key = opt.rename(key);
    if (key.empty()) continue;
    key_of.emplace(&t, key);
    const auto [it, fresh] = by_key.emplace(key, &t);
    if (!fresh)
      problems.push_back("'" + io::printable_name(it->second->name) + "' and '" + io::printable_name(t.name) +
                         "' both map to '" + io::printable_name(key) + "'");
  }
  const auto model_key = [&key_of](const io::TensorInfo& t) -> const std::string* {
    const auto it = key_of.find(&t);
    return it == key_of.end() ? nullptr : &it->second;
  };

  IncompatibleKeys keys;
  std::vector<std::string> mismatched;
  std::set<std::string> known;
  std::map<std::string, double> counts;  // the checked value of every count in the file
  for (const Target& tg : targets) {
    known.insert(tg.name);
    const auto it = by_key.find(tg.name);
    if (it == by_key.end()) {
      keys.missing_keys.push_back(tg.name);
      continue;
    }
    const io::TensorInfo& t = *it->second;
    const std::string shown = "'" + tg.name + "'" + (t.name == tg.name ? "" : " (file '" + io::printable_name(t.name) + "')");
    if (!io::dtype_is_float(t.dtype) && !tg.count) {
      problems.push_back(shown + " is " + io::dtype_name(t.dtype) + ", expected a float dtype");
      continue;
    }
    const bool same = t.shape.size() == tg.shape.size() &&
                      std::equal(t.shape.begin(), t.shape.end(), tg.shape.begin(),
                                 [](std::uint64_t a, Index b) { return a == static_cast<std::uint64_t>(b); });
    if (!same) {
      std::vector<std::uint64_t> want(tg.shape.begin(), tg.shape.end());
      mismatched.push_back(shown + " expected " + io::detail_tensor::shape_str(want) + ", got " +
                           io::detail_tensor::shape_str(t.shape));
    } else if (tg.count) {
      counts[tg.name] = io::detail_weights::count_value(file, t);  // NaN when not a valid count
      const double hi = std::ldexp(1.0, std::numeric_limits<T>::digits);
      if (!(counts[tg.name] >= 0 && counts[tg.name] <= hi))
        problems.push_back(shown + " is a count, got " + io::dtype_name(t.dtype) + " " +
                           io::detail_weights::count_str(io::detail_weights::count_raw(file, t)) +
                           ", expected a whole number in [0, 2^" + std::to_string(std::numeric_limits<T>::digits) +
                           "] (exact in " + (std::is_same_v<T, float> ? "float" : "double") + ")");
    }
  }
  for (const io::TensorInfo& t : file.entries())  // in the file's order
    if (const std::string* key = model_key(t); key && !known.count(*key) && by_key.at(*key) == &t)
      keys.unexpected_keys.push_back(*key);

  if ((opt.strict && (!keys.missing_keys.empty() || !keys.unexpected_keys.empty())) || !problems.empty() ||
      !mismatched.empty()) {
    std::string head = "load_weights: ";
    head.append(file.path()).append(" (").append(file.format()).append(") into ").append(model.name());
    detail::throw_load_error(head, keys, opt.strict, problems, mismatched, opt.rename ? "" : ".prefix", opt.prefix);
  }

  // Decode everything first (a range error leaves the model unchanged), then assign.
  StateDict<T> dict;
  for (const Target& tg : targets)
    if (const auto it = by_key.find(tg.name); it != by_key.end()) {
      const io::TensorInfo& t = *it->second;
      Matrix<T> m = tg.count ? Matrix<T>::Constant(1, 1, static_cast<T>(counts.at(tg.name)))  // exact: checked
                             : file.matrix<T>(t.name);
      m.resize(tg.value->rows(), tg.value->cols());  // same size, row-major: (n,) -> (1, n) keeps the order
      dict.insert(tg.name, std::move(m));
    }
  model.load_state_dict(dict, {.strict = false});
  return keys;
}

template <typename T>
IncompatibleKeys load_weights(ModuleBase<T>& model, const std::string& path, const LoadWeightsOptions& opt = {}) {
  return load_weights(model, *io::open_tensors(path), opt);
}

// Writes the model's state_dict (parameters, then buffers) as a safetensors file PyTorch
// loads with model.load_state_dict(safetensors.torch.load_file(path)): F32 for a float model,
// F64 for a double one, PyTorch's shapes, `metadata` plus "format": "pt" (unless it sets
// "format") as Hugging Face's writer puts it. Atomic, like every heed writer. (The model comes
// first here, the path first in io::save_safetensors(path, entries), which takes raw entries.)
template <typename T>
void save_safetensors(ModuleBase<T>& model, const std::string& path, std::map<std::string, std::string> metadata = {}) {
  metadata.emplace("format", "pt");  // unless the caller set another
  std::vector<io::SafetensorsEntry> entries;
  auto add = [&entries](const auto& item) {
    const std::vector<Index> s = torch_shape(item);
    entries.push_back(io::safetensors_entry(item.name, *item.value, std::vector<std::uint64_t>(s.begin(), s.end())));
  };
  for (const auto& p : model.parameters()) add(p);
  const auto buffers = model.buffers();
  std::vector<std::int64_t> counts;  // the I64 bytes of every count, alive until written
  counts.reserve(buffers.size());    // no reallocation: entries view these elements
  for (const auto& b : buffers) {
    if (!b.count) {
      add(b);
      continue;
    }
    const double v = static_cast<double>((*b.value)(0, 0));
    if (!(std::isfinite(v) && v >= 0 && v == std::trunc(v)))
      throw ValueError("save_safetensors: " + path + ": '" + b.name + "' is a count, got " + heed::detail::num_repr(v) +
                       " (expected a whole number >= 0)");
    counts.push_back(static_cast<std::int64_t>(v));
    entries.push_back({b.name, io::Dtype::I64, {}, {reinterpret_cast<const char*>(&counts.back()), 8}});
  }
  io::save_safetensors(path, entries, metadata);
}

}  // namespace heed
