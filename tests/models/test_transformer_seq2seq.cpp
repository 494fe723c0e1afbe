// TransformerSeq2Seq: gradient check of the loss, cached decoding against full recomputation
// (same tokens, same log-probabilities), beam search, learning a toy task, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <heed/models/transformer_seq2seq.hpp>
#include <heed/optim/adam.hpp>
#include <heed/testing/gradcheck.hpp>
#include <string>

#include "common/errors.hpp"
#include "common/helpers.hpp"

using heed::Index;
using heed::Labels;
using heed::Matrix;
using heed::PositionalEncodingKind;
using heed::Tokens;
using heed::TransformerSeq2Seq;
using heed::TransformerSeq2SeqOptions;
using heed_test::error_of;
using heed_test::labels;
using heed_test::tokens;

namespace {

TransformerSeq2SeqOptions tiny(PositionalEncodingKind pos, bool norm_first = false) {
  return {.src_vocab = 6, .tgt_vocab = 5, .d_model = 4, .nhead = 2, .num_encoder_layers = 1,
          .num_decoder_layers = 2, .dim_feedforward = 6, .dropout = 0.0, .norm_first = norm_first,
          .positions = pos, .max_len = 8};
}

// Source lengths 4 and 2 (pad 0 after), targets of 2 and 1 tokens + eos.
struct Batch {
  Tokens src = tokens(2, 4, {3, 4, 5, 3, 5, 4, 0, 0});
  Labels len = labels({4, 2});
  Tokens tgt_in = tokens(2, 3, {1, 3, 4, 1, 4, 0});
  Tokens tgt_out = tokens(2, 3, {3, 4, 2, 4, 2, 0});
};

// Decoding by full recomputation: every step runs the whole prefix through forward() and
// reads the last position's logits. The same search as the model's, another step function.
std::vector<heed::Translation<double>> decode_full(TransformerSeq2Seq<double>& m, const Tokens& src,
                                                   const Labels& len, Index beam, Index max_len) {
  const bool was_training = m.training();
  m.eval();
  std::vector<std::vector<int>> prefix;  // of the rows of the last step
  Matrix<double> logits;
  auto step = [&](const std::vector<Index>& parents, const std::vector<Index>& samples,
                  const Labels& toks, Matrix<double>&) -> const Matrix<double>& {
    const Index n = Index(parents.size());
    std::vector<std::vector<int>> next(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) {
      if (!prefix.empty()) next[i] = prefix[parents[i]];
      next[i].push_back(toks(i));
    }
    prefix = next;
    const Index t = Index(prefix[0].size());
    Tokens s(n, src.cols()), tin(n, t);
    Labels l(n);
    for (Index i = 0; i < n; ++i) {
      s.row(i) = src.row(samples[i]);
      l(i) = len(samples[i]);
      for (Index j = 0; j < t; ++j) tin(i, j) = prefix[i][j];
    }
    const Matrix<double>& all = m.forward(s, l, tin);  // (n*t, V)
    logits.resize(n, all.cols());
    for (Index i = 0; i < n; ++i) logits.row(i) = all.row(i * t + t - 1);
    return logits;
  };
  auto res = heed::beam_search<double>(src.rows(), len, {.beam_size = beam, .max_len = max_len}, step);
  m.train(was_training);
  return res;
}

}  // namespace

TEST_CASE("TransformerSeq2Seq: gradient check of the loss, sinusoidal and learned positions") {
  const Batch d;
  for (auto pos : {PositionalEncodingKind::sinusoidal, PositionalEncodingKind::learned}) {
    CAPTURE(pos == PositionalEncodingKind::learned);
    heed::Generator gen(3);
    auto opt = tiny(pos, pos == PositionalEncodingKind::learned);
    opt.scale_embeddings = pos == PositionalEncodingKind::learned;  // both scales, once each
    TransformerSeq2Seq<double> model(opt, gen);
    model.zero_grad();
    model.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
    model.backward();
    auto loss = [&] { return model.forward_train(d.src, d.len, d.tgt_in, d.tgt_out); };
    heed::testing::GradcheckResult res;
    int n = 0;
    for (auto& p : model.parameters()) {
      const Matrix<double> g = *p.grad;
      heed::testing::merge(res, heed::testing::check_gradient(p.name, *p.value, g, loss,
                                                              {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-5}));
      ++n;
    }
    CHECK_MESSAGE(res.ok, res.detail);
    // 2 embeddings, [2 position tables], encoder layer 12 + norm 2, 2 decoder layers of 18 +
    // norm 2, generator 2.
    CHECK(n == (pos == PositionalEncodingKind::learned ? 2 : 0) + 2 + 14 + 38 + 2);
  }
}

TEST_CASE("TransformerSeq2Seq: state_dict names") {
  TransformerSeq2Seq<double> model(tiny(PositionalEncodingKind::learned));
  const auto keys = model.state_dict().keys();
  REQUIRE(keys.size() >= 6);
  CHECK(keys[0] == "src_tok_emb.weight");
  CHECK(keys[1] == "tgt_tok_emb.weight");
  CHECK(keys[2] == "src_pos.weight");
  CHECK(keys[3] == "tgt_pos.weight");
  CHECK(keys[4] == "transformer.encoder.layers.0.self_attn.in_proj_weight");
  CHECK(keys.back() == "generator.bias");
}

TEST_CASE("TransformerSeq2Seq: cached decoding gives the tokens and log-probs of full recomputation") {
  // Larger weights than the init: the decoded sequences vary and run to max_len or eos.
  const Tokens src = tokens(3, 5, {3, 4, 5, 3, 4, 5, 4, 0, 0, 0, 4, 4, 3, 5, 0});
  const Labels len = labels({5, 2, 4});
  for (bool norm_first : {false, true})
    for (auto pos : {PositionalEncodingKind::sinusoidal, PositionalEncodingKind::learned}) {
      CAPTURE(norm_first);
      CAPTURE(pos == PositionalEncodingKind::learned);
      heed::Generator gen(11);
      auto opt = tiny(pos, norm_first);
      opt.dropout = 0.1;  // inactive: decoding runs in eval mode
      TransformerSeq2Seq<double> model(opt, gen);
      for (auto& p : model.parameters()) *p.value *= 1.5;
      for (Index beam : {1, 3}) {
        CAPTURE(beam);
        const auto cached = model.beam_search(src, len, beam, 7);
        const auto full = decode_full(model, src, len, beam, 7);
        REQUIRE(cached.size() == 3);
        for (std::size_t b = 0; b < 3; ++b) {
          CHECK(cached[b].tokens == full[b].tokens);
          CHECK(std::abs(cached[b].log_prob - full[b].log_prob) < 1e-10);
          // The attention: (tokens, lengths[b]), rows sum to 1.
          CHECK(cached[b].attention.rows() == Index(cached[b].tokens.size()));
          CHECK(cached[b].attention.cols() == len(Index(b)));
          for (Index r = 0; r < cached[b].attention.rows(); ++r)
            CHECK(std::abs(cached[b].attention.row(r).sum() - 1) < 1e-12);
        }
      }
      CHECK(model.training());  // the mode is restored after decoding
    }
}

// Sum of log-softmax(logits)[token] along a sequence teacher-forced through forward, one sample.
// With argmax = true it also checks that every token is the first maximum of its row.
double rescore(TransformerSeq2Seq<double>& m, const Tokens& src, const Labels& len, Index b,
               const std::vector<int>& toks, bool argmax) {
  const Index n = Index(toks.size());
  Tokens s1 = src.row(b), tin(1, n);
  for (Index i = 0; i < n; ++i) tin(0, i) = i == 0 ? 1 : toks[std::size_t(i - 1)];
  const Matrix<double> logits = m.forward(s1, len.segment(b, 1), tin);  // (n, V)
  double lp = 0;
  for (Index i = 0; i < n; ++i) {
    const auto row = logits.row(i);
    const double lse = std::log((row.array() - row.maxCoeff()).exp().sum()) + row.maxCoeff();
    lp += row(toks[std::size_t(i)]) - lse;
    if (argmax) {
      Index best;
      row.maxCoeff(&best);  // the first maximum: the lowest id on ties
      CHECK(best == toks[std::size_t(i)]);
    }
  }
  return lp;
}

TEST_CASE("TransformerSeq2Seq: greedy takes the argmax of teacher-forced logits; beams re-score") {
  const Tokens src = tokens(3, 4, {3, 4, 5, 3, 5, 4, 0, 0, 4, 4, 3, 0});
  const Labels len = labels({4, 2, 3});
  heed::Generator gen(5);
  TransformerSeq2Seq<double> model(tiny(PositionalEncodingKind::sinusoidal), gen);
  for (auto& p : model.parameters()) *p.value *= 2.0;
  const auto g = model.greedy_decode(src, len, 6);
  const auto b4 = model.beam_search(src, len, 4, 6);
  model.eval();  // forward in eval mode, as decoding (dropout is 0 here anyway)
  int ended = 0;
  for (Index b = 0; b < 3; ++b) {
    CAPTURE(b);
    const auto& gb = g[std::size_t(b)];
    const auto& bb = b4[std::size_t(b)];
    ended += !gb.tokens.empty() && gb.tokens.back() == 2;
    CHECK(std::abs(rescore(model, src, len, b, gb.tokens, true) - gb.log_prob) < 1e-10);
    CHECK(std::abs(rescore(model, src, len, b, bb.tokens, false) - bb.log_prob) < 1e-10);
    CHECK(bb.log_prob >= gb.log_prob - 1e-12);
  }
  MESSAGE(ended << " of 3 greedy outputs end with eos");
}

TEST_CASE("beam_search: refuses non-finite logits and misshapen step results") {
  const Labels widths = labels({2, 3});
  Matrix<double> logits;
  auto run = [&](Matrix<double> l, Index att_cols) {
    return error_of([&] {
      heed::beam_search<double>(2, widths, {.beam_size = 2, .max_len = 3},
                                [&](const std::vector<Index>& parents, const std::vector<Index>&,
                                    const Labels&, Matrix<double>& att) -> const Matrix<double>& {
                                  logits = l.topRows(Index(parents.size()));
                                  if (att_cols >= 0) att.setZero(Index(parents.size()), att_cols);
                                  return logits;
                                });
    });
  };
  Matrix<double> nan = Matrix<double>::Zero(2, 4);
  nan(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK(run(nan, -1).starts_with("beam_search: non-finite logits at step 0 for sample 1"));
  CHECK(run(Matrix<double>::Zero(2, 0), -1) ==
        "beam_search: step returned logits (2, 0), expected (2, V >= 1)");
  CHECK(run(Matrix<double>::Zero(2, 4), 2) ==
        "beam_search: step returned attention (2, 2), expected empty or (2, >= 3)");
}

TEST_CASE("TransformerSeq2Seq: learns to copy a sequence (float)") {
  // Copy 3-5 symbols of 4 with a 2+2-layer model: the loss falls 500-fold within 2000 steps.
  heed::Generator gen(1), data(2);
  TransformerSeq2Seq<float> model({.src_vocab = 7, .tgt_vocab = 7, .d_model = 32, .nhead = 4,
                                   .num_encoder_layers = 2, .num_decoder_layers = 2,
                                   .dim_feedforward = 64, .dropout = 0.0, .max_len = 8},
                                  gen);
  heed::Adam<float> adam(model.parameters(), {.lr = 3e-3f});
  const Index B = 32, Ts = 5;
  auto batch = [&](Tokens& src, Labels& len, Tokens& tin, Tokens& tout) {
    src.setZero(B, Ts);
    tin.setZero(B, Ts + 1);
    tout.setZero(B, Ts + 1);
    len.resize(B);
    for (Index b = 0; b < B; ++b) {
      len(b) = 3 + Index(data.below(3));
      tin(b, 0) = 1;
      for (Index t = 0; t < len(b); ++t) {
        src(b, t) = 3 + int(data.below(4));
        tin(b, t + 1) = tout(b, t) = src(b, t);
      }
      tout(b, len(b)) = 2;
    }
  };
  Tokens src, tin, tout;
  Labels len;
  float first = 0, last = 0;
  int it = 0;
  for (; it < 2000 && !(it > 0 && last < 0.002f * first); ++it) {  // stops when learned
    batch(src, len, tin, tout);
    adam.zero_grad();
    last = model.forward_train(src, len, tin, tout);
    if (it == 0) first = last;
    model.backward();
    adam.step();
  }
  MESSAGE("copy task: loss " << first << " -> " << last << " in " << it << " steps");
  CHECK(last < 0.002f * first);
  int exact = 0;  // over 4 new batches (128 sequences)
  for (int rep = 0; rep < 4; ++rep) {
    batch(src, len, tin, tout);
    const auto out = model.greedy_decode(src, len, 7);
    for (Index b = 0; b < B; ++b) {
      std::vector<int> want(src.row(b).data(), src.row(b).data() + len(b));
      want.push_back(2);
      exact += out[b].tokens == want;
    }
  }
  MESSAGE("copy task: " << exact << " of 128 decoded exactly");
  CHECK(exact >= 124);
}

TEST_CASE("TransformerSeq2Seq: errors") {
  TransformerSeq2Seq<double> model(tiny(PositionalEncodingKind::sinusoidal));
  const Batch d;
  CHECK(error_of([] { TransformerSeq2Seq<double>({.src_vocab = 0, .tgt_vocab = 5}); }) ==
        "TransformerSeq2Seq: src_vocab and tgt_vocab must be positive, got 0 and 5");
  CHECK(error_of([] {
          TransformerSeq2Seq<double>({.src_vocab = 6, .tgt_vocab = 5, .bos_id = 2, .eos_id = 2});
        }) == "TransformerSeq2Seq: bos_id and eos_id must differ");
  CHECK(error_of([&] { model.backward(); }) ==
        "TransformerSeq2Seq: backward called without forward_train");
  model.forward_train(d.src, d.len, d.tgt_in, d.tgt_out);
  model.greedy_decode(d.src, d.len, 3);
  CHECK(error_of([&] { model.backward(); }) ==
        "TransformerSeq2Seq: backward called without forward_train (decoding since the last one "
        "discarded it)");
  CHECK(error_of([&] { model.forward_train(Tokens::Zero(2, 9), d.len, d.tgt_in, d.tgt_out); }) ==
        "TransformerSeq2Seq: src expected (B >= 1, 1 <= Ts <= max_len 8), got (2, 9)");
  CHECK(error_of([&] { model.forward_train(d.src, labels({4, 5}), d.tgt_in, d.tgt_out); }) ==
        "TransformerSeq2Seq: src_lengths[1] = 5 out of range [1, 4]");
  CHECK(error_of([&] { model.forward_train(d.src, d.len, d.tgt_in, Tokens::Zero(2, 2)); }) ==
        "TransformerSeq2Seq: tgt_out expected (2, 3) (as tgt_in), got (2, 2)");
  CHECK(error_of([&] { model.beam_search(d.src, d.len, 2, 9); }) ==
        "TransformerSeq2Seq: max_len 9 exceeds the model's max_len 8");
  CHECK(error_of([&] { model.beam_search(d.src, d.len, 0, 5); }) ==
        "TransformerSeq2Seq: beam_size must be >= 1, got 0");
  CHECK(error_of([&] { model.greedy_decode(d.src, d.len, 0); }) ==
        "TransformerSeq2Seq: max_len must be >= 1, got 0");
  Tokens bad = d.src;
  bad(0, 0) = 6;  // outside the source vocabulary
  CHECK(error_of([&] { model.greedy_decode(bad, d.len, 4); }).starts_with("Embedding: index 6"));
}
