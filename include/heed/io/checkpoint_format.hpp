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
#include <map>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "atomic_file.hpp"
#include "crc32.hpp"
#include "regular_file.hpp"

namespace heed::io {

static_assert(std::endian::native == std::endian::little,
              "heed's checkpoint code assumes a little-endian host");

inline constexpr char kMagic[8] = {'H', 'E', 'E', 'D', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;

// A name as error messages show it (heed::detail::printable_name, core/error.hpp).
using heed::detail::printable_name;

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
template <class V>
void put_at(std::string& out, std::size_t off, V v) {
  std::memcpy(out.data() + off, &v, sizeof v);
}
template <class V>
V get(std::string_view img, std::size_t off) {
  V v;
  std::memcpy(&v, img.data() + off, sizeof v);
  return v;
}
}  // namespace detail_fmt

// Builds a file image entry by entry in one buffer that starts with room for the header and
// the entry count, then fills those in place: saving holds one copy of the file, not three.
template <typename T>
class Writer {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "checkpoint scalars are float or double");

 public:
  // payload_bytes: the entries' total size if known (tensor_size + bytes_size of each), so the
  // buffer is allocated once.
  explicit Writer(std::size_t payload_bytes = 0) {
    buf_.reserve(kHeaderSize + 8 + payload_bytes);
    buf_.resize(kHeaderSize + 8);
  }
  static std::size_t tensor_size(const std::string& name, Index n) {
    return 8 + name.size() + 16 + sizeof(T) * static_cast<std::size_t>(n);
  }
  static std::size_t bytes_size(const std::string& name, std::size_t n) { return 8 + name.size() + 8 + n; }

  void tensor(const std::string& name, const Matrix<T>& m) {
    head(0, name);
    detail_fmt::put<std::uint64_t>(buf_, m.rows());
    detail_fmt::put<std::uint64_t>(buf_, m.cols());
    buf_.append(reinterpret_cast<const char*>(m.data()), sizeof(T) * m.size());
  }
  void bytes(const std::string& name, const std::string& b) {
    head(1, name);
    detail_fmt::put<std::uint64_t>(buf_, b.size());
    buf_.append(b);
  }
  // The complete file image (header + payload).
  const std::string& image() {
    const std::size_t plen = buf_.size() - kHeaderSize;
    detail_fmt::put_at<std::uint64_t>(buf_, kHeaderSize, count_);
    std::memcpy(buf_.data(), kMagic, 8);
    detail_fmt::put_at<std::uint32_t>(buf_, 8, kFormatVersion);
    detail_fmt::put_at<std::uint32_t>(buf_, 12, sizeof(T));
    detail_fmt::put_at<std::uint64_t>(buf_, 16, plen);
    detail_fmt::put_at<std::uint32_t>(buf_, 24, crc32(buf_.data() + kHeaderSize, plen));
    detail_fmt::put_at<std::uint32_t>(buf_, 28, 0);
    return buf_;
  }
  void write(const std::string& path) { write_file_atomic(path, image()); }

 private:
  void head(std::uint32_t kind, const std::string& name) {
    if (const std::string bad = name_problem(name); !bad.empty())
      throw ValueError("save: entry name '" + printable_name(name) + "' has " + bad);
    detail_fmt::put<std::uint32_t>(buf_, kind);
    detail_fmt::put<std::uint32_t>(buf_, static_cast<std::uint32_t>(name.size()));
    buf_ += name;
    ++count_;
  }
  std::string buf_;
  std::uint64_t count_ = 0;
};

inline FormatError format_error(const std::string& source, const std::string& what) {
  return FormatError("load: '" + source + "': " + what);
}

// The header's fields, once parse_header has checked them.
struct Header {
  std::uint32_t version = 0, scalar = 0;
  std::uint64_t payload = 0;
  std::uint32_t crc = 0;
};

// Checks the first min(file_size, 32) bytes of a file of `file_size` bytes: magic, version,
// scalar size, and that the payload length matches the file. Needs nothing past the header,
// so a reader refuses a wrong or truncated file before it allocates or reads the payload.
inline Header parse_header(std::string_view h, std::uint64_t file_size, const std::string& source) {
  if (file_size < kHeaderSize || h.size() < kHeaderSize)
    throw format_error(source, "truncated: " + std::to_string(file_size) +
                                   " bytes, smaller than the " + std::to_string(kHeaderSize) +
                                   "-byte header");
  if (std::memcmp(h.data(), kMagic, 8) != 0)
    throw format_error(source, "not a heed checkpoint (bad magic)");
  Header hd;
  hd.version = detail_fmt::get<std::uint32_t>(h, 8);
  hd.scalar = detail_fmt::get<std::uint32_t>(h, 12);
  hd.payload = detail_fmt::get<std::uint64_t>(h, 16);
  hd.crc = detail_fmt::get<std::uint32_t>(h, 24);
  if (hd.version > kFormatVersion)
    throw format_error(source, "format version " + std::to_string(hd.version) +
                                   " is newer than this heed reads (" +
                                   std::to_string(kFormatVersion) + ")");
  if (hd.version == 0) throw format_error(source, "format version 0 is invalid");
  if (hd.scalar != 4 && hd.scalar != 8)
    throw format_error(source, "scalar size " + std::to_string(hd.scalar) + ", expected 4 or 8");
  if (hd.payload != file_size - kHeaderSize)
    throw format_error(source, "payload length " + std::to_string(hd.payload) +
                                   " bytes in the header, but the file has " +
                                   std::to_string(file_size - kHeaderSize) +
                                   " (truncated or extended)");
  return hd;
}

// One entry of a validated image: a view into it, decoded only when asked.
struct EntryView {
  std::string_view name;
  bool is_tensor = true;
  Index rows = 0, cols = 0;
  std::string_view data;      // tensor: rows*cols scalars, row-major; bytes: the bytes
  std::uint32_t scalar = 8;   // the file's scalar size (tensors)

  double at(Index i) const {
    if (scalar == 4) return detail_fmt::get<float>(data, static_cast<std::size_t>(i) * 4);
    return detail_fmt::get<double>(data, static_cast<std::size_t>(i) * 8);
  }
  // The rows*cols values converted to T (double -> float rounds to nearest).
  template <class T>
  void copy_to(T* dst) const {
    const Index n = rows * cols;
    if (n == 0) return;  // dst may be null (an empty Eigen matrix), memcpy's arguments may not
    if (scalar == sizeof(T)) {
      std::memcpy(dst, data.data(), data.size());
    } else {
      for (Index i = 0; i < n; ++i) dst[i] = static_cast<T>(at(i));
    }
  }
};

// Walks the entries of an image whose header passed parse_header and whose CRC matched,
// checking every entry's bounds, kind, shape and name, and that no name occurs twice; calls
// on_entry(const EntryView&) for each, in file order. Nothing is copied or decoded: the only
// memory spent is 8 bytes per entry (the offsets the duplicate check sorts), so entries the
// caller does not bind cost (almost) nothing. The walk throws before returning if anything is
// wrong; the caller must not act on what it saw until it returns.
template <class OnEntry>
void scan(std::string_view img, std::uint32_t scalar, const std::string& source, OnEntry&& on_entry) {
  auto bad = [&](const std::string& what) { return format_error(source, what); };
  std::size_t pos = kHeaderSize;
  auto need = [&](std::uint64_t n, const char* what) {
    if (n > img.size() - pos) throw bad(std::string("entry runs past the end of the file (") + what + ")");
  };
  need(8, "count");
  const std::uint64_t count = detail_fmt::get<std::uint64_t>(img, pos);
  pos += 8;
  // Each entry takes at least 16 bytes (kind, name length, a u64), so a count that cannot fit
  // is refused before `starts` is sized from it.
  if (count > (img.size() - pos) / 16)
    throw bad("entry count " + std::to_string(count) + " cannot fit in " +
              std::to_string(img.size() - pos) + " bytes");
  std::vector<std::uint64_t> starts;  // offset of each entry's name length field
  starts.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t e = 0; e < count; ++e) {
    need(8, "entry header");
    const auto kind = detail_fmt::get<std::uint32_t>(img, pos);
    const auto nlen = detail_fmt::get<std::uint32_t>(img, pos + 4);
    starts.push_back(pos + 4);
    pos += 8;
    need(nlen, "name");
    EntryView v;
    v.name = img.substr(pos, nlen);
    pos += nlen;
    if (const std::string what = name_problem(v.name); !what.empty())
      throw bad("entry name '" + printable_name(v.name) + "' has " + what);
    if (kind == 0) {
      need(16, "shape");
      const auto r = detail_fmt::get<std::uint64_t>(img, pos);
      const auto c = detail_fmt::get<std::uint64_t>(img, pos + 8);
      pos += 16;
      if (r > (1ull << 40) || c > (1ull << 40) || (c != 0 && r > (img.size() / scalar) / c))
        throw bad("tensor '" + printable_name(v.name) + "' has an impossible shape " +
                  heed::detail::shape_str(r, c));
      need(r * c * scalar, "tensor data");
      v.rows = static_cast<Index>(r);
      v.cols = static_cast<Index>(c);
      v.scalar = scalar;
      v.data = img.substr(pos, r * c * scalar);
      pos += r * c * scalar;
    } else if (kind == 1) {
      need(8, "byte length");
      const auto n = detail_fmt::get<std::uint64_t>(img, pos);
      pos += 8;
      need(n, "bytes");
      v.is_tensor = false;
      v.data = img.substr(pos, n);
      pos += n;
    } else {
      throw bad("entry '" + printable_name(v.name) + "' has unknown kind " + std::to_string(kind));
    }
    on_entry(static_cast<const EntryView&>(v));
  }
  if (pos != img.size()) throw bad("trailing bytes after the last entry");
  auto name_at = [&](std::uint64_t at) {
    return img.substr(at + 4, detail_fmt::get<std::uint32_t>(img, at));
  };
  std::sort(starts.begin(), starts.end(),
            [&](std::uint64_t a, std::uint64_t b) { return name_at(a) < name_at(b); });
  for (std::size_t i = 1; i < starts.size(); ++i)
    if (name_at(starts[i]) == name_at(starts[i - 1]))
      throw bad("duplicate entry '" + printable_name(name_at(starts[i])) + "'");
}

// A whole file in memory, its header and checksum verified; entries are read with scan().
struct Image {
  std::string bytes;
  std::uint32_t scalar = 8;
  template <class OnEntry>
  void scan(const std::string& source, OnEntry&& on_entry) const {
    io::scan(bytes, scalar, source, std::forward<OnEntry>(on_entry));
  }
};

inline void check_crc(std::string_view img, const Header& hd, const std::string& source) {
  if (crc32(img.data() + kHeaderSize, hd.payload) != hd.crc)
    throw format_error(source, "checksum mismatch: the payload is corrupted");
}

// Reads and verifies a checkpoint file: only a regular file is opened (regular_file.hpp), its
// header is read and checked against the file's size first, and only then is the payload
// allocated and read. Peak memory: the file's size.
inline Image read_image(const std::string& path) {
  RegularFile f(path, "load: '" + path + "'");
  const std::uint64_t size = f.size();
  char h[kHeaderSize];
  const auto hn = static_cast<std::size_t>(std::min<std::uint64_t>(size, kHeaderSize));
  f.read_exact(h, hn, "header");
  const Header hd = parse_header(std::string_view(h, hn), size, path);
  Image img;
  img.scalar = hd.scalar;
  try {
    img.bytes.resize(static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    throw IoError("load: '" + path + "': cannot allocate " + std::to_string(size) +
                  " bytes to read the file");
  }
  std::memcpy(img.bytes.data(), h, kHeaderSize);
  f.read_exact(img.bytes.data() + kHeaderSize, hd.payload, "payload");
  check_crc(img.bytes, hd, path);
  return img;
}

// One entry decoded: a tensor in double (converted from the file's scalar type) or a byte
// string. For inspecting a file; Checkpoint::load decodes only what it binds.
struct Entry {
  bool is_tensor = true;
  Index rows = 0, cols = 0;
  std::vector<double> values;  // rows*cols, row-major
  std::string bytes;
};
using Entries = std::map<std::string, Entry>;

// Parses and validates a whole file image held in memory and decodes every entry; `source`
// names the file in error messages.
inline Entries parse(const std::string& img, const std::string& source) {
  const Header hd = parse_header(std::string_view(img).substr(0, kHeaderSize), img.size(), source);
  check_crc(img, hd, source);
  Entries out;
  scan(img, hd.scalar, source, [&](const EntryView& v) {
    Entry e;
    e.is_tensor = v.is_tensor;
    e.rows = v.rows;
    e.cols = v.cols;
    if (v.is_tensor) {
      e.values.resize(static_cast<std::size_t>(v.rows * v.cols));
      v.copy_to(e.values.data());
    } else {
      e.bytes = std::string(v.data);
    }
    out.insert_or_assign(std::string(v.name), std::move(e));
  });
  return out;
}

// read_image + parse: every entry of a file, decoded.
inline Entries read_file(const std::string& path) {
  const Image img = read_image(path);
  return parse(img.bytes, path);
}

}  // namespace heed::io
