#pragma once
// The safetensors format (huggingface/safetensors): a strict reader and a writer.
//
//   8 bytes  u64 little-endian N, the header's size; N <= 100,000,000 and 8 + N <= the file
//   N bytes  a UTF-8 JSON object, which must begin with '{' and may be padded with trailing
//            spaces (0x20, and only those): {"__metadata__": {str: str, ...},   (optional)
//              "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   rest     the data buffer; offsets are relative to its first byte, values little-endian,
//            row-major.
//
// Reading checks, before a value reaches the caller (every failure is a FormatError, or an
// IoError for open/read failures, whose message starts with the path):
//  * N against the limit and the file's size before anything but 8 bytes is allocated;
//  * the JSON grammar, exactly: objects, arrays, strings (all escapes, \uXXXX surrogate pairs
//    paired), non-negative integers that fit in 64 bits. Refused: floats, exponents, negative
//    numbers, leading zeros, true/false/null, trailing commas, comments, control characters
//    in strings, invalid UTF-8 (overlong forms, encoded surrogates, > U+10FFFF, truncated or
//    stray bytes), lone surrogate escapes, duplicate keys at any level, anything but spaces
//    after the object;
//  * the schema: "__metadata__" maps strings to strings; each tensor has exactly dtype, shape
//    and data_offsets; dtype is F64, F32, F16, BF16, I64 or I32 (the other safetensors dtypes
//    are named as unsupported, anything else as unknown); shape is a list of non-negative
//    integers; data_offsets is [begin, end] with begin <= end; and the product of the shape
//    times the dtype's size (overflow-checked, left to right as safetensors does) is end - begin;
//  * the tiling: sorted by (begin, end), the tensors cover the data buffer exactly, the first
//    from 0, each from where the previous ends, the last to the buffer's end. A zero-size
//    tensor has begin == end and may sit at any boundary, as in safetensors.
//
// Stricter than safetensors' own reader in two places, on purpose: a tensor object with a key
// other than its three is refused (not ignored), and "__metadata__": null is refused (null is
// not in the grammar). Like it, an empty tensor name is accepted (the writer refuses one).
// Syntax errors name the header byte, and the tensor when inside one.
//
// Why a hand-written parser and not nlohmann-json: heed's library is dependency-free (Eigen
// only), the grammar above is tiny, and the strictness rules (duplicate keys, UTF-8, integers
// only) are easier to guarantee in a few hundred lines we own than by configuring a general
// parser. It is schema-directed: it never recurses on input, so nesting depth is bounded by
// the grammar (at most 3: header, tensor, array) and anything nested deeper is a type error.
// It builds the entries directly (no document tree), and the reader reads the file once: the
// 8-byte length, the header, then the data buffer, each checked before the next is allocated.
#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "atomic_file.hpp"
#include "checkpoint_format.hpp"  // printable_name
#include "regular_file.hpp"
#include "tensor_file.hpp"

namespace heed::io {

inline constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;

namespace detail_st {

// Empty if s[i..] starts a well-formed UTF-8 sequence (sets len), else what is wrong.
inline const char* utf8_problem(std::string_view s, std::size_t i, std::size_t& len) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return len = 1, nullptr;
  if (c < 0xc0) return "a continuation byte without a lead byte";
  if (c < 0xc2) return "an overlong encoding";
  if (c > 0xf4) return "a byte that never occurs in UTF-8";
  len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
  if (s.size() - i < len) return "a truncated sequence";
  for (std::size_t k = 1; k < len; ++k)
    if ((b(k) & 0xc0) != 0x80) return "a truncated sequence";
  if (c == 0xe0 && b(1) < 0xa0) return "an overlong encoding";
  if (c == 0xed && b(1) >= 0xa0) return "an encoded surrogate (U+D800-U+DFFF)";
  if (c == 0xf0 && b(1) < 0x90) return "an overlong encoding";
  if (c == 0xf4 && b(1) >= 0x90) return "a code point above U+10FFFF";
  return nullptr;
}

// Empty if `s` is valid UTF-8, else the problem and its byte offset.
inline std::string utf8_error(std::string_view s) {
  for (std::size_t i = 0, len = 1; i < s.size(); i += len)
    if (const char* p = utf8_problem(s, i, len)) return std::string(p) + " at byte " + std::to_string(i);
  return {};
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// A JSON string literal of valid UTF-8 `s`: '"' and '\' escaped, control characters as \n,
// \t, ... or \u00XX, everything else as is.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

inline constexpr const char* kUnsupportedDtypes[] = {
    "BOOL", "U8", "I8", "U16", "I16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0",
    "F4", "F6_E2M3", "F6_E3M2", "C64"};

// The schema-directed parser of one header (see the top of the file). Syntax errors name the
// header byte; schema errors name the tensor.
class HeaderParser {
 public:
  HeaderParser(std::string_view h, const std::string& path) : s_(h), path_(path) {}

  void parse(std::vector<TensorInfo>& entries, std::map<std::string, std::string>& meta) {
    if (s_.empty() || s_[0] != '{')
      fail("the header must begin with '{' (0x7b), got " + describe());
    ++i_;
    ws();
    bool seen_meta = false;
    if (peek() == '}') {
      ++i_;
    } else {
      for (;;) {
        std::string key = key_string("a tensor name");
        if (key == "__metadata__") {
          if (seen_meta) fail("duplicate key \"__metadata__\"");
          seen_meta = true;
          metadata(meta);
        } else {
          entries.push_back(entry(std::move(key)));
        }
        if (!more('}')) break;
      }
    }
    for (; i_ < s_.size(); ++i_)
      if (s_[i_] != ' ')
        fail("only spaces (0x20) may follow the header object, got " + describe());
  }

 private:
  // Inside a tensor's object, syntax errors name the tensor too.
  [[noreturn]] void fail(const std::string& what) const {
    if (tensor_ != nullptr) fail_tensor(*tensor_, what);
    throw FormatError(path_ + ": header byte " + std::to_string(i_) + ": " + what);
  }
  [[noreturn]] void fail_tensor(const std::string& name, const std::string& what) const {
    throw FormatError(path_ + ": tensor '" + printable_name(name) + "' (header byte " +
                      std::to_string(i_) + "): " + what);
  }
  int peek() const { return i_ < s_.size() ? static_cast<unsigned char>(s_[i_]) : -1; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  // What the byte at i_ starts, for "expected X, got Y".
  std::string describe() const {
    const int c = peek();
    if (c < 0) return "the end of the header";
    if (c == '{') return "an object";
    if (c == '[') return "an array";
    if (c == '"') return "a string";
    if (c == '-') return "a negative number (only non-negative integers are allowed)";
    if (c >= '0' && c <= '9') return "a number";
    if (c == 't' || c == 'f' || c == 'n') return "a literal (true, false and null are not allowed)";
    if (c == '/') return "a comment (comments are not allowed)";
    static constexpr char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
  }
  // After a member or element: true on ',' (and refuses a trailing comma), false on `close`.
  bool more(char close) {
    ws();
    if (peek() == ',') {
      ++i_;
      ws();
      if (peek() == close) fail(std::string("trailing comma before '") + close + "'");
      return true;
    }
    if (peek() == close) {
      ++i_;
      return false;
    }
    fail(std::string("expected ',' or '") + close + "', got " + describe());
  }
  // An object key and its ':'.
  std::string key_string(const char* what) {
    if (peek() != '"') fail(std::string("expected ") + what + " (a string), got " + describe());
    std::string k = string();
    ws();
    if (peek() != ':') fail("expected ':' after a key, got " + describe());
    ++i_;
    ws();
    return k;
  }

  std::string string() {
    ++i_;  // the opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c < 0x20) fail("control character " + describe() + " in a string (escape it)");
      if (c == '\\') {
        escape(out);
        continue;
      }
      std::size_t len = 1;
      if (const char* p = utf8_problem(s_, i_, len)) fail(std::string("invalid UTF-8: ") + p);
      out.append(s_.substr(i_, len));
      i_ += len;
    }
  }
  void escape(std::string& out) {
    ++i_;  // the backslash
    const int c = peek();
    ++i_;
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: --i_; fail("invalid escape sequence in a string");
    }
    std::uint32_t cp = hex4();
    if (cp >= 0xdc00 && cp <= 0xdfff) fail("lone low surrogate escape (\\udc00-\\udfff without a high one)");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (s_.substr(i_, 2) != "\\u") fail("high surrogate escape not followed by a low surrogate escape");
      i_ += 2;
      const std::uint32_t lo = hex4();
      if (lo < 0xdc00 || lo > 0xdfff) fail("high surrogate escape not followed by a low surrogate escape");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    append_utf8(out, cp);
  }
  std::uint32_t hex4() {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      const int c = peek();
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("\\u escape needs 4 hex digits, got " + describe());
      v = v * 16 + static_cast<std::uint32_t>(d);
    }
    return v;
  }

  std::uint64_t integer() {
    const int c = peek();
    if (c < '0' || c > '9') fail("expected a non-negative integer, got " + describe());
    std::uint64_t v = 0;
    const std::size_t start = i_;
    while (peek() >= '0' && peek() <= '9') {
      const auto d = static_cast<std::uint64_t>(peek() - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10)
        fail("integer does not fit in 64 bits");
      v = v * 10 + d;
      ++i_;
    }
    if (i_ - start > 1 && s_[start] == '0') {
      i_ = start;
      fail("integer with a leading zero");
    }
    if (peek() == '.' || peek() == 'e' || peek() == 'E')
      fail("a fraction or exponent: only non-negative integers are allowed");
    return v;
  }
  std::vector<std::uint64_t> integers() {
    if (peek() != '[') fail("expected an array of non-negative integers, got " + describe());
    ++i_;
    ws();
    std::vector<std::uint64_t> v;
    if (peek() == ']') {
      ++i_;
      return v;
    }
    do {
      v.push_back(integer());
    } while (more(']'));
    return v;
  }

  void metadata(std::map<std::string, std::string>& meta) {
    if (peek() != '{') fail("\"__metadata__\" must be an object of strings, got " + describe());
    ++i_;
    ws();
    if (peek() == '}') {
      ++i_;
      return;
    }
    do {
      std::string k = key_string("a metadata key");
      if (peek() != '"')
        fail("\"__metadata__\" value of '" + printable_name(k) + "': expected a string, got " + describe());
      std::string v = string();
      if (meta.count(k)) fail("duplicate key '" + printable_name(k) + "' in \"__metadata__\"");
      meta.emplace(std::move(k), std::move(v));
    } while (more('}'));
  }

  TensorInfo entry(std::string name) {
    if (peek() != '{')
      fail_tensor(name, "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got " + describe());
    ++i_;
    ws();
    tensor_ = &name;
    TensorInfo t;
    bool have[3] = {false, false, false};
    if (peek() != '}') {
      do {
        const std::size_t key_at = i_;
        const std::string k = key_string("a key");
        const int which = k == "dtype" ? 0 : k == "shape" ? 1 : k == "data_offsets" ? 2 : -1;
        if (which < 0) {
          i_ = key_at;
          fail_tensor(name, "unknown key \"" + printable_name(k) + "\" (expected dtype, shape, data_offsets)");
        }
        if (have[which]) {
          i_ = key_at;
          fail_tensor(name, "duplicate key \"" + k + "\"");
        }
        have[which] = true;
        if (which == 0) {
          t.dtype = dtype(name);
        } else if (which == 1) {
          t.shape = integers();
        } else {
          const std::vector<std::uint64_t> off = integers();
          if (off.size() != 2)
            fail_tensor(name, "data_offsets must be [begin, end], got " + std::to_string(off.size()) + " integers");
          t.begin = off[0];
          t.end = off[1];
        }
      } while (more('}'));
    } else {
      ++i_;
    }
    static constexpr const char* keys[3] = {"dtype", "shape", "data_offsets"};
    for (int k = 0; k < 3; ++k)
      if (!have[k]) fail_tensor(name, std::string("missing key \"") + keys[k] + "\"");
    tensor_ = nullptr;
    t.name = std::move(name);
    return t;
  }
  Dtype dtype(const std::string& name) {
    if (peek() != '"') fail_tensor(name, "dtype: expected a string, got " + describe());
    const std::string d = string();
    static constexpr Dtype all[] = {Dtype::F64, Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::I64, Dtype::I32};
    for (Dtype x : all)
      if (d == dtype_name(x)) return x;
    for (const char* u : kUnsupportedDtypes)
      if (d == u)
        fail_tensor(name, "dtype " + d +
                              " is a safetensors dtype heed does not support (supported: F64, F32, F16, "
                              "BF16, I64, I32)");
    fail_tensor(name, "unknown dtype \"" + printable_name(d) + "\" (not a safetensors dtype)");
  }

  std::string_view s_;
  const std::string& path_;
  std::size_t i_ = 0;
  const std::string* tensor_ = nullptr;  // the tensor whose object is being parsed
};

}  // namespace detail_st

// A validated safetensors file, read whole at construction (or its header only).
class Safetensors : public TensorFile {
 public:
  explicit Safetensors(const std::string& path) : TensorFile(path) {
    RegularFile f(path, path);
    read_header(f);
    allocate_data(data_size_);
    f.read_exact(data_.get(), data_size_, "data buffer");
  }
  // Reads and checks the header only, against the file's size: everything but the values, in
  // memory bounded by the header's (heed_inspect on a file larger than memory).
  Safetensors(const std::string& path, HeaderOnly) : TensorFile(path) {
    RegularFile f(path, path);
    read_header(f);
  }

  const char* format() const override { return "safetensors"; }

 private:
  void read_header(RegularFile& f) {
    const std::uint64_t size = f.size();
    if (size < 8)
      fail("the file has " + std::to_string(size) + " bytes, fewer than the 8-byte header length");
    std::uint64_t n = 0;
    f.read_exact(&n, 8, "header length");
    if (n > kSafetensorsMaxHeader)
      fail("header length " + std::to_string(n) + " exceeds the limit of " +
           std::to_string(kSafetensorsMaxHeader) + " bytes");
    if (n > size - 8)
      fail("header length " + std::to_string(n) + " needs " + std::to_string(8 + n) +
           " bytes, but the file has " + std::to_string(size) + " (truncated)");
    {
      std::string header(static_cast<std::size_t>(n), '\0');
      f.read_exact(header.data(), n, "header");
      detail_st::HeaderParser(header, path_).parse(entries_, metadata_);
    }
    data_size_ = size - 8 - n;
    validate();
  }

  void validate() {
    for (const TensorInfo& t : entries_) {
      if (t.begin > t.end)
        fail(tname(t) + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
             "] have begin > end");
      std::uint64_t need = 0;
      if (!detail_tensor::nbytes(t.shape, t.dtype, need))
        fail(tname(t) + ": shape " + detail_tensor::shape_str(t.shape) + " of " + dtype_name(t.dtype) +
             " overflows 64 bits");
      if (need != t.end - t.begin)
        fail(tname(t) + ": shape " + detail_tensor::shape_str(t.shape) + " of " + dtype_name(t.dtype) + " needs " +
             std::to_string(need) + " bytes, but data_offsets [" + std::to_string(t.begin) + ", " +
             std::to_string(t.end) + "] span " + std::to_string(t.end - t.begin));
    }
    index();

    std::vector<std::size_t> by_off(by_name_);
    std::stable_sort(by_off.begin(), by_off.end(), [&](std::size_t a, std::size_t b) {
      return std::pair(entries_[a].begin, entries_[a].end) < std::pair(entries_[b].begin, entries_[b].end);
    });
    std::uint64_t at = 0;
    const TensorInfo* prev = nullptr;
    for (std::size_t k : by_off) {
      const TensorInfo& t = entries_[k];
      if (t.begin != at) {
        if (prev == nullptr)
          fail(tname(t) + ", the first by offset, begins at byte " + std::to_string(t.begin) +
               " of the data buffer, expected 0 (the tensors must tile the data buffer)");
        if (t.begin > at)
          fail(tname(t) + " begins at byte " + std::to_string(t.begin) + ", but the previous " + tname(*prev) +
               " ends at byte " + std::to_string(at) + ": a gap of " + std::to_string(t.begin - at) +
               " bytes (the tensors must tile the data buffer)");
        fail(tname(t) + " begins at byte " + std::to_string(t.begin) + ", but the previous " + tname(*prev) +
             " ends at byte " + std::to_string(at) + ": they overlap by " + std::to_string(at - t.begin) + " bytes");
      }
      at = t.end;
      prev = &t;
    }
    if (at > data_size_)
      fail(tname(*prev) + " ends at byte " + std::to_string(at) + ", past the end of the " +
           std::to_string(data_size_) + "-byte data buffer");
    if (at < data_size_)
      fail(std::string(prev ? "the tensors end at byte " + std::to_string(at) : "there are no tensors") +
           ", but the data buffer has " + std::to_string(data_size_) + " bytes: " +
           std::to_string(data_size_ - at) + " trailing bytes");
  }

};

// One tensor to save: raw little-endian row-major bytes of `shape` and `dtype`. `data` is a
// view: what it points to must live until save_safetensors returns.
struct SafetensorsEntry {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::uint64_t> shape;
  std::string_view data;
};

// A matrix as an F32 (float) or F64 (double) entry of shape (rows, cols), or of `shape`
// (any shape holding m.size() elements: {} is 0-D, {n} 1-D, ...). Views m's data, see
// SafetensorsEntry.
template <typename T>
SafetensorsEntry safetensors_entry(std::string name, const Matrix<T>& m, std::vector<std::uint64_t> shape) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double matrices");
  std::uint64_t n = 1;
  for (std::uint64_t d : shape)
    if (!detail_tensor::mul(n, d, n)) n = ~0ull;
  if (n != static_cast<std::uint64_t>(m.size()))
    throw ValueError("safetensors_entry: '" + printable_name(name) + "': shape " + detail_tensor::shape_str(shape) +
                     " does not hold the matrix's " + std::to_string(m.size()) + " elements");
  return {std::move(name), std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64, std::move(shape),
          {reinterpret_cast<const char*>(m.data()), sizeof(T) * static_cast<std::size_t>(m.size())}};
}
template <typename T>
SafetensorsEntry safetensors_entry(std::string name, const Matrix<T>& m) {
  return safetensors_entry(std::move(name), m,
                           {static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols())});
}

// Writes `entries` and `metadata` to `path` (write_file_atomic). The header is compact JSON,
// "__metadata__" first (omitted when empty), then the tensors sorted by name, padded with
// spaces so the data buffer starts at a multiple of 8; the data follows in the same order.
// Refused (ValueError, message starting with the path): empty names, "__metadata__" as a name,
// duplicate names, names or metadata that are not valid UTF-8, data whose size is not the
// shape's element count times the dtype's size, a header over the 100,000,000-byte limit.
inline void save_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                             const std::map<std::string, std::string>& metadata = {}) {
  const auto bad = [&](const std::string& what) { return ValueError(path + ": save_safetensors: " + what); };
  std::vector<const SafetensorsEntry*> sorted;
  sorted.reserve(entries.size());
  std::uint64_t total = 0;
  for (const SafetensorsEntry& e : entries) {
    const std::string shown = "tensor '" + printable_name(e.name) + "'";
    if (e.name.empty()) throw bad("empty tensor name");
    if (e.name == "__metadata__") throw bad("\"__metadata__\" is reserved and cannot name a tensor");
    if (const std::string u = detail_st::utf8_error(e.name); !u.empty()) throw bad(shown + ": name is not UTF-8: " + u);
    std::uint64_t need = 0;
    if (!detail_tensor::nbytes(e.shape, e.dtype, need) || need != e.data.size())
      throw bad(shown + ": shape " + detail_tensor::shape_str(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                std::to_string(need) + " bytes, got " + std::to_string(e.data.size()));
    total += need;
    sorted.push_back(&e);
  }
  for (const auto& [k, v] : metadata)
    for (const std::string* s : {&k, &v})
      if (const std::string u = detail_st::utf8_error(*s); !u.empty())
        throw bad("metadata '" + printable_name(k) + "' is not UTF-8: " + u);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (std::size_t k = 1; k < sorted.size(); ++k)
    if (sorted[k]->name == sorted[k - 1]->name) throw bad("duplicate tensor name '" + printable_name(sorted[k]->name) + "'");

  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) h += ',';
      first = false;
      detail_st::append_json_string(h, k);
      h += ':';
      detail_st::append_json_string(h, v);
    }
    h += '}';
  }
  std::uint64_t off = 0;
  for (const SafetensorsEntry* e : sorted) {
    if (h.size() > 1) h += ',';
    detail_st::append_json_string(h, e->name);
    h += ":{\"dtype\":\"";
    h += dtype_name(e->dtype);
    h += "\",\"shape\":[";
    for (std::size_t k = 0; k < e->shape.size(); ++k) {
      if (k) h += ',';
      h += std::to_string(e->shape[k]);
    }
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + e->data.size()) + "]}";
    off += e->data.size();
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  if (h.size() > kSafetensorsMaxHeader)
    throw bad("the header would be " + std::to_string(h.size()) + " bytes, more than the " +
              std::to_string(kSafetensorsMaxHeader) + " that readers accept");

  std::string img;
  img.reserve(8 + h.size() + static_cast<std::size_t>(total));
  const std::uint64_t n = h.size();
  img.append(reinterpret_cast<const char*>(&n), 8);
  img += h;
  for (const SafetensorsEntry* e : sorted) img.append(e->data);
  write_file_atomic(path, img);
}

}  // namespace heed::io
