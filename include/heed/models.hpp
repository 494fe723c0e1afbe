#pragma once
// All of heed/models/: complete models built from heed's layers.
//
//   Seq2Seq<T, Score>   encoder-decoder with attention (embedding + bidirectional GRU encoder,
//                       GRUCell decoder attending through a score policy), teacher-forced
//                       training, greedy decoding and beam search, attention weights
#include "models/seq2seq.hpp"
