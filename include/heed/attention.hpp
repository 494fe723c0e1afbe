#pragma once
// All of heed/attention/. Batch-first like the rest of heed: a batch of B sequences of length T
// with F features is a row-major (B*T, F) matrix, and B is passed explicitly.
//
//   Attention<T, Score>      softmax attention over (queries, keys, values) with a score policy:
//                            DotProductScore, ScaledDotProductScore (default), AdditiveScore
//                            (Bahdanau), GeneralScore (Luong); keeps weights() (B*Tq, Tk)
//   FusedAttention<T>        scaled dot-product attention, FlashAttention-style tiles: memory
//                            linear in sequence length, no weights
//   MultiheadAttention<T>    torch.nn.MultiheadAttention (batch_first=True), fused when
//                            need_weights is false
//   SelfAttention<T>         MultiheadAttention(x, x, x) as a Module<T>, for Sequential
//   AttentionMasks<T>        key_padding_mask (B, Tk), attn_mask (Tq, Tk) bool, attn_bias
//                            (Tq, Tk) float, is_causal; true = masked, as in PyTorch
//
//   heed::Attention<float> att;
//   const auto& ctx = att.forward(q, k, v, B, {.key_padding_mask = &pad, .is_causal = true});
//   auto [dq, dk, dv] = att.backward(dctx);
#include "attention/masks.hpp"
#include "attention/dot_product_score.hpp"
#include "attention/scaled_dot_product_score.hpp"
#include "attention/additive_score.hpp"
#include "attention/general_score.hpp"
#include "attention/attention.hpp"
#include "attention/fused_attention.hpp"
#include "attention/multihead_attention.hpp"
#include "attention/self_attention.hpp"
#include "attention/spatial_attention.hpp"
