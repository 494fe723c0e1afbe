#pragma once
// All of heed/transformer/. Batch-first: B sequences of length T with d features are a
// row-major (B*T, d) matrix, B passed per call.
//
//   TransformerEncoderLayer<T>  torch.nn.TransformerEncoderLayer(batch_first=True): post-norm
//                               or pre-norm, relu or gelu, src_mask / src_bias /
//                               src_key_padding_mask / is_causal
//   TransformerEncoder<T>       a stack of encoder layers and an optional final LayerNorm
//   TransformerDecoderLayer<T>  torch.nn.TransformerDecoderLayer(batch_first=True): self-
//                               attention on tgt, cross-attention on memory, feed-forward;
//                               tgt_/memory_ masks, biases, key padding, tgt_is_causal
//   TransformerDecoder<T>       a stack of decoder layers and an optional final LayerNorm;
//                               backward gives dtgt and dmemory summed over the layers
//   (both layers take TransformerLayerOptions)
//   Transformer<T>              torch.nn.Transformer: encoder and decoder stacks with final
//                               norms, PyTorch's xavier initialisation
//   incremental decoding        TransformerDecoder::start_cache / forward_step with a
//                               per-layer KVCache (heed/attention/kv_cache.hpp): O(t) per token
//   SinusoidalPositionalEncoding<T>  x + PE[start + t], the fixed sin/cos table (no state)
//   LearnedPositionalEncoding<T>     x + W[start + t], a learned "weight" (max_len, d)
//
//   heed::TransformerEncoderLayer<float> layer(64, 4, {.dim_feedforward = 256, .dropout = 0.1});
//   heed::TransformerEncoder<float> enc(layer, 2, {.norm = heed::LayerNorm<float>(64)});
//   const auto& y = enc.forward(x, B, {.src_key_padding_mask = &pad});   // (B*T, 64)
//   const auto& dx = enc.backward(dy);
//
//   heed::TransformerDecoder<float> dec(64, 4, 2, {.dim_feedforward = 256});
//   const auto& z = dec.forward(tgt, y, B, {.memory_key_padding_mask = &pad,
//                                           .tgt_is_causal = true});      // (B*Tt, 64)
//   auto [dtgt, dmemory] = dec.backward(dz);
//
//   heed::SinusoidalPositionalEncoding<float> pe(64);
//   const auto& h = pe.forward(emb, B);                  // (B*T, 64); start = t to decode step t
#include "transformer/layer_options.hpp"
#include "transformer/encoder_layer.hpp"
#include "transformer/encoder.hpp"
#include "transformer/decoder_layer.hpp"
#include "transformer/decoder.hpp"
#include "transformer/transformer.hpp"
#include "transformer/positional_encoding.hpp"
