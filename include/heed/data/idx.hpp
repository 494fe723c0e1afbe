#pragma once
// Reader for the IDX format of the MNIST files. All header integers are big-endian u32:
//   images: magic 0x00000803, count, rows, cols, then count*rows*cols pixel bytes
//   labels: magic 0x00000801, count, then count label bytes
// A file must be exactly header + payload long: a truncated download or trailing bytes are a
// FormatError rather than silently wrong data. Only regular files are opened, the header is
// checked against the file's size before the payload is allocated, then read in one pass.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../io/regular_file.hpp"
#include "byte_matrix.hpp"

namespace heed {

struct IdxImages {
  ByteMatrix pixels;  // (N, rows*cols): row n is image n, pixels in row-major order
  int rows = 0;
  int cols = 0;
  Index size() const { return pixels.rows(); }
};

namespace detail {

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", static_cast<unsigned>(v));
  return buf;
}

inline std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

// "<fn>: <path>: " prefix shared by every message about a file.
inline std::string file_ctx(const char* fn, const std::string& path) {
  return std::string(fn) + ": " + path + ": ";
}

// Opens an IDX file (a regular file only: io::RegularFile refuses directories, FIFOs and
// devices before reading) and checks its magic and header length. Returns the file size;
// `header` receives the first `header_len` bytes.
inline std::uint64_t idx_open(const char* fn, const std::string& path, io::RegularFile& in,
                              std::uint32_t magic, const char* kind, unsigned char* header,
                              std::size_t header_len) {
  const std::uint64_t size = in.size();
  const std::size_t got = static_cast<std::size_t>(std::min<std::uint64_t>(size, header_len));
  in.read_exact(header, got, "header");
  if (got >= 4 && be32(header) != magic) {
    std::string msg = file_ctx(fn, path) + "bad magic " + hex32(be32(header)) + " expected " +
                      hex32(magic) + " (" + kind + ")";
    if (header[0] == 0x1F && header[1] == 0x8B) msg += "; the file is gzip-compressed, gunzip it first";
    throw FormatError(msg);
  }
  if (got < header_len)
    throw FormatError(file_ctx(fn, path) + "truncated header: expected at least " +
                      std::to_string(header_len) + " bytes, got " + std::to_string(size));
  return size;
}

inline void idx_check_length(const char* fn, const std::string& path, std::uint64_t expected,
                             std::uint64_t actual, const std::string& layout) {
  if (expected == actual) return;
  const std::string what = actual < expected
                               ? "truncated, " + std::to_string(expected - actual) + " bytes missing"
                               : std::to_string(actual - expected) + " trailing bytes";
  throw FormatError(file_ctx(fn, path) + "expected " + std::to_string(expected) + " bytes (" +
                    layout + "), got " + std::to_string(actual) + " (" + what + ")");
}

}  // namespace detail

// An IDX3 image file (magic 0x00000803) -> pixels (N, rows*cols) plus rows and cols.
inline IdxImages read_idx_images(const std::string& path) {
  constexpr const char* fn = "read_idx_images";
  io::RegularFile in(path, std::string(fn) + ": " + path);
  unsigned char h[16];
  const std::uint64_t size =
      detail::idx_open(fn, path, in, 0x00000803u, "IDX images", h, sizeof h);
  const std::uint64_t n = detail::be32(h + 4), r = detail::be32(h + 8), c = detail::be32(h + 12);
  if (n == 0 || r == 0 || c == 0 || r > INT_MAX || c > INT_MAX)
    throw FormatError(detail::file_ctx(fn, path) + "bad dimensions in header: count " +
                      std::to_string(n) + ", rows " + std::to_string(r) + ", cols " +
                      std::to_string(c) + " (each must be in [1, " + std::to_string(INT_MAX) + "])");
  // n, r, c < 2^32, so r*c fits in 64 bits; n*(r*c) may not.
  const std::uint64_t per_image = r * c;
  if (n > (UINT64_MAX - 16) / per_image)
    throw FormatError(detail::file_ctx(fn, path) + "header dimensions overflow: " +
                      std::to_string(n) + " x " + std::to_string(r) + " x " + std::to_string(c));
  const std::uint64_t payload = n * per_image;
  detail::idx_check_length(fn, path, 16 + payload, size,
                           "16-byte header + " + std::to_string(n) + " x " + std::to_string(r) +
                               " x " + std::to_string(c) + " pixels");
  // The length matched a real file, so every extent fits in Index.
  IdxImages out;
  out.rows = static_cast<int>(r);
  out.cols = static_cast<int>(c);
  out.pixels.resize(static_cast<Index>(n), static_cast<Index>(per_image));
  in.read_exact(out.pixels.data(), payload, "payload");
  return out;
}

// An IDX1 label file (magic 0x00000801) -> labels (N), each checked to be in [0, num_classes).
inline Labels read_idx_labels(const std::string& path, int num_classes = 10) {
  constexpr const char* fn = "read_idx_labels";
  if (num_classes < 1 || num_classes > 256)
    throw ValueError(std::string(fn) + ": num_classes expected in [1, 256], got " +
                     std::to_string(num_classes));
  io::RegularFile in(path, std::string(fn) + ": " + path);
  unsigned char h[8];
  const std::uint64_t size = detail::idx_open(fn, path, in, 0x00000801u, "IDX labels", h, sizeof h);
  const std::uint64_t n = detail::be32(h + 4);
  if (n == 0) throw FormatError(detail::file_ctx(fn, path) + "bad count in header: 0 labels");
  detail::idx_check_length(fn, path, 8 + n, size,
                           "8-byte header + " + std::to_string(n) + " labels");
  ByteMatrix raw(static_cast<Index>(n), 1);
  in.read_exact(raw.data(), n, "payload");
  Labels labels(static_cast<Index>(n));
  for (Index i = 0; i < labels.size(); ++i) {
    const int v = raw(i, 0);
    if (v >= num_classes)
      throw FormatError(detail::file_ctx(fn, path) + "label " + std::to_string(v) + " at index " +
                        std::to_string(i) + " out of range [0, " + std::to_string(num_classes) + ")");
    labels(i) = v;
  }
  return labels;
}

}  // namespace heed
