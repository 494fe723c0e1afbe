// heed::load_weights and heed::save_safetensors(model): PyTorch's shapes, prefix and rename,
// every error listed at once, the model unchanged on any error, float and double.
#include <doctest/doctest.h>

#include <cstring>
#include <heed/heed.hpp>

#include "common/errors.hpp"
#include "common/helpers.hpp"
#include "io/scratch.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::error_of;
namespace io = heed::io;

namespace {

std::string tmp(const std::string& name) { return heed_test::scratch("weights_" + name).string(); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The article's Net in miniature, plus a LayerNorm: the 1-D shapes PyTorch gives biases and
// norm vectors, and a 2-D (1, in) weight that must stay 2-D.
template <typename T>
struct Net : heed::ModuleBase<T> {
  heed::Linear<T> fc1, fc2;
  heed::LayerNorm<T> norm;
  explicit Net(std::uint64_t seed) : Net(heed::Generator(seed)) {}
  explicit Net(heed::Generator g) : fc1(5, 3, true, g), fc2(3, 1, true, g), norm(3) {}
  heed::Children<T> children() override { return {{"fc1", &fc1}, {"norm", &norm}, {"fc2", &fc2}}; }
  std::string name() const override { return "Net"; }
};

template <typename T>
bool same_weights(heed::ModuleBase<T>& a, heed::ModuleBase<T>& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  for (const auto& e : sa)
    if (!(sb.at(e.first) == e.second)) return false;
  return sa.size() == sb.size();
}

// A safetensors file of float tensors with the given names and shapes, values 0.5, 1.5, ...
void write_file(const std::string& path, const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& ts,
                io::Dtype dtype = io::Dtype::F32) {
  std::vector<std::string> blobs;
  std::vector<io::SafetensorsEntry> entries;
  blobs.reserve(ts.size());
  for (const auto& [name, shape] : ts) {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    std::string b;
    for (std::uint64_t k = 0; k < n; ++k) {
      if (dtype == io::Dtype::F32) {
        const float v = 0.5f + static_cast<float>(k);
        b.append(reinterpret_cast<const char*>(&v), 4);
      } else if (dtype == io::Dtype::F64) {
        const double v = k == 0 ? 1e300 : 0.5 + static_cast<double>(k);
        b.append(reinterpret_cast<const char*>(&v), 8);
      } else {
        const std::int64_t v = static_cast<std::int64_t>(k);
        b.append(reinterpret_cast<const char*>(&v), 8);
      }
    }
    blobs.push_back(std::move(b));
    entries.push_back({name, dtype, shape, blobs.back()});
  }
  io::save_safetensors(path, entries);
}

using Shapes = std::vector<std::pair<std::string, std::vector<std::uint64_t>>>;
const Shapes kNetShapes = {{"fc1.weight", {3, 5}}, {"fc1.bias", {3}}, {"norm.weight", {3}},
                           {"norm.bias", {3}},     {"fc2.weight", {1, 3}}, {"fc2.bias", {1}}};

}  // namespace

TEST_CASE_TEMPLATE("save_safetensors(model) writes PyTorch's names, shapes and dtype; load_weights reads them back",
                   T, float, double) {
  Net<T> a(1), b(2);
  const std::string path = tmp("net.safetensors");
  heed::save_safetensors(a, path);
  io::Safetensors f(path);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.names() == std::vector<std::string>{"fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "norm.bias",
                                              "norm.weight"});
  for (const auto& entry : kNetShapes) {  // no structured binding: clang 14 cannot CAPTURE one
    const std::string& name = entry.first;
    CAPTURE(name);
    CHECK(f.shape(name) == entry.second);
    CHECK(f.dtype(name) == (std::is_same_v<T, float> ? io::Dtype::F32 : io::Dtype::F64));
  }
  // fc1.weight is (out, in) row-major, as nn.Linear's.
  const Matrix<T> w = f.matrix<T>("fc1.weight");
  CHECK(w == a.fc1.weight());
  REQUIRE_FALSE(same_weights<T>(a, b));
  const heed::IncompatibleKeys keys = heed::load_weights(b, path);
  CHECK(keys.missing_keys.empty());
  CHECK(keys.unexpected_keys.empty());
  CHECK(same_weights<T>(a, b));
}

TEST_CASE("load_weights: a file's values land in the right elements, (n,) becoming a (1, n) row") {
  const std::string path = tmp("values.safetensors");
  write_file(path, kNetShapes);
  Net<double> net(3);
  heed::load_weights(net, path);
  CHECK(net.fc1.weight()(0, 0) == 0.5);
  CHECK(net.fc1.weight()(0, 4) == 4.5);
  CHECK(net.fc1.weight()(2, 4) == 14.5);  // row-major (3, 5)
  CHECK(net.fc1.bias().rows() == 1);
  CHECK(net.fc1.bias()(0, 2) == 2.5);
  CHECK(net.fc2.weight()(0, 2) == 2.5);
}

TEST_CASE("load_weights: every missing, unexpected and mis-shaped name in one message; the model unchanged") {
  const std::string path = tmp("bad.safetensors");
  // fc1.weight transposed, fc1.bias stored 2-D as (1, 3), norm.bias missing, one extra name.
  write_file(path, {{"fc1.weight", {5, 3}}, {"fc1.bias", {1, 3}}, {"norm.weight", {3}}, {"fc2.weight", {1, 3}},
                    {"fc2.bias", {1}}, {"head.weight", {2, 2}}});
  Net<float> net(4), before(4);
  const std::string msg = error_of<heed::ValueError>([&] { heed::load_weights(net, path); });
  CHECK(contains(msg, "load_weights: " + path + " (safetensors) into Net:"));
  CHECK(contains(msg, "missing keys (1): 'norm.bias'"));
  CHECK(contains(msg, "unexpected keys (1): 'head.weight'"));
  CHECK(contains(msg, "shape mismatches (2): 'fc1.weight' expected (3, 5), got (5, 3), 'fc1.bias' expected (3,), got (1, 3)"));
  CHECK(contains(msg, "the model is unchanged"));
  CHECK(same_weights<float>(net, before));

  // Non-strict: the missing and unexpected names are returned, the shapes still refused.
  const std::string shapes = error_of<heed::ShapeError>([&] { heed::load_weights(net, path, {.strict = false}); });
  CHECK(contains(shapes, "shape mismatches (2)"));
  CHECK_FALSE(contains(shapes, "missing"));
  CHECK(same_weights<float>(net, before));
}

TEST_CASE("load_weights: non-strict returns what it skipped and loads the rest") {
  const std::string path = tmp("partial.safetensors");
  write_file(path, {{"fc1.weight", {3, 5}}, {"fc1.bias", {3}}, {"extra", {2}}});
  Net<float> net(5), before(5);
  const heed::IncompatibleKeys k = heed::load_weights(net, path, {.strict = false});
  CHECK(k.missing_keys == std::vector<std::string>{"norm.weight", "norm.bias", "fc2.weight", "fc2.bias"});
  CHECK(k.unexpected_keys == std::vector<std::string>{"extra"});
  CHECK(net.fc1.weight()(0, 1) == 1.5f);
  CHECK(net.fc2.weight() == before.fc2.weight());
}

TEST_CASE("load_weights: prefix selects and strips, rename maps and skips") {
  const std::string path = tmp("prefixed.safetensors");
  Shapes shapes;
  for (const auto& [n, s] : kNetShapes) shapes.push_back({"module." + n, s});
  shapes.push_back({"epoch_marker", {1}});  // outside the prefix: ignored, not unexpected
  write_file(path, shapes);
  Net<float> net(6);
  CHECK(heed::load_weights(net, path, {.prefix = "module."}).unexpected_keys.empty());
  CHECK(net.fc1.weight()(0, 0) == 0.5f);
  CHECK(contains(error_of<heed::ValueError>([&] { heed::load_weights(net, path); }), "missing keys (6)"));

  // rename: the file calls the norm "ln"; "" drops a name.
  const std::string renamed = tmp("renamed.safetensors");
  write_file(renamed, {{"fc1.weight", {3, 5}}, {"fc1.bias", {3}}, {"ln.weight", {3}}, {"ln.bias", {3}},
                       {"fc2.weight", {1, 3}}, {"fc2.bias", {1}}, {"junk", {4}}});
  Net<float> net2(7);
  heed::load_weights(net2, renamed, {.rename = [](const std::string& k) -> std::string {
                                        if (k == "junk") return "";
                                        return k.starts_with("ln.") ? "norm." + k.substr(3) : k;
                                      }});
  CHECK(net2.state_dict().at("norm.weight")(0, 2) == 2.5f);

  // Two file names renamed onto one model name are refused.
  const std::string msg = error_of<heed::ValueError>([&] {
    heed::load_weights(net2, renamed, {.rename = [](const std::string& k) { return k == "junk" ? "fc1.bias" : k; }});
  });
  CHECK(contains(msg, "both map to 'fc1.bias'"));
}

TEST_CASE("load_weights: dtypes: integers refused, F64 beyond float's range refused, both before any change") {
  const std::string ints = tmp("ints.safetensors");
  write_file(ints, kNetShapes, io::Dtype::I64);
  Net<float> net(8), before(8);
  const std::string msg = error_of<heed::ValueError>([&] { heed::load_weights(net, ints); });
  CHECK(contains(msg, "'fc1.weight' is I64, expected a float dtype"));
  CHECK(same_weights<float>(net, before));

  const std::string big = tmp("big.safetensors");  // element 0 of each tensor is 1e300
  write_file(big, kNetShapes, io::Dtype::F64);
  CHECK(contains(error_of<heed::ValueError>([&] { heed::load_weights(net, big); }), "out of float's range"));
  CHECK(same_weights<float>(net, before));
  Net<double> wide(9);
  heed::load_weights(wide, big);  // a double model takes it
  CHECK(wide.fc1.weight()(0, 0) == 1e300);
}

TEST_CASE("load_weights: the format comes from the content; other files are named for what they are") {
  Net<float> a(10), b(11);
  const std::string odd = tmp("weights.bin");  // a safetensors file under any name
  heed::save_safetensors(a, odd);
  heed::load_weights(b, odd);
  CHECK(same_weights<float>(a, b));

  const std::string ck = tmp("net.heed");
  heed::save(a, ck);
  CHECK(contains(error_of<heed::FormatError>([&] { heed::load_weights(b, ck); }),
                 "is a heed checkpoint, not a safetensors or torch.save file; load it with heed::load"));
  const std::string junk = tmp("junk.safetensors");
  heed_test::spit(junk, "hello, world");
  CHECK(error_of<heed::FormatError>([&] { heed::load_weights(b, junk); }) ==
        junk + ": is neither a safetensors file (8-byte length, then '{') nor a torch.save file (a zip archive)");
  heed_test::spit(junk, "");
  CHECK(contains(error_of<heed::FormatError>([&] { heed::load_weights(b, junk); }), "is neither"));
  CHECK(contains(error_of<heed::IoError>([&] { heed::load_weights(b, tmp("absent")); }), "cannot open"));
}

TEST_CASE("save_safetensors(model): the composite layers use PyTorch's shapes") {
  heed::Generator g(12);
  heed::LSTM<float> lstm(4, 6, {.num_layers = 2, .bidirectional = true}, g);
  heed::MultiheadAttention<float> mha(8, 2, {}, g);
  const std::string p1 = tmp("lstm.safetensors"), p2 = tmp("mha.safetensors");
  heed::save_safetensors(lstm, p1);
  heed::save_safetensors(mha, p2);
  io::Safetensors f1(p1), f2(p2);
  CHECK(f1.shape("weight_ih_l0") == std::vector<std::uint64_t>{24, 4});
  CHECK(f1.shape("weight_ih_l1_reverse") == std::vector<std::uint64_t>{24, 12});
  CHECK(f1.shape("bias_hh_l1_reverse") == std::vector<std::uint64_t>{24});
  CHECK(f2.shape("in_proj_weight") == std::vector<std::uint64_t>{24, 8});
  CHECK(f2.shape("in_proj_bias") == std::vector<std::uint64_t>{24});
  CHECK(f2.shape("out_proj.bias") == std::vector<std::uint64_t>{8});
  heed::LSTM<float> lstm2(4, 6, {.num_layers = 2, .bidirectional = true}, g);
  heed::load_weights(lstm2, p1);
  CHECK(lstm2.state_dict().at("weight_hh_l1_reverse") == lstm.state_dict().at("weight_hh_l1_reverse"));
}

// tests/data/torch/checkpoint.pt is torch.save({"model": state_dict, "optimizer": ..., "epoch": 3,
// ...}) of an nn.Linear(3, 2) "fc" and an nn.LayerNorm(2) "norm" (tests/io/torch_fixture.py).
TEST_CASE_TEMPLATE("load_weights: a torch.save checkpoint dict, by content, with a prefix", T, float, double) {
  struct Small : heed::ModuleBase<T> {
    heed::Generator g{1};
    heed::Linear<T> fc{3, 2, true, g};
    heed::LayerNorm<T> norm{2};
    heed::Children<T> children() override { return {{"fc", &fc}, {"norm", &norm}}; }
    std::string name() const override { return "Small"; }
  } m;
  const std::string path = std::string(HEED_TEST_SOURCE_DIR) + "/data/torch/checkpoint.pt";
  const heed::IncompatibleKeys k = heed::load_weights(m, path, {.prefix = "model."});
  CHECK(k.missing_keys.empty());
  io::TorchFile f(path);
  CHECK(m.fc.weight() == f.matrix<T>("model.fc.weight"));
  CHECK(m.fc.bias() == f.matrix<T>("model.fc.bias"));  // (2,) -> (1, 2)
  CHECK(m.state_dict().at("norm.bias") == f.matrix<T>("model.norm.bias"));
  // Without the prefix every name is unexpected, and the optimizer's are listed too.
  const std::string msg = error_of<heed::ValueError>([&] { heed::load_weights(m, path); });
  CHECK(contains(msg, "(torch.save) into Small:"));
  CHECK(contains(msg, "unexpected keys (8): 'model.fc.weight', 'model.fc.bias', 'model.norm.weight'"));  // file order
  CHECK(contains(msg, "pass .prefix = \"model.\""));
  CHECK(contains(msg, "'optimizer.state.0.momentum_buffer'"));
  // A hostile pickle is refused by the reader, naming the global.
  CHECK(contains(error_of<heed::FormatError>([&] {
                   heed::load_weights(m, std::string(HEED_TEST_SOURCE_DIR) + "/data/torch/hostile_system.pt");
                 }),
                 "global 'posix system' is not allowed"));
}

// safetensors' first 8 bytes are its header's length: 128 starts the file with 0x80 (a pickle's
// PROTO), 19280 with "PK" (a zip's signature). Both are safetensors files all the same.
TEST_CASE("load_weights: a safetensors header of 128 or 19280 bytes is not mistaken for torch.save") {
  for (const std::size_t n : {std::size_t{128}, std::size_t{19280}}) {
    CAPTURE(n);
    std::string h = R"({"fc1.weight":{"dtype":"F32","shape":[3,5],"data_offsets":[0,60]},)"
                    R"("fc1.bias":{"dtype":"F32","shape":[3],"data_offsets":[60,72]}})";
    REQUIRE(h.size() <= n);
    h.append(n - h.size(), ' ');
    std::string img(8, '\0');
    for (int k = 0; k < 8; ++k) img[static_cast<std::size_t>(k)] = static_cast<char>((n >> (8 * k)) & 0xff);
    img += h;
    for (int k = 0; k < 18; ++k) {
      const float v = static_cast<float>(k);
      img.append(reinterpret_cast<const char*>(&v), 4);
    }
    const std::string path = tmp("sniff.safetensors");
    heed_test::spit(path, img);
    CHECK(io::detect_format(path) == io::FileFormat::safetensors);
    heed::Generator g(1);
    heed::Linear<float> fc1(5, 3, true, g);
    heed::load_weights(fc1, path, {.rename = [](const std::string& k) { return k.substr(4); }});
    CHECK(fc1.bias()(0, 2) == 17.0f);
  }
}

TEST_CASE("load_weights: the error suggests the prefix under which every missing name sits") {
  Net<float> net(13);
  const std::string path = tmp("hint.safetensors");
  Shapes shapes;
  for (const auto& [n, s] : kNetShapes) shapes.push_back({"model." + n, s});
  write_file(path, shapes);
  CHECK(contains(error_of<heed::ValueError>([&] { heed::load_weights(net, path); }),
                 "(every missing key is in the file under 'model.': pass .prefix = \"model.\")"));
  // A prefix without its dot: the hint completes it.
  CHECK(contains(error_of<heed::ValueError>([&] { heed::load_weights(net, path, {.prefix = "model"}); }),
                 "pass .prefix = \"model.\""));
}
