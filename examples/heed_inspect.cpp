// heed_inspect FILE...: what a weights file holds, without a model.
//
//   heed_inspect model.safetensors      # safetensors: metadata, then name dtype shape bytes
//   heed_inspect model.pt               # torch.save state_dict (zip): tensors, skipped values
//   heed_inspect run.heed               # heed checkpoint: version, scalar, CRC-32, entries
//
// The format comes from the file's content, never its name. Every file is validated by the
// same readers heed's loaders use (values aside: a safetensors file is listed from its header,
// so a value load_weights would refuse, an F64 beyond float's range say, is not seen), and a
// file it refuses gets the loader's reason: `heed_inspect: FILE: reason`
// on stderr and exit code 1 (2 for bad usage). Only regular files are opened (a FIFO or a
// device is refused without blocking). Memory: a safetensors file is read for its header only,
// and checked against its size, so a file larger than memory lists in milliseconds; a heed
// checkpoint's checksum is verified streaming (1 MiB at a time) before the file is read whole;
// a torch.save file is read whole (at most its size) once its zip directory is checked.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <heed/io.hpp>
#include <string>
#include <vector>

namespace {

namespace io = heed::io;

std::string shape_str(const std::vector<std::uint64_t>& s) { return io::detail_tensor::shape_str(s); }

// The loaders' messages start with the path ("PATH: ..." or "load: 'PATH': ..."); the report
// names it once.
std::string reason(const std::string& path, std::string msg) {
  for (const std::string& lead : {path + ": ", "load: '" + path + "': "})
    if (msg.starts_with(lead)) return msg.substr(lead.size());
  return msg;
}

void print_tensors(const io::TensorFile& f) {
  std::uint64_t total = 0;
  for (const io::TensorInfo& t : f.entries()) total += t.end - t.begin;
  std::printf("%s: %s, %zu tensors, %" PRIu64 " bytes of values\n", f.path().c_str(), f.format(),
              f.entries().size(), total);
  for (const auto& [k, v] : f.metadata())
    std::printf("  metadata %s = %s\n", io::printable_name(k).c_str(), io::printable_name(v).c_str());
  for (const io::TensorInfo& t : f.entries())
    std::printf("  %-40s %-4s %-18s %" PRIu64 " bytes\n", io::printable_name(t.name).c_str(),
                io::dtype_name(t.dtype), shape_str(t.shape).c_str(), t.end - t.begin);
}

void inspect_heed(const std::string& path) {
  // The CRC-32 first, streamed through 1 MiB: a corrupt or sparse file is refused in bounded
  // memory; only a file whose checksum holds is read whole (its size: the model it saved).
  {
    io::RegularFile f(path, "load: '" + path + "'");
    char h[io::kHeaderSize] = {};
    const auto hn = static_cast<std::size_t>(std::min<std::uint64_t>(f.size(), io::kHeaderSize));
    f.read_exact(h, hn, "header");
    const io::Header hd = io::parse_header(std::string_view(h, hn), f.size(), path);
    std::vector<char> buf(1 << 20);
    std::uint32_t crc = 0;
    for (std::uint64_t done = 0; done < hd.payload;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), hd.payload - done));
      f.read_exact(buf.data(), n, "payload");
      crc = io::crc32(buf.data(), n, crc);
      done += n;
    }
    if (crc != hd.crc) throw io::format_error(path, "checksum mismatch: the payload is corrupted");
  }
  const io::Image img = io::read_image(path);  // checked again, now in memory
  const io::Header hd = io::parse_header(std::string_view(img.bytes).substr(0, io::kHeaderSize), img.bytes.size(), path);
  std::vector<std::string> lines;
  img.scan(path, [&](const io::EntryView& v) {
    char line[512];
    if (v.is_tensor)
      std::snprintf(line, sizeof line, "  %-40s %-4s %-18s %zu bytes", io::printable_name(v.name).c_str(),
                    v.scalar == 4 ? "F32" : "F64", heed::detail::shape_str(v.rows, v.cols).c_str(), v.data.size());
    else
      std::snprintf(line, sizeof line, "  %-40s %-4s %-18s %zu bytes", io::printable_name(v.name).c_str(), "raw",
                    "", v.data.size());
    lines.emplace_back(line);
  });
  std::printf("%s: heed checkpoint, format version %" PRIu32 ", %s tensors, CRC-32 %08" PRIx32 " (verified), %zu entries\n",
              path.c_str(), hd.version, hd.scalar == 4 ? "float32" : "float64", hd.crc, lines.size());
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
}

void inspect(const std::string& path) {
  if (io::detect_format(path) == io::FileFormat::heed_checkpoint) return inspect_heed(path);
  const auto f = io::open_tensors(path, io::header_only);
  print_tensors(*f);
  if (const auto* t = dynamic_cast<const io::TorchFile*>(f.get()); t && !t->skipped().empty()) {
    std::printf("  not tensors (skipped by load_weights):");
    for (const std::string& s : t->skipped()) std::printf(" %s", io::printable_name(s).c_str());
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(argc < 2 ? stderr : stdout,
                 "usage: heed_inspect FILE...\n"
                 "Lists every tensor of a safetensors, torch.save (.pt/.pth) or heed checkpoint file:\n"
                 "name, dtype, shape and bytes, plus the metadata or checksum the format has.\n"
                 "Exit code 0 when every file is valid, 1 when one is not (with the reason).\n");
    return argc < 2 ? 2 : 0;
  }
  int status = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string path = argv[i];
    try {
      inspect(path);
    } catch (const heed::Error& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "heed_inspect: %s: %s\n", path.c_str(), reason(path, e.what()).c_str());
      status = 1;
    } catch (const std::exception& e) {  // std::bad_alloc and the like: still a report, not a crash
      std::fflush(stdout);
      std::fprintf(stderr, "heed_inspect: %s: %s\n", path.c_str(), e.what());
      status = 1;
    }
  }
  return status;
}
