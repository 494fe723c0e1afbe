// heed's modules against PyTorch through the files users will actually load.
//
// 1. Fixtures (modules_reference.py writes data/<module>_{f32,f64}.safetensors): each file is
//    a PyTorch module's state_dict, with PyTorch's own initialisation, plus its inputs
//    ("__input__.*") and PyTorch's outputs ("__output__.*"). The heed module is built with
//    the same configuration, heed::load_weights loads the file strictly on the module's own
//    names (the reserved names are renamed to "", i.e. skipped), heed's forward runs on the
//    inputs, and every output must match: max |heed - PyTorch| <= 1e-6 (float) or 1e-12
//    (double), relative to max(1, max |PyTorch|).
// 2. Round trip (HEED_INTEROP_OUT=dir): heed modules with heed's own initialisation are saved
//    with heed::save_safetensors(model) and their inputs and outputs next to them, for
//    roundtrip_check.py to load into PyTorch (load_state_dict strict) and compare; see
//    scripts/interop.sh. Skipped when the variable is unset.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <heed/heed.hpp>

#include "common/helpers.hpp"

using heed::BoolMatrix;
using heed::Index;
using heed::Matrix;
namespace io = heed::io;

namespace {

template <typename T>
constexpr const char* kSuffix = std::is_same_v<T, float> ? "f32" : "f64";
template <typename T>
constexpr double kTol = std::is_same_v<T, float> ? 1e-6 : 1e-12;
template <typename T>
constexpr const char* kType = std::is_same_v<T, float> ? "float" : "double";

constexpr Index kD = 8, kHeads = 2, kFF = 16, kB = 2, kTs = 5, kTt = 4;

// The largest absolute difference per module and type, and the largest |PyTorch| output,
// reported by the last test case.
struct Worst {
  double diff = 0, scale = 0;
};
std::map<std::string, Worst>& worst() {
  static std::map<std::string, Worst> w;
  return w;
}

// Names starting with "__" are the fixture's inputs and outputs, not the module's.
std::string skip_reserved(const std::string& name) { return name.starts_with("__") ? "" : name; }

// The MLP of modules_reference.py: fc1..fc3, 12-8-6-4, ReLU between.
template <typename T>
struct MLP : heed::ModuleBase<T> {
  heed::Linear<T> fc1, fc2, fc3;
  heed::ReLU<T> relu1, relu2;
  explicit MLP(heed::Generator& g) : fc1(12, 8, true, g), fc2(8, 6, true, g), fc3(6, 4, true, g) {}
  heed::Children<T> children() override { return {{"fc1", &fc1}, {"fc2", &fc2}, {"fc3", &fc3}}; }
  std::string name() const override { return "MLP"; }
  const Matrix<T>& forward(const heed::ConstRef<T>& x) {
    return fc3.forward(relu2.forward(fc2.forward(relu1.forward(fc1.forward(x)))));
  }
};

// One fixture file: the module's weights and the reserved inputs and outputs.
template <typename T>
struct Fixture {
  std::string module;
  io::Safetensors file;

  explicit Fixture(const std::string& m)
      : module(m), file(std::string(HEED_TEST_SOURCE_DIR) + "/interop/data/" + m + "_" + kSuffix<T> + ".safetensors") {}

  // Strict on the module's names: every parameter and buffer present with PyTorch's shape,
  // nothing else but the reserved names.
  void load(heed::ModuleBase<T>& model) {
    const heed::IncompatibleKeys keys = heed::load_weights(model, file, {.strict = true, .rename = skip_reserved});
    CHECK(keys.missing_keys.empty());
    CHECK(keys.unexpected_keys.empty());
  }

  // A float tensor of shape (d0, ..., dk) as heed's (d0*...*dk-1, dk) layout: a batch-first
  // sequence (B, T, F) is (B*T, F), (L*D, B, H) states are (L*D*B, H).
  Matrix<T> tensor(const std::string& name) const {
    const auto& s = file.shape(name);
    REQUIRE(!s.empty());
    const Matrix<T> m = file.matrix<T>(name);
    const Index cols = static_cast<Index>(s.back());
    return Eigen::Map<const Matrix<T>>(m.data(), m.size() / cols, cols);
  }
  Matrix<T> input(const std::string& n) const { return tensor("__input__." + n); }
  Matrix<T> output(const std::string& n) const { return tensor("__output__." + n); }

  // An I64 (r, c) mask, 1 = true.
  BoolMatrix mask(const std::string& n) const {
    const std::string name = "__input__." + n;
    const auto& s = file.shape(name);
    REQUIRE(s.size() == 2);
    const std::vector<std::int64_t> v = file.integers(name);
    BoolMatrix m(static_cast<Index>(s[0]), static_cast<Index>(s[1]));
    for (Index i = 0; i < m.size(); ++i) m.data()[i] = v[static_cast<std::size_t>(i)] != 0;
    return m;
  }
  std::vector<std::int64_t> integers(const std::string& n) const { return file.integers("__input__." + n); }

  // heed's output against PyTorch's "__output__.<n>".
  void compare(const std::string& n, const Matrix<T>& got) const {
    const Matrix<T> want = output(n);
    CAPTURE(module);
    CAPTURE(n);
    REQUIRE(got.rows() == want.rows());
    REQUIRE(got.cols() == want.cols());
    const double diff = static_cast<double>((got - want).cwiseAbs().maxCoeff());
    const double scale = std::max(1.0, static_cast<double>(want.cwiseAbs().maxCoeff()));
    CHECK(diff <= kTol<T> * scale);
    Worst& w = worst()[module + "<" + kType<T> + ">"];
    w.diff = std::max(w.diff, diff);
    w.scale = std::max(w.scale, static_cast<double>(want.cwiseAbs().maxCoeff()));
  }
};

}  // namespace

TEST_CASE_TEMPLATE("interop: Linear matches PyTorch's nn.Linear(6, 4)", T, float, double) {
  Fixture<T> f("linear");
  heed::Generator g(1);
  heed::Linear<T> m(6, 4, true, g);
  f.load(m);
  f.compare("y", m.forward(f.input("x")));
}

TEST_CASE_TEMPLATE("interop: an fc1..fc3 MLP with ReLU matches PyTorch", T, float, double) {
  Fixture<T> f("mlp");
  heed::Generator g(2);
  MLP<T> m(g);
  f.load(m);
  f.compare("y", m.forward(f.input("x")));
}

// modules_reference.py also wrote the f32 MLP and LSTM with torch.save: the same weights
// through the torch.save reader, so the same outputs, for a float and a double model.
TEST_CASE_TEMPLATE("interop: torch.save state_dicts (mlp_f32.pt, lstm_f32.pt) load as their safetensors twins", T,
                   float, double) {
  const std::string dir = std::string(HEED_TEST_SOURCE_DIR) + "/interop/data/";
  heed::Generator g(7);
  MLP<T> a(g), b(g);
  heed::load_weights(a, dir + "mlp_f32.pt");  // strict: exactly the module's names
  heed::load_weights(b, dir + "mlp_f32.safetensors", {.rename = skip_reserved});
  CHECK(a.state_dict().at("fc2.weight") == b.state_dict().at("fc2.weight"));
  CHECK(a.state_dict().at("fc3.bias") == b.state_dict().at("fc3.bias"));
  Fixture<float> f("mlp");  // PyTorch's float32 output
  const Matrix<T> x = f.input("x").template cast<T>();
  const Matrix<T> want = f.output("y").template cast<T>();
  CHECK(static_cast<double>((a.forward(x) - want).cwiseAbs().maxCoeff()) <= 1e-6);

  heed::LSTM<T> la(4, 6, {.num_layers = 2, .bidirectional = true}, g), lb(4, 6, {.num_layers = 2, .bidirectional = true}, g);
  heed::load_weights(la, dir + "lstm_f32.pt");
  heed::load_weights(lb, dir + "lstm_f32.safetensors", {.rename = skip_reserved});
  for (const auto& e : lb.state_dict()) CHECK(la.state_dict().at(e.first) == e.second);
}

TEST_CASE_TEMPLATE("interop: LayerNorm matches nn.LayerNorm(8) on (B, T, 8)", T, float, double) {
  Fixture<T> f("layer_norm");
  heed::LayerNorm<T> m(kD);
  f.load(m);
  f.compare("y", m.forward(f.input("x")));
}

TEST_CASE_TEMPLATE("interop: Embedding matches nn.Embedding(10, 8, padding_idx=0) on (B, T) ids", T, float,
                   double) {
  Fixture<T> f("embedding");
  heed::Generator g(3);
  heed::Embedding<T> m(10, kD, 0, g);
  f.load(m);
  const std::vector<std::int64_t> v = f.integers("ids");
  REQUIRE(v.size() == static_cast<std::size_t>(kB * kTs));
  heed::Tokens ids(kB, kTs);
  for (Index i = 0; i < ids.size(); ++i) ids.data()[i] = static_cast<std::int32_t>(v[static_cast<std::size_t>(i)]);
  f.compare("y", m.forward(ids));
  CHECK(m.weight().row(0).isZero());  // the file's padding row
}

TEST_CASE_TEMPLATE("interop: GRU matches nn.GRU(4, 6, num_layers=2, bidirectional, batch_first) with h0", T,
                   float, double) {
  Fixture<T> f("gru");
  heed::Generator g(4);
  heed::GRU<T> m(4, 6, {.num_layers = 2, .bidirectional = true}, g);
  f.load(m);
  const auto out = m.forward(f.input("x"), kB, f.input("h0"));
  f.compare("y", out.output);
  f.compare("h_n", out.h_n);
}

TEST_CASE_TEMPLATE("interop: LSTM matches nn.LSTM(4, 6, num_layers=2, bidirectional, batch_first), also packed",
                   T, float, double) {
  Fixture<T> f("lstm");
  heed::Generator g(5);
  heed::LSTM<T> m(4, 6, {.num_layers = 2, .bidirectional = true}, g);
  f.load(m);
  const Matrix<T> x = f.input("x"), h0 = f.input("h0"), c0 = f.input("c0");
  {
    const auto out = m.forward(x, kB, h0, c0);
    f.compare("y", out.output);
    f.compare("h_n", out.h_n);
    f.compare("c_n", out.c_n);
  }
  // heed's lengths = PyTorch's pack_padded_sequence + pad_packed_sequence: zeros after each
  // sample's end, h_n and c_n of each sample's last step.
  const std::vector<std::int64_t> len = f.integers("lengths");
  heed::Labels lengths(static_cast<Index>(len.size()));
  for (Index b = 0; b < lengths.size(); ++b) lengths(b) = static_cast<std::int32_t>(len[static_cast<std::size_t>(b)]);
  const auto out = m.forward(x, kB, h0, c0, lengths);
  f.compare("packed_y", out.output);
  f.compare("packed_h_n", out.h_n);
  f.compare("packed_c_n", out.c_n);
}

TEST_CASE_TEMPLATE("interop: MultiheadAttention matches nn.MultiheadAttention(8, 2, batch_first) with "
                   "key_padding_mask and attention weights",
                   T, float, double) {
  Fixture<T> f("multihead_attention");
  heed::Generator g(6);
  heed::MultiheadAttention<T> m(kD, kHeads, {}, g);
  f.load(m);
  const Matrix<T> q = f.input("query"), k = f.input("key"), v = f.input("value");
  const BoolMatrix pad = f.mask("key_padding_mask");
  {
    const auto out = m.forward(q, k, v, kB, {.key_padding_mask = &pad});
    f.compare("y", out.output);
    f.compare("weights", out.weights);  // (B, Tq, Tk) -> (B*Tq, Tk)
  }
  const auto out = m.forward(q, k, v, kB, {.key_padding_mask = &pad, .average_attn_weights = false});
  f.compare("weights_per_head", out.weights);  // (B, H, Tq, Tk) -> (B*H*Tq, Tk)
  f.compare("y", out.output);
}

TEST_CASE_TEMPLATE("interop: TransformerEncoderLayer matches PyTorch's (post-norm relu, pre-norm gelu), eval", T,
                   float, double) {
  for (const bool pre : {false, true}) {
    Fixture<T> f(pre ? "encoder_layer_pre" : "encoder_layer_post");
    heed::Generator g(7);
    heed::TransformerEncoderLayer<T> m(
        kD, kHeads,
        {.dim_feedforward = kFF, .dropout = 0.1,
         .activation = pre ? heed::TransformerActivation::gelu : heed::TransformerActivation::relu,
         .norm_first = pre},
        g);
    m.eval();
    f.load(m);
    const BoolMatrix mask = f.mask("src_mask"), pad = f.mask("src_key_padding_mask");
    f.compare("y", m.forward(f.input("src"), kB, {.src_mask = &mask, .src_key_padding_mask = &pad}));
  }
}

TEST_CASE_TEMPLATE("interop: TransformerDecoderLayer matches PyTorch's (post-norm relu, pre-norm gelu), eval", T,
                   float, double) {
  for (const bool pre : {false, true}) {
    Fixture<T> f(pre ? "decoder_layer_pre" : "decoder_layer_post");
    heed::Generator g(8);
    heed::TransformerDecoderLayer<T> m(
        kD, kHeads,
        {.dim_feedforward = kFF, .dropout = 0.1,
         .activation = pre ? heed::TransformerActivation::gelu : heed::TransformerActivation::relu,
         .norm_first = pre},
        g);
    m.eval();
    f.load(m);
    const BoolMatrix mask = f.mask("tgt_mask"), tpad = f.mask("tgt_key_padding_mask"),
                     mpad = f.mask("memory_key_padding_mask");
    f.compare("y", m.forward(f.input("tgt"), f.input("memory"), kB,
                             {.tgt_mask = &mask, .tgt_key_padding_mask = &tpad, .memory_key_padding_mask = &mpad}));
  }
}

TEST_CASE_TEMPLATE("interop: Transformer matches nn.Transformer(8, 2, 2 + 2 layers, batch_first), eval", T, float,
                   double) {
  Fixture<T> f("transformer");
  heed::Generator g(9);
  heed::Transformer<T> m(kD, kHeads,
                         {.num_encoder_layers = 2, .num_decoder_layers = 2, .dim_feedforward = kFF, .dropout = 0.1},
                         g);
  m.eval();
  f.load(m);
  const BoolMatrix mask = f.mask("tgt_mask"), spad = f.mask("src_key_padding_mask"),
                   tpad = f.mask("tgt_key_padding_mask");
  f.compare("y", m.forward(f.input("src"), f.input("tgt"), kB,
                           {.tgt_mask = &mask, .src_key_padding_mask = &spad, .tgt_key_padding_mask = &tpad,
                            .memory_key_padding_mask = &spad}));
}

// ---- heed -> safetensors -> PyTorch --------------------------------------------------------

namespace {

// The inputs and outputs of one module, written next to its weights as <name>.io.safetensors
// with PyTorch's shapes; masks as I64 (1 = true).
template <typename T>
struct IoFile {
  std::deque<Matrix<T>> mats;  // a deque: entries view the elements, which never move
  std::deque<std::string> blobs;
  std::vector<io::SafetensorsEntry> entries;

  void add(const std::string& name, const Matrix<T>& m, std::vector<std::uint64_t> shape) {
    mats.push_back(m);
    entries.push_back(io::safetensors_entry(name, mats.back(), std::move(shape)));
  }
  void add_mask(const std::string& name, const BoolMatrix& m) {
    std::string b;
    for (Index i = 0; i < m.size(); ++i) {
      const std::int64_t v = m.data()[i] ? 1 : 0;
      b.append(reinterpret_cast<const char*>(&v), 8);
    }
    blobs.push_back(std::move(b));
    entries.push_back({name, io::Dtype::I64,
                       {static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols())}, blobs.back()});
  }
  void save(const std::string& path) { io::save_safetensors(path, entries, {{"format", "pt"}}); }
};

// Saves `model` with heed::save_safetensors, reloads it into `fresh` (built from another seed)
// with load_weights, and checks that `fresh` gives the same outputs: the heed half of the trip.
template <typename T, class M, class Run>
void save_and_reload(const std::filesystem::path& dir, const std::string& name, M& model, M& fresh, Run run) {
  const std::string path = (dir / (name + "_" + kSuffix<T> + ".safetensors")).string();
  heed::save_safetensors(model, path);
  IoFile<T> iofile;
  run(model, &iofile);
  iofile.save((dir / (name + "_" + kSuffix<T> + ".io.safetensors")).string());
  heed::load_weights(fresh, path);
  IoFile<T> again;
  run(fresh, &again);
  REQUIRE(again.mats.size() == iofile.mats.size());
  for (std::size_t i = 0; i < iofile.mats.size(); ++i) CHECK(again.mats[i] == iofile.mats[i]);
}

}  // namespace

TEST_CASE_TEMPLATE("interop round trip: heed-initialised modules saved for PyTorch (HEED_INTEROP_OUT)", T, float,
                   double) {
  const char* out = std::getenv("HEED_INTEROP_OUT");
  if (!out || !*out) {
    MESSAGE("HEED_INTEROP_OUT not set: round-trip files not written (scripts/interop.sh sets it)");
    return;
  }
  const std::filesystem::path dir(out);
  std::filesystem::create_directories(dir);
  using heed_test::randn;
  const auto seq = [](Index b, Index t, Index f) {
    return std::vector<std::uint64_t>{static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(t),
                                      static_cast<std::uint64_t>(f)};
  };
  BoolMatrix spad = BoolMatrix::Zero(kB, kTs);  // sample 1 has 3 of 5 steps
  spad(1, 3) = spad(1, 4) = true;

  {  // MLP 12-8-6-4
    heed::Generator g1(11), g2(12);
    MLP<T> a(g1), b(g2);
    const Matrix<T> x = randn<T>(5, 12, 13);
    save_and_reload<T>(dir, "mlp", a, b, [&](MLP<T>& m, IoFile<T>* f) {
      f->add("__input__.x", x, {5, 12});
      f->add("__output__.y", m.forward(x), {5, 4});
    });
  }
  {  // LSTM(4, 6, 2 layers, bidirectional), h0 = c0 = 0
    heed::Generator g1(21), g2(22);
    heed::LSTM<T> a(4, 6, {.num_layers = 2, .bidirectional = true}, g1), b(4, 6, {.num_layers = 2, .bidirectional = true}, g2);
    const Matrix<T> x = randn<T>(kB * kTs, 4, 23);
    save_and_reload<T>(dir, "lstm", a, b, [&](heed::LSTM<T>& m, IoFile<T>* f) {
      const auto o = m.forward(x, kB);
      f->add("__input__.x", x, seq(kB, kTs, 4));
      f->add("__output__.y", o.output, seq(kB, kTs, 12));
      f->add("__output__.h_n", o.h_n, seq(4, kB, 6));
      f->add("__output__.c_n", o.c_n, seq(4, kB, 6));
    });
  }
  {  // MultiheadAttention(8, 2), cross-attention with a key padding mask
    heed::Generator g1(31), g2(32);
    heed::MultiheadAttention<T> a(kD, kHeads, {}, g1), b(kD, kHeads, {}, g2);
    // heed's init leaves the biases zero, as PyTorch's: give them values so the trip checks them.
    heed::Generator gb(33);
    for (auto& p : a.parameters())
      if (p.name.find("bias") != std::string::npos)
        for (Index i = 0; i < p.value->size(); ++i) p.value->data()[i] = static_cast<T>(0.1 * gb.normal());
    const Matrix<T> q = randn<T>(kB * kTt, kD, 34), k = randn<T>(kB * kTs, kD, 35), v = randn<T>(kB * kTs, kD, 36);
    save_and_reload<T>(dir, "multihead_attention", a, b, [&](heed::MultiheadAttention<T>& m, IoFile<T>* f) {
      const auto o = m.forward(q, k, v, kB, {.key_padding_mask = &spad});
      f->add("__input__.query", q, seq(kB, kTt, kD));
      f->add("__input__.key", k, seq(kB, kTs, kD));
      f->add("__input__.value", v, seq(kB, kTs, kD));
      f->add_mask("__input__.key_padding_mask", spad);
      f->add("__output__.y", o.output, seq(kB, kTt, kD));
      f->add("__output__.weights", o.weights, seq(kB, kTt, kTs));
    });
  }
  {  // TransformerEncoderLayer(8, 2, 16), post-norm relu, eval, src_key_padding_mask
    heed::Generator g1(41), g2(42);
    const heed::TransformerLayerOptions opt{.dim_feedforward = kFF, .dropout = 0.1};
    heed::TransformerEncoderLayer<T> a(kD, kHeads, opt, g1), b(kD, kHeads, opt, g2);
    a.eval();
    b.eval();
    const Matrix<T> src = randn<T>(kB * kTs, kD, 43);
    save_and_reload<T>(dir, "encoder_layer", a, b, [&](heed::TransformerEncoderLayer<T>& m, IoFile<T>* f) {
      f->add("__input__.src", src, seq(kB, kTs, kD));
      f->add_mask("__input__.src_key_padding_mask", spad);
      f->add("__output__.y", m.forward(src, kB, {.src_key_padding_mask = &spad}), seq(kB, kTs, kD));
    });
  }
  MESSAGE("round-trip files written to " << dir.string());
}

TEST_CASE("interop: largest |heed - PyTorch| per module") {
  std::ostringstream s;
  for (const auto& [module, w] : worst())
    s << "\n  " << module << ": " << w.diff << " (outputs up to " << w.scale << ")";
  MESSAGE("largest differences:" << s.str());
}
