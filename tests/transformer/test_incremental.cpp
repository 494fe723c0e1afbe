// Incremental decoding: TransformerDecoder::forward_step over the KV caches gives, token by
// token, the rows of a full causal forward; reorder follows beam search; errors; no allocation
// once the caches have room.
#include "helpers.hpp"  // first: see there

using namespace tr_test;
using heed::KVCache;
using heed::TransformerDecoder;
using heed::TransformerDecoderCache;
using heed::TransformerDecoderLayer;
using heed::TransformerLayerOptions;

namespace {

constexpr Index kD = 8, kH = 2, kFF = 12, kB = 2, kT = 5, kTm = 4;

TransformerDecoder<double> make_decoder(bool norm_first, std::uint64_t seed) {
  heed::Generator gen(seed);
  TransformerDecoder<double> dec(kD, kH, 2,
                                 {.dim_feedforward = kFF, .dropout = 0.1, .norm_first = norm_first},
                                 {.norm = heed::LayerNorm<double>(kD)}, gen);
  randomize(dec, seed + 1);
  dec.eval();
  return dec;
}

// Rows t of sample b..: (n, d) from a (B*T, d) batch.
Matrix<double> step_rows(const Matrix<double>& x, Index T, Index t, const std::vector<Index>& seq) {
  Matrix<double> r(Index(seq.size()), x.cols());
  for (std::size_t i = 0; i < seq.size(); ++i) r.row(Index(i)) = x.row(seq[i] * T + t);
  return r;
}

}  // namespace

TEST_CASE("TransformerDecoder::forward_step equals the full causal forward, row by row") {
  BoolMatrix pad = BoolMatrix::Zero(kB, kTm);
  pad(1, 3) = pad(1, 2) = true;
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    auto dec = make_decoder(norm_first, 3);
    const Matrix<double> tgt = randn(kB * kT, kD, 10), mem = randn(kB * kTm, kD, 11);
    const Matrix<double> full =
        dec.forward(tgt, mem, kB, {.memory_key_padding_mask = &pad, .tgt_is_causal = true});
    TransformerDecoderCache<double> cache;
    dec.start_cache(mem, kB, cache, &pad, /*capacity=*/2);  // 2: the cache must grow twice
    Matrix<double> w;
    for (Index t = 0; t < kT; ++t) {
      CAPTURE(t);
      const Matrix<double> y = dec.forward_step(step_rows(tgt, kT, t, {0, 1}), cache, nullptr, &w);
      CHECK(cache.length() == t + 1);
      CHECK(rel_err(y, step_rows(full, kT, t, {0, 1})) < 1e-12);
      // The last layer's cross-attention: rows sum to 1, nothing on sample 1's padding.
      REQUIRE(w.rows() == kB);
      REQUIRE(w.cols() == kTm);
      CHECK(std::abs(w.row(0).sum() - 1) < 1e-12);
      CHECK(std::abs(w.row(1).sum() - 1) < 1e-12);
      CHECK(w(1, 2) == 0.0);
      CHECK(w(1, 3) == 0.0);
    }
  }
}

TEST_CASE("TransformerDecoder: reorder and memory_row follow beam search's bookkeeping") {
  // Two steps on rows {sample 0, sample 1}, then three rows continuing {1, 0, 1}: each must
  // equal the full forward of the sequence it continues.
  auto dec = make_decoder(false, 5);
  const Matrix<double> tgt = randn(kB * kT, kD, 20), mem = randn(kB * kTm, kD, 21);
  const Matrix<double> full = dec.forward(tgt, mem, kB, {.tgt_is_causal = true});
  TransformerDecoderCache<double> cache;
  dec.start_cache(mem, kB, cache);
  for (Index t = 0; t < 2; ++t) dec.forward_step(step_rows(tgt, kT, t, {0, 1}), cache);
  const std::vector<Index> parents{1, 0, 1};  // row i continues row parents[i] = sample
  cache.reorder(parents);
  CHECK(cache.rows() == 3);
  for (Index t = 2; t < kT; ++t) {
    const Matrix<double> y = dec.forward_step(step_rows(tgt, kT, t, parents), cache, &parents);
    CHECK(rel_err(y, step_rows(full, kT, t, parents)) < 1e-12);
  }
}

TEST_CASE("TransformerDecoderCache::truncate: the next step is at the kept length") {
  auto dec = make_decoder(true, 6);
  const Matrix<double> tgt = randn(kB * kT, kD, 25), mem = randn(kB * kTm, kD, 26);
  const Matrix<double> full = dec.forward(tgt, mem, kB, {.tgt_is_causal = true});
  TransformerDecoderCache<double> cache;
  dec.start_cache(mem, kB, cache);
  for (Index t = 0; t < 4; ++t) dec.forward_step(randn(kB, kD, 90 + t), cache);  // other tokens
  cache.truncate(0);
  for (Index t = 0; t < kT; ++t)
    CHECK(rel_err(dec.forward_step(step_rows(tgt, kT, t, {0, 1}), cache),
                  step_rows(full, kT, t, {0, 1})) < 1e-12);
  cache.truncate(2);
  CHECK(cache.length() == 2);
  CHECK(rel_err(dec.forward_step(step_rows(tgt, kT, 2, {0, 1}), cache),
                step_rows(full, kT, 2, {0, 1})) < 1e-12);
  CHECK(error_of<heed::ValueError>([&] { cache.truncate(4); }) ==
        "KVCache::truncate: length 4 out of range [0, 3]");
}

TEST_CASE("TransformerDecoder::forward_step allocates nothing once the caches have room") {
  auto dec = make_decoder(true, 7);
  const Matrix<double> tgt = randn(kB * kT, kD, 30), mem = randn(kB * kTm, kD, 31);
  TransformerDecoderCache<double> cache;
  dec.start_cache(mem, kB, cache, nullptr, /*capacity=*/kT);
  std::vector<Matrix<double>> x;
  for (Index t = 0; t < kT; ++t) x.push_back(step_rows(tgt, kT, t, {0, 1}));
  dec.forward_step(x[0], cache);  // warm-up: the steps' scratch buffers get their shapes
  NoEigenMalloc guard;
  for (Index t = 1; t < kT; ++t) dec.forward_step(x[t], cache);
  CHECK(cache.length() == kT);
}

TEST_CASE("incremental decoding: errors") {
  auto dec = make_decoder(false, 9);
  const Matrix<double> mem = randn(kB * kTm, kD, 41);
  TransformerDecoderCache<double> cache;
  CHECK(error_of<heed::ValueError>([&] { dec.forward_step(randn(kB, kD, 1), cache); }) ==
        "TransformerDecoder::forward_step: cache has 0 layers, expected 2 (call start_cache first)");
  CHECK(error_of<heed::ShapeError>([&] { dec.start_cache(randn(5, kD, 1), kB, cache); }) ==
        "TransformerDecoder::start_cache: memory rows 5 not a positive multiple of batch size 2");
  BoolMatrix bad_pad = BoolMatrix::Zero(kB, kTm + 1);
  CHECK(error_of<heed::ShapeError>([&] { dec.start_cache(mem, kB, cache, &bad_pad); })
            .starts_with("TransformerDecoder::start_cache: memory_key_padding_mask expected"));
  dec.start_cache(mem, kB, cache);
  CHECK(error_of<heed::ValueError>([&] { dec.start_cache(mem, kB, cache, nullptr, 0); }) ==
        "TransformerDecoder::start_cache: capacity must be positive, got 0");
  dec.forward_step(randn(kB, kD, 1), cache);  // one good step: every layer holds 1 token
  CHECK(error_of<heed::ShapeError>([&] { dec.forward_step(randn(3, kD, 1), cache); }) ==
        "TransformerDecoder::forward_step: x expected (2, 8), got (3, 8)");
  const std::vector<Index> bad_parent{0, 2};
  CHECK(error_of<heed::ValueError>([&] { cache.reorder(bad_parent); }) ==
        "KVCache::reorder: parents[1] = 2 out of range [0, 2)");
  const std::vector<Index> bad_row{0, 5}, short_row{0};
  CHECK(error_of<heed::ValueError>([&] { dec.forward_step(randn(kB, kD, 1), cache, &bad_row); }) ==
        "TransformerDecoder::forward_step: memory_row entry 5 out of range [0, 2)");
  CHECK(error_of<heed::ShapeError>([&] { dec.forward_step(randn(kB, kD, 1), cache, &short_row); }) ==
        "TransformerDecoder::forward_step: memory_row expected 2 entries (one per row), got 1");
  // A refused step changed nothing: every layer still holds the one good token.
  for (auto& l : cache.layers) CHECK(l.self.length() == 1);
  // The same refusal from a layer called alone, before its cache changes.
  CHECK(error_of<heed::ValueError>([&] {
          dec.layer(0).forward_step(randn(kB, kD, 1), cache.layers[0], {.memory_row = &bad_row});
        }) == "TransformerDecoderLayer::forward_step: memory_row entry 5 out of range [0, 2)");
  CHECK(cache.layers[0].self.length() == 1);
  // A cache whose layers disagree (edited one by one) is refused, not decoded.
  cache.layers[1].self.truncate(0);
  CHECK(error_of<heed::ValueError>([&] { dec.forward_step(randn(kB, kD, 1), cache); }) ==
        "TransformerDecoder::forward_step: cache layer 1 holds 0 tokens, layer 0 1 (a cache "
        "edited layer by layer)");
  cache.truncate(0);
  // Training mode with dropout: the step has none, so it refuses rather than differ silently.
  dec.train();
  CHECK(error_of<heed::ValueError>([&] { dec.forward_step(randn(kB, kD, 1), cache); }) ==
        "TransformerDecoder::forward_step: incremental decoding has no dropout; call eval() "
        "(dropout 0.1 in training mode)");
  CHECK(error_of<heed::ValueError>([&] { dec.start_cache(mem, kB, cache); }) ==
        "TransformerDecoder::start_cache: incremental decoding has no dropout; call eval() "
        "(dropout 0.1 in training mode)");
  CHECK(error_of<heed::ValueError>([&] { dec.layer(0).forward_step(randn(kB, kD, 1), cache.layers[0]); })
            .starts_with("TransformerDecoderLayer::forward_step: incremental decoding has no dropout"));
  dec.eval();
  // A step overwrites what backward reads: backward needs a new forward.
  dec.forward(randn(kB * 2, kD, 1), mem, kB);
  dec.forward_step(randn(kB, kD, 2), cache);
  CHECK(error_of<heed::ValueError>([&] { dec.backward(randn(kB * 2, kD, 3)); }) ==
        "TransformerDecoder: backward called after forward_step, which overwrites what backward "
        "reads; call forward again first");
  CHECK(error_of<heed::ValueError>([&] { dec.layer(1).backward(randn(kB * 2, kD, 3)); })
            .starts_with("TransformerDecoderLayer: backward called after forward_step"));
  dec.forward(randn(kB * 2, kD, 1), mem, kB);  // a forward makes backward valid again
  CHECK(dec.backward(randn(kB * 2, kD, 3)).dtgt.rows() == kB * 2);
  KVCache<double> kv;
  CHECK(error_of<heed::ValueError>([&] { kv.reset(0, 4, 4); }) ==
        "KVCache: rows, embed_dim and capacity must be positive, got 0, 4 and 4");
}

TEST_CASE("incremental decoding compiles and agrees in float") {
  heed::Generator gen(1);
  TransformerDecoder<float> dec(kD, kH, 1, {.dim_feedforward = kFF, .dropout = 0.0});
  const Matrix<float> tgt = randn<float>(kB * 3, kD, 50), mem = randn<float>(kB * kTm, kD, 51);
  const Matrix<float> full = dec.forward(tgt, mem, kB, {.tgt_is_causal = true});
  TransformerDecoderCache<float> cache;
  dec.start_cache(mem, kB, cache);
  for (Index t = 0; t < 3; ++t) {
    Matrix<float> x(kB, kD), want(kB, kD);
    for (Index b = 0; b < kB; ++b) x.row(b) = tgt.row(b * 3 + t), want.row(b) = full.row(b * 3 + t);
    CHECK(rel_err(dec.forward_step(x, cache), want) < 1e-5);
  }
}
