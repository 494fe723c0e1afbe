// Argument and shape errors across the public API, one table row per mistake: the call, the
// heed::Error subclass it must raise, and a piece of the message that must name the problem.
// Every row is a real API call with one thing wrong.
#include <doctest/doctest.h>

#include <functional>
#include <heed/heed.hpp>
#include <limits>
#include <string>
#include <typeinfo>
#include <vector>

#include "common/helpers.hpp"

namespace {

using heed::Labels;
using heed::Matrix;
using heed_test::labels;
using M = Matrix<float>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Row {
  const char* what;
  std::function<void()> call;
  std::function<bool(const heed::Error&)> is_expected_type;
  const char* type_name;
  const char* needle;
};

template <class E>
Row row(const char* what, std::function<void()> call, const char* needle) {
  return {what, std::move(call), [](const heed::Error& e) { return dynamic_cast<const E*>(&e) != nullptr; },
          typeid(E).name(), needle};
}

// A tiny model whose parameters the optimizer rows use.
heed::Linear<float>& shared_linear() {
  static heed::Generator g(1);
  static heed::Linear<float> lin(3, 2, true, g);
  return lin;
}
std::vector<heed::Parameter<float>> P() { return shared_linear().parameters(); }

void run(const std::vector<Row>& table) {
  for (const Row& r : table) {
    INFO(std::string(r.what));
    bool threw = false;
    try {
      r.call();
    } catch (const heed::Error& e) {
      threw = true;
      INFO("message: " << e.what());
      CHECK_MESSAGE(r.is_expected_type(e), "expected " << r.type_name << ", got " << typeid(e).name());
      CHECK(std::string(e.what()).find(r.needle) != std::string::npos);
    } catch (const std::exception& e) {
      threw = true;
      FAIL_CHECK("threw a non-heed exception: " << typeid(e).name() << ": " << e.what());
    }
    CHECK_MESSAGE(threw, "accepted bad input silently");
  }
}

}  // namespace

TEST_CASE("errors: layers and activations") {
  run({
      row<heed::ValueError>("Linear zero in", [] { (void)heed::Linear<float>(0, 3); }, "Linear"),
      row<heed::ValueError>("Linear negative out", [] { (void)heed::Linear<float>(3, -1); }, "Linear"),
      row<heed::ShapeError>("Linear wrong input width", [] {
        heed::Linear<float> l(4, 3);
        l.forward(M::Zero(2, 5));
      }, "Linear: input expected (*, 4), got (2, 5)"),
      row<heed::ShapeError>("Linear wrong gradient shape", [] {
        heed::Linear<float> l(4, 3);
        l.forward(M::Zero(2, 4));
        l.backward(M::Zero(2, 4));
      }, "Linear"),
      row<heed::ValueError>("Dropout p = 1", [] { (void)heed::Dropout<float>(1.0); }, "p must be in [0, 1)"),
      row<heed::ValueError>("Dropout p < 0", [] { (void)heed::Dropout<float>(-0.1); }, "p must be in [0, 1)"),
      row<heed::ValueError>("Dropout p NaN", [] { (void)heed::Dropout<float>(kNaN); }, "p must be in [0, 1)"),
      row<heed::ValueError>("LayerNorm zero features", [] { (void)heed::LayerNorm<float>(0); }, "normalized_shape"),
      row<heed::ValueError>("LayerNorm eps 0", [] { (void)heed::LayerNorm<float>(4, 0.0); }, "eps"),
      row<heed::ValueError>("LayerNorm eps < 0", [] { (void)heed::LayerNorm<float>(4, -1e-5); }, "eps"),
      row<heed::ValueError>("LayerNorm eps NaN", [] { (void)heed::LayerNorm<float>(4, kNaN); }, "eps"),
      row<heed::ShapeError>("LayerNorm wrong width", [] {
        heed::LayerNorm<float> ln(4);
        ln.forward(M::Zero(2, 3));
      }, "LayerNorm"),
      row<heed::ValueError>("Sequential index out of range", [] {
        heed::Sequential<float> s;
        s.emplace<heed::ReLU<float>>();
        s[1];
      }, "out of range"),
      row<heed::ShapeError>("Sequential: mismatched layers", [] {
        heed::Sequential<float> s;
        s.emplace<heed::Linear<float>>(4, 3);
        s.emplace<heed::Linear<float>>(5, 2);
        s.forward(M::Zero(1, 4));
      }, "expected (*, 5), got (1, 3)"),
      row<heed::ValueError>("LeakyReLU slope NaN", [] { (void)heed::LeakyReLU<float>(kNaN); }, "LeakyReLU"),
      row<heed::ValueError>("Embedding zero rows", [] { (void)heed::Embedding<float>(0, 4); }, "Embedding"),
      row<heed::ValueError>("Embedding padding_idx out of range", [] { (void)heed::Embedding<float>(5, 4, 5); }, "padding_idx"),
      row<heed::ValueError>("Embedding index out of range", [] {
        heed::Embedding<float> e(5, 4);
        e.forward(labels({1, 5}));
      }, "index 5"),
  });
}

TEST_CASE("errors: optimizers, schedules, training guards") {
  run({
      row<heed::ValueError>("SGD lr < 0", [] { (void)heed::SGD<float>(P(), {.lr = -0.1f}); }, "invalid lr"),
      row<heed::ValueError>("SGD lr NaN", [] { (void)heed::SGD<float>(P(), {.lr = kNaN}); }, "invalid lr"),
      row<heed::ValueError>("Adam lr inf", [] { (void)heed::Adam<float>(P(), {.lr = kInf}); }, "invalid lr"),
      row<heed::ValueError>("SGD momentum < 0", [] { (void)heed::SGD<float>(P(), {.momentum = -0.9f}); }, "momentum"),
      row<heed::ValueError>("SGD nesterov without momentum", [] {
        heed::SGD<float>(P(), {.lr = 0.1f, .nesterov = true});
      }, "nesterov"),
      row<heed::ValueError>("SGD empty parameter list", [] { (void)heed::SGD<float>({}, {}); }, "empty parameter list"),
      row<heed::ValueError>("Adam beta1 = 1", [] { (void)heed::Adam<float>(P(), {.betas = {1.0f, 0.999f}}); }, "beta"),
      row<heed::ValueError>("Adam beta2 NaN", [] { (void)heed::Adam<float>(P(), {.betas = {0.9f, kNaN}}); }, "beta"),
      row<heed::ValueError>("Adam beta1 < 0", [] { (void)heed::Adam<float>(P(), {.betas = {-0.1f, 0.999f}}); }, "beta"),
      row<heed::ValueError>("Adam eps < 0", [] { (void)heed::Adam<float>(P(), {.eps = -1e-8f}); }, "eps"),
      row<heed::ValueError>("Adam eps NaN", [] { (void)heed::Adam<float>(P(), {.eps = kNaN}); }, "eps"),
      row<heed::ValueError>("AdamW weight_decay < 0", [] { (void)heed::AdamW<float>(P(), {.weight_decay = -0.01f}); }, "weight_decay"),
      row<heed::ValueError>("RMSprop alpha < 0", [] { (void)heed::RMSprop<float>(P(), {.alpha = -0.5f}); }, "alpha"),
      row<heed::ValueError>("set_lr NaN", [] {
        heed::SGD<float> o(P(), {});
        o.set_lr(kNaN);
      }, "invalid lr"),
      row<heed::ValueError>("EarlyStopping patience < 0", [] {
        heed::EarlyStopping<float>({.patience = -1});
      }, "patience"),
      row<heed::ValueError>("EarlyStopping min_delta NaN", [] {
        heed::EarlyStopping<float>({.min_delta = kNaN});
      }, "min_delta"),
      row<heed::ValueError>("restore_parameters: snapshot of another size", [] {
        heed::restore_parameters(P(), std::vector<M>(1));
      }, "snapshot of 2 tensors"),
      row<heed::ShapeError>("restore_parameters: snapshot of another shape", [] {
        heed::restore_parameters(P(), std::vector<M>{M::Zero(2, 3), M::Zero(1, 3)});
      }, "'bias'"),
      row<heed::NumericError>("check_finite: NaN loss", [] { (void)heed::check_finite(kNaN, P(), 7); }, "training step 7: loss is nan"),
      row<heed::NumericError>("check_finite: infinite gradient", [] {
        heed::Generator g(2);
        heed::Linear<float> l(3, 2, true, g);
        l.parameters()[0].grad->setZero();
        (*l.parameters()[0].grad)(1, 2) = kInf;
        heed::check_finite(0.5f, l.parameters(), 3);
      }, "non-finite gradient in 'weight'"),
  });
}

TEST_CASE("errors: MultiheadAttention") {
  const heed::Index E = 8, H = 2, B = 2, T = 3;
  const M q = M::Zero(B * T, E);
  run({
      row<heed::ValueError>("num_heads does not divide embed_dim", [] { (void)heed::MultiheadAttention<float>(10, 3); },
                            "not divisible by num_heads"),
      row<heed::ValueError>("embed_dim 0", [] { (void)heed::MultiheadAttention<float>(0, 1); }, "must be positive"),
      row<heed::ValueError>("num_heads 0", [] { (void)heed::MultiheadAttention<float>(8, 0); }, "must be positive"),
      row<heed::ValueError>("dropout 1", [] { (void)heed::MultiheadAttention<float>(8, 2, {.dropout = 1.0}); }, "dropout"),
      row<heed::ValueError>("dropout NaN", [] { (void)heed::MultiheadAttention<float>(8, 2, {.dropout = kNaN}); }, "dropout"),
      row<heed::ValueError>("kdim < 0", [] { (void)heed::MultiheadAttention<float>(8, 2, {.kdim = -1}); }, "kdim"),
      row<heed::ShapeError>("query of the wrong width", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        mha.forward(M::Zero(B * T, E + 1), q, q, B);
      }, "query expected (*, 8), got (6, 9)"),
      row<heed::ShapeError>("key rows not a multiple of B", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        const M k = M::Zero(5, E);
        mha.forward(q, k, k, B);
      }, "MultiheadAttention"),
      row<heed::ValueError>("batch size 0", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        mha.forward(q, q, q, 0);
      }, "batch size must be positive"),
      row<heed::ShapeError>("key_padding_mask (B, Tk+1)", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        const heed::BoolMatrix pad = heed::BoolMatrix::Zero(B, T + 1);
        mha.forward(q, q, q, B, {.key_padding_mask = &pad});
      }, "key_padding_mask expected (2, 3), got (2, 4)"),
      row<heed::ShapeError>("attn_mask (Tk, Tq+1)", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        const heed::BoolMatrix m = heed::BoolMatrix::Zero(T, T + 1);
        mha.forward(q, q, q, B, {.attn_mask = &m});
      }, "attn_mask expected (3, 3), got (3, 4)"),
      row<heed::ShapeError>("attn_bias (B, T)", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        const M bias = M::Zero(B + 2, T);
        mha.forward(q, q, q, B, {.attn_bias = &bias});
      }, "attn_bias expected (3, 3), got (4, 3)"),
      row<heed::ShapeError>("gradient of the wrong shape", [&] {
        heed::MultiheadAttention<float> mha(E, H);
        mha.forward(q, q, q, B);
        mha.backward(M::Zero(B * T, E - 1));
      }, "gradient"),
  });
}

TEST_CASE("errors: losses and metrics") {
  const M logits = M::Zero(3, 4);
  run({
      row<heed::ValueError>("CrossEntropyLoss label = C", [&] {
        heed::CrossEntropyLoss<float>().forward(logits, labels({0, 4, 1}));
      }, "target 4"),
      row<heed::ValueError>("CrossEntropyLoss negative label", [&] {
        heed::CrossEntropyLoss<float>().forward(logits, labels({0, -1, 1}));
      }, "target -1"),
      row<heed::ShapeError>("CrossEntropyLoss too few targets", [&] {
        heed::CrossEntropyLoss<float>().forward(logits, labels({0, 1}));
      }, "target expected (3), got (2)"),
      row<heed::ShapeError>("CrossEntropyLoss no classes", [&] {
        heed::CrossEntropyLoss<float>().forward(M::Zero(2, 0), labels({0, 0}));
      }, "C>0"),
      row<heed::ValueError>("CrossEntropyLoss label_smoothing > 1", [] {
        heed::CrossEntropyLoss<float>({.label_smoothing = 1.5f});
      }, "label_smoothing"),
      row<heed::ValueError>("CrossEntropyLoss label_smoothing NaN", [] {
        heed::CrossEntropyLoss<float>({.label_smoothing = kNaN});
      }, "label_smoothing"),
      row<heed::ValueError>("CrossEntropyLoss negative class weight", [] {
        heed::CrossEntropyLoss<float>({.weight = {1.0f, -1.0f, 1.0f, 1.0f}});
      }, "weight"),
      row<heed::ShapeError>("MSELoss shape mismatch", [&] {
        heed::MSELoss<float>().forward(logits, M::Zero(3, 3));
      }, "MSELoss"),
      row<heed::ShapeError>("MSELoss empty", [] { (void)heed::MSELoss<float>().forward(M(0, 2), M(0, 2)); }, "empty"),
      row<heed::ShapeError>("BCEWithLogitsLoss target shape", [&] {
        heed::BCEWithLogitsLoss<float>().forward(logits, M::Zero(4, 3));
      }, "BCEWithLogitsLoss"),
      row<heed::ValueError>("accuracy label = C", [&] { (void)heed::accuracy(logits, labels({0, 1, 4})); }, "label 4"),
      row<heed::ShapeError>("accuracy labels length", [&] { (void)heed::accuracy(logits, labels({0, 1})); }, "accuracy"),
      row<heed::ValueError>("accuracy no rows", [] { (void)heed::accuracy(M(0, 4), Labels(0)); }, "at least one row"),
      row<heed::ValueError>("ConfusionMatrix 0 classes", [] { (void)heed::ConfusionMatrix(0); }, "num_classes"),
      row<heed::ShapeError>("ConfusionMatrix::update lengths", [] {
        heed::ConfusionMatrix cm(3);
        cm.update(labels({0, 1}), labels({0}));
      }, "ConfusionMatrix::update"),
      row<heed::ValueError>("ConfusionMatrix::update label = C", [] {
        heed::ConfusionMatrix cm(3);
        cm.update(labels({0, 1}), labels({0, 3}));
      }, "3"),
      row<heed::ValueError>("ConfusionMatrix::precision class = C", [] { (void)heed::ConfusionMatrix(3).precision(3); }, "class expected"),
      row<heed::ValueError>("roc_auc target 2", [] {
        heed::roc_auc(heed::Vector<float>::Zero(3), labels({0, 1, 2}));
      }, "target expected 0 or 1"),
      row<heed::ValueError>("roc_auc one class", [] {
        heed::roc_auc(heed::Vector<float>::Zero(3), labels({1, 1, 1}));
      }, "both classes"),
      row<heed::ShapeError>("roc_auc_ovr one column", [] {
        heed::roc_auc_ovr(M::Zero(3, 1), labels({0, 0, 0}));
      }, "C>=2"),
  });
}

TEST_CASE("errors: data") {
  static const heed::ByteMatrix images = heed::ByteMatrix::Zero(4, 6);
  static const Labels y4 = labels({0, 1, 2, 3}), y3 = labels({0, 1, 2});
  run({
      row<heed::ValueError>("DataLoader batch_size 0", [] {
        heed::DataLoader<float>(images, y4, {.batch_size = 0});
      }, "batch_size expected >= 1, got 0"),
      row<heed::ShapeError>("DataLoader labels length", [] { (void)heed::DataLoader<float>(images, y3); }, "labels expected (4)"),
      row<heed::ValueError>("DataLoader std 0", [] { (void)heed::DataLoader<float>(images, y4, {.std = 0.0f}); }, "std"),
      row<heed::ValueError>("DataLoader mean NaN", [] { (void)heed::DataLoader<float>(images, y4, {.mean = kNaN}); }, "mean"),
      row<heed::ValueError>("DataLoader std inf", [] { (void)heed::DataLoader<float>(images, y4, {.std = kInf}); }, "std"),
      row<heed::ValueError>("DataLoader empty images", [] {
        static const heed::ByteMatrix none(0, 6);
        static const Labels no_labels(0);
        heed::DataLoader<float>(none, no_labels);
      }, "non-empty"),
      row<heed::ValueError>("normalize std 0", [] {
        M x;
        heed::normalize(heed::ByteMatrixRef(images), x, 0.5f, 0.0f);
      }, "std"),
      row<heed::ValueError>("random_shift k < 0", [] {
        M x = M::Zero(2, 6);
        heed::Generator g;
        heed::random_shift(x, 2, 3, -1, 0.0f, g);
      }, "k expected >= 0"),
      row<heed::ShapeError>("random_shift image size", [] {
        M x = M::Zero(2, 6);
        heed::Generator g;
        heed::random_shift(x, 3, 3, 1, 0.0f, g);
      }, "random_shift"),
      row<heed::ValueError>("split_validation num_val = N", [] {
        heed::ByteMatrix im = images, vi;
        Labels l = y4, vl;
        heed::split_validation(im, l, vi, vl, 4, 0);
      }, "num_val"),
      row<heed::ValueError>("read_idx_labels num_classes 0", [] { (void)heed::read_idx_labels("/nonexistent", 0); }, "num_classes"),
      row<heed::IoError>("read_idx_images missing file", [] { (void)heed::read_idx_images("/nonexistent/idx"); }, "/nonexistent/idx"),
      row<heed::IoError>("load_mnist missing directory", [] { (void)heed::load_mnist("/nonexistent"); }, "fetch-mnist"),
      row<heed::IoError>("load missing checkpoint", [] {
        heed::Linear<float> l(2, 2);
        heed::load(l, "/nonexistent/model.heed");
      }, "cannot open"),
  });
}
