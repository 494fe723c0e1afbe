// write_file_atomic's side effects: the mode of a replaced file, the umask for a new one,
// symlinks followed (dangling ones refused), non-regular targets refused, and the temporaries of
// killed writers removed while those of live writers and every look-alike name are kept.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <heed/activations.hpp>
#include <heed/io.hpp>
#include <heed/layers.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/scratch.hpp"
using heed_test::slurp;
using heed_test::spit;

namespace fs = std::filesystem;
using heed::io::write_file_atomic;

namespace {

// A fresh, empty folder per test, so directory scans see only what the test made.
fs::path fresh_dir(const std::string& name) {
  const fs::path d = heed_test::scratch("atomic_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}


mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

struct UmaskGuard {
  mode_t old;
  explicit UmaskGuard(mode_t m) : old(::umask(m)) {}
  ~UmaskGuard() { ::umask(old); }
};

// Names in `dir` containing ".heed-tmp." (temporaries of this implementation).
std::vector<std::string> temps_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".heed-tmp.") != std::string::npos)
      out.push_back(e.path().filename().string());
  return out;
}

// Opens (creating) `p` and takes the writer's lock on it, as a save in progress does.
int open_locked(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDWR | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  return fd;
}

// The pid of a child that has already exited and been reaped: no process has it (for now).
pid_t dead_pid() {
  const pid_t c = ::fork();
  REQUIRE(c >= 0);
  if (c == 0) ::_exit(0);
  int status = 0;
  ::waitpid(c, &status, 0);
  return c;
}

heed::Sequential<float> small_net(std::uint64_t seed) {
  heed::Generator g(seed);
  heed::Sequential<float> m;
  m.emplace<heed::Linear<float>>(4, 3, true, g);
  m.emplace<heed::ReLU<float>>();
  return m;
}

}  // namespace

TEST_CASE("replacing a file keeps its permission bits, whatever the umask") {
  const fs::path dir = fresh_dir("mode_kept");
  const UmaskGuard strict(077);  // the old code's mkstemp gave 0600; the umask must not matter either
  for (const mode_t m : {mode_t{0644}, mode_t{0640}, mode_t{0600}, mode_t{0755}, mode_t{0444}}) {
    CAPTURE(m);
    const fs::path p = dir / "model.bin";
    spit(p, "old");
    REQUIRE(::chmod(p.c_str(), m) == 0);
    write_file_atomic(p.string(), "new contents");
    CHECK(slurp(p) == "new contents");
    CHECK(mode_of(p) == m);
  }
  CHECK(temps_in(dir).empty());
}

TEST_CASE("replacing a file as root keeps its owner and group") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to own a file as another user");
    return;
  }
  const fs::path p = fresh_dir("owner_kept") / "model.bin";
  spit(p, "old");
  REQUIRE(::chown(p.c_str(), 65534, 65534) == 0);
  REQUIRE(::chmod(p.c_str(), 0640) == 0);
  write_file_atomic(p.string(), "new");
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK(st.st_uid == 65534);
  CHECK(st.st_gid == 65534);
  CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("a group that cannot be kept gets no more access than others") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to drop to another user");
    return;
  }
  const fs::path dir = fresh_dir("group_lost");
  REQUIRE(::chmod(dir.c_str(), 0777) == 0);
  const fs::path p = dir / "model.bin";
  // .first/.second, not a structured binding: clang 14 cannot CAPTURE a binding.
  for (const auto& modes : {std::pair<mode_t, mode_t>{0640, 0600}, {0664, 0644}, {0606, 0606}, {0674, 0644}}) {
    const mode_t before = modes.first, after = modes.second;
    CAPTURE(before);
    spit(p, "old");
    REQUIRE(::chown(p.c_str(), 65534, 0) == 0);  // the saver's file, in a group it is not in
    REQUIRE(::chmod(p.c_str(), before) == 0);
    const pid_t c = ::fork();
    REQUIRE(c >= 0);
    if (c == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
      try {
        write_file_atomic(p.string(), "new");
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(c, &status, 0) == c);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    CHECK(slurp(p) == "new");
    CHECK(st.st_uid == 65534);
    CHECK(st.st_gid == 65534);  // not group 0: an unprivileged user cannot give it away
    CHECK((st.st_mode & 0777) == after);
  }
}

TEST_CASE("a new file gets 0666 minus the umask, like open(O_CREAT)") {
  const fs::path dir = fresh_dir("umask");
  for (const mode_t mask : {mode_t{022}, mode_t{027}, mode_t{002}, mode_t{077}}) {
    CAPTURE(mask);
    const fs::path p = dir / ("new_" + std::to_string(mask) + ".bin");
    {
      const UmaskGuard g(mask);
      write_file_atomic(p.string(), "fresh");
    }
    CHECK(slurp(p) == "fresh");
    CHECK(mode_of(p) == (0666 & ~mask));
  }
  CHECK(temps_in(dir).empty());
}

TEST_CASE("heed::save and Checkpoint::save keep the mode of the file they replace") {
  const fs::path dir = fresh_dir("public_api");
  const UmaskGuard strict(077);
  const fs::path p = dir / "model.heed";
  auto a = small_net(1);
  heed::save(a, p.string());
  REQUIRE(::chmod(p.c_str(), 0644) == 0);
  heed::save(small_net(2), p.string());
  CHECK(mode_of(p) == 0644);
  REQUIRE(::chmod(p.c_str(), 0640) == 0);
  int epoch = 3;
  heed::Checkpoint<float>().model(a).value("epoch", epoch).save(p.string());
  CHECK(mode_of(p) == 0640);
  auto b = small_net(9);
  int e2 = 0;
  heed::Checkpoint<float>().model(b).value("epoch", e2).load(p.string());
  CHECK(e2 == 3);
  CHECK(*b.parameters()[0].value == *a.parameters()[0].value);
  CHECK(temps_in(dir).empty());
}

TEST_CASE("saving through a symlink updates its target and keeps the link") {
  const fs::path dir = fresh_dir("symlink");
  const fs::path store = dir / "store";
  fs::create_directories(store);
  const fs::path real = store / "run3.bin";
  spit(real, "old");
  REQUIRE(::chmod(real.c_str(), 0644) == 0);
  const fs::path link = dir / "model.bin";
  fs::create_symlink("store/run3.bin", link);  // relative, into another directory
  const fs::path link2 = dir / "latest.bin";
  fs::create_symlink("model.bin", link2);  // a chain: latest -> model -> store/run3
  const UmaskGuard strict(077);

  write_file_atomic(link.string(), "v2");
  CHECK(fs::is_symlink(fs::symlink_status(link)));
  CHECK(fs::read_symlink(link) == "store/run3.bin");
  CHECK(slurp(real) == "v2");
  CHECK(mode_of(real) == 0644);

  write_file_atomic(link2.string(), "v3");
  CHECK(fs::is_symlink(fs::symlink_status(link2)));
  CHECK(fs::is_symlink(fs::symlink_status(link)));
  CHECK(slurp(real) == "v3");
  CHECK(temps_in(dir).empty());
  CHECK(temps_in(store).empty());

  // Through the public API too.
  heed::save(small_net(4), link.string());
  CHECK(fs::is_symlink(fs::symlink_status(link)));
  auto back = small_net(5);
  heed::load(back, real.string());
  CHECK(*back.parameters()[0].value == *small_net(4).parameters()[0].value);
}

TEST_CASE("a dangling symlink is refused and left as it is") {
  const fs::path dir = fresh_dir("dangling");
  const fs::path link = dir / "model.bin";
  fs::create_symlink("gone/run.bin", link);
  CHECK_THROWS_WITH_AS(write_file_atomic(link.string(), "x"),
                       doctest::Contains("is a symbolic link to 'gone/run.bin', which does not exist"),
                       heed::IoError);
  CHECK_THROWS_WITH_AS(write_file_atomic(link.string(), "x"), doctest::Contains(link.string().c_str()),
                       heed::IoError);
  CHECK(fs::is_symlink(fs::symlink_status(link)));
  CHECK(fs::read_symlink(link) == "gone/run.bin");
  CHECK(!fs::exists(dir / "gone"));
  CHECK(temps_in(dir).empty());
  // A link loop is refused as well, with the system's reason.
  const fs::path loop = dir / "loop.bin";
  fs::create_symlink("loop.bin", loop);
  CHECK_THROWS_WITH_AS(write_file_atomic(loop.string(), "x"), doctest::Contains(std::strerror(ELOOP)),
                       heed::IoError);
  CHECK(fs::is_symlink(fs::symlink_status(loop)));
}

TEST_CASE("a directory, a FIFO or a link to a directory is refused before anything is written") {
  const fs::path dir = fresh_dir("non_regular");
  const fs::path sub = dir / "model.bin";
  fs::create_directories(sub);
  CHECK_THROWS_WITH_AS(write_file_atomic(sub.string(), "x"),
                       doctest::Contains("is a directory, not a regular file; refusing to replace it"),
                       heed::IoError);
  CHECK(fs::is_directory(sub));
  const fs::path fifo = dir / "pipe.bin";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  CHECK_THROWS_WITH_AS(write_file_atomic(fifo.string(), "x"), doctest::Contains("is a FIFO (named pipe), not a regular file"),
                       heed::IoError);
  CHECK(fs::is_fifo(fs::symlink_status(fifo)));
  const fs::path link = dir / "dirlink.bin";
  fs::create_directory_symlink("model.bin", link);
  CHECK_THROWS_WITH_AS(write_file_atomic(link.string(), "x"), doctest::Contains("is a directory"), heed::IoError);
  CHECK(fs::is_symlink(fs::symlink_status(link)));
  CHECK(temps_in(dir).empty());
  CHECK(temps_in(sub).empty());
}

TEST_CASE("the temporary of a killed writer is removed by the next save; look-alike names are kept") {
  const fs::path dir = fresh_dir("stale");
  const fs::path target = dir / "model.heed";
  spit(target, "old");
  // A writer killed mid-save: it made and locked its temporary, wrote part of it, then died.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const std::string name = target.string() + ".heed-tmp." + std::to_string(::getpid()) + ".Ab3xZ9";
    const int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::write(fd, "partial", 7) != 7) ::_exit(1);
    ::raise(SIGKILL);
    ::_exit(2);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  const fs::path stale = dir / ("model.heed.heed-tmp." + std::to_string(child) + ".Ab3xZ9");
  REQUIRE(fs::exists(stale));
  // A second stale one, never locked (its writer died before the lock).
  const fs::path stale2 = dir / ("model.heed.heed-tmp." + std::to_string(dead_pid()) + ".q0Q0q0");
  spit(stale2, "partial");

  // Look-alikes that must survive although nobody holds a lock on them.
  const std::vector<std::string> keep = {
      "model.heed.tmp.Ab3xZ9",             // the old naming scheme
      "model.heed.heed-tmp.123.Ab3xZ",     // 5 random characters
      "model.heed.heed-tmp.123.Ab3xZ90",   // 7 random characters
      "model.heed.heed-tmp.123.Ab3-Z9",    // not alphanumeric
      "model.heed.heed-tmp..Ab3xZ9",       // no pid
      "model.heed.heed-tmp.12a.Ab3xZ9",    // pid not a number
      "model.heed.heed-tmp.123.Ab3xZ9~",   // trailing character
      "xmodel.heed.heed-tmp.123.Ab3xZ9",   // another target
      "odel.heed.heed-tmp.123.Ab3xZ9",     // another target
      "model.heed.heed-tmp.123.Ab3xZ9.bak",
      "model.heed.heed-tmp.backup",
      "other.heed.heed-tmp.123.Ab3xZ9",    // another target's stale temporary
  };
  for (const auto& k : keep) spit(dir / k, "keep me");
  const fs::path dir_alike = dir / "model.heed.heed-tmp.123.dirdir";  // right pattern, a directory
  fs::create_directories(dir_alike);
  const fs::path other_file = dir / "elsewhere.bin";
  spit(other_file, "precious");
  const fs::path link_alike = dir / "model.heed.heed-tmp.123.linkzz";  // right pattern, a symlink
  fs::create_symlink("elsewhere.bin", link_alike);

  write_file_atomic(target.string(), "new");
  CHECK(slurp(target) == "new");
  CHECK(!fs::exists(stale));
  CHECK(!fs::exists(stale2));
  for (const auto& k : keep) {
    CAPTURE(k);
    CHECK(slurp(dir / k) == "keep me");
  }
  CHECK(fs::is_directory(dir_alike));
  CHECK(fs::is_symlink(fs::symlink_status(link_alike)));
  CHECK(slurp(other_file) == "precious");
}

TEST_CASE("the temporary of a live writer is kept until its lock goes away") {
  const fs::path dir = fresh_dir("live");
  const fs::path target = dir / "model.heed";
  spit(target, "old");
  // Another process in the middle of a save: it holds the lock, then waits for us.
  int ready[2], go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(go[1]);
    const std::string name = target.string() + ".heed-tmp." + std::to_string(::getpid()) + ".LiVe01";
    const int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) ::_exit(1);
    char c = 'r';
    if (::write(ready[1], &c, 1) != 1) ::_exit(1);
    while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);  // dies without removing its temporary
  }
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  const fs::path live = dir / ("model.heed.heed-tmp." + std::to_string(child) + ".LiVe01");
  REQUIRE(fs::exists(live));

  // Held in this process under a name whose pid is dead: the lock, not the pid, decides.
  const fs::path held = dir / ("model.heed.heed-tmp." + std::to_string(dead_pid()) + ".HeLd02");
  const int held_fd = open_locked(held);

  write_file_atomic(target.string(), "v2");
  CHECK(slurp(target) == "v2");
  CHECK(fs::exists(live));
  CHECK(fs::exists(held));

  ::close(go[1]);  // let the child exit: its lock goes with it
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  ::close(ready[0]);
  ::close(held_fd);
  write_file_atomic(target.string(), "v3");
  CHECK(slurp(target) == "v3");
  CHECK(!fs::exists(live));
  CHECK(!fs::exists(held));
  CHECK(temps_in(dir).empty());
}

TEST_CASE("a failed save removes its temporary and leaves the target and its mode unchanged") {
  const fs::path dir = fresh_dir("failure");
  const fs::path p = dir / "model.bin";
  spit(p, "old");
  REQUIRE(::chmod(p.c_str(), 0640) == 0);
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit small = old;
  small.rlim_cur = 16;
  setrlimit(RLIMIT_FSIZE, &small);
  CHECK_THROWS_WITH_AS(write_file_atomic(p.string(), std::string(4096, 'x')),
                       doctest::Contains("is unchanged"), heed::IoError);
  setrlimit(RLIMIT_FSIZE, &old);
  CHECK(slurp(p) == "old");
  CHECK(mode_of(p) == 0640);
  CHECK(temps_in(dir).empty());
  CHECK_THROWS_WITH_AS(write_file_atomic((dir / "no-such-dir" / "x.bin").string(), "x"),
                       doctest::Contains(std::strerror(ENOENT)), heed::IoError);
}

TEST_CASE("concurrent saves of one target from several processes never remove each other's temporary") {
  const fs::path dir = fresh_dir("concurrent");
  const fs::path target = dir / "model.heed";
  constexpr int kWriters = 3, kSaves = 60;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    const pid_t c = ::fork();
    REQUIRE(c >= 0);
    if (c == 0) {
      const std::string payload(32 * 1024, static_cast<char>('a' + w));
      try {
        for (int i = 0; i < kSaves; ++i) write_file_atomic(target.string(), payload);
      } catch (...) {
        ::_exit(1);  // a writer whose temporary was taken fails its rename
      }
      ::_exit(0);
    }
    children.push_back(c);
  }
  bool all_ok = true;
  for (const pid_t c : children) {
    int status = 0;
    REQUIRE(::waitpid(c, &status, 0) == c);
    all_ok = all_ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  CHECK(all_ok);
  const std::string final_bytes = slurp(target);
  REQUIRE(final_bytes.size() == 32 * 1024);
  CHECK(final_bytes == std::string(final_bytes.size(), final_bytes[0]));
  CHECK(temps_in(dir).empty());
}
