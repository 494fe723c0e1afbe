#pragma once
// gemm: the one entry point of heed's large matrix products (Linear, MultiheadAttention's
// projections, convolution, the recurrent layers' input projections), so that one switch routes
// them all through a BLAS:
//
//   C = alpha op(A) op(B) + beta C        op(X) = X or X^T,  C: (M, N), all row-major
//
// Two backends:
//   Gemm::Eigen  Eigen's own product (always available; threaded by Eigen's OpenMP).
//   Gemm::Blas   cblas_sgemm / cblas_dgemm, when heed is built with HEED_USE_BLAS (the CMake
//                option of that name, on when OpenBLAS is found; any thread-safe CBLAS whose
//                cblas.h is on the include path works). The BLAS runs on the calling thread
//                (OpenBLAS's own pool is switched off at the first product): heed splits C's
//                rows (or columns, whichever are more) over Eigen::nbThreads() threads itself,
//                so one knob sets every thread count, and inside one of heed's own parallel
//                regions (for_each_slice, DataParallel) every product runs on its thread alone.
//
// Which is faster depends on the instruction set the program is compiled for (bench_gemm
// measures both): Debian's OpenBLAS 0.3.21 has AVX2 kernels for the AMD EPYC here, so a build
// without -march=native (SSE2 Eigen, ~40 GFLOP/s) gains ~3x from it, and an AVX2 build about
// breaks even; with AVX-512, Eigen's kernels (~165 GFLOP/s) beat OpenBLAS's AVX2 ones (~115).
// The default is therefore Blas when compiled in and the target has no AVX-512, Eigen
// otherwise; HEED_GEMM=eigen|blas in the environment (read at the first product) or
// set_gemm_backend() chooses at run time. The two differ by float rounding only (the summation
// order), and heed's tests pass with both.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HEED_USE_BLAS
#include <cblas.h>
#endif

#include "error.hpp"
#include "tensor.hpp"

namespace heed {

enum class Gemm { Eigen, Blas };

// True when this program was compiled with HEED_USE_BLAS.
constexpr bool blas_available() {
#ifdef HEED_USE_BLAS
  return true;
#else
  return false;
#endif
}

namespace detail {

constexpr Gemm default_gemm() {
#if defined(HEED_USE_BLAS) && !defined(__AVX512F__)
  return Gemm::Blas;
#else
  return Gemm::Eigen;
#endif
}

inline Gemm parse_gemm(const std::string& s) {
  if (s == "eigen") return Gemm::Eigen;
  if (s == "blas") {
    if (!blas_available())
      throw ValueError("HEED_GEMM: 'blas' asked for, but this program was built without "
                       "HEED_USE_BLAS (cmake -DHEED_USE_BLAS=ON with a CBLAS installed)");
    return Gemm::Blas;
  }
  throw ValueError("HEED_GEMM: expected 'eigen' or 'blas', got '" + s + "'");
}

// -1: not read yet. Read from HEED_GEMM at the first product, then kept.
inline std::atomic<int>& gemm_state() {
  static std::atomic<int> state{-1};
  return state;
}

}  // namespace detail

// Routes every later product through `backend`; ValueError for Gemm::Blas without HEED_USE_BLAS.
inline void set_gemm_backend(Gemm backend) {
  if (backend == Gemm::Blas && !blas_available()) detail::parse_gemm("blas");  // throws
  detail::gemm_state().store(static_cast<int>(backend));
}

// The backend products use now: set_gemm_backend's, else HEED_GEMM's, else the default above.
// A HEED_GEMM it cannot honour (a typo, or blas without HEED_USE_BLAS) is reported on stderr
// once and the default used: it is read at the first product, which may run on one of heed's
// threads, where an exception could not reach the caller.
inline Gemm gemm_backend() {
  int s = detail::gemm_state().load(std::memory_order_relaxed);
  if (s < 0) {
    Gemm g = detail::default_gemm();
    if (const char* env = std::getenv("HEED_GEMM"); env && *env) {
      try {
        g = detail::parse_gemm(env);
      } catch (const ValueError& e) {
        std::fprintf(stderr, "heed: %s; using %s\n", e.what(), g == Gemm::Blas ? "blas" : "eigen");
      }
    }
    int unset = -1;  // the first thread to get here decides (and reports)
    if (detail::gemm_state().compare_exchange_strong(unset, static_cast<int>(g))) return g;
    return static_cast<Gemm>(detail::gemm_state().load());
  }
  return static_cast<Gemm>(s);
}

inline const char* gemm_name(Gemm g) { return g == Gemm::Blas ? "blas" : "eigen"; }

namespace detail {

enum class Op { N, T };  // op(X) = X, or X^T

template <typename T>
using MutRef = Eigen::Ref<Matrix<T>>;

template <typename T>
void gemm_eigen(MutRef<T> C, const ConstRef<T>& A, Op oa, const ConstRef<T>& B, Op ob, T beta,
                T alpha) {
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  // alpha folds into Eigen's kernel (it extracts scalar factors of a product).
  if (oa == Op::N && ob == Op::N) C.noalias() += alpha * A * B;
  else if (oa == Op::N) C.noalias() += alpha * A * B.transpose();
  else if (ob == Op::N) C.noalias() += alpha * A.transpose() * B;
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

#ifdef HEED_USE_BLAS
// OpenBLAS's thread pool off, once: heed threads its products itself, and a threaded BLAS
// called from several of heed's threads would oversubscribe the cores. (It is a process-wide
// setting of OpenBLAS; set OPENBLAS_NUM_THREADS for other users of it in the same program.)
inline void blas_single_thread() {
#ifdef OPENBLAS_VERSION
  static const bool done = (openblas_set_num_threads(1), true);
  (void)done;
#endif
}

// A row-major operand's leading dimension as CBLAS wants it: >= its column count.
template <class M>
int blas_ld(const M& m) {
  return static_cast<int>(m.rows() <= 1 ? std::max<Index>(1, m.cols()) : m.outerStride());
}

template <typename T>
void cblas_gemm(Op oa, Op ob, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
                int ldb, T beta, T* c, int ldc) {
  const auto ta = oa == Op::T ? CblasTrans : CblasNoTrans;
  const auto tb = ob == Op::T ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C (M, N) = alpha op(A) op(B) + beta C through the serial BLAS, C's rows (or columns) split
// over the threads: each thread's block of C needs a block of op(A)'s rows (or op(B)'s columns)
// and all of the other operand. Work under ~2M multiply-adds stays on one thread.
template <typename T>
void gemm_blas(MutRef<T> C, const ConstRef<T>& A, Op oa, const ConstRef<T>& B, Op ob, T beta,
               T alpha, Index K) {
  blas_single_thread();
  const Index M = C.rows(), N = C.cols();
  const int lda = blas_ld(A), ldb = blas_ld(B), ldc = blas_ld(C);
  const T* a = A.data();
  const T* b = B.data();
  T* c = C.data();
  int threads = 1;
#ifdef _OPENMP
  if (!omp_in_parallel() && double(M) * double(N) * double(K) > 2e6) threads = Eigen::nbThreads();
#endif
  const bool by_rows = M >= N;
  const Index extent = by_rows ? M : N;
  threads = static_cast<int>(std::min<Index>(threads, std::max<Index>(1, extent / 16)));
  auto part = [&](int t) {  // thread t's share [lo, hi) of C's rows or columns, 16-aligned
    const Index chunk = (extent / threads + 15) / 16 * 16;
    const Index lo = std::min(extent, t * chunk);
    const Index hi = t + 1 == threads ? extent : std::min(extent, lo + chunk);
    if (hi <= lo) return;
    if (by_rows)  // rows lo..hi of C need rows lo..hi of op(A): A's rows, or A's columns if A^T
      cblas_gemm(oa, ob, int(hi - lo), int(N), int(K), alpha, a + (oa == Op::N ? lo * lda : lo),
                 lda, b, ldb, beta, c + lo * ldc, ldc);
    else  // columns lo..hi of C need columns lo..hi of op(B): B's columns, or B's rows if B^T
      cblas_gemm(oa, ob, int(M), int(hi - lo), int(K), alpha, a, lda,
                 b + (ob == Op::N ? lo : lo * ldb), ldb, beta, c + lo, ldc);
  };
  if (threads <= 1) {
    part(0);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(threads)
  for (int t = 0; t < threads; ++t) part(t);
#endif
}
#endif

// C = alpha op(A) op(B) + beta C. C must already have op(A)'s rows and op(B)'s columns (the
// Matrix overload below sizes it when beta == 0); a mismatch is a ShapeError naming `who`.
template <typename T>
void gemm(MutRef<T> C, const ConstRef<T>& A, Op oa, const ConstRef<T>& B, Op ob, T beta = T(0),
          T alpha = T(1), const char* who = "gemm") {
  const Index M = oa == Op::N ? A.rows() : A.cols(), K = oa == Op::N ? A.cols() : A.rows();
  const Index Kb = ob == Op::N ? B.rows() : B.cols(), N = ob == Op::N ? B.cols() : B.rows();
  if (K != Kb || C.rows() != M || C.cols() != N)
    throw ShapeError(std::string(who) + ": product " + shape_str(M, K) + " x " + shape_str(Kb, N) +
                     " into " + shape_str(C.rows(), C.cols()));
  if (M == 0 || N == 0) return;
#ifdef HEED_USE_BLAS
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const Index big = std::max({M, N, K, A.outerStride(), B.outerStride(), C.outerStride()});
    if (K > 0 && big < INT_MAX && gemm_backend() == Gemm::Blas)
      return gemm_blas<T>(C, A, oa, B, ob, beta, alpha, K);
  }
#endif
  gemm_eigen<T>(C, A, oa, B, ob, beta, alpha);
}

template <typename T>
void gemm(Matrix<T>& C, const ConstRef<T>& A, Op oa, const ConstRef<T>& B, Op ob, T beta = T(0),
          T alpha = T(1), const char* who = "gemm") {
  if (beta == T(0)) C.resize(oa == Op::N ? A.rows() : A.cols(), ob == Op::N ? B.cols() : B.rows());
  gemm<T>(MutRef<T>(C), A, oa, B, ob, beta, alpha, who);
}

}  // namespace detail
}  // namespace heed
