#pragma once
// Crash-safe file replacement: write to a temporary file in the target's directory, fsync it,
// rename it over the target, fsync the directory. A crash or a full disk at any point leaves
// either the old file or the new one, never a mix. On any error an IoError names the path and
// the system's reason, the target is unchanged and the temporary is removed.
//
// What the new file looks like (POSIX):
//  * Permissions. Replacing an existing file keeps its permission bits (rwx for user, group,
//    other; setuid/setgid/sticky are not carried over). The temporary is created 0600 and
//    fchmod'ed before any byte is written, so the data is never readable by more users than
//    the old file allowed. Owner and group are kept when the process may set them (root; or a
//    group the user belongs to); otherwise the file is owned by the saving user, as any newly
//    created file is, and if the group could not be kept its group bits are cut to those that
//    "other" also has, so no member of the new group can gain access. ACLs and extended
//    attributes are not copied. A new file gets 0666 filtered by the umask (and the directory's
//    default ACL, if any): the temporary is created with open(O_CREAT, 0666), so the kernel
//    applies the umask exactly as for any open(). This reads no process-global state, so it
//    cannot race with other threads the way umask(x); umask(old) would.
//  * Symbolic links are followed: saving to a link writes atomically to the link's final
//    target (resolved with realpath(3)); the link itself is left alone, and the temporary is
//    made in the target's directory so the rename stays on one file system. A dangling link
//    (its target does not exist) is refused with an IoError instead of creating a file at
//    whatever place it names (often an unmounted disk or a moved folder). Hard links are not
//    preserved: the other names keep the old contents, as with every rename-based save.
//  * An existing target that is not a regular file (a directory, FIFO, device, socket) is
//    refused before anything is written.
//
// Temporaries and kills. The temporary is "<name>.heed-tmp.<pid>.<6 random alphanumerics>",
// and the writer holds flock(LOCK_EX) on it from creation until after the rename. A process
// that is killed mid-save loses its lock with its last descriptor, so the next save of the
// same target removes every file matching exactly that pattern which it can lock: its writer is
// gone. Deciding by the lock rather than by the PID is immune to PID reuse; the PID in the name
// is there for people, and so that a process never removes its own temporaries (on NFS, flock
// is emulated with fcntl locks, which do not exclude the same process). Nothing else is ever
// removed: not old-style "<name>.tmp.*" files, not other targets' temporaries, not names that
// differ from the pattern in any character, and not symlinks or non-regular files. A writer
// that finds its fresh temporary taken by such a cleanup (the instant between open and flock)
// simply makes another. The cleanup is best-effort and never makes a save fail; it scans the
// target's directory once per save.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "regular_file.hpp"  // file_kind

namespace heed::io {

namespace detail {

inline constexpr std::string_view kTempTag = ".heed-tmp.";
inline constexpr int kTempRandomChars = 6;

inline bool is_alnum_ascii(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// True when `name` is exactly "<base>.heed-tmp.<pid>.<6 alphanumerics>"; sets `pid`.
inline bool parse_temp_name(std::string_view name, std::string_view base, long& pid) {
  if (name.size() <= base.size() + kTempTag.size() || name.substr(0, base.size()) != base ||
      name.substr(base.size(), kTempTag.size()) != kTempTag)
    return false;
  std::string_view rest = name.substr(base.size() + kTempTag.size());
  std::size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  if (digits == 0 || digits > 10 || rest.size() != digits + 1 + kTempRandomChars || rest[digits] != '.')
    return false;
  for (char c : rest.substr(digits + 1))
    if (!is_alnum_ascii(c)) return false;
  pid = 0;
  for (char c : rest.substr(0, digits)) pid = pid * 10 + (c - '0');
  return true;
}

inline std::string temp_name(std::string_view base) {
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t x = static_cast<std::uint64_t>(
                        std::chrono::steady_clock::now().time_since_epoch().count()) ^
                    (static_cast<std::uint64_t>(::getpid()) << 32) ^
                    (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull) ^
                    reinterpret_cast<std::uintptr_t>(&counter);
  // splitmix64: names only need to differ (O_EXCL catches collisions), not be secret.
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string name(base);
  name += kTempTag;
  name += std::to_string(::getpid());
  name += '.';
  for (int i = 0; i < kTempRandomChars; ++i) {
    name += alphabet[x % 62];
    x /= 62;
  }
  return name;
}

inline bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Removes the temporaries of `base` in directory `dirfd` whose writer is gone (see the header
// comment). Best-effort: every error just skips the file.
inline void remove_stale_temps(int dirfd, const std::string& base) {
  const int scan_fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (scan_fd < 0) return;
  DIR* d = ::fdopendir(scan_fd);
  if (d == nullptr) {
    ::close(scan_fd);
    return;
  }
  std::vector<std::string> candidates;  // collected first: no unlinking while readdir runs
  long pid = 0;
  while (const dirent* e = ::readdir(d))
    if (parse_temp_name(e->d_name, base, pid) && pid != static_cast<long>(::getpid()))
      candidates.emplace_back(e->d_name);
  ::closedir(d);
  for (const std::string& name : candidates) {
    struct stat before {};
    // Only regular files, and never opened through a link: opening a device can have effects.
    if (::fstatat(dirfd, name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(before.st_mode))
      continue;
    // O_RDWR: an exclusive flock on NFS (an fcntl lock there) needs a writable descriptor.
    const int fd = ::openat(dirfd, name.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat opened {}, now {};
    if (::fstat(fd, &opened) == 0 && same_file(opened, before) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::fstatat(dirfd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 && same_file(now, opened))
      ::unlinkat(dirfd, name.c_str(), 0);  // locked by us: its writer died
    ::close(fd);
  }
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

}  // namespace detail

inline void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string err_prefix = "save: ";
  // Resolve the file that will really be replaced.
  std::string target = path;
  std::string shown = "'" + path + "'";  // how messages name the target
  struct stat st {};
  bool exists = false;
  if (::lstat(path.c_str(), &st) == 0) {
    exists = true;
    if (S_ISLNK(st.st_mode)) {
      char* resolved = ::realpath(path.c_str(), nullptr);
      if (resolved == nullptr) {
        const int err = errno;
        if (err == ENOENT) {
          std::string link(4096, '\0');
          const ssize_t n = ::readlink(path.c_str(), link.data(), link.size());
          link.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
          throw IoError(err_prefix + "'" + path + "' is a symbolic link to '" + link +
                        "', which does not exist (dangling link: " + std::strerror(err) +
                        "); refusing to create a file through it; save to the real path or remove "
                        "the link");
        }
        throw IoError(err_prefix + "cannot resolve the symbolic link '" + path + "': " + std::strerror(err));
      }
      target = resolved;
      std::free(resolved);
      shown = "'" + path + "' (a link to '" + target + "')";
      if (::stat(target.c_str(), &st) != 0)
        throw IoError(err_prefix + "cannot stat " + shown + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
      throw IoError(err_prefix + shown + " is " + file_kind(st.st_mode) +
                    ", not a regular file; refusing to replace it");
  } else if (errno != ENOENT) {
    throw IoError(err_prefix + "cannot stat '" + path + "': " + std::strerror(errno));
  }

  const auto slash = target.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  if (base.empty() || base == "." || base == "..")
    throw IoError(err_prefix + "'" + path + "' names a directory, not a file");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    throw IoError(err_prefix + "cannot open the directory '" + dir + "' of " + shown + ": " + std::strerror(errno));
  const detail::FdCloser dir_closer(dfd);

  detail::remove_stale_temps(dfd, base);

  // Create and lock the temporary. Existing target: 0600 now, its mode below, before writing.
  // New file: 0666 and the kernel applies the umask / default ACL, as for any open(O_CREAT).
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = detail::temp_name(base);
    fd = ::openat(dfd, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, exists ? 0600 : 0666);
    if (fd < 0) {
      if (errno == EEXIST || errno == EINTR) continue;
      throw IoError(err_prefix + "cannot create a temporary file next to " + shown + ": " + std::strerror(errno));
    }
    int rc;
    do rc = ::flock(fd, LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    // Locked by someone else: another save's cleanup grabbed it in the instant before our lock
    // and will unlink it. (Other flock errors, e.g. no lock support, just mean no lock.)
    const bool stolen = rc != 0 && errno == EWOULDBLOCK;
    struct stat mine {}, named {};
    if (stolen || ::fstat(fd, &mine) != 0 || ::fstatat(dfd, tmp.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 ||
        !detail::same_file(mine, named)) {
      ::close(fd);  // not ours any more (or gone): never unlink the name
      fd = -1;
    }
  }
  if (fd < 0)
    throw IoError(err_prefix + "cannot create a temporary file next to " + shown + ": every name was taken");

  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlinkat(dfd, tmp.c_str(), 0);
    throw IoError(err_prefix + what + " '" + dir + "/" + tmp + "' failed: " + std::strerror(err) + "; " + shown +
                  " is unchanged");
  };

  if (exists) {
    struct stat made {};
    if (::fstat(fd, &made) != 0) fail("stat of");
    bool group_kept = made.st_gid == st.st_gid;
    if (!group_kept) group_kept = ::fchown(fd, static_cast<uid_t>(-1), st.st_gid) == 0;
    if (made.st_uid != st.st_uid && ::fchown(fd, st.st_uid, static_cast<gid_t>(-1)) != 0) {
      // Not permitted (not root): the saving user owns the new file, as with any new file.
    }
    mode_t mode = st.st_mode & 0777;
    if (!group_kept) mode &= 0707 | ((mode & 07) << 3);  // group bits: only those "other" has too
    if (::fchmod(fd, mode) != 0) fail("setting the permissions of");
  }

  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync of");
  // Still holding the lock, so no other save's cleanup can take the temporary before the rename.
  if (::renameat(dfd, tmp.c_str(), dfd, base.c_str()) != 0) fail("renaming to the target");
  // The data is already on stable storage (fsync succeeded); close only releases the lock. Its
  // error, if any, cannot concern the data, and the target has been replaced already.
  ::close(fd);
  // Make the rename itself durable.
  ::fsync(dfd);
}

}  // namespace heed::io
