#pragma once
// TransformerSeq2Seq<T>: a token-to-token Transformer ("Attention Is All You Need"), laid out as
// PyTorch's translation tutorial's Seq2SeqTransformer, batch-first, with the interface of
// Seq2Seq (forward_train / backward / greedy_decode / beam_search / decode).
//
//   Xs = pos_src(s Embedding_src(src))                     src (B, Ts) -> (B*Ts, d)     (1)
//   Xt = pos_tgt(s Embedding_tgt(tgt_in))                  tgt_in (B, To) -> (B*To, d)  (2)
//   Y = Transformer(Xs, Xt, B, {src/memory key padding from src_lengths, tgt_is_causal})  (3)
//   logits = generator(Y)                                  (B*To, V_tgt)                (4)
//   loss = CrossEntropy(logits, tgt_out), ignore_index = pad                           (5)
//
// s = sqrt(d) with .scale_embeddings, else 1. pos_* is a sinusoidal encoding (the paper's
// §3.5; no parameters) or a learned table per side. Decoding encodes the source once, then runs the decoder one token at a time over its
// KV caches (TransformerDecoder::forward_step): O(t) work per token. The attention of a
// decoded token is the last decoder layer's cross-attention, averaged over heads.
//
// Token layout as Seq2Seq: src (B, Ts) padded with pad_id after lengths[b]; tgt_in (B, To) =
// [bos, y_1, ..., pad...], tgt_out (B, To) = [y_1, ..., eos, pad...].
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "../attention/masks.hpp"
#include "../core/module.hpp"
#include "../layers/embedding.hpp"
#include "../layers/linear.hpp"
#include "../losses/cross_entropy.hpp"
#include "../transformer/positional_encoding.hpp"
#include "../transformer/transformer.hpp"
#include "search.hpp"
#include "seq2seq_common.hpp"

namespace heed {

enum class PositionalEncodingKind { sinusoidal, learned };

struct TransformerSeq2SeqOptions {
  Index src_vocab = 0;  // source vocabulary size (ids in [0, src_vocab))
  Index tgt_vocab = 0;  // target vocabulary size
  Index d_model = 64;
  Index nhead = 4;
  Index num_encoder_layers = 2;
  Index num_decoder_layers = 2;
  Index dim_feedforward = 256;
  double dropout = 0.1;
  TransformerActivation activation = TransformerActivation::relu;
  bool norm_first = false;
  PositionalEncodingKind positions = PositionalEncodingKind::sinusoidal;
  // Multiply the token embeddings by sqrt(d_model), as the paper and PyTorch's tutorial do.
  // Off by default: the paper's embeddings start at N(0, 1/d), heed's (as nn.Embedding's) at
  // N(0, 1), so scaling makes them sqrt(d) times the positions and drowns the order (measured on
  // seq2seq_dates: 9.7% held-out exact match after one epoch with it, 64% without).
  bool scale_embeddings = false;
  Index max_len = 256;  // longest source or target sequence (the position tables' length)
  int pad_id = 0;       // padding id in both vocabularies (ignored by the loss)
  int bos_id = 1;       // target start token
  int eos_id = 2;       // target end token
};

template <typename T>
class TransformerSeq2Seq : public ModuleBase<T> {
 public:
  explicit TransformerSeq2Seq(TransformerSeq2SeqOptions opt, Generator& gen = default_generator())
      : o_(check_options(opt)),
        scale_(opt.scale_embeddings ? static_cast<T>(std::sqrt(static_cast<double>(opt.d_model)))
                                    : T(1)),
        src_emb_(opt.src_vocab, opt.d_model, opt.pad_id, gen),
        tgt_emb_(opt.tgt_vocab, opt.d_model, opt.pad_id, gen),
        transformer_(opt.d_model, opt.nhead,
                     {.num_encoder_layers = opt.num_encoder_layers,
                      .num_decoder_layers = opt.num_decoder_layers,
                      .dim_feedforward = opt.dim_feedforward, .dropout = opt.dropout,
                      .activation = opt.activation, .norm_first = opt.norm_first},
                     gen),
        generator_(opt.d_model, opt.tgt_vocab, true, gen),
        ce_({.ignore_index = opt.pad_id}) {
    if (learned()) {
      learned_.reserve(2);
      for (int side = 0; side < 2; ++side) learned_.emplace_back(opt.max_len, opt.d_model, gen);
    } else {
      sin_.emplace(opt.d_model, opt.max_len);
    }
  }

  std::string name() const override { return "TransformerSeq2Seq"; }
  const TransformerSeq2SeqOptions& options() const { return o_; }
  Transformer<T>& transformer() { return transformer_; }

  // Teacher-forced logits, (1)-(4): what PyTorch's model(src, tgt) returns.
  //   src (B, Ts), src_lengths (B) in [1, Ts], tgt_in (B, To) -> logits (B*To, V_tgt)
  const Matrix<T>& forward(const Tokens& src, const LabelsRef& src_lengths, const Tokens& tgt_in) {
    check_source(src, src_lengths);
    const Index B = src.rows();
    if (tgt_in.rows() != B || tgt_in.cols() < 1 || tgt_in.cols() > o_.max_len)
      throw ShapeError("TransformerSeq2Seq: tgt_in expected (" + std::to_string(B) +
                       ", 1 <= To <= max_len " + std::to_string(o_.max_len) + "), got " +
                       detail::shape_str(tgt_in.rows(), tgt_in.cols()));
    have_forward_ = decoded_ = false;
    B_ = B;
    pad_ = key_padding_mask(src_lengths, src.cols());              // (B, Ts)
    const Matrix<T>& xs = embed(src_emb_, src, kSrc, B);       // (1) (B*Ts, d)
    xs_ = xs;  // the target side reuses embed's buffers
    const Matrix<T>& xt = embed(tgt_emb_, tgt_in, kTgt, B);    // (2) (B*To, d)
    const Matrix<T>& y = transformer_.forward(                     // (3) (B*To, d)
        xs_, xt, B,
        {.src_key_padding_mask = &pad_, .memory_key_padding_mask = &pad_, .tgt_is_causal = true});
    return generator_.forward(y);                                  // (4) (B*To, V)
  }

  // Teacher-forced training step: the mean cross-entropy of predicting tgt_out from tgt_in
  // (pad positions of tgt_out ignored). Caches everything backward() needs.
  //   src (B, Ts), src_lengths (B), tgt_in (B, To), tgt_out (B, To) -> loss
  T forward_train(const Tokens& src, const LabelsRef& src_lengths, const Tokens& tgt_in,
                  const Tokens& tgt_out) {
    if (tgt_out.rows() != tgt_in.rows() || tgt_out.cols() != tgt_in.cols())
      throw ShapeError("TransformerSeq2Seq: tgt_out expected " +
                       detail::shape_str(tgt_in.rows(), tgt_in.cols()) + " (as tgt_in), got " +
                       detail::shape_str(tgt_out.rows(), tgt_out.cols()));
    const Matrix<T>& logits = forward(src, src_lengths, tgt_in);  // (1)-(4)
    target_.resize(tgt_out.size());
    for (Index i = 0; i < tgt_out.size(); ++i) target_(i) = tgt_out.data()[i];  // row b*To + t
    loss_ = ce_.forward(logits, target_);                           // (5)
    have_forward_ = true;
    decoded_ = false;
    return loss_;
  }

  // Backward of the last forward_train: += every parameter's gradient.
  void backward() {
    if (!have_forward_)
      throw ValueError("TransformerSeq2Seq: backward called without forward_train" +
                       std::string(decoded_ ? " (decoding since the last one discarded it)" : ""));
    have_forward_ = false;
    const Matrix<T>& dy = generator_.backward(ce_.backward());  // d(5), d(4)
    const auto g = transformer_.backward(dy);                   // d(3): dXs, dXt
    embed_backward(tgt_emb_, kTgt, g.dtgt);                     // d(2)
    embed_backward(src_emb_, kSrc, g.dsrc);                     // d(1)
  }

  T loss() const { return loss_; }

  // Greedy decoding and beam search (heed/models/search.hpp) with the decoder's KV caches.
  std::vector<Translation<T>> greedy_decode(const Tokens& src, const LabelsRef& src_lengths,
                                            Index max_len) {
    return beam_search(src, src_lengths, 1, max_len);
  }
  std::vector<Translation<T>> beam_search(const Tokens& src, const LabelsRef& src_lengths,
                                          Index beam_size, Index max_len) {
    check_source(src, src_lengths);
    detail::check_decode_args("TransformerSeq2Seq", beam_size, max_len);
    if (max_len > o_.max_len)
      throw ValueError("TransformerSeq2Seq: max_len " + std::to_string(max_len) +
                       " exceeds the model's max_len " + std::to_string(o_.max_len));
    const Index B = src.rows();
    const detail::EvalScope<T> eval(*this);  // decoding has no dropout; mode restored after
    pad_ = key_padding_mask(src_lengths, src.cols());
    const Matrix<T>& xs = embed(src_emb_, src, kSrc, B);
    const Matrix<T>& memory = transformer_.encode(xs, B, {.src_key_padding_mask = &pad_});
    auto& dec = transformer_.decoder();
    dec.start_cache(memory, B, cache_, &pad_, max_len);
    decoded_ = have_forward_;  // a pending backward is lost: say so if it is called
    have_forward_ = false;
    Index t = 0;
    auto step = [&](const std::vector<Index>& parents, const std::vector<Index>& samples,
                    const Labels& tokens, Matrix<T>& att) -> const Matrix<T>& {
      cache_.reorder(parents);  // row i continues row parents[i]
      const Index n = tokens.size();
      const Matrix<T>& e = tgt_emb_.forward(tokens);  // (n, d) the new tokens, position t
      emb_.resize(n, o_.d_model);
      emb_.noalias() = scale_ * e;
      const Matrix<T>& x = add_positions(kTgt, emb_, n, t);  // (n, d) at position t
      ++t;
      const Matrix<T>& y = dec.forward_step(x, cache_, &samples, &att);  // (n, d)
      return generator_.forward(y);                                      // (n, V)
    };
    return heed::beam_search<T>(B, src_lengths,
                                {.beam_size = beam_size, .max_len = max_len,
                                 .bos_id = o_.bos_id, .eos_id = o_.eos_id},
                                step);
  }
  std::vector<Translation<T>> decode(const Tokens& src, const LabelsRef& src_lengths,
                                     Index beam_size, Index max_len) {
    return beam_search(src, src_lengths, beam_size, max_len);
  }

  // The registry: src_tok_emb.weight, tgt_tok_emb.weight, [src_pos.weight, tgt_pos.weight],
  // transformer.encoder.layers.0..., transformer.decoder.norm.*, generator.{weight,bias}.
  Children<T> children() override {
    Children<T> c{{"src_tok_emb", &src_emb_}, {"tgt_tok_emb", &tgt_emb_}};
    if (learned()) {
      c.emplace_back("src_pos", &learned_[kSrc]);
      c.emplace_back("tgt_pos", &learned_[kTgt]);
    }
    c.emplace_back("transformer", &transformer_);
    c.emplace_back("generator", &generator_);
    return c;
  }

 private:
  bool learned() const { return o_.positions == PositionalEncodingKind::learned; }
  static constexpr int kSrc = 0, kTgt = 1;

  // x (rows, d) + the positions [start, start + T) of side kSrc or kTgt, rows = B*T
  const Matrix<T>& add_positions(int side, const Matrix<T>& x, Index B, Index start = 0) {
    if (learned()) return learned_[side].forward(x, B, start);
    return sin_->forward(x, B, start);
  }
  // s Embedding(ids) + positions: ids (B, T) -> (B*T, d)
  const Matrix<T>& embed(Embedding<T>& emb, const Tokens& ids, int side, Index B) {
    const Matrix<T>& e = emb.forward(ids);  // (B*T, d)
    emb_.resize(e.rows(), e.cols());
    emb_.noalias() = scale_ * e;
    return add_positions(side, emb_, B);
  }
  // d of embed: dx (B*T, d) -> the embedding's (and a learned table's) gradients
  void embed_backward(Embedding<T>& emb, int side, const Matrix<T>& dx) {
    if (learned()) learned_[side].backward(dx);  // += dW of the side's positions
    demb_.resize(dx.rows(), dx.cols());
    demb_.noalias() = scale_ * dx;  // d of the positions' "+" is dx; d of "s *"
    emb.backward(demb_);
  }

  static TransformerSeq2SeqOptions check_options(const TransformerSeq2SeqOptions& o) {
    detail::check_seq2seq_ids("TransformerSeq2Seq", o.src_vocab, o.tgt_vocab, o.pad_id, o.bos_id,
                              o.eos_id);
    detail::require(o.max_len > 0, "TransformerSeq2Seq",
                    "max_len must be positive, got " + std::to_string(o.max_len));
    return o;
  }

  void check_source(const Tokens& src, const LabelsRef& lengths) const {
    detail::check_source("TransformerSeq2Seq", src, lengths, o_.max_len);
  }

  TransformerSeq2SeqOptions o_;
  T scale_;  // s: sqrt(d_model) or 1, the embeddings' scale
  Embedding<T> src_emb_, tgt_emb_;
  std::optional<SinusoidalPositionalEncoding<T>> sin_;  // shared by both sides
  std::vector<LearnedPositionalEncoding<T>> learned_;     // src, tgt tables (learned only)
  Transformer<T> transformer_;
  Linear<T> generator_;
  CrossEntropyLoss<T> ce_;

  bool have_forward_ = false;
  bool decoded_ = false;   // a decoding call discarded the last forward_train
  Index B_ = 0;
  T loss_ = 0;
  BoolMatrix pad_;         // (B, Ts) source padding
  Labels target_;          // (B*To) tgt_out flattened
  Matrix<T> xs_;           // (B*Ts, d) the encoder's input
  Matrix<T> emb_, demb_;   // (B*T, d) scaled embeddings and their gradient
  TransformerDecoderCache<T> cache_;
};

}  // namespace heed
