#pragma once
// What Seq2Seq and TransformerSeq2Seq share: the checks of their token ids and source batches,
// and a scope that runs decoding in eval mode.
#include <string>

#include "../core/error.hpp"
#include "../core/module.hpp"
#include "../core/tensor.hpp"

namespace heed::detail {

// pad_id valid in both vocabularies; bos_id and eos_id distinct target ids other than pad_id.
inline void check_seq2seq_ids(const std::string& who, Index src_vocab, Index tgt_vocab,
                              int pad_id, int bos_id, int eos_id) {
  require(src_vocab > 0 && tgt_vocab > 0, who,
          "src_vocab and tgt_vocab must be positive, got " + std::to_string(src_vocab) + " and " +
              std::to_string(tgt_vocab));
  require(pad_id >= 0 && pad_id < src_vocab && pad_id < tgt_vocab, who,
          "pad_id " + std::to_string(pad_id) + " must be a valid id in both vocabularies");
  for (int id : {bos_id, eos_id})
    require(id >= 0 && id < tgt_vocab && id != pad_id, who,
            "bos_id and eos_id must be target ids other than pad_id, got " + std::to_string(id));
  require(bos_id != eos_id, who, "bos_id and eos_id must differ");
}

// src (B >= 1, 1 <= Ts <= max_cols), lengths (B) in [1, Ts]. max_cols < 0: no bound.
inline void check_source(const std::string& who, const Tokens& src, const LabelsRef& lengths,
                         Index max_cols = -1) {
  if (src.rows() < 1 || src.cols() < 1 || (max_cols >= 0 && src.cols() > max_cols))
    throw ShapeError(who + ": src expected (B >= 1, " +
                     (max_cols >= 0 ? "1 <= Ts <= max_len " + std::to_string(max_cols)
                                    : std::string("Ts >= 1")) +
                     "), got " + shape_str(src.rows(), src.cols()));
  if (lengths.size() != src.rows())
    throw ShapeError(who + ": src_lengths expected (" + std::to_string(src.rows()) + "), got (" +
                     std::to_string(lengths.size()) + ")");
  for (Index b = 0; b < lengths.size(); ++b)
    if (lengths(b) < 1 || lengths(b) > src.cols())
      throw ValueError(who + ": src_lengths[" + std::to_string(b) + "] = " +
                       std::to_string(lengths(b)) + " out of range [1, " +
                       std::to_string(src.cols()) + "]");
}

// beam_size >= 1 and max_len >= 1 (built only when thrown: decoding runs once per batch).
inline void check_decode_args(const std::string& who, Index beam_size, Index max_len) {
  if (beam_size < 1)
    throw ValueError(who + ": beam_size must be >= 1, got " + std::to_string(beam_size));
  if (max_len < 1) throw ValueError(who + ": max_len must be >= 1, got " + std::to_string(max_len));
}

// Eval mode for one scope, then the module's previous mode back.
template <typename T>
struct EvalScope {
  explicit EvalScope(ModuleBase<T>& m) : m_(m), was_(m.training()) { m_.eval(); }
  ~EvalScope() { m_.train(was_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;
  ModuleBase<T>& m_;
  bool was_;
};

}  // namespace heed::detail
