#pragma once
// Seq2Seq<T, Score>: an encoder-decoder with attention (Bahdanau et al. 2015), batch-first.
//
//   encoder   e_src = Embedding_src(src)                       (B*Ts, E)                   (E1)
//             [H_enc, h_n] = BiGRU(e_src, lengths)             (B*Ts, 2He), (2B, He)       (E2)
//             K = H_enc, or H_enc Wk^T (dot/scaled, 2He != Hd) (B*Ts, dk)                  (E3)
//             h_0 = tanh(bridge([h_n fwd ; h_n bwd]))          (B, Hd)                     (E4)
//   decoder, for t = 0 .. To-1 (teacher forcing: y_{t-1} = tgt_in[:, t]):
//             q_t = h_{t-1}                                     (B, Hd) the query           (D1)
//             s_bj = score(q_t,b, K_b,j)   j < lengths[b]       (1, len_b) per sample        (D2)
//             p_b = softmax(s_b)                                (1, len_b)  attention       (D3)
//             c_t,b = p_b H_enc_b                               (1, 2He)    context         (D4)
//             x_t = [Embedding_tgt(y_{t-1}) ; c_t]              (B, E + 2He) Bahdanau input (D5)
//             h_t = GRUCell(x_t, h_{t-1})                       (B, Hd)                     (D6)
//             o_t = [h_t ; c_t]                                 (B, Hd + 2He)               (D7)
//   head      logits = out(O)   O = all o_t, row b*To + t       (B*To, V_tgt)               (H1)
//             loss = CrossEntropy(logits, tgt_out), ignore_index = pad                     (H2)
//
// Only the valid keys j < lengths[b] enter the score, so the attention weights are exactly
// zero on source padding. The score is a policy from heed/attention (AdditiveScore, the
// default, DotProductScore, ScaledDotProductScore, GeneralScore), called once per sample and
// step through its forward/backward interface; Attention<T, Score> is not used because it
// keeps one call's cache while the decoder needs To of them for its backward.
// Dot and scaled dot-product scores need keys as wide as the query: when 2He != Hd the
// encoder states are projected once per batch by a bias-free Linear(2He, Hd) (E3), the keys;
// the values stay the encoder states. With the default sizes (He = 64, Hd = 128) no projection
// is needed. The additive score takes any widths; the general score's W is (Hd, 2He).
//
//   heed::Seq2Seq<float> model({.src_vocab = 40, .tgt_vocab = 14});   // additive score
//   heed::Adam<float> opt(model.parameters(), {.lr = 1e-3f});
//   opt.zero_grad();
//   float loss = model.forward_train(src, src_lengths, tgt_in, tgt_out);
//   model.backward();
//   opt.step();
//   auto out = model.beam_search(src, src_lengths, 4, 16);  // or greedy_decode(src, lengths, 16)
//   out[b].tokens, out[b].attention (tokens.size(), lengths[b])
//
// Tokens are row-major int matrices: src (B, Ts) padded with pad_id after lengths[b];
// tgt_in (B, To) = [bos, y_1, ..., y_n, pad...], tgt_out (B, To) = [y_1, ..., y_n, eos, pad...].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../attention/additive_score.hpp"
#include "../attention/dot_product_score.hpp"
#include "../attention/general_score.hpp"
#include "../attention/masks.hpp"
#include "../attention/scaled_dot_product_score.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "../layers/embedding.hpp"
#include "../layers/gru.hpp"
#include "../layers/linear.hpp"
#include "../losses/cross_entropy.hpp"
#include "search.hpp"
#include "seq2seq_common.hpp"

namespace heed {

struct Seq2SeqOptions {
  Index src_vocab = 0;       // source vocabulary size (ids in [0, src_vocab))
  Index tgt_vocab = 0;       // target vocabulary size
  Index embed_dim = 32;      // E, both embeddings
  Index enc_hidden = 64;     // He per direction; encoder states are 2He wide
  Index dec_hidden = 128;    // Hd
  Index attention_dim = 64;  // hidden size of the additive score (unused by the others)
  int pad_id = 0;            // padding id in both vocabularies (embedding row kept at 0, ignored by the loss)
  int bos_id = 1;            // target start token
  int eos_id = 2;            // target end token
};

// Translation<T> (tokens, attention, log_prob) is in search.hpp.

template <typename T, template <typename> class Score = AdditiveScore>
class Seq2Seq : public ModuleBase<T> {
 public:
  using ScoreType = Score<T>;

  explicit Seq2Seq(Seq2SeqOptions opt, Generator& gen = default_generator())
      : name_(std::string("Seq2Seq<") + Score<T>::kName + ">"),
        o_(check_options(opt)),
        Dv_(2 * opt.enc_hidden),
        src_emb_(opt.src_vocab, opt.embed_dim, opt.pad_id, gen),
        enc_(opt.embed_dim, opt.enc_hidden, {.bidirectional = true}, gen),
        bridge_(2 * opt.enc_hidden, opt.dec_hidden, true, gen),
        tgt_emb_(opt.tgt_vocab, opt.embed_dim, opt.pad_id, gen),
        score_(make_score(opt, gen)),
        cell_(opt.embed_dim + 2 * opt.enc_hidden, opt.dec_hidden, true, gen),
        out_(opt.dec_hidden + 2 * opt.enc_hidden, opt.tgt_vocab, true, gen),
        ce_({.ignore_index = opt.pad_id}) {
    if (needs_key_proj()) key_proj_.emplace_back(Dv_, o_.dec_hidden, false, gen);
    score_.check(name_, o_.dec_hidden, key_dim());
  }

  std::string name() const override { return name_; }
  const Seq2SeqOptions& options() const { return o_; }
  // Width of the keys the score sees: 2He, or Hd when the encoder states are projected.
  Index key_dim() const { return needs_key_proj() ? o_.dec_hidden : Dv_; }
  bool projects_keys() const { return needs_key_proj(); }
  Score<T>& score() { return score_; }

  // Teacher-forced training step: the mean cross-entropy of predicting tgt_out from tgt_in
  // (pad positions of tgt_out ignored). Caches everything backward() needs.
  //   src (B, Ts), src_lengths (B) in [1, Ts], tgt_in (B, To), tgt_out (B, To) -> loss
  T forward_train(const Tokens& src, const LabelsRef& src_lengths, const Tokens& tgt_in,
                  const Tokens& tgt_out) {
    const Index B = src.rows(), Ts = src.cols();
    check_source(src, src_lengths);
    if (tgt_in.rows() != B || tgt_in.cols() < 1)
      throw ShapeError(name_ + ": tgt_in expected (" + std::to_string(B) + ", To >= 1), got " +
                       detail::shape_str(tgt_in.rows(), tgt_in.cols()));
    if (tgt_out.rows() != tgt_in.rows() || tgt_out.cols() != tgt_in.cols())
      throw ShapeError(name_ + ": tgt_out expected " +
                       detail::shape_str(tgt_in.rows(), tgt_in.cols()) + " (as tgt_in), got " +
                       detail::shape_str(tgt_out.rows(), tgt_out.cols()));
    const Index To = tgt_in.cols(), Hd = o_.dec_hidden, E = o_.embed_dim;
    B_ = B, Ts_ = Ts, To_ = To;
    len_ = src_lengths;
    encode(src, src_lengths);                                         // (E1)-(E4) -> h0_
    target_.resize(B * To);
    for (Index i = 0; i < B * To; ++i) target_(i) = tgt_out.data()[i];  // row b*To + t
    Emb_ = tgt_emb_.forward(Eigen::Map<const Labels>(tgt_in.data(), B * To));  // (B*To, E)

    Q_.resize(B * To, Hd);          // (B*To, Hd)  q_t = h_{t-1}, row b*To + t
    P_.setZero(B * To, Ts);         // (B*To, Ts)  attention weights, zero on padding
    O_.resize(B * To, Hd + Dv_);    // (B*To, Hd + 2He) [h_t ; c_t]
    X_.resize(B, E + Dv_);          // (B, E + 2He) decoder input of one step
    h_ = h0_;                       // (B, Hd)
    cell_.clear();                  // in training mode each step's cache is pushed for backward
    for (Index t = 0; t < To; ++t) {
      detail::step_rows(Q_, To, t, 0, Hd) = h_;                              // (D1)
      attend(h_, [&](Index b) { return b * Ts; }, [&](Index b) { return Index(len_(b)); },
             detail::step_rows(P_, To, t, 0, Ts), ctx_);                     // (D2)-(D4) ctx_ (B, 2He)
      X_.leftCols(E) = detail::step_rows(Emb_, To, t, 0, E);                 // (D5)
      X_.rightCols(Dv_) = ctx_;
      h_ = cell_.forward(X_, h_);                                            // (D6)
      detail::step_rows(O_, To, t, 0, Hd) = h_;                              // (D7)
      detail::step_rows(O_, To, t, Hd, Dv_) = ctx_;
    }
    loss_ = ce_.forward(out_.forward(O_), target_);                          // (H1), (H2)
    have_forward_ = true;
    return loss_;
  }

  // Backward of the last forward_train: accumulates (+=) the gradient of its loss into every
  // parameter's grad. Each line cites the forward line it differentiates.
  void backward() {
    if (!have_forward_) throw ValueError(name_ + ": backward called without forward_train");
    have_forward_ = false;
    const Index B = B_, Ts = Ts_, To = To_, Hd = o_.dec_hidden, E = o_.embed_dim;
    const Matrix<T>& dO = out_.backward(ce_.backward());    // d(H2), d(H1): (B*To, Hd + 2He)
    dEnc_.setZero(B * Ts, Dv_);                              // (B*Ts, 2He) dL/dH_enc
    dK_.setZero(B * Ts, key_dim());                          // (B*Ts, dk)  dL/dK
    dEmb_.resize(B * To, E);                                 // (B*To, E)
    dh_.setZero(B, Hd);                                      // (B, Hd) dL/dh_t from step t+1
    dctx_.resize(B, Dv_);                                    // (B, 2He)
    for (Index t = To - 1; t >= 0; --t) {
      dh_ += detail::step_rows<T>(dO, To, t, 0, Hd);         // d(D7) wrt h_t
      const auto g = cell_.backward(dh_);                    // d(D6): dx_t (B, E+2He), dh_{t-1}
      dh_ = g.dh;
      detail::step_rows(dEmb_, To, t, 0, E) = g.dx.leftCols(E);     // d(D5) wrt embedding
      dctx_ = g.dx.rightCols(Dv_) + detail::step_rows<T>(dO, To, t, Hd, Dv_);  // d(D5) + d(D7) wrt c_t
      for (Index b = 0; b < B; ++b) {                        // d(D4)-(D2), one sample at a time
        const Index len = len_(b), r = b * To + t;
        const auto p = P_.row(r).head(len);                                  // (1, len)
        const auto V = enc_out().middleRows(b * Ts, len);                    // (len, 2He)
        dEnc_.middleRows(b * Ts, len).noalias() += p.transpose() * dctx_.row(b);  // d(D4) wrt H_enc
        dS_.resize(1, len);
        dS_.noalias() = dctx_.row(b) * V.transpose();                        // d(D4) wrt p (1, len)
        detail::masked_softmax_backward_rows<T>(p, dS_);                     // d(D3) softmax
        dq_.resize(1, Hd);
        dKb_.resize(len, key_dim());
        score_.backward(Q_.row(r), keys().middleRows(b * Ts, len), dS_, dq_, dKb_);  // d(D2)
        dK_.middleRows(b * Ts, len) += dKb_;                                 // d(D2) wrt K
        dh_.row(b) += dq_;                                                   // d(D1): q_t = h_{t-1}
      }
    }
    tgt_emb_.backward(dEmb_);                                // d(D5) wrt the target embedding
    // d(E4): h_0 = tanh(a), a = bridge(hcat)
    dh_.array() *= T(1) - h0_.array().square();              // (B, Hd) dL/da
    const Matrix<T>& dhcat = bridge_.backward(dh_);          // (B, 2He)
    dhn_.resize(2 * B, o_.enc_hidden);                       // (2B, He) rows d*B + b
    dhn_.topRows(B) = dhcat.leftCols(o_.enc_hidden);
    dhn_.bottomRows(B) = dhcat.rightCols(o_.enc_hidden);
    if (needs_key_proj()) dEnc_ += key_proj_[0].backward(dK_);  // d(E3) wrt H_enc
    else dEnc_ += dK_;                                          // (E3) K = H_enc
    const auto ge = enc_.backward(dEnc_, dhn_);              // d(E2): dx (B*Ts, E)
    src_emb_.backward(ge.dx);                                // d(E1)
  }

  // The last forward_train's loss and attention weights (B*To, Ts): row b*To + t is what
  // target step t of sample b attended to; each row sums to 1 over j < lengths[b], 0 beyond.
  T loss() const { return loss_; }
  const Matrix<T>& attention_weights() const { return P_; }

  // Greedy decoding and beam search (heed/models/search.hpp): the step function feeds each
  // row's token and the state of its parent row through (D1)-(D7) and the head (H1).
  // beam_size 1 is greedy decoding: the most probable token (lowest id on ties) fed back,
  // until every sample has produced eos or max_len tokens.
  std::vector<Translation<T>> greedy_decode(const Tokens& src, const LabelsRef& src_lengths,
                                            Index max_len) {
    return beam_search(src, src_lengths, 1, max_len);
  }
  std::vector<Translation<T>> beam_search(const Tokens& src, const LabelsRef& src_lengths,
                                          Index beam_size, Index max_len) {
    check_decode_args(beam_size, max_len);
    check_source(src, src_lengths);
    const Index B = src.rows(), Ts = src.cols(), Hd = o_.dec_hidden, E = o_.embed_dim;
    encode(src, src_lengths);
    const detail::EvalScope<T> no_cache(cell_);  // decoding caches nothing; mode restored after
    const Labels lens = src_lengths;
    Matrix<T> h = h0_, hn, X, O;      // h: one state row per row of the last step
    auto step = [&](const std::vector<Index>& parents, const std::vector<Index>& samples,
                    const Labels& tokens, Matrix<T>& att) -> const Matrix<T>& {
      const Index n = Index(parents.size());
      hn.resize(n, Hd);
      for (Index i = 0; i < n; ++i) hn.row(i) = h.row(parents[i]);
      att.resize(n, Ts);
      attend(hn, [&](Index i) { return samples[i] * Ts; },
             [&](Index i) { return Index(lens(samples[i])); }, att, ctx_);  // (D1)-(D4)
      X.resize(n, E + Dv_);
      X.leftCols(E) = tgt_emb_.forward(tokens);                              // (D5)
      X.rightCols(Dv_) = ctx_;
      h = cell_.forward(X, hn);                                              // (D6)
      O.resize(n, Hd + Dv_);
      O.leftCols(Hd) = h;                                                    // (D7)
      O.rightCols(Dv_) = ctx_;
      return out_.forward(O);                                                // (H1) (n, V)
    };
    return heed::beam_search<T>(B, lens, {.beam_size = beam_size, .max_len = max_len,
                                          .bos_id = o_.bos_id, .eos_id = o_.eos_id}, step);
  }

  // beam_size 1: greedy_decode, else beam_search.
  std::vector<Translation<T>> decode(const Tokens& src, const LabelsRef& src_lengths,
                                     Index beam_size, Index max_len) {
    return beam_size == 1 ? greedy_decode(src, src_lengths, max_len)
                          : beam_search(src, src_lengths, beam_size, max_len);
  }

  // The registry: parameter names encoder.embedding.weight,
  // encoder.rnn.{weight,bias}_{ih,hh}_l0[_reverse], bridge.*, decoder.embedding.weight,
  // decoder.attention.key_proj.weight (dot/scaled, 2He != Hd), decoder.attention.score.*
  // (additive: W_q, W_k, v; general: W), decoder.cell.*, decoder.out.{weight,bias}.
  Children<T> children() override {
    Children<T> c{{"encoder.embedding", &src_emb_}, {"encoder.rnn", &enc_}, {"bridge", &bridge_},
                  {"decoder.embedding", &tgt_emb_}};
    if (needs_key_proj()) c.emplace_back("decoder.attention.key_proj", &key_proj_[0]);
    c.emplace_back("decoder.attention.score", &score_);
    c.emplace_back("decoder.cell", &cell_);
    c.emplace_back("decoder.out", &out_);
    return c;
  }

 private:
  static Seq2SeqOptions check_options(const Seq2SeqOptions& o) {
    detail::check_seq2seq_ids("Seq2Seq", o.src_vocab, o.tgt_vocab, o.pad_id, o.bos_id, o.eos_id);
    detail::require(o.embed_dim > 0 && o.enc_hidden > 0 && o.dec_hidden > 0 && o.attention_dim > 0,
                    "Seq2Seq", "embed_dim, enc_hidden, dec_hidden and attention_dim must be positive");
    return o;
  }

  static constexpr bool kAdditive = std::is_same_v<Score<T>, AdditiveScore<T>>;
  static constexpr bool kGeneral = std::is_same_v<Score<T>, GeneralScore<T>>;

  static Score<T> make_score(const Seq2SeqOptions& o, Generator& gen) {
    if constexpr (kAdditive) return Score<T>(o.dec_hidden, 2 * o.enc_hidden, o.attention_dim, gen);
    else if constexpr (kGeneral) return Score<T>(o.dec_hidden, 2 * o.enc_hidden, gen);
    else return Score<T>();
  }
  bool needs_key_proj() const { return !kAdditive && !kGeneral && Dv_ != o_.dec_hidden; }

  // The messages are built only when thrown: decoding is called once per batch in eval loops.
  void check_decode_args(Index beam_size, Index max_len) const {
    detail::check_decode_args(name_, beam_size, max_len);
  }

  void check_source(const Tokens& src, const LabelsRef& lengths) const {
    detail::check_source(name_, src, lengths);
  }

  // (E1)-(E4): encoder states, keys and the decoder's initial state h0_ (B, Hd).
  void encode(const Tokens& src, const LabelsRef& lengths) {
    const Index B = src.rows(), He = o_.enc_hidden;
    const auto& e = src_emb_.forward(Eigen::Map<const Labels>(src.data(), src.size()));  // (E1)
    const auto enc = enc_.forward(e, B, Matrix<T>(), lengths);                          // (E2)
    Henc_ = enc.output;                                                                  // (B*Ts, 2He)
    if (needs_key_proj()) Kp_ = key_proj_[0].forward(Henc_);                             // (E3)
    hcat_.resize(B, 2 * He);                                  // (B, 2He) [fwd ; bwd] final states
    hcat_.leftCols(He) = enc.h_n.topRows(B);
    hcat_.rightCols(He) = enc.h_n.bottomRows(B);
    h0_ = bridge_.forward(hcat_).array().tanh().matrix();     // (E4) (B, Hd)
  }
  const Matrix<T>& enc_out() const { return Henc_; }                          // (B*Ts, 2He) values
  const Matrix<T>& keys() const { return needs_key_proj() ? Kp_ : Henc_; }    // (B*Ts, dk)

  // (D2)-(D4) for the rows of q (n, Hd): row i attends to keys/values rows
  // [k0(i), k0(i) + len(i)). P (n, Ts): weights, zero beyond len(i); ctx (n, 2He).
  template <class K0, class Len, class PMat>
  void attend(const Matrix<T>& q, K0 k0, Len len, PMat&& P, Matrix<T>& ctx) {
    const Index n = q.rows();
    ctx.resize(n, Dv_);
    P.setZero();
    const Matrix<T>& K = keys();
    const Matrix<T>& Venc = enc_out();
    for (Index i = 0; i < n; ++i) {
      const Index r0 = k0(i), l = len(i);
      s_.resize(1, l);
      score_.forward(q.row(i), K.middleRows(r0, l), s_);       // (D2) s (1, len)
      detail::masked_softmax_rows<T>(s_);                       // (D3) softmax
      P.row(i).head(l) = s_;
      ctx.row(i).noalias() = s_ * Venc.middleRows(r0, l);       // (D4) (1, len)(len, 2He)
    }
  }

  std::string name_;  // "Seq2Seq<Additive>": built once, not per call
  Seq2SeqOptions o_;
  Index Dv_;
  Embedding<T> src_emb_;
  GRU<T> enc_;
  Linear<T> bridge_;
  Embedding<T> tgt_emb_;
  std::vector<Linear<T>> key_proj_;  // 0 or 1 element
  Score<T> score_;
  GRUCell<T> cell_;
  Linear<T> out_;
  CrossEntropyLoss<T> ce_;

  Matrix<T> Henc_;      // (B*Ts, 2He) encoder states: the values, and the keys unless projected
  Matrix<T> Kp_;        // (B*Ts, Hd) projected keys (dot/scaled with 2He != Hd)
  bool have_forward_ = false;
  Index B_ = 0, Ts_ = 0, To_ = 0;
  T loss_ = 0;
  Labels len_;          // (B) source lengths
  Labels target_;       // (B*To) tgt_out flattened
  Matrix<T> hcat_;      // (B, 2He) final encoder states [fwd ; bwd]
  Matrix<T> h0_;        // (B, Hd) decoder initial state
  Matrix<T> Emb_;       // (B*To, E) embedded decoder inputs
  Matrix<T> Q_;         // (B*To, Hd) queries
  Matrix<T> P_;         // (B*To, Ts) attention weights
  Matrix<T> O_;         // (B*To, Hd + 2He) head inputs
  Matrix<T> X_;         // (B, E + 2He) one step's decoder input
  Matrix<T> h_;         // (B, Hd) running decoder state
  Matrix<T> ctx_;       // (n, 2He) one step's contexts
  Matrix<T> s_;         // (1, len) one row's scores
  Matrix<T> dEnc_;      // (B*Ts, 2He)
  Matrix<T> dK_;        // (B*Ts, dk)
  Matrix<T> dEmb_;      // (B*To, E)
  Matrix<T> dh_;        // (B, Hd)
  Matrix<T> dctx_;      // (B, 2He)
  Matrix<T> dS_;        // (1, len)
  Matrix<T> dq_;        // (1, Hd)
  Matrix<T> dKb_;       // (len, dk)
  Matrix<T> dhn_;       // (2B, He)
};

}  // namespace heed
