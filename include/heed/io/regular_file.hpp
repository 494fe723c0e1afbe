#pragma once
// Opening a file heed reads (a checkpoint, an IDX file) without trusting what the path names.
// A FIFO with no writer would block open() and read() forever, /dev/zero never ends, and a
// directory "opens" as a stream that fails later with std::ios_base::failure. So:
//   1. stat(path) first: anything but a regular file is refused before it is opened;
//   2. open(O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), so even a path swapped for a FIFO
//      between 1 and 2 cannot block, then fstat() the descriptor and check again;
//   3. the caller learns size() before reading, reads the header, checks it against size(),
//      and only then allocates and reads the payload (read_exact).
// Every failure is an IoError "<ctx>: <what>", ctx naming the caller and the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "../core/error.hpp"

namespace heed::io {

// What a non-regular file is, for the message ("a directory", "a FIFO", ...).
inline const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

class RegularFile {
 public:
  // ctx prefixes every message, e.g. "load: 'run.heed'".
  RegularFile(const std::string& path, std::string ctx) : ctx_(std::move(ctx)) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) fail_errno("cannot open");
    refuse_unless_regular(st.st_mode);
    do {
      fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) fail_errno("cannot open");
    if (::fstat(fd_, &st) != 0) {
      const int err = errno;
      ::close(fd_);
      errno = err;
      fail_errno("cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      refuse_unless_regular(st.st_mode);
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  ~RegularFile() { ::close(fd_); }

  std::uint64_t size() const { return size_; }

  // Reads exactly n bytes at the current position; a file that ends early (it shrank after
  // size() was taken) is an IoError, as is any read error.
  void read_exact(void* dst, std::uint64_t n, const char* what) {
    read_loop(dst, n, what, [this](char* p, std::size_t k, std::uint64_t) { return ::read(fd_, p, k); });
  }

  // Reads exactly n bytes at `offset` (pread: the position read_exact uses is not moved);
  // the caller checks offset + n against size() first. Errors as read_exact's.
  void read_at(std::uint64_t offset, void* dst, std::uint64_t n, const char* what) {
    read_loop(dst, n, what, [this, offset](char* p, std::size_t k, std::uint64_t done) {
      return ::pread(fd_, p, k, static_cast<off_t>(offset + done));
    });
  }

 private:
  // Calls read_some(dst + done, chunk, done) until n bytes are in, retrying EINTR.
  template <class ReadSome>
  void read_loop(void* dst, std::uint64_t n, const char* what, ReadSome read_some) {
    auto* p = static_cast<char*>(dst);
    std::uint64_t done = 0;
    while (done < n) {
      const std::uint64_t chunk = std::min<std::uint64_t>(n - done, 1u << 30);
      const ssize_t got = read_some(p + done, static_cast<std::size_t>(chunk), done);
      if (got < 0) {
        if (errno == EINTR) continue;
        fail_errno((std::string("read of the ") + what + " failed").c_str());
      }
      if (got == 0)
        throw IoError(ctx_ + ": read of the " + what + " ended after " + std::to_string(done) +
                      " of " + std::to_string(n) + " bytes (the file shrank while being read)");
      done += static_cast<std::uint64_t>(got);
    }
  }

  [[noreturn]] void fail_errno(const char* what) const {
    throw IoError(ctx_ + ": " + what + ": " + std::strerror(errno));
  }
  void refuse_unless_regular(mode_t mode) const {
    if (!S_ISREG(mode))
      throw IoError(ctx_ + ": is " + file_kind(mode) + ", expected a regular file");
  }

  std::string ctx_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace heed::io
