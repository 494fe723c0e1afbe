#pragma once
// Saving and loading models and training state.
//
//   heed::save(model, "model.heed");          heed::load(model, "model.heed");
//
//   heed::Checkpoint<float> ck;                // a whole training state, for exact resume
//   ck.model(model).optimizer(opt).value("epoch", epoch).generator("shuffle", gen);
//   ck.save("run.heed");  ...  ck.load("run.heed");
//
// save/load take any module (ModuleBase<T>) and store its state_dict: every parameter and
// buffer its registry reaches, as "model.<name>". Checkpoint::model binds the same tensors plus
// the run-time random streams of its modules (dropout), as "rng.model.<module path>", so a
// resumed run draws the same masks. Names must be unique: save() refuses duplicates, which
// could never be loaded back.
//
// Loading is all-or-nothing: the file is fully validated (see checkpoint_format.hpp) and every
// bound tensor's name and shape checked before any value is assigned, so a failed load leaves
// the model untouched. Memory: the file is read once into memory and bound tensors are filled
// straight from it; entries nothing binds are validated but never decoded (8 bytes each). A float file loads into a double model and vice versa (values are
// converted; double -> float rounds to nearest).
//
// Decoded values are validated in that first phase too: a value() bound to an integer must be
// stored as a finite whole number within the variable's range (a floating variable: no finite
// value beyond its range), and an optimizer's state must pass its validate_state() (step a whole
// number >= 0, lr finite and >= 0, buffers finite, second moments >= 0). Anything else is a
// FormatError naming the file, the entry and what is wrong.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "../core/module.hpp"
#include "../core/random.hpp"
#include "checkpoint_format.hpp"

namespace heed {

template <typename T>
class Checkpoint {
 public:
  // Binds every parameter and buffer of `m` as "<prefix>.<name>" and every generator of its
  // modules as "rng.<prefix>[.<module path>]".
  Checkpoint& model(ModuleBase<T>& m, const std::string& prefix = "model") {
    weights(m, prefix);
    for (auto& [path, g] : m.generators())
      generators_.push_back({"rng." + prefix + (path.empty() ? "" : "." + path), g});
    return *this;
  }

  // Only the state_dict tensors (parameters and buffers), as heed::save stores them.
  Checkpoint& weights(ModuleBase<T>& m, const std::string& prefix = "model") {
    for (auto& p : m.parameters()) tensor(prefix + "." + p.name, *p.value);
    for (auto& b : m.buffers()) tensor(prefix + "." + b.name, *b.value);
    return *this;
  }

  // Binds an optimizer's state: anything with state() -> vector<pair<string, Matrix<T>*>>
  // (heed's optimizers). Their step counters are part of that state. When `opt` has
  // validate_state(name, const Matrix<T>&) -> string (heed's optimizers do), load() passes it
  // each state tensor's decoded value before anything is assigned and refuses the file if it
  // returns a non-empty reason.
  template <class Opt>
  Checkpoint& optimizer(Opt& opt, const std::string& prefix = "optimizer") {
    for (auto& [n, m] : opt.state()) {
      const std::string name = n;
      tensor(prefix + "." + name, *m);
      if constexpr (requires(const Opt& o, const Matrix<T>& v) {
                      { o.validate_state(name, v) } -> std::convertible_to<std::string>;
                    })
        tensors_.back().check = [&opt, name](const Matrix<T>& v) -> std::string {
          return opt.validate_state(name, v);
        };
    }
    return *this;
  }

  Checkpoint& tensor(const std::string& name, Matrix<T>& m) {
    tensors_.push_back({name, &m});
    return *this;
  }

  // A scalar training variable (epoch, best metric, ...), stored as a (1, 1) double tensor.
  // On load, an integer V must be stored as a finite whole number within V's range, and a
  // floating V may not overflow (a finite value beyond V's range); NaN and inf load into a
  // floating V as they are.
  template <class V>
  Checkpoint& value(const std::string& name, V& v) {
    scalars_.push_back({"train." + name, [&v] { return static_cast<double>(v); },
                        [&v](double d) { v = static_cast<V>(d); }, &value_problem<V>});
    return *this;
  }

  // A generator's full state, so shuffling and dropout continue exactly where they were.
  Checkpoint& generator(const std::string& name, Generator& g) {
    generators_.push_back({"train." + name, &g});
    return *this;
  }

  void save(const std::string& path) const {
    check_unique("save: '" + path + "'");
    check_names("save: '" + path + "'");
    std::vector<std::string> gens;
    for (const auto& g : generators_) {
      std::ostringstream os;
      os << g.g->engine();
      gens.push_back(os.str());
    }
    // The file's exact size up front, so its one buffer never reallocates (a growing buffer
    // would briefly hold two copies).
    std::size_t size = 0;
    for (const auto& t : tensors_) size += io::Writer<T>::tensor_size(t.name, t.m->size());
    for (const auto& s : scalars_) size += io::Writer<T>::bytes_size(s.name, sizeof(double));
    for (std::size_t i = 0; i < gens.size(); ++i)
      size += io::Writer<T>::bytes_size(generators_[i].name, gens[i].size());
    io::Writer<T> w(size);
    for (const auto& t : tensors_) w.tensor(t.name, *t.m);
    for (const auto& s : scalars_) {
      // Scalars go in as double regardless of T (epochs and counters must stay exact).
      std::string b(sizeof(double), '\0');
      const double v = s.get();
      std::memcpy(b.data(), &v, sizeof v);
      w.bytes(s.name, b);
    }
    for (std::size_t i = 0; i < gens.size(); ++i) w.bytes(generators_[i].name, gens[i]);
    w.write(path);
  }

  void load(const std::string& path) {
    check_unique("load: '" + path + "'");
    const io::Image img = io::read_image(path);
    // Phase 0: one walk over the file (validating every entry) keeps a view of each bound
    // entry; an unbound one is only checked against the bound namespaces ("model.", ...), so
    // entries nobody binds cost no memory. A file with something in a bound namespace that is
    // not bound (a model with other layers) is refused below.
    const std::size_t nt = tensors_.size(), ns = scalars_.size();
    std::unordered_map<std::string_view, std::size_t> slot;  // bound name -> index in `found`
    std::vector<std::string_view> spaces;                    // bound namespaces
    auto bind = [&](const std::string& name, std::size_t i) {
      slot.emplace(name, i);
      if (const auto dot = name.find('.'); dot != std::string::npos) {
        const std::string_view sp = std::string_view(name).substr(0, dot);
        if (std::find(spaces.begin(), spaces.end(), sp) == spaces.end()) spaces.push_back(sp);
      }
    };
    for (std::size_t i = 0; i < nt; ++i) bind(tensors_[i].name, i);
    for (std::size_t i = 0; i < ns; ++i) bind(scalars_[i].name, nt + i);
    for (std::size_t i = 0; i < generators_.size(); ++i) bind(generators_[i].name, nt + ns + i);
    std::vector<std::optional<io::EntryView>> found(slot.size());
    std::string stray;  // the first (by name) entry in a bound namespace that nothing binds
    img.scan(path, [&](const io::EntryView& e) {
      if (const auto it = slot.find(e.name); it != slot.end()) {
        found[it->second] = e;
      } else if (stray.empty() || e.name < stray) {
        const std::string_view sp = e.name.substr(0, e.name.find('.'));
        if (std::find(spaces.begin(), spaces.end(), sp) != spaces.end()) stray = e.name;
      }
    });
    // Phase 1: check that every bound name exists with the right kind and shape, and that its
    // value is valid; nothing is assigned yet.
    auto find = [&](const std::string& name, std::size_t i, bool tensor) -> const io::EntryView& {
      if (!found[i])
        throw FormatError("load: '" + path + "' has no entry '" + io::printable_name(name) + "'");
      if (found[i]->is_tensor != tensor)
        throw FormatError("load: '" + path + "': entry '" + io::printable_name(name) +
                          "' is not a " + (tensor ? "tensor" : "value"));
      return *found[i];
    };
    for (std::size_t i = 0; i < nt; ++i) {
      const auto& t = tensors_[i];
      const auto& e = find(t.name, i, true);
      if (e.rows != t.m->rows() || e.cols != t.m->cols())
        throw FormatError("load: '" + path + "': tensor '" + io::printable_name(t.name) +
                          "' expected " + detail::shape_str(t.m->rows(), t.m->cols()) +
                          ", file has " + detail::shape_str(e.rows, e.cols));
      if (t.check) {
        // Validated as it would be assigned (converted to T), one tensor at a time.
        Matrix<T> v(t.m->rows(), t.m->cols());
        e.copy_to(v.data());
        if (const std::string what = t.check(v); !what.empty())
          throw FormatError("load: '" + path + "': entry '" + io::printable_name(t.name) +
                            "' is invalid: " + what);
      }
    }
    std::vector<double> values(ns);
    for (std::size_t i = 0; i < ns; ++i) {
      const auto& s = scalars_[i];
      const auto& e = find(s.name, nt + i, false);
      if (e.data.size() != sizeof(double))
        throw FormatError("load: '" + path + "': value '" + io::printable_name(s.name) +
                          "' is not 8 bytes");
      std::memcpy(&values[i], e.data.data(), sizeof(double));
      if (const std::string what = s.check(values[i]); !what.empty())
        throw FormatError("load: '" + path + "': value '" + io::printable_name(s.name) + "' = " +
                          number(values[i]) + " is invalid: " + what);
    }
    std::vector<Generator> restored;
    for (std::size_t i = 0; i < generators_.size(); ++i) {
      const auto& g = generators_[i];
      std::istringstream is(std::string(find(g.name, nt + ns + i, false).data));
      Generator copy;
      is >> copy.engine();
      if (!is) throw FormatError("load: '" + path + "': generator state '" + io::printable_name(g.name) +
                          "' is malformed");
      restored.push_back(copy);
    }
    if (!stray.empty())
      throw FormatError("load: '" + path + "' has entry '" + io::printable_name(stray) +
                        "' that the model does not have (different architecture?)");
    // Phase 2: assign, straight from the file image into the bound tensors.
    for (std::size_t i = 0; i < nt; ++i) found[i]->copy_to(tensors_[i].m->data());
    for (std::size_t i = 0; i < ns; ++i) scalars_[i].set(values[i]);
    for (std::size_t i = 0; i < generators_.size(); ++i) *generators_[i].g = restored[i];
  }

 private:
  // Shortest round-trip form of a double ("1e+300", "nan", "-3000000000").
  static std::string number(double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  }

  // Empty if the stored double `d` may be assigned to a V, else why not.
  template <class V>
  static std::string value_problem(double d) {
    if constexpr (std::is_integral_v<V>) {
      // [min, 2^digits) is V's range; both bounds are powers of two, exact in double.
      const double lo = static_cast<double>(std::numeric_limits<V>::min());
      const double hi = std::ldexp(1.0, std::numeric_limits<V>::digits);
      if (!std::isfinite(d) || d != std::trunc(d) || d < lo || d >= hi)
        return "expected a whole number in [" + std::to_string(std::numeric_limits<V>::min()) +
               ", " + std::to_string(std::numeric_limits<V>::max()) + "]";
    } else if constexpr (std::is_floating_point_v<V>) {
      if (std::isfinite(d) && std::abs(d) > static_cast<double>(std::numeric_limits<V>::max()))
        return "out of range (magnitude above " +
               number(static_cast<double>(std::numeric_limits<V>::max())) + ")";
    }
    return {};
  }

  // ValueError unless every bound name is a valid entry name (no NUL or control character).
  void check_names(const std::string& where) const {
    auto check = [&](const std::string& name) {
      if (const std::string what = io::name_problem(name); !what.empty())
        throw ValueError(where + ": name '" + io::printable_name(name) + "' has " + what);
    };
    for (const auto& t : tensors_) check(t.name);
    for (const auto& sc : scalars_) check(sc.name);
    for (const auto& g : generators_) check(g.name);
  }

  // ValueError naming every name bound twice.
  void check_unique(const std::string& where) const {
    std::vector<std::string> names;
    for (const auto& t : tensors_) names.push_back(t.name);
    for (const auto& sc : scalars_) names.push_back(sc.name);
    for (const auto& g : generators_) names.push_back(g.name);
    std::sort(names.begin(), names.end());
    std::string dups;
    for (std::size_t i = 1; i < names.size(); ++i)
      if (names[i] == names[i - 1] && (i == 1 || names[i - 1] != names[i - 2]))
        dups += (dups.empty() ? "'" : ", '") + io::printable_name(names[i]) + "'";
    if (!dups.empty())
      throw ValueError(where + ": names bound more than once: " + dups +
                       " (a file with duplicates could never be loaded)");
  }

  struct TensorBinding {
    std::string name;
    Matrix<T>* m;
    std::function<std::string(const Matrix<T>&)> check = {};  // empty: any value
  };
  struct ScalarBinding {
    std::string name;
    std::function<double()> get;
    std::function<void(double)> set;
    std::string (*check)(double);
  };
  struct GeneratorBinding {
    std::string name;
    Generator* g;
  };
  std::vector<TensorBinding> tensors_;
  std::vector<ScalarBinding> scalars_;
  std::vector<GeneratorBinding> generators_;
};

// Saves a model's state_dict (parameters and buffers, by name) to `path`, atomically.
template <typename T>
void save(const ModuleBase<T>& model, const std::string& path) {
  Checkpoint<T>().weights(const_cast<ModuleBase<T>&>(model)).save(path);  // only read
}

// Loads a state_dict saved by save() or Checkpoint (from a float or a double model) into
// `model`; all or nothing.
template <typename T>
void load(ModuleBase<T>& model, const std::string& path) {
  Checkpoint<T>().weights(model).load(path);
}

}  // namespace heed
