#pragma once
// A strict reader for torch.save files (the zip format PyTorch writes since 1.6): state_dicts
// and checkpoint dicts of tensors, without Python and without executing anything.
//
// The file is a STORED (uncompressed) zip archive whose entries share one prefix (the archive
// name, arbitrary): <prefix>/data.pkl (the pickled object), <prefix>/data/<key> (the raw bytes
// of each storage), <prefix>/version, and in newer torch <prefix>/byteorder ("little") and
// <prefix>/.data/serialization_id.
//
// Reading checks, before a value reaches the caller (every failure is a FormatError, or an
// IoError for open/read failures, whose message starts with the path):
//  * the zip: the end-of-central-directory record (searched in the last 64 KiB + 22 bytes, its
//    comment ending the file), the zip64 locator and record when present or needed, one disk,
//    the central directory ending where the end record begins, every header inside it; each
//    entry STORED (method 0; another method is named), not encrypted, its local header agreeing
//    with the central one (name, method, CRC and sizes unless deferred to a data descriptor),
//    its bytes inside the file, before the central directory and not overlapping another
//    entry, its CRC-32 right; names unique and all under one prefix. Every offset and size is
//    checked against the file's size (overflow-checked) before anything is allocated;
//  * the archive: data.pkl present, byteorder (if present) "little"; a legacy (torch < 1.6 or
//    _use_new_zipfile_serialization=False) file or a TorchScript archive is refused by name.
//    version and .data/* are CRC-checked like every entry but not interpreted;
//  * the pickle: a stack machine for exactly the opcodes torch.save's protocol 2 uses (listed
//    at Pickle::run); any other opcode is refused with its byte and position. GLOBAL is
//    checked against a whitelist when it is read, before anything could use it: collections
//    OrderedDict, torch._utils _rebuild_tensor_v2 and _rebuild_parameter, and torch
//    {Float,Double,Half,BFloat16,Long,Int}Storage (F32, F64, F16, BF16, I64, I32). The other
//    torch storages (Byte, Bool, Char, Short, Complex*, QInt*, Float8*) are read and checked
//    the same way, and their tensors skipped; anything else (posix system, builtins eval, ...)
//    is refused by name. Nothing is ever called: REDUCE interprets these four only.
//    BINPERSID loads ('storage', type, key, location, numel): <prefix>/data/<key> must hold
//    exactly numel elements. _rebuild_tensor_v2 checks the view: offset, sizes and strides
//    non-negative integers, the element count and the last element overflow-checked, the last
//    element inside the storage;
//  * the result: a dict (OrderedDict) at the top; keys str (int too in nested dicts, as in an
//    optimizer's state); nested dicts flattened with '.' ("model.fc1.weight"), at most 100
//    deep, a dict reached twice (a cycle, or shared) refused, the names' total bytes at most
//    16 times data.pkl's size + 1 MiB; every other value (numbers,
//    strings, None, lists and tuples, tensors inside lists, tensors of the other storages)
//    skipped and named in skipped().
//    Two tensors of one flattened name are refused (index()).
//
// Memory: the file is read once into data_ (after the zip's structure and data.pkl have been
// checked), and a tensor that is a contiguous view of its storage (the usual case, several
// tensors sharing a storage included) points into it: no copy. Only non-contiguous views
// (transposed, expanded with stride 0, sliced columns) are gathered row-major after the file's
// bytes, and those may not total more than the file's size (so the reader never holds more
// than twice the file, and a hostile file cannot make memory blow up; the storages' own total
// // would be too tight a bound: a 1-element storage expanded to 5 is a legitimate tensor).
// data.pkl is limited to kTorchMaxPickle bytes; the machine's stack, memo and objects grow at
// most by one per opcode, and it never recurses. No opcode costs more than its own bytes in
// time or memory, however the memo is replayed: a storage key seen before (the same str object,
// or the same text) reuses its storage without copying the key; a tensor has at most
// kTorchMaxDims dimensions, and all tensors' dimensions together may not exceed data.pkl's size
// (torch writes every size and stride tuple afresh, two bytes or more per entry).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "checkpoint_format.hpp"  // printable_name
#include "crc32.hpp"
#include "regular_file.hpp"
#include "safetensors.hpp"  // detail_st::utf8_error
#include "tensor_file.hpp"

namespace heed::io {

inline constexpr std::uint64_t kTorchMaxPickle = 64ull << 20;
inline constexpr std::size_t kTorchMaxDepth = 100;
inline constexpr std::size_t kTorchMaxDims = 64;

namespace detail_torch {

inline std::uint16_t le16(const char* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline std::uint32_t le32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t le64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline std::string hex_byte(unsigned char c) {
  static constexpr char hex[] = "0123456789abcdef";
  return std::string("0x") + hex[c >> 4] + hex[c & 15];
}

// One zip entry: where its bytes are in the file.
struct ZipEntry {
  std::string name;
  std::uint64_t local = 0;  // local header offset
  std::uint64_t data = 0;   // first byte of the data
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
};

inline const char* zip_method_name(std::uint16_t m) {
  switch (m) {
    case 1: return "shrink";
    case 6: return "implode";
    case 8: return "deflate";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    default: return nullptr;
  }
}

// The storages heed reads, and those torch has that it does not.
struct StorageType {
  const char* name;
  Dtype dtype;
};
inline constexpr StorageType kStorages[] = {
    {"FloatStorage", Dtype::F32}, {"DoubleStorage", Dtype::F64}, {"HalfStorage", Dtype::F16},
    {"BFloat16Storage", Dtype::BF16}, {"LongStorage", Dtype::I64}, {"IntStorage", Dtype::I32}};
// Read for their sizes and checked like the others, but their tensors are skipped (named in
// skipped()): a state_dict with a bool mask or a uint8 buffer still loads its float weights.
struct UnsupportedStorage {
  const char* name;
  std::uint64_t element_size;
};
inline constexpr UnsupportedStorage kUnsupportedStorages[] = {
    {"ByteStorage", 1},          {"CharStorage", 1},         {"ShortStorage", 2},    {"BoolStorage", 1},
    {"ComplexFloatStorage", 8},  {"ComplexDoubleStorage", 16}, {"ComplexHalfStorage", 4},
    {"QInt8Storage", 1},         {"QUInt8Storage", 1},       {"QInt32Storage", 4},   {"QUInt4x2Storage", 1},
    {"QUInt2x4Storage", 1},      {"Float8_e5m2Storage", 1},  {"Float8_e4m3fnStorage", 1}};

// The pickle machine's values. Containers hold indices into the machine's object table, so
// sharing (the memo) works as in Python and nothing is destroyed recursively.
enum class Kind : std::uint8_t { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
enum class Global : std::uint8_t { OrderedDict, RebuildTensor, RebuildParameter, StorageType };

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Float: return "a float";
    case Kind::Str: return "a str";
    case Kind::Tuple: return "a tuple";
    case Kind::List: return "a list";
    case Kind::Dict: return "a dict";
    case Kind::Global: return "a global";
    case Kind::Storage: return "a storage";
    case Kind::Tensor: return "a tensor";
  }
  return "?";
}

struct Obj {
  Kind kind = Kind::None;
  std::int64_t i = 0;  // Int, Bool; Str: index into strs; Global: Global; Storage/Tensor: index
  double f = 0;
  Dtype dtype = Dtype::F32;            // Global StorageType
  int unsupported = -1;                // Global StorageType: index into kUnsupportedStorages
  std::vector<std::uint32_t> items;    // Tuple, List; Dict: key, value, key, value, ...
};

struct StorageRec {
  Dtype dtype;
  std::uint64_t data;   // file offset of its bytes
  std::uint64_t numel;
  std::string key;
  int unsupported = -1;  // index into kUnsupportedStorages: its tensors are skipped
  std::uint64_t element_size = 0;
};

struct TensorRec {
  std::uint32_t storage;
  int unsupported = -1;
  Dtype dtype;
  std::vector<std::uint64_t> shape, stride;
  std::uint64_t offset = 0, numel = 0;
  bool contiguous = true;
};

}  // namespace detail_torch

// A validated torch.save file, read whole at construction.
class TorchFile : public TensorFile {
 public:
  explicit TorchFile(const std::string& path) : TensorFile(path) {
    RegularFile f(path, path);
    size_ = f.size();
    read_zip(f);
    const detail_torch::ZipEntry& pkl = check_archive(f);
    std::string pickle(static_cast<std::size_t>(pkl.size), '\0');
    f.read_at(pkl.data, pickle.data(), pkl.size, "data.pkl");
    if (crc32(pickle.data(), pickle.size()) != pkl.crc) fail_crc(pkl);
    pickle_size_ = pickle.size();
    dims_budget_ = pickle_size_;
    run(pickle);
    const std::uint64_t extra = plan();
    data_size_ = size_ + extra;
    allocate_data(data_size_);
    f.read_at(0, data_.get(), size_, "file");
    for (const auto& e : zip_)
      if (crc32(data_.get() + e.data, static_cast<std::size_t>(e.size)) != e.crc) fail_crc(e);
    if (std::memcmp(data_.get() + pkl.data, pickle.data(), pickle.size()) != 0)
      fail("data.pkl changed while the file was being read");
    gather();
    index();
  }

  const char* format() const override { return "torch.save"; }

  // The dotted names of the values that are not tensors heed reads (numbers, strings, None,
  // lists and tuples, tensors inside lists, bool/uint8/complex/... tensors), in the file's
  // order: a checkpoint's "epoch", "lr", a model's bool "mask" buffer...
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  using Obj = detail_torch::Obj;
  using Kind = detail_torch::Kind;

  // ---- zip -------------------------------------------------------------------------------

  void read_zip(RegularFile& f) {
    using namespace detail_torch;
    {
      char head[14] = {};
      const std::uint64_t n = std::min<std::uint64_t>(size_, 14);
      f.read_at(0, head, n, "file header");
      static constexpr char legacy[14] = {'\x80', '\x02', '\x8a', '\x0a', '\x6c', '\xfc', '\x9c',
                                          '\x46', '\xf9', '\x20', '\x6a', '\xa8', '\x50', '\x19'};
      if (n == 14 && std::memcmp(head, legacy, 14) == 0)
        fail("a legacy torch.save file (torch < 1.6, or _use_new_zipfile_serialization=False), not the zip "
             "format: re-save it with a current torch.save (torch.save(torch.load(old), new))");
      if (size_ < 22)
        fail("the file has " + std::to_string(size_) +
             " bytes, fewer than a zip archive's 22-byte end-of-central-directory record");
    }
    const std::uint64_t tail_n = std::min<std::uint64_t>(size_, 65535 + 22);
    std::string tail(static_cast<std::size_t>(tail_n), '\0');
    f.read_at(size_ - tail_n, tail.data(), tail_n, "end of the zip archive");
    std::uint64_t at = tail_n - 22;  // candidate position in tail
    bool found = false;
    for (;;) {
      if (le32(tail.data() + at) == 0x06054b50 && at + 22 + le16(tail.data() + at + 20) == tail_n) {
        found = true;
        break;
      }
      if (at == 0) break;
      --at;
    }
    if (!found) {
      char head[4] = {};
      f.read_at(0, head, 4, "file header");
      if (std::memcmp(head, "PK\x03\x04", 4) != 0)
        fail("not a zip archive (no end-of-central-directory record, and it does not begin with a local "
             "file header): torch.save writes zip archives");
      fail("no end-of-central-directory record in the last " + std::to_string(tail_n) +
           " bytes (the zip archive is truncated or corrupt)");
    }
    const char* e = tail.data() + at;
    const std::uint64_t eocd = size_ - tail_n + at;
    std::uint64_t disk = le16(e + 4), cd_disk = le16(e + 6), n_disk = le16(e + 8), n_total = le16(e + 10);
    std::uint64_t cd_size = le32(e + 12), cd_off = le32(e + 16);
    std::uint64_t cd_limit = eocd;  // where the central directory must end
    const bool saturated = disk == 0xffff || cd_disk == 0xffff || n_disk == 0xffff || n_total == 0xffff ||
                           cd_size == 0xffffffff || cd_off == 0xffffffff;
    bool locator = false;
    if (eocd >= 20) {
      char loc[20];
      f.read_at(eocd - 20, loc, 20, "zip64 end-of-central-directory locator");
      if (le32(loc) == 0x07064b50) {
        locator = true;
        const std::uint64_t z = le64(loc + 8);
        if (le32(loc + 4) != 0 || le32(loc + 16) != 1)
          fail("the zip64 locator names disk " + std::to_string(le32(loc + 4)) + " of " +
               std::to_string(le32(loc + 16)) + ": multi-disk (split) zip archives are not supported");
        if (z > eocd - 20 || eocd - 20 - z < 56)
          fail("the zip64 end-of-central-directory record at offset " + std::to_string(z) +
               " does not fit before its locator at " + std::to_string(eocd - 20));
        char r[56];
        f.read_at(z, r, 56, "zip64 end-of-central-directory record");
        if (le32(r) != 0x06064b50)
          fail("no zip64 end-of-central-directory record at offset " + std::to_string(z) +
               " where the locator points");
        if (le64(r + 4) < 44 || le64(r + 4) - 44 > eocd - 20 - z - 56)
          fail("the zip64 end-of-central-directory record's size " + std::to_string(le64(r + 4)) +
               " does not fit before its locator");
        // A field of the end record is either saturated (0xffff, 0xffffffff) or the zip64 one.
        const auto take = [&](std::uint64_t& field, std::uint64_t z64, std::uint64_t max, const char* what) {
          if (field != max && field != z64)
            fail(std::string("the end-of-central-directory record and the zip64 one disagree on the ") + what + " (" +
                 std::to_string(field) + " and " + std::to_string(z64) + ")");
          field = z64;
        };
        take(disk, le32(r + 16), 0xffff, "disk number");
        take(cd_disk, le32(r + 20), 0xffff, "central directory's disk");
        take(n_disk, le64(r + 24), 0xffff, "entries on this disk");
        take(n_total, le64(r + 32), 0xffff, "entry count");
        take(cd_size, le64(r + 40), 0xffffffff, "central directory's size");
        take(cd_off, le64(r + 48), 0xffffffff, "central directory's offset");
        cd_limit = z;
      }
    }
    if (saturated && !locator)
      fail("the end-of-central-directory record has zip64 markers (0xffff...), but there is no zip64 locator");
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
      fail("multi-disk (split) zip archives are not supported (disk " + std::to_string(disk) +
           ", central directory on disk " + std::to_string(cd_disk) + ")");
    if (cd_off > cd_limit || cd_size != cd_limit - cd_off)
      fail("the central directory (offset " + std::to_string(cd_off) + ", " + std::to_string(cd_size) +
           " bytes) does not end where the end-of-central-directory record begins (byte " +
           std::to_string(cd_limit) + ")");
    if (n_total > cd_size / 46)
      fail("the zip archive claims " + std::to_string(n_total) + " entries, more than its " +
           std::to_string(cd_size) + "-byte central directory can hold");
    std::string cd(static_cast<std::size_t>(cd_size), '\0');
    f.read_at(cd_off, cd.data(), cd_size, "central directory");
    cd_off_ = cd_off;

    std::size_t p = 0;
    std::set<std::string> names;
    zip_.reserve(static_cast<std::size_t>(n_total));
    for (std::uint64_t k = 0; k < n_total; ++k) {
      const std::string where = "central directory entry " + std::to_string(k) + " (byte " +
                                std::to_string(cd_off + p) + ")";
      if (cd.size() - p < 46 || le32(cd.data() + p) != 0x02014b50)
        fail(where + ": not a central directory file header");
      const char* h = cd.data() + p;
      const std::uint16_t flags = le16(h + 8), method = le16(h + 10);
      const std::size_t nlen = le16(h + 28), xlen = le16(h + 30), clen = le16(h + 32);
      if (cd.size() - p - 46 < nlen + xlen + clen) fail(where + ": its name, extra field and comment overrun the central directory");
      ZipEntry z;
      z.name.assign(h + 46, nlen);
      z.crc = le32(h + 16);
      std::uint64_t csize = le32(h + 20), usize = le32(h + 24), local = le32(h + 42), dstart = le16(h + 34);
      const std::string ename = "zip entry '" + printable_name(z.name) + "'";
      zip64_extra(std::string_view(h + 46 + nlen, xlen), ename, usize, csize, local, &dstart);
      if (flags & 0x41) fail(ename + " is encrypted");
      if (method != 0) {
        const char* m = zip_method_name(method);
        fail(ename + " is compressed (method " + std::to_string(method) + (m ? std::string(", ") + m : "") +
             "); torch.save writes stored (uncompressed, method 0) entries only");
      }
      if (csize != usize)
        fail(ename + " is stored but its compressed size " + std::to_string(csize) + " differs from its size " +
             std::to_string(usize));
      if (dstart != 0) fail(ename + " starts on disk " + std::to_string(dstart) + ": multi-disk archives are not supported");
      if (!names.insert(z.name).second) fail("duplicate zip entry '" + printable_name(z.name) + "'");
      z.size = usize;
      z.local = local;
      local_header(f, z, ename, flags, method);
      zip_.push_back(std::move(z));
      p += 46 + nlen + xlen + clen;
    }
    if (p != cd.size())
      fail("the central directory has " + std::to_string(cd.size() - p) + " bytes after its " +
           std::to_string(n_total) + " entries");
    // No two entries overlap (each ends before the next local header).
    std::vector<const ZipEntry*> by_off;
    for (const auto& z : zip_) by_off.push_back(&z);
    std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->local < b->local; });
    for (std::size_t k = 1; k < by_off.size(); ++k)
      if (by_off[k - 1]->data + by_off[k - 1]->size > by_off[k]->local)
        fail("zip entries '" + printable_name(by_off[k - 1]->name) + "' and '" + printable_name(by_off[k]->name) +
             "' overlap");
  }

  // The zip64 extended information extra field (0x0001): the 8-byte values of the fields
  // saturated at 0xffffffff (0xffff for the disk), in the order usize, csize, offset, disk.
  void zip64_extra(std::string_view x, const std::string& ename, std::uint64_t& usize, std::uint64_t& csize,
                   std::uint64_t& local, std::uint64_t* disk) {
    using namespace detail_torch;
    const bool need = usize == 0xffffffff || csize == 0xffffffff || local == 0xffffffff ||
                      (disk != nullptr && *disk == 0xffff);
    std::size_t q = 0;
    while (x.size() - q >= 4) {
      const std::uint16_t id = le16(x.data() + q), n = le16(x.data() + q + 2);
      if (x.size() - q - 4 < n) fail(ename + ": an extra field overruns the header");
      if (id == 0x0001) {
        std::string_view v = x.substr(q + 4, n);
        auto take8 = [&](std::uint64_t& out) {
          if (out != 0xffffffff) return;
          if (v.size() < 8) fail(ename + ": its zip64 extra field is too short");
          out = le64(v.data());
          v.remove_prefix(8);
        };
        take8(usize);
        take8(csize);
        take8(local);
        if (disk != nullptr && *disk == 0xffff) {
          if (v.size() < 4) fail(ename + ": its zip64 extra field is too short");
          *disk = le32(v.data());
        }
        return;
      }
      q += 4 + n;
    }
    if (need) fail(ename + " has zip64 markers (0xffffffff) but no zip64 extra field");
  }

  void local_header(RegularFile& f, detail_torch::ZipEntry& z, const std::string& ename, std::uint16_t flags,
                    std::uint16_t method) {
    using namespace detail_torch;
    if (z.local > cd_off_ || cd_off_ - z.local < 30)
      fail(ename + ": its local header at offset " + std::to_string(z.local) +
           " is not before the central directory (byte " + std::to_string(cd_off_) + ")");
    char h[30];
    f.read_at(z.local, h, 30, "local file header");
    if (le32(h) != 0x04034b50) fail(ename + ": no local file header at offset " + std::to_string(z.local));
    const std::uint64_t nlen = le16(h + 26), xlen = le16(h + 28);
    if (cd_off_ - z.local - 30 < nlen + xlen)
      fail(ename + ": its local header's name and extra field overrun the central directory");
    std::string nx(static_cast<std::size_t>(nlen + xlen), '\0');
    f.read_at(z.local + 30, nx.data(), nlen + xlen, "local file header");
    if (std::string_view(nx).substr(0, nlen) != z.name)
      fail(ename + ": its local header names '" + printable_name(std::string_view(nx).substr(0, nlen)) + "'");
    const std::uint16_t lflags = le16(h + 6), lmethod = le16(h + 8);
    if (lmethod != method || (lflags & 0x41) != (flags & 0x41))
      fail(ename + ": its local header's method or encryption flag differs from the central directory's");
    std::uint64_t lcrc = le32(h + 14), lcsize = le32(h + 18), lusize = le32(h + 22), dummy = 0;
    const bool deferred = (lflags & 8) && lcrc == 0 && lcsize == 0 && lusize == 0;
    if (!deferred) {
      zip64_extra(std::string_view(nx).substr(nlen), ename + " (local header)", lusize, lcsize, dummy, nullptr);
      if (lcrc != z.crc || lusize != z.size || lcsize != z.size)
        fail(ename + ": its local header's CRC or sizes differ from the central directory's");
    }
    z.data = z.local + 30 + nlen + xlen;
    if (z.size > cd_off_ - z.data)
      fail(ename + ": its " + std::to_string(z.size) + " bytes at offset " + std::to_string(z.data) +
           " run past the start of the central directory (byte " + std::to_string(cd_off_) + ")");
  }

  [[noreturn]] void fail_crc(const detail_torch::ZipEntry& e) const {
    fail("zip entry '" + printable_name(e.name) + "': CRC-32 mismatch (the file is corrupt)");
  }

  const detail_torch::ZipEntry* entry(const std::string& name) const {
    auto it = zip_index_.find(name);
    return it == zip_index_.end() ? nullptr : &zip_[it->second];
  }

  // The archive's layout: one prefix, data.pkl, byteorder; refuses TorchScript. Returns data.pkl.
  const detail_torch::ZipEntry& check_archive(RegularFile& f) {
    if (zip_.empty()) fail("the zip archive is empty (no data.pkl)");
    const std::size_t slash = zip_[0].name.find('/');
    if (slash == std::string::npos)
      fail("zip entry '" + printable_name(zip_[0].name) + "' is not inside a folder (torch.save's archive prefix)");
    prefix_ = zip_[0].name.substr(0, slash + 1);
    for (std::size_t k = 0; k < zip_.size(); ++k) {
      const std::string& n = zip_[k].name;
      if (n.compare(0, prefix_.size(), prefix_) != 0)
        fail("zip entry '" + printable_name(n) + "' is not under the archive's prefix '" + printable_name(prefix_) + "'");
      zip_index_.emplace(n.substr(prefix_.size()), k);
    }
    for (const auto& [n, k] : zip_index_)
      if (n == "constants.pkl" || n.compare(0, 5, "code/") == 0)
        fail("a TorchScript archive (it has " + printable_name(prefix_ + n) +
             "), not a torch.save file: heed reads state_dicts (torch.save(model.state_dict(), path))");
    const detail_torch::ZipEntry* pkl = entry("data.pkl");
    if (pkl == nullptr) fail("no " + printable_name(prefix_) + "data.pkl in the zip archive");
    if (pkl->size > kTorchMaxPickle)
      fail("data.pkl has " + std::to_string(pkl->size) + " bytes, more than the limit of " +
           std::to_string(kTorchMaxPickle));
    if (const detail_torch::ZipEntry* bo = entry("byteorder")) {
      if (bo->size > 16) fail("byteorder has " + std::to_string(bo->size) + " bytes, expected \"little\"");
      std::string s(static_cast<std::size_t>(bo->size), '\0');
      f.read_at(bo->data, s.data(), bo->size, "byteorder");
      if (crc32(s.data(), s.size()) != bo->crc) fail_crc(*bo);
      if (s == "big") fail("byteorder is \"big\": big-endian torch.save files are not supported");
      if (s != "little") fail("byteorder is \"" + printable_name(s) + "\", expected \"little\"");
    }
    return *pkl;
  }

  // ---- pickle ----------------------------------------------------------------------------

  [[noreturn]] void fail_at(std::size_t pos, const std::string& what) const {
    fail("data.pkl byte " + std::to_string(pos) + ": " + what);
  }

  std::uint32_t add(Obj o) {
    objs_.push_back(std::move(o));
    return static_cast<std::uint32_t>(objs_.size() - 1);
  }
  std::uint32_t add(Kind k, std::int64_t i = 0) {
    Obj o;
    o.kind = k;
    o.i = i;
    return add(std::move(o));
  }

  // The opcodes torch.save's pickler (protocol 2) writes, interpreted; nothing is called.
  void run(std::string_view s) {
    using namespace detail_torch;
    std::vector<std::uint32_t> st;
    std::vector<std::size_t> marks;
    std::unordered_map<std::uint32_t, std::uint32_t> memo;
    const std::uint32_t none = add(Kind::None), yes = add(Kind::Bool, 1), no = add(Kind::Bool, 0);
    const std::uint32_t empty_tuple = add(Kind::Tuple);
    std::size_t i = 0, op_at = 0;
    unsigned char op = 0;
    const auto opname = [&] { return "opcode " + hex_byte(op) + " ('" + printable_name(std::string(1, char(op))) + "')"; };
    const auto need = [&](std::size_t n) {
      if (s.size() - i < n) fail_at(op_at, opname() + " needs " + std::to_string(n) + " argument bytes: data.pkl is truncated");
      const char* p = s.data() + i;
      i += n;
      return p;
    };
    const auto floor = [&] { return marks.empty() ? std::size_t{0} : marks.back(); };
    const auto pop = [&] {
      if (st.size() <= floor()) fail_at(op_at, opname() + " pops from an empty stack");
      const std::uint32_t v = st.back();
      st.pop_back();
      return v;
    };
    const auto top = [&]() -> std::uint32_t& {
      if (st.size() <= floor()) fail_at(op_at, opname() + " needs a value on the stack");
      return st.back();
    };
    const auto pop_mark = [&] {  // the items above the last MARK, which is removed
      if (marks.empty()) fail_at(op_at, opname() + " without a MARK");
      const std::size_t m = marks.back();
      marks.pop_back();
      std::vector<std::uint32_t> items(st.begin() + static_cast<std::ptrdiff_t>(m), st.end());
      st.resize(m);
      return items;
    };
    const auto tuple = [&](std::vector<std::uint32_t> items) {
      if (items.empty()) return empty_tuple;
      Obj o;
      o.kind = Kind::Tuple;
      o.items = std::move(items);
      return add(std::move(o));
    };
    const auto str = [&](std::size_t n) {
      const char* p = need(n);
      std::string v(p, n);
      if (const std::string u = detail_st::utf8_error(v); !u.empty()) fail_at(op_at, "string is not UTF-8: " + u);
      strs_.push_back(std::move(v));
      return add(Kind::Str, static_cast<std::int64_t>(strs_.size() - 1));
    };
    const auto setitems = [&](std::uint32_t dict, const std::vector<std::uint32_t>& kv) {
      if (objs_[dict].kind != Kind::Dict)
        fail_at(op_at, opname() + " sets items on " + kind_name(objs_[dict].kind) + ", not a dict");
      if (kv.size() % 2) fail_at(op_at, "SETITEMS with an odd number of values");
      auto& items = objs_[dict].items;
      items.insert(items.end(), kv.begin(), kv.end());
    };
    const auto appends = [&](std::uint32_t list, const std::vector<std::uint32_t>& vs) {
      if (objs_[list].kind != Kind::List)
        fail_at(op_at, opname() + " appends to " + kind_name(objs_[list].kind) + ", not a list");
      auto& items = objs_[list].items;
      items.insert(items.end(), vs.begin(), vs.end());
    };
    const auto get = [&](std::uint32_t key) {
      auto it = memo.find(key);
      if (it == memo.end()) fail_at(op_at, "memo key " + std::to_string(key) + " was never stored (BINPUT)");
      st.push_back(it->second);
    };
    const auto put = [&](std::uint32_t key) { memo[key] = top(); };

    for (;;) {
      if (i >= s.size()) fail_at(i, "data.pkl ends without a STOP opcode (truncated)");
      op_at = i;
      op = static_cast<unsigned char>(s[i++]);
      switch (op) {
        case 0x80: {  // PROTO
          const unsigned v = static_cast<unsigned char>(*need(1));
          if (v != 2) fail_at(op_at, "pickle protocol " + std::to_string(v) + " is not supported (torch.save writes protocol 2)");
          break;
        }
        case '(': marks.push_back(st.size()); break;  // MARK
        case '.': {  // STOP
          if (!marks.empty() || st.size() != 1)
            fail_at(op_at, "STOP with " + std::to_string(st.size()) + " values and " + std::to_string(marks.size()) +
                               " marks on the stack, expected exactly one value");
          if (i != s.size()) fail_at(i, std::to_string(s.size() - i) + " bytes after the STOP opcode");
          root_ = st.back();
          return;
        }
        case '}': st.push_back(add(Kind::Dict)); break;   // EMPTY_DICT
        case ']': st.push_back(add(Kind::List)); break;   // EMPTY_LIST
        case ')': st.push_back(empty_tuple); break;       // EMPTY_TUPLE
        case 't': st.push_back(tuple(pop_mark())); break;  // TUPLE
        case 0x85: case 0x86: case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          std::vector<std::uint32_t> items(op - 0x84);
          for (std::size_t k = items.size(); k-- > 0;) items[k] = pop();
          st.push_back(tuple(std::move(items)));
          break;
        }
        case 's': {  // SETITEM
          const std::uint32_t v = pop(), k = pop();
          setitems(top(), {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          const std::vector<std::uint32_t> kv = pop_mark();
          setitems(top(), kv);
          break;
        }
        case 'a': {  // APPEND
          const std::uint32_t v = pop();
          appends(top(), {v});
          break;
        }
        case 'e': {  // APPENDS
          const std::vector<std::uint32_t> vs = pop_mark();
          appends(top(), vs);
          break;
        }
        case 'q': put(static_cast<unsigned char>(*need(1))); break;  // BINPUT
        case 'r': put(le32(need(4))); break;                         // LONG_BINPUT
        case 'h': get(static_cast<unsigned char>(*need(1))); break;  // BINGET
        case 'j': get(le32(need(4))); break;                         // LONG_BINGET
        case 'J': st.push_back(add(Kind::Int, static_cast<std::int32_t>(le32(need(4))))); break;  // BININT
        case 'K': st.push_back(add(Kind::Int, static_cast<unsigned char>(*need(1)))); break;      // BININT1
        case 'M': st.push_back(add(Kind::Int, le16(need(2)))); break;                             // BININT2
        case 0x8a: {  // LONG1
          const std::size_t n = static_cast<unsigned char>(*need(1));
          const char* p = need(n);
          if (n > 8) fail_at(op_at, "a " + std::to_string(n) + "-byte integer (LONG1) does not fit in 64 bits");
          std::uint64_t v = 0;
          for (std::size_t k = 0; k < n; ++k) v |= std::uint64_t{static_cast<unsigned char>(p[k])} << (8 * k);
          if (n > 0 && n < 8 && (static_cast<unsigned char>(p[n - 1]) & 0x80)) v |= ~std::uint64_t{0} << (8 * n);
          st.push_back(add(Kind::Int, static_cast<std::int64_t>(v)));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const char* p = need(8);
          std::uint64_t v = 0;
          for (int k = 0; k < 8; ++k) v = (v << 8) | static_cast<unsigned char>(p[k]);
          Obj o;
          o.kind = Kind::Float;
          o.f = std::bit_cast<double>(v);
          st.push_back(add(std::move(o)));
          break;
        }
        case 'N': st.push_back(none); break;
        case 0x88: st.push_back(yes); break;  // NEWTRUE
        case 0x89: st.push_back(no); break;   // NEWFALSE
        case 'X': st.push_back(str(le32(need(4)))); break;  // BINUNICODE
        case 'U': st.push_back(str(static_cast<unsigned char>(*need(1)))); break;  // SHORT_BINSTRING
        case 'T': {  // BINSTRING
          const std::int32_t n = static_cast<std::int32_t>(le32(need(4)));
          if (n < 0) fail_at(op_at, "BINSTRING of negative length");
          st.push_back(str(static_cast<std::size_t>(n)));
          break;
        }
        case 'c': st.push_back(global(s, i)); break;  // GLOBAL
        case 'R': {  // REDUCE
          const std::uint32_t args = pop(), fn = pop();
          st.push_back(reduce(fn, args));
          break;
        }
        case 'b': {  // BUILD: state on an OrderedDict (a state_dict's _metadata), ignored
          pop();
          const Obj& o = objs_[top()];
          if (o.kind != Kind::Dict) fail_at(op_at, std::string("BUILD on ") + kind_name(o.kind) + ", expected an OrderedDict");
          break;
        }
        case 'Q': st.push_back(persistent(pop())); break;  // BINPERSID
        default:
          fail_at(op_at, opname() + " is not one torch.save's pickler writes (refused)");
      }
    }
  }

  // GLOBAL "module\nname\n", checked against the whitelist before anything else happens.
  std::uint32_t global(std::string_view s, std::size_t& i) {
    using namespace detail_torch;
    const std::size_t at = i - 1;
    std::string parts[2];
    for (auto& part : parts) {
      const std::size_t nl = s.find('\n', i);
      if (nl == std::string_view::npos) fail_at(at, "GLOBAL without its two newline-terminated names (truncated)");
      part.assign(s.substr(i, nl - i));
      i = nl + 1;
    }
    const std::string shown = "'" + printable_name(parts[0] + " " + parts[1]) + "'";
    Obj o;
    o.kind = Kind::Global;
    if (parts[0] == "collections" && parts[1] == "OrderedDict") {
      o.i = static_cast<std::int64_t>(Global::OrderedDict);
    } else if (parts[0] == "torch._utils" && parts[1] == "_rebuild_tensor_v2") {
      o.i = static_cast<std::int64_t>(Global::RebuildTensor);
    } else if (parts[0] == "torch._utils" && parts[1] == "_rebuild_parameter") {
      o.i = static_cast<std::int64_t>(Global::RebuildParameter);
    } else if (parts[0] == "torch") {
      bool known = false;
      for (const StorageType& t : kStorages)
        if (parts[1] == t.name) {
          o.i = static_cast<std::int64_t>(Global::StorageType);
          o.dtype = t.dtype;
          known = true;
        }
      for (std::size_t u = 0; !known && u < std::size(kUnsupportedStorages); ++u)
        if (parts[1] == kUnsupportedStorages[u].name) {
          o.i = static_cast<std::int64_t>(Global::StorageType);
          o.unsupported = static_cast<int>(u);
          known = true;
        }
      if (!known) fail_at(at, "global " + shown + " is not allowed (not one torch.save's state_dicts use)");
    } else {
      fail_at(at, "global " + shown +
                      " is not allowed: only collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                      "torch._utils._rebuild_parameter and torch storages are (nothing is executed)");
    }
    return add(std::move(o));
  }

  bool is(std::uint32_t k, Kind kind) const { return objs_[k].kind == kind; }
  template <class R>  // Obj (a storage class) or StorageRec
  static std::string storage_dtype(const R& r) {
    return r.unsupported >= 0 ? std::string(detail_torch::kUnsupportedStorages[r.unsupported].name) : dtype_name(r.dtype);
  }
  const std::string& s_of(std::uint32_t k) const { return strs_[static_cast<std::size_t>(objs_[k].i)]; }

  // BINPERSID ('storage', storage_type, key, location, numel): <prefix>/data/<key>.
  std::uint32_t persistent(std::uint32_t pid) {
    using namespace detail_torch;
    const Obj& t = objs_[pid];
    if (t.kind != Kind::Tuple || t.items.size() != 5 || !is(t.items[0], Kind::Str) || s_of(t.items[0]) != "storage")
      fail("data.pkl: a persistent id that is not ('storage', type, key, location, numel)");
    const Obj& type = objs_[t.items[1]];
    if (type.kind != Kind::Global || type.i != static_cast<std::int64_t>(Global::StorageType))
      fail("data.pkl: a persistent id whose storage type is " + std::string(kind_name(type.kind)) +
           ", not a torch storage class");
    if (!is(t.items[2], Kind::Str) || !is(t.items[3], Kind::Str) || !is(t.items[4], Kind::Int) || objs_[t.items[4]].i < 0)
      fail("data.pkl: a persistent id whose key, location or numel is not a str, a str and a non-negative int");
    const std::int64_t key_str = objs_[t.items[2]].i;
    const std::string& key = strs_[static_cast<std::size_t>(key_str)];
    const auto numel = static_cast<std::uint64_t>(objs_[t.items[4]].i);
    // A key seen before is its storage again (torch.load caches storages by key too); found
    // by the str object first, so a memoised key replayed costs nothing.
    auto known = storage_by_str_.find(key_str);
    if (known == storage_by_str_.end()) {
      if (const auto it = storage_by_key_.find(key); it != storage_by_key_.end())
        known = storage_by_str_.emplace(key_str, it->second).first;
    }
    if (known != storage_by_str_.end()) {
      const StorageRec& s = storages_[known->second];
      if (s.dtype != type.dtype || s.unsupported != type.unsupported || s.numel != numel)
        fail("storage '" + printable_name(key) + "' is used as " + std::to_string(numel) + " " + storage_dtype(type) +
             " and as " + std::to_string(s.numel) + " " + storage_dtype(s) + " elements");
      return add(Kind::Storage, static_cast<std::int64_t>(known->second));
    }
    const ZipEntry* e = entry("data/" + key);
    if (e == nullptr) fail("storage '" + printable_name(key) + "': no zip entry " + printable_name(prefix_) + "data/" + printable_name(key));
    const std::uint64_t es =
        type.unsupported >= 0 ? kUnsupportedStorages[type.unsupported].element_size : dtype_size(type.dtype);
    std::uint64_t bytes = 0;
    if (!detail_tensor::mul(numel, es, bytes) || bytes != e->size)
      fail("storage '" + printable_name(key) + "' of " + std::to_string(numel) + " " + storage_dtype(type) +
           " elements needs " + (bytes || !numel ? std::to_string(bytes) : std::string("more than 2^64")) +
           " bytes, but its zip entry has " + std::to_string(e->size));
    storages_.push_back({type.dtype, e->data, numel, key, type.unsupported, es});
    const auto idx = static_cast<std::uint32_t>(storages_.size() - 1);
    storage_by_key_.emplace(key, idx);
    storage_by_str_.emplace(key_str, idx);
    return add(Kind::Storage, static_cast<std::int64_t>(idx));
  }

  std::vector<std::uint64_t> dims(std::uint32_t k, const char* what) {
    const Obj& o = objs_[k];
    if (o.kind != Kind::Tuple) fail(std::string("data.pkl: a tensor's ") + what + " is " + detail_torch::kind_name(o.kind) + ", not a tuple");
    if (o.items.size() > kTorchMaxDims)
      fail(std::string("data.pkl: a tensor's ") + what + " has " + std::to_string(o.items.size()) +
           " dimensions, more than " + std::to_string(kTorchMaxDims));
    // A tuple costs torch at least 2 bytes (MARK/TUPLE) plus 2 per entry, and a tensor around
    // it 20 more: charging 4 + n per tuple stays well within what a real data.pkl spends.
    if (o.items.size() + 4 > dims_budget_)
      fail("data.pkl: the tensors' dimensions total more than data.pkl's " + std::to_string(pickle_size_) +
           " bytes could hold (a replayed memo)");
    dims_budget_ -= o.items.size() + 4;
    std::vector<std::uint64_t> out;
    for (std::uint32_t x : o.items) {
      if (!is(x, Kind::Int) || objs_[x].i < 0)
        fail(std::string("data.pkl: a tensor's ") + what + " holds something other than non-negative ints");
      out.push_back(static_cast<std::uint64_t>(objs_[x].i));
    }
    return out;
  }

  std::uint32_t reduce(std::uint32_t fn, std::uint32_t args) {
    using namespace detail_torch;
    const Obj& f = objs_[fn];
    if (f.kind != Kind::Global) fail(std::string("data.pkl: REDUCE calls ") + kind_name(f.kind) + ", not a whitelisted global");
    if (!is(args, Kind::Tuple)) fail("data.pkl: REDUCE with arguments that are not a tuple");
    if (objs_[args].items.size() > 7)  // before the copy: a huge memoised tuple is not copied
      fail("data.pkl: REDUCE with " + std::to_string(objs_[args].items.size()) + " arguments");
    const std::vector<std::uint32_t> a = objs_[args].items;
    switch (static_cast<Global>(f.i)) {
      case Global::OrderedDict:
        if (!a.empty()) fail("data.pkl: OrderedDict() with arguments");
        return add(Kind::Dict);
      case Global::RebuildParameter:
        if (a.size() != 3 || !is(a[0], Kind::Tensor))
          fail("data.pkl: _rebuild_parameter needs (tensor, requires_grad, backward_hooks)");
        return a[0];
      case Global::RebuildTensor: break;
      case Global::StorageType: fail("data.pkl: a storage class is called (storages come only from persistent ids)");
    }
    if ((a.size() != 6 && a.size() != 7) || !is(a[0], Kind::Storage) || !is(a[1], Kind::Int) || objs_[a[1]].i < 0 ||
        !is(a[4], Kind::Bool) || !is(a[5], Kind::Dict))
      fail("data.pkl: _rebuild_tensor_v2 needs (storage, offset >= 0, size, stride, requires_grad, backward_hooks"
           "[, metadata])");
    TensorRec t;
    t.storage = static_cast<std::uint32_t>(objs_[a[0]].i);
    const StorageRec& s = storages_[t.storage];
    t.dtype = s.dtype;
    t.unsupported = s.unsupported;
    t.offset = static_cast<std::uint64_t>(objs_[a[1]].i);
    t.shape = dims(a[2], "size");
    t.stride = dims(a[3], "stride");
    const std::string what = "a tensor of shape " + detail_tensor::shape_str(t.shape) + " on storage '" +
                             printable_name(s.key) + "'";
    if (t.stride.size() != t.shape.size())
      fail("data.pkl: " + what + " has " + std::to_string(t.stride.size()) + " strides");
    std::uint64_t numel = 1, bytes = 0;
    for (std::uint64_t d : t.shape)
      if (!detail_tensor::mul(numel, d, numel)) fail("data.pkl: " + what + ": the element count overflows 64 bits");
    if (!detail_tensor::mul(numel, s.element_size, bytes)) fail("data.pkl: " + what + ": the element count overflows 64 bits");
    t.numel = numel;
    if (t.numel > 0) {
      std::uint64_t last = t.offset, expect = 1;
      for (std::size_t k = t.shape.size(); k-- > 0;) {
        std::uint64_t step = 0;
        if (!detail_tensor::mul(t.shape[k] - 1, t.stride[k], step) || last > ~std::uint64_t{0} - step)
          fail("data.pkl: " + what + ": its last element's index overflows 64 bits");
        last += step;
        if (t.shape[k] != 1 && t.stride[k] != expect) t.contiguous = false;
        expect *= t.shape[k];  // <= numel: no overflow
      }
      if (last >= s.numel)
        fail("data.pkl: " + what + " (offset " + std::to_string(t.offset) + ", strides " +
             detail_tensor::shape_str(t.stride) + ") reaches element " + std::to_string(last) + ", past the end of its " +
             std::to_string(s.numel) + "-element storage");
    }
    tensors_.push_back(std::move(t));
    return add(Kind::Tensor, static_cast<std::int64_t>(tensors_.size() - 1));
  }

  // ---- the result ------------------------------------------------------------------------

  // Flattens the top-level dict into entries_ and skipped_; returns the bytes non-contiguous
  // views will take.
  std::uint64_t plan() {
    using namespace detail_torch;
    if (!is(root_, Kind::Dict))
      fail(std::string("the top-level object is ") + kind_name(objs_[root_].kind) +
           ", not a dict (heed reads torch.save of a state_dict or of a dict of them)");
    struct Frame {
      std::uint32_t dict;
      std::string prefix;
      std::size_t pos, depth;
    };
    std::vector<Frame> frames{{root_, "", 0, 1}};
    std::vector<bool> seen(objs_.size());
    seen[root_] = true;
    const std::uint64_t name_limit = 16 * pickle_size_ + (1u << 20);
    std::uint64_t name_bytes = 0, extra = 0;
    while (!frames.empty()) {
      Frame& fr = frames.back();
      const auto& items = objs_[fr.dict].items;
      if (fr.pos >= items.size()) {
        frames.pop_back();
        continue;
      }
      const std::uint32_t key = items[fr.pos], val = items[fr.pos + 1];
      fr.pos += 2;
      std::string name;
      if (is(key, Kind::Str) || (is(key, Kind::Int) && fr.depth > 1)) {
        const std::string k = is(key, Kind::Str) ? std::string() : std::to_string(objs_[key].i);
        const std::string& ks = is(key, Kind::Str) ? s_of(key) : k;
        // Checked before the name is built: a long key reused at every level (the memo) would
        // otherwise make one name 100 times data.pkl's size.
        name_bytes += fr.prefix.size() + ks.size();
        if (name_bytes > name_limit)
          fail("data.pkl: the flattened names take more than " + std::to_string(name_limit) + " bytes");
        name = fr.prefix + ks;
      } else {
        fail("data.pkl: a key of " + std::string(fr.depth > 1 ? "a nested dict" : "the top-level dict") +
             (fr.prefix.empty() ? "" : " '" + printable_name(fr.prefix.substr(0, fr.prefix.size() - 1)) + "'") +
             " is " + kind_name(objs_[key].kind) + (fr.depth > 1 ? ", not a str or an int" : ", not a str"));
      }
      const Obj& v = objs_[val];
      if (v.kind == Kind::Tensor && tensors_[static_cast<std::size_t>(v.i)].unsupported >= 0) {
        skipped_.push_back(std::move(name));  // a bool mask, a uint8 buffer: not weights heed reads
      } else if (v.kind == Kind::Tensor) {
        const TensorRec& t = tensors_[static_cast<std::size_t>(v.i)];
        TensorInfo info;
        info.name = std::move(name);
        info.dtype = t.dtype;
        info.shape = t.shape;
        const std::uint64_t es = dtype_size(t.dtype);
        if (t.numel == 0) {
          info.begin = info.end = storages_[t.storage].data;
        } else if (t.contiguous) {
          info.begin = storages_[t.storage].data + t.offset * es;
          info.end = info.begin + t.numel * es;
        } else {
          const std::uint64_t n = t.numel * es;  // <= 2^64 (nbytes checked)
          if (n > size_ - extra)
            fail("tensor '" + printable_name(info.name) + "': gathering the non-contiguous views (" + std::to_string(extra) +
                 " + " + std::to_string(n) + " bytes) would take more than the file's " + std::to_string(size_) +
                 " bytes");
          info.begin = size_ + extra;
          info.end = info.begin + n;
          extra += n;
          gathers_.push_back({entries_.size(), static_cast<std::size_t>(v.i)});
        }
        entries_.push_back(std::move(info));
      } else if (v.kind == Kind::Dict) {
        if (seen[val]) fail("data.pkl: the dict at '" + printable_name(name) + "' is reached twice (a cycle, or a shared dict)");
        if (fr.depth >= kTorchMaxDepth)
          fail("data.pkl: dicts nested more than " + std::to_string(kTorchMaxDepth) + " deep at '" + printable_name(name) + "'");
        seen[val] = true;
        const std::size_t depth = fr.depth + 1;
        frames.push_back({val, name + ".", 0, depth});  // fr is invalid from here
      } else {
        skipped_.push_back(std::move(name));
      }
    }
    return extra;
  }

  // Copies the non-contiguous views row-major into their place after the file's bytes.
  void gather() {
    for (const auto& [entry, tensor] : gathers_) {
      const detail_torch::TensorRec& t = tensors_[tensor];
      const std::size_t es = dtype_size(t.dtype), nd = t.shape.size();
      const char* src = data_.get() + storages_[t.storage].data;
      char* dst = data_.get() + entries_[entry].begin;
      std::vector<std::uint64_t> idx(nd, 0);
      std::uint64_t at = t.offset;  // element index in the storage
      for (std::uint64_t k = 0; k < t.numel; ++k) {
        std::memcpy(dst + k * es, src + at * es, es);
        for (std::size_t d = nd; d-- > 0;) {  // odometer step, last dimension fastest
          if (++idx[d] < t.shape[d]) {
            at += t.stride[d];
            break;
          }
          at -= (t.shape[d] - 1) * t.stride[d];
          idx[d] = 0;
        }
      }
    }
  }

  std::uint64_t size_ = 0, cd_off_ = 0, pickle_size_ = 0;
  std::vector<detail_torch::ZipEntry> zip_;
  std::map<std::string, std::size_t> zip_index_;  // name without the prefix -> zip_
  std::string prefix_;                             // "archive/"
  std::vector<Obj> objs_;
  std::vector<std::string> strs_;
  std::vector<detail_torch::StorageRec> storages_;
  std::map<std::string, std::uint32_t> storage_by_key_;
  std::unordered_map<std::int64_t, std::uint32_t> storage_by_str_;  // str object -> storage
  std::uint64_t dims_budget_ = 0;
  std::vector<detail_torch::TensorRec> tensors_;
  std::uint32_t root_ = 0;
  std::vector<std::pair<std::size_t, std::size_t>> gathers_;  // (entries_ index, tensors_ index)
  std::vector<std::string> skipped_;
};

}  // namespace heed::io
