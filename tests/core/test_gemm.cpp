// detail::gemm, the one entry point of the large products: every transposition, alpha and beta,
// blocks with an outer stride, both backends (Blas when compiled in) against a double-precision
// triple loop, the split over threads, and its errors.
#include <doctest/doctest.h>

#include <heed/core/gemm.hpp>
#include <heed/core/random.hpp>
#include <heed/core/init.hpp>
#include <cstdlib>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

using heed::Gemm;
using heed::Index;
using heed::Matrix;
using heed::detail::Op;

namespace {

// Restores the backend and thread count a test changed.
struct Restore {
  Gemm backend = heed::gemm_backend();
  int threads = Eigen::nbThreads();
  ~Restore() {
    heed::set_gemm_backend(backend);
    Eigen::setNbThreads(threads);
  }
};

std::vector<Gemm> backends() {
  std::vector<Gemm> b{Gemm::Eigen};
  if (heed::blas_available()) b.push_back(Gemm::Blas);
  return b;
}

template <typename T>
Matrix<T> random(Index r, Index c, heed::Generator& g) {
  Matrix<T> m(r, c);
  heed::init::uniform_(m, -1.0, 1.0, g);
  return m;
}

// alpha op(A) op(B) + beta C0 by the definition, in double.
template <typename T>
Matrix<double> reference(const Matrix<T>& A, Op oa, const Matrix<T>& B, Op ob, const Matrix<T>& C0,
                         double beta, double alpha) {
  const Matrix<double> a = oa == Op::N ? Matrix<double>(A.template cast<double>())
                                       : Matrix<double>(A.template cast<double>().transpose());
  const Matrix<double> b = ob == Op::N ? Matrix<double>(B.template cast<double>())
                                       : Matrix<double>(B.template cast<double>().transpose());
  Matrix<double> c = beta * C0.template cast<double>();
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.cols(); ++j) {
      double s = 0;
      for (Index k = 0; k < a.cols(); ++k) s += a(i, k) * b(k, j);
      c(i, j) += alpha * s;
    }
  return c;
}

template <typename T>
void check_all_ops(Index M, Index N, Index K, double tol) {
  heed::Generator g(7);
  for (Gemm backend : backends()) {
    heed::set_gemm_backend(backend);
    for (Op oa : {Op::N, Op::T})
      for (Op ob : {Op::N, Op::T})
        for (double beta : {0.0, 1.0, -0.5})
          for (double alpha : {1.0, 2.0}) {
            // Operands as blocks of wider matrices: outer stride != cols.
            Matrix<T> Abig = random<T>(oa == Op::N ? M : K, (oa == Op::N ? K : M) + 3, g);
            Matrix<T> Bbig = random<T>(ob == Op::N ? K : N, (ob == Op::N ? N : K) + 5, g);
            const auto A = Abig.leftCols(Abig.cols() - 3);
            const auto B = Bbig.leftCols(Bbig.cols() - 5);
            Matrix<T> Cbig = random<T>(M, N + 2, g);
            const Matrix<T> C0 = Cbig.leftCols(N), outside = Cbig.rightCols(2);
            if (beta == 0) Cbig.leftCols(N).setConstant(std::numeric_limits<T>::quiet_NaN());  // never read
            heed::detail::gemm<T>(Cbig.leftCols(N), A, oa, B, ob, T(beta), T(alpha));
            const Matrix<double> want = reference<T>(Matrix<T>(A), oa, Matrix<T>(B), ob, C0, beta, alpha);
            const double err = (Cbig.leftCols(N).template cast<double>() - want).cwiseAbs().maxCoeff();
            INFO(heed::gemm_name(backend), " M N K ", M, " ", N, " ", K, " ops ", int(oa), int(ob),
                 " beta ", beta, " alpha ", alpha);
            CHECK(err <= tol * (1 + K));
            CHECK(Cbig.rightCols(2) == outside);  // columns beyond the block untouched
          }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("gemm: every op(A) op(B), alpha and beta, strided blocks, each backend", T, float, double) {
  Restore restore;
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  Eigen::setNbThreads(1);
  check_all_ops<T>(7, 5, 3, tol);
  check_all_ops<T>(33, 70, 19, tol);
  check_all_ops<T>(1, 17, 9, tol);  // one row: leading dimension from the columns
}

TEST_CASE_TEMPLATE("gemm: split over threads (rows, then columns) equals one thread", T, float, double) {
  Restore restore;
  heed::Generator g(3);
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-12;
  for (Gemm backend : backends()) {
    heed::set_gemm_backend(backend);
    for (const auto& mn : {std::pair<Index, Index>{301, 90}, {90, 301}})  // split M, then N
      for (Op oa : {Op::N, Op::T})
        for (Op ob : {Op::N, Op::T}) {
          const Index M = mn.first, N = mn.second, K = 200;  // > 2M multiply-adds
          const Matrix<T> A = oa == Op::N ? random<T>(M, K, g) : random<T>(K, M, g);
          const Matrix<T> B = ob == Op::N ? random<T>(K, N, g) : random<T>(N, K, g);
          Matrix<T> one = random<T>(M, N, g), two = one;
          const Matrix<T> C0 = one;
          Eigen::setNbThreads(1);
          heed::detail::gemm<T>(one, A, oa, B, ob, T(1));  // accumulate: beta 1
          Eigen::setNbThreads(2);
          heed::detail::gemm<T>(two, A, oa, B, ob, T(1));
          const Matrix<double> want = reference<T>(A, oa, B, ob, C0, 1, 1);
          INFO(heed::gemm_name(backend), " ", M, "x", N, " ops ", int(oa), int(ob));
          CHECK((two.template cast<double>() - want).cwiseAbs().maxCoeff() <= tol);
          CHECK((two - one).cwiseAbs().maxCoeff() <= T(tol));
        }
  }
}

TEST_CASE("gemm: products from several threads at once are each right") {
  // DataParallel and for_each_slice call gemm from several threads; a BLAS that is not
  // thread-safe (Debian's serial OpenBLAS: shared packing buffers) corrupts some of them.
  Restore restore;
  heed::Generator g(11);
  struct Case {
    Matrix<float> A, B, want;
  };
  std::vector<Case> cases;
  for (auto [m, n, k] : {std::tuple<Index, Index, Index>{50, 256, 784}, {25, 128, 256}, {256, 78, 50}, {50, 64, 128}}) {
    Case c{random<float>(m, k, g), random<float>(n, k, g), {}};
    cases.push_back(std::move(c));
  }
  for (Gemm backend : backends()) {
    heed::set_gemm_backend(backend);
    Eigen::setNbThreads(1);
    for (Case& c : cases) heed::detail::gemm<float>(c.want, c.A, Op::N, c.B, Op::T);
    int wrong = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(2) schedule(dynamic, 1) reduction(+ : wrong)
#endif
    for (int it = 0; it < 2000; ++it) {
      const Case& c = cases[static_cast<std::size_t>(it) % cases.size()];
      Matrix<float> C;
      heed::detail::gemm<float>(C, c.A, Op::N, c.B, Op::T);
      wrong += (C - c.want).cwiseAbs().maxCoeff() > 1e-4f;
    }
    INFO(heed::gemm_name(backend));
    CHECK(wrong == 0);
  }
}

TEST_CASE("gemm: empty products") {
  Restore restore;
  for (Gemm backend : backends()) {
    heed::set_gemm_backend(backend);
    Matrix<float> C = Matrix<float>::Constant(2, 3, 4.f);
    const Matrix<float> A(2, 0), B(0, 3);
    heed::detail::gemm<float>(heed::detail::MutRef<float>(C), A, Op::N, B, Op::N, 0.5f);  // K = 0: C = beta C
    CHECK(C.isApproxToConstant(2.f));
    Matrix<float> D;
    heed::detail::gemm<float>(D, Matrix<float>(0, 4), Op::N, Matrix<float>(4, 3), Op::N);
    CHECK(D.rows() == 0);
    CHECK(D.cols() == 3);
  }
}

TEST_CASE("gemm: a shape mismatch is a ShapeError naming the caller and the shapes") {
  Matrix<float> C(2, 2);
  const Matrix<float> A(2, 3), B(4, 2);
  try {
    heed::detail::gemm<float>(C, A, Op::N, B, Op::N, 0.f, 1.f, "Linear");
    FAIL("no error");
  } catch (const heed::ShapeError& e) {
    CHECK(std::string(e.what()) == "Linear: product (2, 3) x (4, 2) into (2, 2)");
  }
  heed::detail::MutRef<float> wrong(C);
  CHECK_THROWS_AS(heed::detail::gemm<float>(wrong, A, Op::N, Matrix<float>(3, 5), Op::N, 1.f),
                  heed::ShapeError);
}

TEST_CASE("gemm: a HEED_GEMM it cannot honour falls back to the default") {
  Restore restore;
  heed::detail::gemm_state().store(-1);  // as before the first product
  setenv("HEED_GEMM", "mkl", 1);
  CHECK(heed::gemm_backend() == heed::detail::default_gemm());  // and a line on stderr
  unsetenv("HEED_GEMM");
}

TEST_CASE("gemm: choosing the backend") {
  Restore restore;
  CHECK_THROWS_WITH_AS(heed::detail::parse_gemm("mkl"), "HEED_GEMM: expected 'eigen' or 'blas', got 'mkl'",
                       heed::ValueError);
  CHECK(heed::detail::parse_gemm("eigen") == Gemm::Eigen);
  heed::set_gemm_backend(Gemm::Eigen);
  CHECK(heed::gemm_backend() == Gemm::Eigen);
  if (heed::blas_available()) {
    heed::set_gemm_backend(Gemm::Blas);
    CHECK(heed::gemm_backend() == Gemm::Blas);
    CHECK(heed::detail::parse_gemm("blas") == Gemm::Blas);
  } else {
    CHECK_THROWS_AS(heed::set_gemm_backend(Gemm::Blas), heed::ValueError);
    CHECK_THROWS_AS(heed::detail::parse_gemm("blas"), heed::ValueError);
  }
}
