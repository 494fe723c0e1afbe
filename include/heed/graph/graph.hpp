#pragma once
// Graph<T>: composition without backward glue. A composite writes only its forward, calling
// its modules through a Graph; the Graph records each call, and backward() replays the calls
// in reverse, handing every module the gradient of its output. A value consumed more than once
// (a residual x + f(x), self-attention's q = k = v) has its gradients summed here, in acc(),
// the one place heed sums fan-out:
//
//   heed::Var<float> forward(heed::Graph<float>& g, const heed::Tokens& ids,
//                            const heed::BoolMatrix& pad) {
//     const heed::Index B = ids.rows();
//     auto x = g(emb, ids);                                           // (B*T, E)
//     auto a = g(attn, x, x, x, B, {.key_padding_mask = &pad});       // q = k = v = x
//     auto h = g(norm, x + a);                                        // residual
//     return g(head, g(pool, h, B, &pad));                            // (B, classes)
//   }
//   ...
//   g.clear();                                    // one graph per forward
//   auto logits = model.forward(g, ids, pad);
//   float loss = ce.forward(logits.value(), labels);
//   g.backward(logits, ce.backward());            // every parameter gradient accumulated
//
// Each module caches one call for its backward, so a module may be called once per graph
// (weight sharing across positions needs one module per position); a second call is refused.
// Mask pointers passed to a call are read again by backward: keep them alive until then.
// Values are the modules' own output buffers (no copies); the graph owns only the gradients
// and the sums, and keeps their storage across clear(), so a loop of fixed shapes allocates
// nothing per step after the first.
#include <cstdint>
#include <deque>
#include <string>

#include "../attention/attention.hpp"
#include "../attention/fused_attention.hpp"
#include "../attention/multihead_attention.hpp"
#include "../core/module.hpp"
#include "../layers/embedding.hpp"
#include "../layers/gru.hpp"
#include "../layers/lstm.hpp"
#include "../layers/pooling.hpp"
#include "../transformer/decoder.hpp"
#include "../transformer/decoder_layer.hpp"
#include "../transformer/encoder.hpp"
#include "../transformer/encoder_layer.hpp"

namespace heed {

template <typename T>
class Graph;

// A value in a Graph: an input or the output of one recorded call. Cheap to copy; valid until
// the graph's next clear().
template <typename T>
class Var {
 public:
  const Matrix<T>& value() const { return g_->value(*this); }
  Index rows() const { return value().rows(); }
  Index cols() const { return value().cols(); }
  // dL/d(this value) after Graph::backward; empty when no gradient reached it.
  const Matrix<T>& grad() const { return g_->grad(*this); }

  friend Var operator+(Var a, Var b) { return a.g_->add(a, b); }

 private:
  friend class Graph<T>;
  Var(Graph<T>* g, Index id, std::uint64_t gen) : g_(g), id_(id), gen_(gen) {}
  Graph<T>* g_;
  Index id_;
  std::uint64_t gen_;  // the graph's generation when made: a Var from before clear() is stale
};

template <typename T>
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;  // Vars point at their graph
  Graph& operator=(const Graph&) = delete;

  // Starts a new forward: every Var made so far becomes stale. Buffers are kept.
  void clear() {
    size_ = 0;
    ++gen_;
    backward_done_ = false;
  }

  // A leaf value (copied). Its gradient is computed only with requires_grad.
  Var<T> input(const ConstRef<T>& x, bool requires_grad = false) {
    Node& n = push(nullptr, requires_grad);
    n.own = x;
    n.value = &n.own;
    return var(n);
  }

  // ---- recorded calls ---------------------------------------------------------------------
  // A single-input module: y = m(x).
  Var<T> operator()(Module<T>& m, Var<T> x) {
    check_var(x);
    claim(m);
    m.requires_input_grad(node(x).requires_grad);
    const Matrix<T>& y = m.forward(node(x).value_ref());
    Node& n = push(&m, true, x.id_);
    n.value = &y;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      g.acc(n.in[0], static_cast<Module<T>&>(*n.m).backward(dy));
    };
    return var(n);
  }
  Var<T> operator()(Module<T>& m, const ConstRef<T>& x) { return (*this)(m, input(x)); }

  // Embedding on ids (N) or (B, T): a leaf whose gradient goes to the embedding table.
  template <class Ids>
  Var<T> operator()(Embedding<T>& e, const Eigen::DenseBase<Ids>& ids) {
    claim(e);
    const Matrix<T>& y = e.forward(ids);
    Node& n = push(&e, true);
    n.value = &y;
    n.backward = [](Graph&, Node& n, const Matrix<T>& dy) {
      static_cast<Embedding<T>&>(*n.m).backward(dy);
    };
    return var(n);
  }

  // MultiheadAttention(q, k, v): pass one Var three times for self-attention.
  Var<T> operator()(MultiheadAttention<T>& m, Var<T> q, Var<T> k, Var<T> v, Index B,
                    const MultiheadAttentionArgs<T>& args = {}) {
    return qkv(m, q, k, v, [&](const auto& Q, const auto& K, const auto& V) -> const Matrix<T>& {
      return m.forward(Q, K, V, B, args).output;
    });
  }
  template <template <typename> class Score>
  Var<T> operator()(Attention<T, Score>& m, Var<T> q, Var<T> k, Var<T> v, Index B,
                    const AttentionMasks<T>& masks = {}) {
    return qkv(m, q, k, v, [&](const auto& Q, const auto& K, const auto& V) -> const Matrix<T>& {
      return m.forward(Q, K, V, B, masks);
    });
  }
  Var<T> operator()(FusedAttention<T>& m, Var<T> q, Var<T> k, Var<T> v, Index B,
                    const AttentionMasks<T>& masks = {}) {
    return qkv(m, q, k, v, [&](const auto& Q, const auto& K, const auto& V) -> const Matrix<T>& {
      return m.forward(Q, K, V, B, masks);
    });
  }

  // GRU / LSTM over a sequence batch: the output sequence (B*T, D*H), zero initial states.
  Var<T> operator()(GRU<T>& m, Var<T> x, Index B, const LabelsRef& lengths = Labels()) {
    return rnn(m, x, [&](const ConstRef<T>& X) -> const Matrix<T>& {
      return m.forward(X, B, Matrix<T>(), lengths).output;
    });
  }
  Var<T> operator()(LSTM<T>& m, Var<T> x, Index B, const LabelsRef& lengths = Labels()) {
    return rnn(m, x, [&](const ConstRef<T>& X) -> const Matrix<T>& {
      return m.forward(X, B, Matrix<T>(), Matrix<T>(), lengths).output;
    });
  }

  // TransformerEncoderLayer / TransformerEncoder over a sequence batch (B*T, d) -> (B*T, d).
  // Their masks are copied by the module, so these need not outlive the call.
  Var<T> operator()(TransformerEncoderLayer<T>& m, Var<T> x, Index B,
                    const TransformerEncoderLayerArgs<T>& args = {}) {
    return sequence(m, x, [&](const ConstRef<T>& X) -> const Matrix<T>& {
      return m.forward(X, B, args);
    });
  }
  Var<T> operator()(TransformerEncoder<T>& m, Var<T> x, Index B,
                    const TransformerEncoderArgs<T>& args = {}) {
    return sequence(m, x, [&](const ConstRef<T>& X) -> const Matrix<T>& {
      return m.forward(X, B, args);
    });
  }

  // TransformerDecoderLayer / TransformerDecoder: tgt (B*Tt, d), memory (B*Tm, d) ->
  // (B*Tt, d); the gradient flows to tgt and to memory (a decoder's summed over its layers).
  Var<T> operator()(TransformerDecoderLayer<T>& m, Var<T> tgt, Var<T> memory, Index B,
                    const TransformerDecoderLayerArgs<T>& args = {}) {
    return decoder(m, tgt, memory, [&](const ConstRef<T>& X, const ConstRef<T>& M) -> const Matrix<T>& {
      return m.forward(X, M, B, args);
    });
  }
  Var<T> operator()(TransformerDecoder<T>& m, Var<T> tgt, Var<T> memory, Index B,
                    const TransformerDecoderArgs<T>& args = {}) {
    return decoder(m, tgt, memory, [&](const ConstRef<T>& X, const ConstRef<T>& M) -> const Matrix<T>& {
      return m.forward(X, M, B, args);
    });
  }

  // Masked mean over each sample's valid steps: (B*T, E) -> (B, E).
  Var<T> operator()(MaskedMeanPool<T>& m, Var<T> x, Index B,
                    const BoolMatrix* key_padding_mask = nullptr) {
    check_var(x);
    claim(m);
    const Matrix<T>& y = m.forward(node(x).value_ref(), B, key_padding_mask);
    Node& n = push(&m, true, x.id_);
    n.value = &y;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      g.acc(n.in[0], static_cast<MaskedMeanPool<T>&>(*n.m).backward(dy));
    };
    return var(n);
  }

  // a + b, elementwise (a residual connection).
  Var<T> add(Var<T> a, Var<T> b) {
    check_var(a);
    check_var(b);
    const Matrix<T>& A = node(a).value_ref();
    const Matrix<T>& Bm = node(b).value_ref();
    if (A.rows() != Bm.rows() || A.cols() != Bm.cols())
      throw ShapeError("Graph: add expected equal shapes, got " + detail::shape_str(A.rows(), A.cols()) +
                       " and " + detail::shape_str(Bm.rows(), Bm.cols()));
    Node& n = push(nullptr, node(a).requires_grad || node(b).requires_grad, a.id_, b.id_);
    n.own.resize(A.rows(), A.cols());
    n.own = A + Bm;  // (1) y = a + b
    n.value = &n.own;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      g.acc(n.in[0], dy);  // d(1) wrt a
      g.acc(n.in[1], dy);  // d(1) wrt b
    };
    return var(n);
  }

  // ---- backward ---------------------------------------------------------------------------
  // dL/d(out) = dout; runs every recorded call that out depends on, newest first, so each
  // module's gradients are accumulated (+=) as by its own backward. Once per forward.
  void backward(Var<T> out, const ConstRef<T>& dout) {
    check_var(out);
    if (backward_done_)
      throw ValueError("Graph: backward already ran for this forward; clear() and run forward again");
    const Matrix<T>& y = node(out).value_ref();
    detail::check_shape("Graph", "output gradient", dout, y.rows(), y.cols());
    for (Index i = 0; i < size_; ++i) nodes_[i].has_grad = false;
    backward_done_ = true;
    acc(out.id_, dout);
    for (Index i = out.id_; i >= 0; --i) {
      Node& n = nodes_[i];
      if (n.has_grad && n.backward) n.backward(*this, n, n.grad);
    }
  }

  const Matrix<T>& value(Var<T> v) const { check_var(v); return nodes_[v.id_].value_ref(); }
  const Matrix<T>& grad(Var<T> v) const {
    check_var(v);
    return nodes_[v.id_].has_grad ? nodes_[v.id_].grad : empty_;
  }
  Index size() const { return size_; }

 private:
  struct Node {
    ModuleBase<T>* m = nullptr;   // the module called, nullptr for inputs and sums
    const Matrix<T>* value = nullptr;
    Matrix<T> own;                // the value, when the graph computed it (inputs, sums)
    Matrix<T> grad;               // dL/d(value), summed over consumers
    bool has_grad = false, requires_grad = true;
    Index in[3] = {-1, -1, -1};   // input nodes
    void (*backward)(Graph&, Node&, const Matrix<T>&) = nullptr;
    const Matrix<T>& value_ref() const { return *value; }
  };

  Node& push(ModuleBase<T>* m, bool requires_grad, Index a = -1, Index b = -1, Index c = -1) {
    if (size_ == static_cast<Index>(nodes_.size())) nodes_.emplace_back();  // deque: no moves
    Node& n = nodes_[size_++];
    n.m = m;
    n.value = nullptr;
    n.has_grad = false;
    n.requires_grad = requires_grad;
    n.in[0] = a;
    n.in[1] = b;
    n.in[2] = c;
    n.backward = nullptr;
    return n;
  }
  // The Var of node n, which push() just made: the newest node.
  Var<T> var(const Node&) { return Var<T>(this, size_ - 1, gen_); }
  Node& node(Var<T> v) { return nodes_[v.id_]; }

  // The fan-out sum: every consumer's gradient of node id lands here.
  void acc(Index id, const Matrix<T>& d) {
    if (id < 0 || d.size() == 0) return;  // a constant input, or no input gradient computed
    Node& n = nodes_[id];
    if (!n.requires_grad) return;
    if (n.has_grad) {
      n.grad += d;
    } else {
      n.grad = d;  // keeps the storage when the shape is unchanged
      n.has_grad = true;
    }
  }

  void check_var(const Var<T>& v) const {
    if (v.g_ != this) throw ValueError("Graph: a Var of another graph");
    if (v.gen_ != gen_ || v.id_ >= size_)
      throw ValueError("Graph: a Var from before clear(); run the forward again");
  }
  // Each module caches one call: a second call in one forward would overwrite the first's.
  void claim(const ModuleBase<T>& m) const {
    for (Index i = 0; i < size_; ++i)
      if (nodes_[i].m == &m)
        throw ValueError("Graph: " + m.name() + " called twice in one forward; its cache holds "
                         "one call (use one module per position)");
  }

  template <class M, class F>
  Var<T> qkv(M& m, Var<T> q, Var<T> k, Var<T> v, F&& fwd) {
    check_var(q);
    check_var(k);
    check_var(v);
    claim(m);
    m.requires_input_grad(node(q).requires_grad || node(k).requires_grad || node(v).requires_grad);
    const Matrix<T>& y = fwd(node(q).value_ref(), node(k).value_ref(), node(v).value_ref());
    Node& n = push(&m, true, q.id_, k.id_, v.id_);
    n.value = &y;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      const auto gr = static_cast<M&>(*n.m).backward(dy);
      g.acc(n.in[0], gr.dquery);  // q = k = v sums all three into one gradient
      g.acc(n.in[1], gr.dkey);
      g.acc(n.in[2], gr.dvalue);
    };
    return var(n);
  }

  template <class M, class F>
  Var<T> rnn(M& m, Var<T> x, F&& fwd) {
    check_var(x);
    claim(m);
    m.requires_input_grad(node(x).requires_grad);
    const Matrix<T>& y = fwd(node(x).value_ref());
    Node& n = push(&m, true, x.id_);
    n.value = &y;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      g.acc(n.in[0], static_cast<M&>(*n.m).backward(dy).dx);
    };
    return var(n);
  }

  // A module with forward(x, B, ...) -> y and backward(dy) -> dx (a matrix).
  template <class M, class F>
  Var<T> sequence(M& m, Var<T> x, F&& fwd) {
    check_var(x);
    claim(m);
    m.requires_input_grad(node(x).requires_grad);
    const Matrix<T>& y = fwd(node(x).value_ref());
    Node& n = push(&m, true, x.id_);
    n.value = &y;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      g.acc(n.in[0], static_cast<M&>(*n.m).backward(dy));
    };
    return var(n);
  }

  // A module with forward(tgt, memory, ...) -> y and backward(dy) -> {dtgt, dmemory}.
  template <class M, class F>
  Var<T> decoder(M& m, Var<T> tgt, Var<T> memory, F&& fwd) {
    check_var(tgt);
    check_var(memory);
    claim(m);
    m.requires_input_grad(node(tgt).requires_grad);
    m.requires_memory_grad(node(memory).requires_grad);
    const Matrix<T>& y = fwd(node(tgt).value_ref(), node(memory).value_ref());
    Node& n = push(&m, true, tgt.id_, memory.id_);
    n.value = &y;
    n.backward = [](Graph& g, Node& n, const Matrix<T>& dy) {
      const auto gr = static_cast<M&>(*n.m).backward(dy);
      g.acc(n.in[0], gr.dtgt);
      g.acc(n.in[1], gr.dmemory);  // tgt = memory sums both into one gradient
    };
    return var(n);
  }

  std::deque<Node> nodes_;  // [0, size_) live; stable addresses, storage reused
  Index size_ = 0;
  std::uint64_t gen_ = 0;
  bool backward_done_ = false;
  Matrix<T> empty_;
};

}  // namespace heed
