// TransformerDecoderLayer and TransformerDecoder against numbers computed once with PyTorch
// 1.13 (decoder_reference.py writes decoder_reference.hpp; torch is not needed to run this).
// Outputs, dtgt, dmemory and every parameter gradient agree within 1e-10 (absolute, in
// double; the values are O(1)).
#include <algorithm>
#include <string>

#include "helpers.hpp"  // first: see there
#include "decoder_reference.hpp"

using namespace tr_test;
using heed::TransformerActivation;
using heed::TransformerDecoder;
using heed::TransformerDecoderLayer;
using heed::TransformerDecoderLayerArgs;

namespace {

constexpr Index kD = 4, kH = 2, kFF = 6, kB = 2, kTt = 3, kTm = 4;
constexpr double kTol = 1e-10;
double g_worst = 0;  // the largest difference seen, reported at the end

// decoder_reference.py's set_params.
template <class M>
void set_params(M& m) {
  int k = 0;
  for (auto& p : m.parameters()) {
    *p.value = fill(p.value->rows(), p.value->cols(), 10 + k++, 0.5);
    if (p.name.find("norm") != std::string::npos && p.name.ends_with("weight"))
      p.value->array() += 1.0;
  }
}

Matrix<double> ref(const std::vector<double>& v, Index rows, Index cols) {
  REQUIRE(static_cast<Index>(v.size()) == rows * cols);
  return Eigen::Map<const Matrix<double>>(v.data(), rows, cols);
}

double max_abs(const Matrix<double>& a, const Matrix<double>& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  const double e = (a - b).cwiseAbs().maxCoeff();
  g_worst = std::max(g_worst, e);
  return e;
}

struct Pads {
  BoolMatrix tgt = BoolMatrix::Zero(kB, kTt), mem = BoolMatrix::Zero(kB, kTm);
  Pads() {
    tgt(0, 2) = true;
    mem(1, 2) = mem(1, 3) = true;
  }
};

BoolMatrix causal() {
  BoolMatrix c(kTt, kTt);
  for (Index i = 0; i < kTt; ++i)
    for (Index j = 0; j < kTt; ++j) c(i, j) = j > i;
  return c;
}

struct Want {
  const std::vector<double>&out, &dtgt, &dmemory, &dparams;
};
#define DEC_WANT(name) \
  Want { dec_ref::name##_out, dec_ref::name##_dtgt, dec_ref::name##_dmemory, dec_ref::name##_dparams }

// Every parameter gradient of m against dparams, PyTorch's gradients concatenated in
// state_dict order.
template <class M>
void compare_param_grads(M& m, const std::vector<double>& dparams) {
  std::size_t at = 0;
  for (auto& p : m.parameters()) {
    CAPTURE(p.name);
    const Index n = p.grad->size();
    REQUIRE(at + n <= dparams.size());
    const Matrix<double> want =
        Eigen::Map<const Matrix<double>>(dparams.data() + at, p.grad->rows(), p.grad->cols());
    CHECK(max_abs(*p.grad, want) < kTol);
    at += n;
  }
  CHECK(at == dparams.size());
}

// Forward and backward of m on decoder_reference.py's inputs and loss.
template <class M>
void compare(M& m, const TransformerDecoderLayerArgs<double>& args, const Want& w) {
  m.zero_grad();
  const Matrix<double> y = m.forward(fill(kB * kTt, kD, 1), fill(kB * kTm, kD, 3), kB, args);
  CHECK(max_abs(y, ref(w.out, kB * kTt, kD)) < kTol);
  const auto g = m.backward(fill(kB * kTt, kD, 2));
  CHECK(max_abs(g.dtgt, ref(w.dtgt, kB * kTt, kD)) < kTol);
  CHECK(max_abs(g.dmemory, ref(w.dmemory, kB * kTm, kD)) < kTol);
  compare_param_grads(m, w.dparams);
}

TransformerDecoderLayer<double> make(bool norm_first, TransformerActivation act,
                                     double dropout = 0.0) {
  TransformerDecoderLayer<double> layer(
      kD, kH, {.dim_feedforward = kFF, .dropout = dropout, .activation = act,
               .norm_first = norm_first});
  set_params(layer);
  return layer;
}

}  // namespace

TEST_CASE("TransformerDecoderLayer: matches PyTorch, train mode, post/pre-norm x relu/gelu") {
  const Pads pads;
  const BoolMatrix c = causal();
  struct Case {
    bool norm_first;
    TransformerActivation act;
    Want want;
  };
  const Case cases[] = {
      {false, TransformerActivation::relu, DEC_WANT(post_relu)},
      {false, TransformerActivation::gelu, DEC_WANT(post_gelu)},
      {true, TransformerActivation::relu, DEC_WANT(pre_relu)},
      {true, TransformerActivation::gelu, DEC_WANT(pre_gelu)},
  };
  for (const Case& cs : cases) {
    CAPTURE(cs.norm_first);
    CAPTURE(cs.act == TransformerActivation::gelu);
    auto layer = make(cs.norm_first, cs.act);
    layer.train();
    // PyTorch got the causal mask as a bool tgt_mask; here it is the tgt_is_causal flag ...
    compare(layer,
            {.tgt_key_padding_mask = &pads.tgt, .memory_key_padding_mask = &pads.mem,
             .tgt_is_causal = true},
            cs.want);
    // ... and as a bool tgt_mask it gives the same numbers.
    compare(layer,
            {.tgt_mask = &c, .tgt_key_padding_mask = &pads.tgt,
             .memory_key_padding_mask = &pads.mem},
            cs.want);
  }
}

TEST_CASE("TransformerDecoderLayer: matches PyTorch with float tgt and memory masks") {
  const Pads pads;
  const Matrix<double> tb = fill(kTt, kTt, 6), mb = fill(kTt, kTm, 7);
  auto layer = make(false, TransformerActivation::relu);
  compare(layer, {.tgt_bias = &tb, .memory_bias = &mb, .tgt_key_padding_mask = &pads.tgt},
          DEC_WANT(float_masks));
}

TEST_CASE("TransformerDecoderLayer: matches PyTorch with bool tgt and memory masks") {
  const Pads pads;
  BoolMatrix tm = BoolMatrix::Zero(kTt, kTt), mm = BoolMatrix::Zero(kTt, kTm);
  tm(0, 1) = tm(2, 0) = true;
  mm(0, 1) = mm(1, 2) = mm(2, 0) = true;
  auto layer = make(true, TransformerActivation::gelu);
  compare(layer,
          {.tgt_mask = &tm, .memory_mask = &mm, .tgt_key_padding_mask = &pads.tgt,
           .memory_key_padding_mask = &pads.mem},
          DEC_WANT(bool_masks));
}

TEST_CASE("TransformerDecoderLayer: matches PyTorch in eval mode (dropout 0.1 inactive)") {
  const Pads pads;
  auto layer = make(false, TransformerActivation::gelu, 0.1);
  layer.eval();
  const TransformerDecoderLayerArgs<double> args{.tgt_key_padding_mask = &pads.tgt,
                                                 .memory_key_padding_mask = &pads.mem};
  compare(layer, args, DEC_WANT(eval));
  // PyTorch 1.13's decoder layer has no fast path: without gradients, every row agrees too.
  CHECK(max_abs(layer.forward(fill(kB * kTt, kD, 1), fill(kB * kTm, kD, 3), kB, args),
                ref(dec_ref::eval_nograd_out, kB * kTt, kD)) < kTol);
}

TEST_CASE("TransformerDecoder: matches PyTorch, 2 layers and a final norm (dmemory summed)") {
  const Pads pads;
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    TransformerDecoderLayer<double> proto(
        kD, kH, {.dim_feedforward = kFF, .dropout = 0.0, .norm_first = norm_first});
    TransformerDecoder<double> dec(proto, 2, {.norm = heed::LayerNorm<double>(kD)});
    set_params(dec);
    dec.train();
    compare(dec,
            {.tgt_key_padding_mask = &pads.tgt, .memory_key_padding_mask = &pads.mem,
             .tgt_is_causal = true},
            norm_first ? DEC_WANT(decoder_pre) : DEC_WANT(decoder));
  }
}

TEST_CASE("TransformerDecoder: state_dict keys and order equal PyTorch's") {
  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  CHECK(layer.state_dict().keys() == dec_ref::layer_keys);
  TransformerDecoder<double> dec(layer, 2, {.norm = heed::LayerNorm<double>(kD)});
  CHECK(dec.state_dict().keys() == dec_ref::decoder_keys);
  TransformerDecoder<double> fresh(kD, kH, 2, {.dim_feedforward = kFF},
                                   {.norm = heed::LayerNorm<double>(kD)});
  CHECK(fresh.state_dict().keys() == dec_ref::decoder_keys);
}

TEST_CASE("Transformer: matches PyTorch's nn.Transformer, post-norm relu and pre-norm gelu") {
  const Pads pads;
  struct Case {
    bool norm_first;
    TransformerActivation act;
    const std::vector<double>&out, &dsrc, &dtgt, &dparams;
  };
  const Case cases[] = {
      {false, TransformerActivation::relu, dec_ref::transformer_post_relu_out,
       dec_ref::transformer_post_relu_dsrc, dec_ref::transformer_post_relu_dtgt,
       dec_ref::transformer_post_relu_dparams},
      {true, TransformerActivation::gelu, dec_ref::transformer_pre_gelu_out,
       dec_ref::transformer_pre_gelu_dsrc, dec_ref::transformer_pre_gelu_dtgt,
       dec_ref::transformer_pre_gelu_dparams},
  };
  for (const Case& cs : cases) {
    CAPTURE(cs.norm_first);
    heed::Transformer<double> tr(kD, kH,
                                 {.num_encoder_layers = 2, .num_decoder_layers = 2,
                                  .dim_feedforward = kFF, .dropout = 0.0, .activation = cs.act,
                                  .norm_first = cs.norm_first});
    CHECK(tr.state_dict().keys() == dec_ref::transformer_keys);
    set_params(tr);
    tr.zero_grad();
    // src has the memory's shape (B, Tm) and padding; PyTorch's causal tgt_mask is
    // tgt_is_causal here.
    const Matrix<double> y = tr.forward(fill(kB * kTm, kD, 3), fill(kB * kTt, kD, 1), kB,
                                        {.src_key_padding_mask = &pads.mem,
                                         .tgt_key_padding_mask = &pads.tgt,
                                         .memory_key_padding_mask = &pads.mem,
                                         .tgt_is_causal = true});
    CHECK(max_abs(y, ref(cs.out, kB * kTt, kD)) < kTol);
    const auto g = tr.backward(fill(kB * kTt, kD, 2));
    CHECK(max_abs(g.dsrc, ref(cs.dsrc, kB * kTm, kD)) < kTol);
    CHECK(max_abs(g.dtgt, ref(cs.dtgt, kB * kTt, kD)) < kTol);
    compare_param_grads(tr, cs.dparams);
  }
}

TEST_CASE("decoder reference comparison: largest difference seen") {
  MESSAGE("largest |heed - PyTorch| over every decoder reference comparison: " << g_worst);
  CHECK(g_worst < kTol);
}
