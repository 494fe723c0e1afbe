#pragma once
// KVCache<T>: the projected keys and values of one MultiheadAttention during incremental
// (token by token) decoding, so that step t attends to t + 1 cached keys instead of projecting
// the whole prefix again: O(t) work per token, not O(t^2).
//
//   K, V   (n*cap, E)   row r*cap + j = position j of cache row r (a sequence, or a beam
//                       hypothesis), j < len; rows of one sequence are contiguous
//
// A self-attention cache grows by one position per step (MultiheadAttention::append_kv); a
// cross-attention cache holds the projected memory once (MultiheadAttention::cache_kv).
// reorder(parents) is beam search's bookkeeping: new row i continues old row parents[i].
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace heed {

namespace detail {
// Incremental decoding has no dropout: refused in training mode with dropout p > 0 (the step
// would silently differ from forward in that mode).
inline void check_incremental(const std::string& who, bool training, double p) {
  if (training && p > 0.0)
    throw ValueError(who + ": incremental decoding has no dropout; call eval() (dropout " +
                     num_repr(p) + " in training mode)");
}
}  // namespace detail

template <typename T>
class MultiheadAttention;

template <typename T>
class KVCache {
 public:
  Index rows() const { return n_; }      // sequences (or hypotheses) cached
  Index length() const { return len_; }  // positions cached per row
  Index capacity() const { return cap_; }
  Index embed_dim() const { return K_.cols(); }
  bool empty() const { return n_ == 0; }

  // Position j of row r: (1, E) views.
  auto key(Index r, Index j) const { return K_.row(r * cap_ + j); }
  auto value(Index r, Index j) const { return V_.row(r * cap_ + j); }
  // Positions [0, len) of row r, columns [c0, c0 + w): (len, w) views (one head).
  auto keys(Index r, Index c0, Index w) const { return K_.block(r * cap_, c0, len_, w); }
  auto values(Index r, Index c0, Index w) const { return V_.block(r * cap_, c0, len_, w); }

  // An empty cache for n rows of E features, room for `capacity` positions before it grows.
  void reset(Index n, Index E, Index capacity) {
    detail::require(n > 0 && E > 0 && capacity > 0, "KVCache",
                    "rows, embed_dim and capacity must be positive, got " + std::to_string(n) +
                        ", " + std::to_string(E) + " and " + std::to_string(capacity));
    n_ = n, len_ = 0, cap_ = capacity;
    K_.resize(n * cap_, E);
    V_.resize(n * cap_, E);
  }

  // Keeps positions [0, len) of every row (drops the later ones; no reallocation).
  void truncate(Index len) {
    if (len < 0 || len > len_)
      throw ValueError("KVCache::truncate: length " + std::to_string(len) + " out of range [0, " +
                       std::to_string(len_) + "]");
    len_ = len;
  }

  // Beam search: new row i = old row parents[i] (parents may repeat or drop rows; its size is
  // the new row count). Copies len positions per row into a second buffer, then swaps.
  void reorder(const std::vector<Index>& parents) {
    for (std::size_t i = 0; i < parents.size(); ++i)
      if (parents[i] < 0 || parents[i] >= n_)
        throw ValueError("KVCache::reorder: parents[" + std::to_string(i) + "] = " +
                         std::to_string(parents[i]) + " out of range [0, " + std::to_string(n_) +
                         ")");
    const Index n = static_cast<Index>(parents.size());
    detail::require(n > 0, "KVCache::reorder", "parents must not be empty");
    relayout(n, cap_, [&](Matrix<T>& to, const Matrix<T>& from) {
      for (Index i = 0; i < n; ++i)
        to.middleRows(i * cap_, len_) = from.middleRows(parents[i] * cap_, len_);
    });
    n_ = n;
  }

 private:
  friend class MultiheadAttention<T>;  // fills the cache: cache_kv, append_kv

  // Room for one more position in every row (the capacity doubles when full), then len += 1;
  // returns the new position's index. The caller writes it with key_at / value_at.
  Index grow() {
    if (len_ == cap_) {
      const Index cap = 2 * cap_;
      relayout(n_, cap, [&](Matrix<T>& to, const Matrix<T>& from) {
        for (Index r = 0; r < n_; ++r) to.middleRows(r * cap, len_) = from.middleRows(r * cap_, len_);
      });
      cap_ = cap;
    }
    return len_++;
  }
  auto key_at(Index r, Index j) { return K_.row(r * cap_ + j); }
  auto value_at(Index r, Index j) { return V_.row(r * cap_ + j); }
  // The whole (n*cap, E) storage, for a cache of fixed length (cache_kv).
  Matrix<T>& key_storage() { return K_; }
  Matrix<T>& value_storage() { return V_; }
  void set_full(Index n, Index len) { n_ = n, len_ = cap_ = len; }

  // Rebuilds K and V as n rows of cap positions through copy(to, from) into the second
  // buffers, then swaps them in.
  template <class Copy>
  void relayout(Index n, Index cap, Copy&& copy) {
    for (auto [to, from] : {std::pair{&K2_, &K_}, std::pair{&V2_, &V_}}) {
      to->resize(n * cap, from->cols());
      copy(*to, *from);
    }
    K_.swap(K2_);
    V_.swap(V2_);
  }

  Index n_ = 0, len_ = 0, cap_ = 0;
  Matrix<T> K_, V_;    // (n*cap, E)
  Matrix<T> K2_, V2_;  // the other buffer of reorder / grow
};

}  // namespace heed
