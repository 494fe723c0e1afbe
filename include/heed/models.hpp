#pragma once
// All of heed/models/: complete models built from heed's layers.
//
//   Seq2Seq<T, Score>   encoder-decoder with attention (embedding + bidirectional GRU encoder,
//                       GRUCell decoder attending through a score policy), teacher-forced
//                       training, greedy decoding and beam search, attention weights
//   TransformerSeq2Seq<T>  embeddings + positions + Transformer + generator, the same
//                       interface; decoding over the decoder's KV caches, O(t) per token
//   beam_search         greedy / beam search over any model's step function (search.hpp)
#include "models/search.hpp"
#include "models/seq2seq.hpp"
#include "models/transformer_seq2seq.hpp"
