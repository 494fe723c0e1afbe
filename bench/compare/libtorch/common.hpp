// Shared by the libtorch comparison programs (one .cpp each, this header only): argument
// parsing, thread setup, the MNIST IDX reader, and the timing / peak-memory measurement of
// bench/compare/attention_torch.py, so both PyTorch sides are measured the same way.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace cmp {

// Value of "--flag N" (or "--flag=N") in argv, else `fallback`; removes nothing.
inline std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == name && i + 1 < argc) return argv[i + 1];
    if (a.rfind(name + "=", 0) == 0) return a.substr(name.size() + 1);
  }
  return fallback;
}

// argv without the "--flag value" pairs, so positional arguments can be read in order.
inline std::vector<std::string> positional(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      if (a.find('=') == std::string::npos) ++i;  // skip its value
      continue;
    }
    out.push_back(a);
  }
  return out;
}

// Intra-op threads as asked; one inter-op thread (these programs never run ops in parallel, and
// an idle inter-op pool would only add threads). set_num_interop_threads may be called only
// before any parallel work has started, hence first thing in main.
inline void set_threads(int n) {
  try {
    at::set_num_interop_threads(1);
  } catch (const std::exception&) {
    // already started: keep the default
  }
  torch::set_num_threads(n);
}

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// An IDX file (big-endian header: magic whose low byte is the rank, then the dims) as a uint8
// tensor of those dims.
inline torch::Tensor read_idx(const std::string& path) {
  const auto bytes = read_file(path);
  auto be32 = [&](std::size_t off) {
    return (std::uint32_t(bytes.at(off)) << 24) | (std::uint32_t(bytes.at(off + 1)) << 16) |
           (std::uint32_t(bytes.at(off + 2)) << 8) | std::uint32_t(bytes.at(off + 3));
  };
  const int ndim = int(be32(0) & 0xff);
  std::vector<int64_t> dims;
  std::size_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    dims.push_back(int64_t(be32(4 + 4 * i)));
    count *= std::size_t(dims.back());
  }
  const std::size_t off = 4 + 4 * std::size_t(ndim);
  if (bytes.size() < off + count) throw std::runtime_error(path + ": truncated");
  auto t = torch::empty(dims, torch::kUInt8);
  std::copy(bytes.begin() + long(off), bytes.begin() + long(off + count), t.data_ptr<uint8_t>());
  return t;
}

// Images as float (N, shape...) normalised (x/255 - 0.5)/0.5, labels as int64, as the Python
// twins' load().
inline std::pair<torch::Tensor, torch::Tensor> load_mnist(const std::string& dir, const std::string& prefix,
                                                          std::vector<int64_t> shape) {
  auto x = read_idx(dir + "/" + prefix + "-images-idx3-ubyte");
  auto y = read_idx(dir + "/" + prefix + "-labels-idx1-ubyte").to(torch::kLong);
  shape.insert(shape.begin(), x.size(0));
  x = (x.reshape(shape).to(torch::kFloat) / 255 - 0.5) / 0.5;
  return {x, y};
}

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline long status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = key;
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::atol(line.c_str() + k.size());
  return -1;
}

// As attention_torch.py (and heed's bench_attention): a fixed mmap threshold so freed big
// blocks go back to the system, malloc_trim before each measurement, then the peak RSS reset
// through /proc/self/clear_refs and VmHWM - VmRSS around one call (the warm-up). -1 when
// clear_refs cannot be written.
inline void fix_mmap_threshold() { mallopt(M_MMAP_THRESHOLD, 128 * 1024); }

inline double peak_extra_mib(const std::function<void()>& fn) {
  malloc_trim(0);
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f || std::fputs("5", f) < 0 || std::fclose(f) != 0) {
    fn();
    return -1.0;
  }
  const long before = status_kib("VmRSS:");
  fn();
  return double(status_kib("VmHWM:") - before) / 1024.0;
}

struct Timing {
  double seconds;  // median
  int calls;
  double peak_extra_mib;
};

// One warm-up call (measured for memory), then timed calls until min_time seconds and at least
// `reps` calls (at most 1000); the median.
inline Timing timed(const std::function<void()>& fn, int reps, double min_time) {
  const double extra = peak_extra_mib(fn);
  std::vector<double> times;
  const double start = now();
  while (int(times.size()) < reps || (now() - start < min_time && times.size() < 1000)) {
    const double t0 = now();
    fn();
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  const std::size_t n = times.size();
  const double median = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  return {median, int(n), extra};
}

inline double mem_available_mib() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  long kib = 0;
  while (f >> key) {
    if (key == "MemAvailable:") {
      f >> kib;
      return double(kib) / 1024.0;
    }
    f.ignore(1 << 10, '\n');
  }
  return 0;
}

// The result list of attention_torch.py / transformer_torch.py, written as json.dump(...,
// indent=1) writes it: {"torch": version, "threads": n, "results": [...]}.
struct Results {
  std::vector<std::string> items;

  void add(const std::string& name, const Timing& t) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "  {\n   \"name\": \"%s\",\n   \"seconds\": %.17g,\n   \"calls\": %d,\n"
                  "   \"peak_extra_MiB\": %.17g\n  }",
                  name.c_str(), t.seconds, t.calls, t.peak_extra_mib);
    items.emplace_back(buf);
    std::printf("%s: median %.2f ms over %d calls, peak extra %.0f MiB\n", name.c_str(), t.seconds * 1e3,
                t.calls, t.peak_extra_mib);
    std::fflush(stdout);
  }
  void skip(const std::string& name, double need, double budget) {
    items.push_back("  {\n   \"name\": \"" + name + "\",\n   \"skipped\": true\n  }");
    std::printf("%s: skipped, needs ~%.0f MiB, budget %.0f MiB\n", name.c_str(), need, budget);
    std::fflush(stdout);
  }
  void write(const std::string& path, int threads) const {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + path);
    std::fprintf(f, "{\n \"torch\": \"%s\",\n \"threads\": %d,\n \"results\": [\n", TORCH_VERSION, threads);
    for (std::size_t i = 0; i < items.size(); ++i)
      std::fprintf(f, "%s%s\n", items[i].c_str(), i + 1 < items.size() ? "," : "");
    std::fprintf(f, " ]\n}\n");
    std::fclose(f);
  }
};

inline std::vector<int64_t> parse_lens(const std::string& s) {
  std::vector<int64_t> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t comma = s.find(',', pos);
    out.push_back(std::stoll(s.substr(pos, comma - pos)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace cmp
