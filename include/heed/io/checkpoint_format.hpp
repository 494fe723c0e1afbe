#pragma once
// heed's checkpoint file format, version 1. All integers little-endian.
//
//   offset  size  field
//   0       8     magic "HEEDCKPT"
//   8       4     u32 format version (1)
//   12      4     u32 scalar size of the tensors: 4 = float32, 8 = float64 (IEEE-754)
//   16      8     u64 payload length P in bytes; the file is exactly 32 + P bytes
//   24      4     u32 CRC-32 (IEEE) of the payload
//   28      4     u32 reserved, 0
//   32      P     payload: u64 entry count, then per entry
//                   u32 kind (0 = tensor, 1 = bytes), u32 name length, name (UTF-8),
//                   tensor: u64 rows, u64 cols, rows*cols scalars, row-major
//                   bytes:  u64 length, the bytes
//
// Names are namespaced: "model.<parameter>" (PyTorch state_dict names), "optimizer.<...>",
// "train.<...>" for anything else a training loop keeps (epoch, generator states). A name may
// not hold NUL or a control character (bytes < 0x20 and 0x7f): Writer refuses one (ValueError),
// parse() too (FormatError). Messages show names through printable_name().
// Reading validates everything (magic, version, scalar size, length, checksum, every entry's
// bounds) before a single value reaches the caller.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "atomic_file.hpp"
#include "crc32.hpp"

namespace heed::io {

static_assert(std::endian::native == std::endian::little,
              "heed's checkpoint code assumes a little-endian host");

inline constexpr char kMagic[8] = {'H', 'E', 'E', 'D', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;

// One entry as read from a file: a tensor in double (converted from the file's scalar type)
// or a byte string.
struct Entry {
  bool is_tensor = true;
  Index rows = 0, cols = 0;
  std::vector<double> values;  // rows*cols, row-major
  std::string bytes;
};
using Entries = std::map<std::string, Entry>;

// A name as error messages show it: bytes outside printable ASCII (0x20-0x7e) and the backslash
// are escaped as \xNN, and a name longer than `max` bytes is cut to its first `max` bytes
// followed by "...(N bytes)". So a file-supplied name can neither cut a message short (NUL),
// nor send escape sequences to a terminal, nor make a message megabytes long.
inline std::string printable_name(std::string_view name, std::size_t max = 200) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min(name.size(), max);
  out.reserve(n + 16);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (name.size() > max) out += "...(" + std::to_string(name.size()) + " bytes)";
  return out;
}

// Empty if `name` may be an entry name, else what is wrong with it (the first NUL or control
// character, by offset).
inline std::string name_problem(std::string_view name) {
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f)
      return std::string(c == 0 ? "a NUL byte" : "a control character") + " (byte " +
             printable_name(name.substr(i, 1)) + ") at offset " + std::to_string(i);
  }
  return {};
}

namespace detail_fmt {
template <class V>
void put(std::string& out, V v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
}  // namespace detail_fmt

// Builds a file image entry by entry, then writes it atomically.
template <typename T>
class Writer {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "checkpoint scalars are float or double");

 public:
  void tensor(const std::string& name, const Matrix<T>& m) {
    head(0, name);
    detail_fmt::put<std::uint64_t>(payload_, m.rows());
    detail_fmt::put<std::uint64_t>(payload_, m.cols());
    payload_.append(reinterpret_cast<const char*>(m.data()), sizeof(T) * m.size());
  }
  void bytes(const std::string& name, const std::string& b) {
    head(1, name);
    detail_fmt::put<std::uint64_t>(payload_, b.size());
    payload_.append(b);
  }
  // The complete file image (header + payload).
  std::string image() const {
    std::string body;
    detail_fmt::put<std::uint64_t>(body, count_);
    body += payload_;
    std::string out(kMagic, 8);
    detail_fmt::put<std::uint32_t>(out, kFormatVersion);
    detail_fmt::put<std::uint32_t>(out, sizeof(T));
    detail_fmt::put<std::uint64_t>(out, body.size());
    detail_fmt::put<std::uint32_t>(out, crc32(body.data(), body.size()));
    detail_fmt::put<std::uint32_t>(out, 0);
    return out + body;
  }
  void write(const std::string& path) const { write_file_atomic(path, image()); }

 private:
  void head(std::uint32_t kind, const std::string& name) {
    if (const std::string bad = name_problem(name); !bad.empty())
      throw ValueError("save: entry name '" + printable_name(name) + "' has " + bad);
    detail_fmt::put<std::uint32_t>(payload_, kind);
    detail_fmt::put<std::uint32_t>(payload_, static_cast<std::uint32_t>(name.size()));
    payload_ += name;
    ++count_;
  }
  std::string payload_;
  std::uint64_t count_ = 0;
};

// Parses and validates a whole file image; `source` names the file in error messages.
inline Entries parse(const std::string& img, const std::string& source) {
  auto bad = [&](const std::string& what) -> FormatError {
    return FormatError("load: '" + source + "': " + what);
  };
  if (img.size() < kHeaderSize)
    throw bad("truncated: " + std::to_string(img.size()) + " bytes, smaller than the " +
              std::to_string(kHeaderSize) + "-byte header");
  if (std::memcmp(img.data(), kMagic, 8) != 0) throw bad("not a heed checkpoint (bad magic)");
  auto get32 = [&](std::size_t off) { std::uint32_t v; std::memcpy(&v, img.data() + off, 4); return v; };
  auto get64 = [&](std::size_t off) { std::uint64_t v; std::memcpy(&v, img.data() + off, 8); return v; };
  const std::uint32_t version = get32(8), scalar = get32(12);
  if (version > kFormatVersion)
    throw bad("format version " + std::to_string(version) + " is newer than this heed reads (" +
              std::to_string(kFormatVersion) + ")");
  if (version == 0) throw bad("format version 0 is invalid");
  if (scalar != 4 && scalar != 8) throw bad("scalar size " + std::to_string(scalar) + ", expected 4 or 8");
  const std::uint64_t plen = get64(16);
  if (plen != img.size() - kHeaderSize)
    throw bad("payload length " + std::to_string(plen) + " bytes in the header, but the file has " +
              std::to_string(img.size() - kHeaderSize) + " (truncated or extended)");
  if (crc32(img.data() + kHeaderSize, plen) != get32(24)) throw bad("checksum mismatch: the payload is corrupted");

  // The checksum passed, but a file can be crafted: every read below is bounds-checked.
  std::size_t pos = kHeaderSize;
  auto need = [&](std::uint64_t n, const char* what) {
    if (n > img.size() - pos) throw bad(std::string("entry runs past the end of the file (") + what + ")");
  };
  need(8, "count");
  const std::uint64_t count = get64(pos);
  pos += 8;
  Entries out;
  for (std::uint64_t e = 0; e < count; ++e) {
    need(8, "entry header");
    const std::uint32_t kind = get32(pos), nlen = get32(pos + 4);
    pos += 8;
    need(nlen, "name");
    std::string name(img.data() + pos, nlen);
    pos += nlen;
    if (const std::string what = name_problem(name); !what.empty())
      throw bad("entry name '" + printable_name(name) + "' has " + what);
    if (out.count(name)) throw bad("duplicate entry '" + printable_name(name) + "'");
    Entry ent;
    if (kind == 0) {
      need(16, "shape");
      const std::uint64_t r = get64(pos), c = get64(pos + 8);
      pos += 16;
      if (r > (1ull << 40) || c > (1ull << 40) || (c != 0 && r > (img.size() / scalar) / c))
        throw bad("tensor '" + printable_name(name) + "' has an impossible shape " + heed::detail::shape_str(r, c));
      need(r * c * scalar, "tensor data");
      ent.rows = static_cast<Index>(r);
      ent.cols = static_cast<Index>(c);
      ent.values.resize(r * c);
      for (std::uint64_t i = 0; i < r * c; ++i, pos += scalar) {
        if (scalar == 4) {
          float f;
          std::memcpy(&f, img.data() + pos, 4);
          ent.values[i] = f;
        } else {
          std::memcpy(&ent.values[i], img.data() + pos, 8);
        }
      }
    } else if (kind == 1) {
      need(8, "byte length");
      const std::uint64_t n = get64(pos);
      pos += 8;
      need(n, "bytes");
      ent.is_tensor = false;
      ent.bytes.assign(img.data() + pos, n);
      pos += n;
    } else {
      throw bad("entry '" + printable_name(name) + "' has unknown kind " + std::to_string(kind));
    }
    out.emplace(std::move(name), std::move(ent));
  }
  if (pos != img.size()) throw bad("trailing bytes after the last entry");
  return out;
}

inline Entries read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("load: cannot open '" + path + "'");
  std::string img((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw IoError("load: error reading '" + path + "'");
  return parse(img, path);
}

}  // namespace heed::io
