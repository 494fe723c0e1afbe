#pragma once
// All of heed/transformer/. Batch-first: B sequences of length T with d features are a
// row-major (B*T, d) matrix, B passed per call.
//
//   TransformerEncoderLayer<T>  torch.nn.TransformerEncoderLayer(batch_first=True): post-norm
//                               or pre-norm, relu or gelu, src_mask / src_bias /
//                               src_key_padding_mask / is_causal
//   TransformerEncoder<T>       a stack of encoder layers and an optional final LayerNorm
//
//   heed::TransformerEncoderLayer<float> layer(64, 4, {.dim_feedforward = 256, .dropout = 0.1});
//   heed::TransformerEncoder<float> enc(layer, 2, {.norm = heed::LayerNorm<float>(64)});
//   const auto& y = enc.forward(x, B, {.src_key_padding_mask = &pad});   // (B*T, 64)
//   const auto& dx = enc.backward(dy);
#include "transformer/encoder_layer.hpp"
#include "transformer/encoder.hpp"
