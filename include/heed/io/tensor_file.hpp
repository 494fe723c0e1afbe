#pragma once
// TensorFile: named tensors read from a weights file (safetensors, torch.save), validated and
// held in memory as one contiguous little-endian data buffer, so that every reader hands out
// its tensors through the same accessors and heed::load_weights needs one code path.
//
// A reader derives from it, fills entries_ (name, dtype, shape, [begin, end) into data_) and
// data_, then calls index() (sorts names, refuses duplicates). The dtypes are those heed
// converts from; shapes are the file's (PyTorch's), so a bias is (n,) and not (1, n).
#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "checkpoint_format.hpp"  // printable_name

namespace heed::io {

static_assert(std::endian::native == std::endian::little,
              "heed's tensor file readers assume a little-endian host");

enum class Dtype { F64, F32, F16, BF16, I64, I32 };

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::F64: return "F64";
    case Dtype::F32: return "F32";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I64: return "I64";
    case Dtype::I32: return "I32";
  }
  return "?";
}
inline std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::F64: case Dtype::I64: return 8;
    case Dtype::F32: case Dtype::I32: return 4;
    case Dtype::F16: case Dtype::BF16: return 2;
  }
  return 0;
}
inline bool dtype_is_float(Dtype d) { return d != Dtype::I64 && d != Dtype::I32; }

// One tensor of a file: data_offsets [begin, end) relative to the data buffer.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

// Exact conversions: every F16 and BF16 value (subnormals, +-0, inf, nan) is a float.
inline float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf, nan
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
  const float mag = static_cast<float>(man) * 0x1p-24f;  // subnormal or zero: man * 2^-24
  return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(mag));
}
inline float bf16_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}


namespace detail_tensor {

inline std::string shape_str(const std::vector<std::uint64_t>& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + (s.size() == 1 ? ",)" : ")");
}

// a * b, false on overflow.
inline bool mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b) return false;
  out = a * b;
  return true;
}

// The bytes a tensor of `shape` and `d` takes, false on overflow (left to right, so a zero
// after an overflowing prefix still overflows, as in safetensors).
inline bool nbytes(const std::vector<std::uint64_t>& shape, Dtype d, std::uint64_t& out) {
  std::uint64_t n = 1;
  for (std::uint64_t dim : shape)
    if (!mul(n, dim, n)) return false;
  return mul(n, dtype_size(d), out);
}

}  // namespace detail_tensor

// Tag: open a file for its names, dtypes and shapes only (heed_inspect on a huge file).
struct HeaderOnly {};
inline constexpr HeaderOnly header_only{};

class TensorFile {
 public:
  virtual ~TensorFile() = default;

  // "safetensors" or "torch.save"
  virtual const char* format() const = 0;
  const std::string& path() const { return path_; }
  // The tensors in the file's order (a safetensors header's, a state_dict's).
  const std::vector<TensorInfo>& entries() const { return entries_; }
  // The tensors sorted by name (byte order).
  std::vector<const TensorInfo*> entries_by_name() const {
    std::vector<const TensorInfo*> out;
    out.reserve(by_name_.size());
    for (std::size_t k : by_name_) out.push_back(&entries_[k]);
    return out;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (std::size_t k : by_name_) out.push_back(entries_[k].name);
    return out;
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const TensorInfo& info(std::string_view name) const {
    if (const TensorInfo* t = find(name)) return *t;
    throw ValueError(path_ + ": no tensor named '" + printable_name(name) + "'");
  }
  Dtype dtype(std::string_view name) const { return info(name).dtype; }
  const std::vector<std::uint64_t>& shape(std::string_view name) const { return info(name).shape; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // False for a file opened for its header only (io::header_only): names, dtypes and shapes
  // are there and checked, values are not.
  bool has_data() const { return static_cast<bool>(data_); }
  // The tensor's raw little-endian bytes.
  std::string_view bytes(std::string_view name) const {
    const TensorInfo& t = info(name);
    return {data_of(t), static_cast<std::size_t>(t.end - t.begin)};
  }

  // A float tensor (F64, F32, F16, BF16) as a row-major matrix: shape () -> (1, 1), (n) ->
  // (1, n), (r, c) -> (r, c), (d0, d1, ..., dk) -> (d0, d1*...*dk). F16 and BF16 convert
  // exactly; F64 to float rounds, and a finite value beyond float's range is a ValueError
  // naming the element (inf and nan stay inf and nan).
  template <typename T>
  Matrix<T> matrix(std::string_view name) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "matrix<float> or matrix<double>");
    const TensorInfo& t = info(name);
    if (!dtype_is_float(t.dtype))
      throw ValueError(path_ + ": tensor '" + printable_name(t.name) + "' is " + dtype_name(t.dtype) +
                       ", not a float dtype (F64, F32, F16, BF16); read it with integers()");
    std::uint64_t rows = 1, cols = 1;
    if (t.shape.size() == 1) cols = t.shape[0];
    if (t.shape.size() >= 2) {
      rows = t.shape[0];
      for (std::size_t k = 1; k < t.shape.size(); ++k)
        if (!detail_tensor::mul(cols, t.shape[k], cols)) cols = ~0ull;
    }
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<Index>::max());
    if (rows > kMax || cols > kMax)
      throw ValueError(path_ + ": tensor '" + printable_name(t.name) + "' of shape " +
                       detail_tensor::shape_str(t.shape) + " is too large for a matrix");
    const char* p = data_of(t);  // before allocating: a header-only file says so, not bad_alloc
    Matrix<T> m(static_cast<Index>(rows), static_cast<Index>(cols));
    const auto n = static_cast<std::size_t>(m.size());
    T* out = m.data();
    switch (t.dtype) {
      case Dtype::F64:
        for (std::size_t k = 0; k < n; ++k) {
          double v;
          std::memcpy(&v, p + 8 * k, 8);
          if constexpr (std::is_same_v<T, float>)
            if (std::isfinite(v) && std::fabs(v) > static_cast<double>(FLT_MAX))
              throw ValueError(path_ + ": tensor '" + printable_name(t.name) + "' element " + std::to_string(k) +
                               " (" + heed::detail::num_repr(v) + ") is out of float's range");
          out[k] = static_cast<T>(v);
        }
        break;
      case Dtype::F32:
        for (std::size_t k = 0; k < n; ++k) {
          float v;
          std::memcpy(&v, p + 4 * k, 4);
          out[k] = static_cast<T>(v);
        }
        break;
      case Dtype::F16:
      case Dtype::BF16:
        for (std::size_t k = 0; k < n; ++k) {
          std::uint16_t h;
          std::memcpy(&h, p + 2 * k, 2);
          out[k] = static_cast<T>(t.dtype == Dtype::F16 ? f16_to_float(h) : bf16_to_float(h));
        }
        break;
      default: break;
    }
    return m;
  }

  // An integer tensor (I64, I32), flattened row-major.
  std::vector<std::int64_t> integers(std::string_view name) const {
    const TensorInfo& t = info(name);
    if (dtype_is_float(t.dtype))
      throw ValueError(path_ + ": tensor '" + printable_name(t.name) + "' is " + dtype_name(t.dtype) +
                       ", not an integer dtype (I64, I32); read it with matrix<T>()");
    const std::size_t w = dtype_size(t.dtype), n = static_cast<std::size_t>((t.end - t.begin) / w);
    const char* p = data_of(t);
    std::vector<std::int64_t> out(n);
    for (std::size_t k = 0; k < n; ++k) {
      if (w == 8) {
        std::memcpy(&out[k], p + 8 * k, 8);
      } else {
        std::int32_t v;
        std::memcpy(&v, p + 4 * k, 4);
        out[k] = v;
      }
    }
    return out;
  }

 protected:
  explicit TensorFile(std::string path) : path_(std::move(path)) {}
  // Protected: assigning one reader to another through base references would slice.
  TensorFile(TensorFile&&) noexcept = default;
  TensorFile& operator=(TensorFile&&) noexcept = default;

  // The data buffer, or an IoError naming its size when memory cannot hold it.
  void allocate_data(std::uint64_t n) {
    try {
      data_.reset(new char[n ? static_cast<std::size_t>(n) : 1]);
    } catch (const std::bad_alloc&) {
      throw IoError(path_ + ": cannot allocate " + std::to_string(n) + " bytes to read the file");
    }
  }

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(path_ + ": " + what); }
  std::string tname(const TensorInfo& t) const { return "tensor '" + printable_name(t.name) + "'"; }

  // Builds the by-name index; two tensors of one name are a FormatError.
  void index() {
    by_name_.resize(entries_.size());
    for (std::size_t k = 0; k < by_name_.size(); ++k) by_name_[k] = k;
    std::sort(by_name_.begin(), by_name_.end(),
              [&](std::size_t a, std::size_t b) { return entries_[a].name < entries_[b].name; });
    for (std::size_t k = 1; k < by_name_.size(); ++k)
      if (entries_[by_name_[k]].name == entries_[by_name_[k - 1]].name)
        fail("duplicate tensor name '" + printable_name(entries_[by_name_[k]].name) + "'");
  }

  const char* data_of(const TensorInfo& t) const {
    if (!data_) throw ValueError(path_ + ": tensor '" + printable_name(t.name) + "': the file was opened for its header only");
    return data_.get() + t.begin;
  }

  const TensorInfo* find(std::string_view name) const {
    auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                               [&](std::size_t k, std::string_view n) { return entries_[k].name < n; });
    return it != by_name_.end() && entries_[*it].name == name ? &entries_[*it] : nullptr;
  }

  std::string path_;
  std::vector<TensorInfo> entries_;     // file order
  std::vector<std::size_t> by_name_;    // indices into entries_, sorted by name
  std::map<std::string, std::string> metadata_;  // safetensors' __metadata__; empty otherwise
  std::uint64_t data_size_ = 0;
  std::unique_ptr<char[]> data_;
};

}  // namespace heed::io
