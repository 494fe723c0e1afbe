#include <doctest/doctest.h>

#include <cmath>
#include <heed/models/seq2seq.hpp>
#include <heed/optim/adam.hpp>
#include <heed/optim/clip_grad.hpp>
#include <heed/testing/gradcheck.hpp>
#include <string>

#include "common/errors.hpp"
#include "common/helpers.hpp"

using heed::Index;
using heed::Labels;
using heed::Matrix;
using heed::Seq2SeqOptions;
using heed::Tokens;
using heed::testing::check_gradient;
using heed::testing::GradcheckResult;
using heed::testing::merge;
using heed_test::error_of;
using heed_test::labels;
using heed_test::tokens;

namespace {

// Tiny sizes: 2He = 4 != Hd = 3, so dot and scaled scores go through the key projection.
Seq2SeqOptions tiny(Index Hd = 3) {
  return {.src_vocab = 6, .tgt_vocab = 5, .embed_dim = 3, .enc_hidden = 2, .dec_hidden = Hd,
          .attention_dim = 3};
}

// A batch of two: source lengths 4 and 2 (pad 0 after), targets of 2 and 1 tokens + eos.
struct Batch {
  Tokens src = tokens(2, 4, {3, 4, 5, 3, 5, 4, 0, 0});
  Labels len = labels({4, 2});
  Tokens tgt_in = tokens(2, 3, {1, 3, 4, 1, 4, 0});
  Tokens tgt_out = tokens(2, 3, {3, 4, 2, 4, 2, 0});
};

// Gradient of the model's loss w.r.t. every parameter, analytic vs central differences.
template <template <typename> class Score>
GradcheckResult gradcheck_model(Seq2SeqOptions opt, const Batch& d, std::uint64_t seed) {
  heed::Generator gen(seed);
  heed::Seq2Seq<double, Score> model(opt, gen);
  // Larger weights than the init make the attention weights far from uniform.
  for (auto& p : model.parameters()) *p.value *= 2.0;
  model.zero_grad();
  model.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  model.backward();
  auto loss = [&] { return model.forward_train(d.src, d.len, d.tgt_in, d.tgt_out); };
  GradcheckResult res;
  for (auto& p : model.parameters()) {
    const Matrix<double> g = *p.grad;
    merge(res, check_gradient(p.name, *p.value, g, loss, {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-5}));
  }
  return res;
}

template <template <typename> class Score>
void check_all_scores_case(const char* label, Seq2SeqOptions opt, const Batch& d) {
  const auto res = gradcheck_model<Score>(opt, d, 11);
  INFO(label << ": " << res.detail);
  CHECK(res.ok);
  CHECK(res.checked > 100);
}

}  // namespace

TEST_CASE("Seq2Seq: one decoder step with attention, gradient check for every score") {
  // To = 1: the encoder, the bridge, one attention step, one GRUCell step and the head.
  Batch d;
  d.tgt_in = tokens(2, 1, {1, 1});
  d.tgt_out = tokens(2, 1, {3, 4});
  check_all_scores_case<heed::AdditiveScore>("additive", tiny(), d);
  check_all_scores_case<heed::DotProductScore>("dot (projected keys)", tiny(), d);
  check_all_scores_case<heed::ScaledDotProductScore>("scaled (projected keys)", tiny(), d);
  check_all_scores_case<heed::GeneralScore>("general", tiny(), d);
  check_all_scores_case<heed::DotProductScore>("dot (2He == Hd)", tiny(4), d);
}

TEST_CASE("Seq2Seq: whole-model loss gradient check (3 steps, padded source and target)") {
  const Batch d;
  check_all_scores_case<heed::AdditiveScore>("additive", tiny(), d);
  check_all_scores_case<heed::DotProductScore>("dot", tiny(), d);
  check_all_scores_case<heed::ScaledDotProductScore>("scaled", tiny(), d);
  check_all_scores_case<heed::GeneralScore>("general", tiny(), d);
  check_all_scores_case<heed::ScaledDotProductScore>("scaled (2He == Hd)", tiny(4), d);
}

TEST_CASE("Seq2Seq: parameter names are hierarchical and gradients accumulate") {
  heed::Generator gen(3);
  heed::Seq2Seq<double, heed::DotProductScore> dot(tiny(), gen);
  std::vector<std::string> names;
  for (auto& p : dot.parameters()) names.push_back(p.name);
  CHECK(names.front() == "encoder.embedding.weight");
  CHECK(std::find(names.begin(), names.end(), "encoder.rnn.weight_hh_l0_reverse") != names.end());
  CHECK(std::find(names.begin(), names.end(), "decoder.attention.key_proj.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "decoder.cell.weight_ih") != names.end());
  CHECK(names.back() == "decoder.out.bias");
  heed::Seq2Seq<double> add(tiny(), gen);
  names.clear();
  for (auto& p : add.parameters()) names.push_back(p.name);
  CHECK(std::find(names.begin(), names.end(), "decoder.attention.score.W_k") != names.end());
  CHECK(std::find(names.begin(), names.end(), "decoder.attention.key_proj.weight") == names.end());

  const Batch d;
  add.zero_grad();
  add.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  add.backward();
  const Matrix<double> g1 = *add.parameters()[0].grad;
  add.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  add.backward();
  CHECK((*add.parameters()[0].grad - 2 * g1).norm() < 1e-12);

  // A ModuleBase like every learnable component; a copy is an independent, equal model.
  heed::ModuleBase<double>& base = add;
  base.zero_grad();
  CHECK(add.parameters()[0].grad->isZero(0));
  CHECK(base.num_parameters() > 100);
  heed::Seq2Seq<double> copy = add;
  (*copy.parameters()[0].value)(3, 0) += 1.0;
  const double l_orig = add.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  const double l_copy = copy.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  CHECK(l_orig != l_copy);
  (*copy.parameters()[0].value)(3, 0) -= 1.0;
  CHECK(copy.forward_train(d.src, d.len, d.tgt_in, d.tgt_out) == doctest::Approx(l_orig).epsilon(1e-14));
}

TEST_CASE("Seq2Seq: attention rows sum to 1 over the valid source and are 0 on padding") {
  heed::Generator gen(5);
  heed::Seq2Seq<double> model(tiny(), gen);
  const Batch d;
  model.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  const Matrix<double>& P = model.attention_weights();  // (B*To, Ts)
  REQUIRE(P.rows() == 6);
  REQUIRE(P.cols() == 4);
  for (Index b = 0; b < 2; ++b)
    for (Index t = 0; t < 3; ++t) {
      const auto row = P.row(b * 3 + t);
      CHECK(row.head(d.len(b)).sum() == doctest::Approx(1.0).epsilon(1e-12));
      CHECK((row.head(d.len(b)).array() > 0).all());
      if (d.len(b) < 4) CHECK(row.tail(4 - d.len(b)).isZero(0));
    }
  for (const auto& tr : model.beam_search(d.src, d.len, 2, 5)) {
    CHECK(tr.attention.rows() == Index(tr.tokens.size()));
    for (Index i = 0; i < tr.attention.rows(); ++i)
      CHECK(tr.attention.row(i).sum() == doctest::Approx(1.0).epsilon(1e-12));
  }
  const auto g = model.greedy_decode(d.src, d.len, 5);
  CHECK(g[1].attention.cols() == 2);  // T_in of sample 1: its length, padding dropped
}

// Greedy decoding is beam_search with beam 1 (search.hpp); that it takes the argmax at each step
// is checked against an independent loop in test_transformer_seq2seq.cpp.
TEST_CASE("Seq2Seq: decoded log-probs and attention match teacher forcing; beam 4 >= greedy") {
  heed::Generator gen(9);
  Seq2SeqOptions opt = tiny();
  opt.tgt_vocab = 7;
  opt.dec_hidden = 8;
  opt.enc_hidden = 4;
  heed::Seq2Seq<double, heed::GeneralScore> model(opt, gen);
  for (auto& p : model.parameters()) *p.value *= 3.0;  // a peaked model: eos comes at some point
  const Tokens src = tokens(3, 5, {3, 4, 5, 3, 4, 5, 5, 0, 0, 0, 4, 3, 3, 5, 0});
  const Labels len = labels({5, 2, 4});
  const auto g = model.greedy_decode(src, len, 6);
  const auto b4 = model.beam_search(src, len, 4, 6);
  REQUIRE(g.size() == 3);
  for (std::size_t b = 0; b < 3; ++b)
    CHECK(b4[b].log_prob >= g[b].log_prob - 1e-12);  // here the wider beam finds better or equal
  // Teacher-forcing the decoded sequence reproduces its log-probability: the decoding loops and
  // the training loop compute the same model.
  for (const auto* res : {&g, &b4})
    for (Index b = 0; b < 3; ++b) {
      const auto& tr = (*res)[static_cast<std::size_t>(b)];
      const Index n = Index(tr.tokens.size());
      Tokens s1 = src.row(b), ti(1, n), to(1, n);
      for (Index i = 0; i < n; ++i) {
        to(0, i) = tr.tokens[static_cast<std::size_t>(i)];
        ti(0, i) = i == 0 ? opt.bos_id : tr.tokens[static_cast<std::size_t>(i - 1)];
      }
      const double loss = model.forward_train(s1, len.segment(b, 1), ti, to);
      CHECK(-loss * double(n) == doctest::Approx(tr.log_prob).epsilon(1e-10));
      const Matrix<double> P = model.attention_weights().leftCols(len(b));
      CHECK((P - tr.attention).cwiseAbs().maxCoeff() < 1e-10);
    }
}

TEST_CASE("Seq2Seq learns to reverse short sequences (Adam, a few hundred steps)") {
  // Source: 2..6 symbols from {3, 4, 5, 6, 7}; target: the same reversed, then eos.
  const Index B = 32, Tmax = 6;
  Seq2SeqOptions opt{.src_vocab = 8, .tgt_vocab = 8, .embed_dim = 8, .enc_hidden = 16,
                     .dec_hidden = 32, .attention_dim = 16};
  heed::Generator gen(1);
  heed::Seq2Seq<float> model(opt, gen);
  heed::Adam<float> adam(model.parameters(), {.lr = 1e-2f});
  Tokens src(B, Tmax), tin(B, Tmax + 1), tout(B, Tmax + 1);
  Labels len(B);
  auto make = [&] {
    src.setZero();
    tin.setZero();
    tout.setZero();
    for (Index b = 0; b < B; ++b) {
      len(b) = static_cast<int>(2 + gen.below(Tmax - 1));
      for (Index t = 0; t < len(b); ++t) src(b, t) = static_cast<int>(3 + gen.below(5));
      tin(b, 0) = opt.bos_id;
      for (Index t = 0; t < len(b); ++t) {
        tout(b, t) = src(b, len(b) - 1 - t);
        tin(b, t + 1) = tout(b, t);
      }
      tout(b, len(b)) = opt.eos_id;
    }
  };
  float loss = 0;
  int step = 0;
  for (; step < 400; ++step) {
    make();
    adam.zero_grad();
    loss = model.forward_train(src, len, tin, tout);
    model.backward();
    heed::clip_grad_norm_(model.parameters(), 1.0f);
    adam.step();
    if (loss < 0.02f) break;
  }
  MESSAGE("reverse task: loss " << loss << " after " << step << " steps");
  CHECK(loss < 0.05f);
  make();
  const auto out = model.greedy_decode(src, len, Tmax + 1);
  int exact = 0;
  for (Index b = 0; b < B; ++b) {
    bool ok = Index(out[b].tokens.size()) == len(b) + 1;
    for (Index t = 0; ok && t <= len(b); ++t) ok = out[b].tokens[t] == tout(b, t);
    exact += ok;
  }
  CHECK(exact >= B - 2);
}

TEST_CASE("Seq2Seq: shape and argument errors name the problem") {
  heed::Generator gen(2);
  heed::Seq2Seq<float> m(tiny(), gen);
  const Batch d;
  using doctest::Contains;
  CHECK_THROWS_AS(heed::Seq2Seq<float>(Seq2SeqOptions{}), heed::ValueError);
  auto o = tiny();
  o.eos_id = o.bos_id;
  CHECK(error_of([&] { heed::Seq2Seq<float> x(o); }).find("bos_id and eos_id must differ") !=
        std::string::npos);
  o = tiny();
  o.pad_id = 9;
  CHECK(error_of([&] { heed::Seq2Seq<float> x(o); }).find("pad_id 9") != std::string::npos);
  CHECK(error_of([&] { m.backward(); }) ==
        "Seq2Seq<Additive>: backward called without forward_train");
  CHECK(error_of([&] { m.forward_train(d.src, labels({4}), d.tgt_in, d.tgt_out); }) ==
        "Seq2Seq<Additive>: src_lengths expected (2), got (1)");
  CHECK(error_of([&] { m.forward_train(d.src, labels({4, 5}), d.tgt_in, d.tgt_out); }) ==
        "Seq2Seq<Additive>: src_lengths[1] = 5 out of range [1, 4]");
  CHECK(error_of([&] { m.forward_train(d.src, labels({0, 2}), d.tgt_in, d.tgt_out); }) ==
        "Seq2Seq<Additive>: src_lengths[0] = 0 out of range [1, 4]");
  CHECK(error_of([&] { m.forward_train(d.src, d.len, d.tgt_in, tokens(2, 2, {1, 2, 3, 4})); }) ==
        "Seq2Seq<Additive>: tgt_out expected (2, 3) (as tgt_in), got (2, 2)");
  CHECK(error_of([&] { m.forward_train(d.src, d.len, tokens(1, 3, {1, 2, 3}), d.tgt_out); }) ==
        "Seq2Seq<Additive>: tgt_in expected (2, To >= 1), got (1, 3)");
  CHECK(error_of([&] { m.forward_train(tokens(2, 1, {1, 9}), labels({1, 1}), d.tgt_in, d.tgt_out); })
            .find("Embedding: index 9") != std::string::npos);
  CHECK(error_of([&] { m.forward_train(d.src, d.len, d.tgt_in, tokens(2, 3, {3, 4, 2, 4, 7, 0})); })
            .find("CrossEntropyLoss: target 7") != std::string::npos);
  CHECK(error_of([&] { m.beam_search(d.src, d.len, 0, 5); }) ==
        "Seq2Seq<Additive>: beam_size must be >= 1, got 0");
  CHECK(error_of([&] { m.greedy_decode(d.src, d.len, 0); }) ==
        "Seq2Seq<Additive>: max_len must be >= 1, got 0");
  CHECK(error_of([&] { m.greedy_decode(Tokens(0, 3), Labels(0), 4); }) ==
        "Seq2Seq<Additive>: src expected (B >= 1, Ts >= 1), got (0, 3)");
}
