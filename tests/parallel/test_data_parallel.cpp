// DataParallel: a sharded step equals the plain step (loss, gradients, Adam steps), is
// bit-identical for any thread count, weights CrossEntropyLoss's shards by their denominators,
// carries modes, buffers and random streams to the replicas, and refuses bad input.
#include <doctest/doctest.h>

#include <heed/heed.hpp>
#include <heed/parallel.hpp>
#include <set>
#include <string>
#include <vector>

using heed::Index;
using heed::Labels;
using heed::Matrix;

namespace {

// What Eigen::setNbThreads(n) gives: n, or 1 in a build without OpenMP.
int heed_threads(int n) {
#ifdef _OPENMP
  return n;
#else
  (void)n;
  return 1;
#endif
}

struct Threads {  // restores the thread count a test changed
  int n = Eigen::nbThreads();
  ~Threads() { Eigen::setNbThreads(n); }
};

template <typename T>
heed::Sequential<T> mlp(std::uint64_t seed = 1, double dropout = 0) {
  heed::Generator g(seed);
  heed::Sequential<T> net;
  net.template emplace<heed::Linear<T>>(12, 64, true, g);
  net.template emplace<heed::ReLU<T>>();
  if (dropout > 0) net.template emplace<heed::Dropout<T>>(dropout, seed);
  net.template emplace<heed::Linear<T>>(64, 5, true, g);
  return net;
}

template <typename T>
struct Batch {
  Matrix<T> x;
  Labels y;
};

template <typename T>
Batch<T> batch(Index B, std::uint64_t seed = 2) {
  heed::Generator g(seed);
  Batch<T> b{Matrix<T>(B, 12), Labels(B)};
  heed::init::uniform_(b.x, -1.0, 1.0, g);
  for (Index i = 0; i < B; ++i) b.y(i) = static_cast<int>(g.below(5));
  return b;
}

template <typename T>
std::vector<Matrix<T>> grads(heed::Sequential<T>& m) {
  std::vector<Matrix<T>> g;
  for (auto& p : m.parameters()) g.push_back(*p.grad);
  return g;
}

template <typename T>
double max_diff(const std::vector<Matrix<T>>& a, const std::vector<Matrix<T>>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    d = std::max(d, (a[i] - b[i]).template cast<double>().cwiseAbs().maxCoeff());
  return d;
}

// The plain step: loss and gradients of the whole batch.
template <typename T>
T plain_step(heed::Sequential<T>& m, const Batch<T>& b, heed::CrossEntropyLoss<T>& ce) {
  m.zero_grad();
  const T loss = ce.forward(m.forward(b.x), b.y);
  m.backward(ce.backward());
  return loss;
}

}  // namespace

TEST_CASE_TEMPLATE("DataParallel: any number of shards gives the plain step's loss and gradients", T, float, double) {
  Threads keep;
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  const Batch<T> b = batch<T>(37);  // rows not a multiple of the shard count
  heed::CrossEntropyLoss<T> ce;
  heed::Sequential<T> ref = mlp<T>();
  const T want = plain_step(ref, b, ce);
  const auto want_g = grads(ref);
  for (int threads : {1, 2})
    for (int shards : {1, 2, 3, 4, 37, 50}) {
      Eigen::setNbThreads(threads);
      heed::Sequential<T> m = mlp<T>();
      heed::DataParallel<heed::Sequential<T>> dp(m, [] { return mlp<T>(99); }, {.shards = shards});
      CHECK(dp.shards() == shards);
      m.zero_grad();
      const T loss = dp.step(b.x, b.y, ce);
      INFO("threads ", threads, " shards ", shards);
      CHECK(std::abs(double(loss - want)) <= tol);
      CHECK(max_diff(grads(m), want_g) <= tol);
    }
}

TEST_CASE_TEMPLATE("DataParallel: for fixed shards, bit-identical whatever the thread count", T, float, double) {
  Threads keep;
  const Batch<T> b = batch<T>(200);  // shards of 50 rows: products large enough to thread
  heed::CrossEntropyLoss<T> ce;
  std::vector<std::vector<Matrix<T>>> results;
  std::vector<T> losses;
  for (int threads : {1, 2, 3}) {
    Eigen::setNbThreads(threads);
    heed::Sequential<T> m = mlp<T>();
    heed::DataParallel<heed::Sequential<T>> dp(m, [] { return mlp<T>(); }, {.shards = 4});
    heed::Adam<T> opt(m.parameters(), {.lr = T(1e-2)});
    for (int step = 0; step < 3; ++step) {  // the replicas follow the optimizer's updates
      opt.zero_grad();
      losses.push_back(dp.step(b.x, b.y, ce));
      opt.step();
    }
    results.push_back(grads(m));
  }
  for (std::size_t i = 1; i < results.size(); ++i) {
    CHECK(max_diff(results[i], results[0]) == 0);
    for (int step = 0; step < 3; ++step) CHECK(losses[i * 3 + step] == losses[step]);
  }
}

// Large enough that Eigen and the BLAS path would thread each product if allowed.
heed::Sequential<float> wide() {
  heed::Generator g(5);
  heed::Sequential<float> net;
  net.emplace<heed::Linear<float>>(12, 512, true, g);
  net.emplace<heed::ReLU<float>>();
  net.emplace<heed::Linear<float>>(512, 512, true, g);
  net.emplace<heed::ReLU<float>>();
  net.emplace<heed::Linear<float>>(512, 5, true, g);
  return net;
}

TEST_CASE("DataParallel: adaptive threads try both counts and change nothing in the numbers") {
  Threads keep;
  const Batch<float> b = batch<float>(400);
  heed::CrossEntropyLoss<float> ce;
  std::vector<std::vector<Matrix<float>>> results;
  for (bool adaptive : {false, true}) {
    Eigen::setNbThreads(adaptive ? 2 : 1);
    heed::Sequential<float> m = wide();
    heed::DataParallel<heed::Sequential<float>> dp(m, wide, {.shards = 2, .adaptive = adaptive});
    heed::Adam<float> opt(m.parameters(), {.lr = 1e-2f});
    std::set<int> used;
    for (int step = 0; step < 12; ++step) {  // steps 8 and 9 run the other count
      opt.zero_grad();
      dp.step(b.x, b.y, ce);
      opt.step();
      used.insert(dp.last_threads());
    }
    const int most = Eigen::nbThreads();  // 2 (1 in a build without OpenMP)
    CHECK(used == (adaptive ? std::set<int>{1, most} : std::set<int>{1}));
    CHECK(most == (adaptive ? heed_threads(2) : 1));  // restored after the 1-thread steps
    results.push_back(grads(m));
  }
  CHECK(max_diff(results[1], results[0]) == 0);
  Eigen::setNbThreads(2);
  heed::Sequential<float> m = mlp<float>();
  heed::DataParallel<heed::Sequential<float>> fixed(m, [] { return mlp<float>(); }, {.shards = 2, .adaptive = false});
  for (int step = 0; step < 12; ++step) {
    fixed.step(b.x, b.y, ce);
    CHECK(fixed.last_threads() == heed_threads(2));
  }
}

TEST_CASE("DataParallel: three Adam steps follow the plain ones") {
  Threads keep;
  Eigen::setNbThreads(2);
  const Batch<double> b = batch<double>(64);
  heed::CrossEntropyLoss<double> ce;
  heed::Sequential<double> ref = mlp<double>(), m = mlp<double>();
  heed::Adam<double> opt_ref(ref.parameters(), {.lr = 1e-2}), opt(m.parameters(), {.lr = 1e-2});
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 3});
  for (int step = 0; step < 3; ++step) {
    const double want = plain_step(ref, b, ce);
    opt_ref.step();
    opt.zero_grad();
    CHECK(std::abs(dp.step(b.x, b.y, ce) - want) <= 1e-13);
    opt.step();
  }
  for (std::size_t i = 0; i < ref.parameters().size(); ++i)
    CHECK((*ref.parameters()[i].value - *m.parameters()[i].value).cwiseAbs().maxCoeff() <= 1e-13);
}

TEST_CASE("DataParallel: gradients accumulate into the model's, as backward does") {
  const Batch<double> b = batch<double>(20);
  heed::CrossEntropyLoss<double> ce;
  heed::Sequential<double> ref = mlp<double>(), m = mlp<double>();
  plain_step(ref, b, ce);
  const auto once = grads(ref);
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 2});
  m.zero_grad();
  dp.step(b.x, b.y, ce);
  dp.step(b.x, b.y, ce);  // no zero_grad in between: twice the gradient
  auto twice = once;
  for (auto& g : twice) g *= 2;
  CHECK(max_diff(grads(m), twice) <= 1e-14);
}

TEST_CASE("DataParallel: CrossEntropyLoss's class weights and ignore_index weight the shards by their denominators") {
  Batch<double> b = batch<double>(30);
  for (Index i = 0; i < 12; ++i) b.y(i) = -100;  // shard 0 of 3 has two counted rows, the others ten
  b.y(0) = 1;
  b.y(1) = 3;
  heed::CrossEntropyLoss<double> ce({.weight = {0.5, 2.0, 1.0, 3.0, 0.25}, .label_smoothing = 0.1});
  heed::Sequential<double> ref = mlp<double>(), m = mlp<double>();
  const double want = plain_step(ref, b, ce);
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 3});
  m.zero_grad();
  CHECK(std::abs(dp.step(b.x, b.y, ce) - want) <= 1e-14);
  CHECK(max_diff(grads(m), grads(ref)) <= 1e-14);
}

TEST_CASE("DataParallel: a batch whose targets are all ignored gives loss 0 and no gradient, as CrossEntropyLoss") {
  Batch<double> b = batch<double>(12);
  b.y.setConstant(-100);
  heed::CrossEntropyLoss<double> ce;
  heed::Sequential<double> ref = mlp<double>(), m = mlp<double>();
  const double want = plain_step(ref, b, ce);
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 3});
  m.zero_grad();
  CHECK(dp.step(b.x, b.y, ce) == want);
  CHECK(max_diff(grads(m), grads(ref)) == 0);
}

TEST_CASE("DataParallel: a regression target (MSELoss on a matrix) is sharded by rows") {
  Threads keep;
  Eigen::setNbThreads(2);
  const Batch<double> b = batch<double>(21);
  heed::Generator g(9);
  Matrix<double> target(21, 5);
  heed::init::uniform_(target, -1.0, 1.0, g);
  heed::MSELoss<double> mse;
  heed::Sequential<double> ref = mlp<double>(), m = mlp<double>();
  ref.zero_grad();
  const double want = mse.forward(ref.forward(b.x), target);
  ref.backward(mse.backward());
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 4});
  m.zero_grad();
  CHECK(std::abs(dp.step(b.x, target, mse) - want) <= 1e-14);
  CHECK(max_diff(grads(m), grads(ref)) <= 1e-14);
}

TEST_CASE("DataParallel: a criterion changed in place is used as it is now") {
  const Batch<double> b = batch<double>(20);
  heed::Sequential<double> m = mlp<double>();
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 2});
  heed::CrossEntropyLoss<double> ce;
  m.zero_grad();
  dp.step(b.x, b.y, ce);
  ce = heed::CrossEntropyLoss<double>({.weight = {0.5, 2.0, 1.0, 3.0, 0.25}});  // same object, new options
  heed::Sequential<double> ref = mlp<double>();
  const double want = plain_step(ref, b, ce);
  m.zero_grad();
  CHECK(std::abs(dp.step(b.x, b.y, ce) - want) <= 1e-14);
  CHECK(max_diff(grads(m), grads(ref)) <= 1e-14);
}

TEST_CASE("DataParallel: eval mode and dropout streams reach the replicas; a step replays exactly") {
  Threads keep;
  Eigen::setNbThreads(2);
  const Batch<double> b = batch<double>(40);
  heed::CrossEntropyLoss<double> ce;
  heed::Sequential<double> m = mlp<double>(1, 0.5), ref = mlp<double>(1, 0.5);
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(7, 0.5); }, {.shards = 2});
  // eval(): no dropout anywhere, so the plain step's numbers.
  m.eval();
  ref.eval();
  const double want = plain_step(ref, b, ce);
  m.zero_grad();
  CHECK(std::abs(dp.step(b.x, b.y, ce) - want) <= 1e-14);
  CHECK_FALSE(dp.replica(1).training());
  CHECK_FALSE(dp.replica(1)[2].training());
  // train(): dropout on; the model's stream decides every shard's mask, so restoring it replays.
  m.train();
  heed::Generator& g = *m.generators().at(0).second;
  const heed::Generator saved = g;
  m.zero_grad();
  const double first = dp.step(b.x, b.y, ce);
  const auto first_g = grads(m);
  CHECK(dp.replica(1).training());
  CHECK(std::abs(first - want) > 1e-6);  // dropout changed the loss
  g = saved;
  m.zero_grad();
  CHECK(dp.step(b.x, b.y, ce) == first);
  CHECK(max_diff(grads(m), first_g) == 0);
}

TEST_CASE("DataParallel: buffers are copied to the replicas; BatchNorm's running stats are shard 0's") {
  auto make = [] {
    heed::Generator g(3);
    heed::Sequential<double> net;
    net.emplace<heed::Linear<double>>(12, 8, true, g);
    net.emplace<heed::BatchNorm1d<double>>(8);
    net.emplace<heed::Linear<double>>(8, 5, true, g);
    return net;
  };
  const Batch<double> b = batch<double>(20);
  heed::CrossEntropyLoss<double> ce;
  heed::Sequential<double> m = make(), shard0 = make();
  heed::DataParallel<heed::Sequential<double>> dp(m, make, {.shards = 2});
  m.zero_grad();
  dp.step(b.x, b.y, ce);
  shard0.forward(b.x.topRows(10));  // shard 0 alone updates the running statistics
  CHECK((m.buffers()[0].value->array() == shard0.buffers()[0].value->array()).all());
  m.zero_grad();
  dp.step(b.x, b.y, ce);
  // The replica started its second step from the model's statistics and updated them with shard 1.
  heed::Sequential<double> shard1 = make();
  for (std::size_t i = 0; i < shard1.buffers().size(); ++i) *shard1.buffers()[i].value = *shard0.buffers()[i].value;
  shard0.forward(b.x.topRows(10));
  shard1.forward(b.x.bottomRows(10));
  CHECK((m.buffers()[0].value->array() == shard0.buffers()[0].value->array()).all());
  CHECK((dp.replica(1).buffers()[0].value->array() == shard1.buffers()[0].value->array()).all());
}

TEST_CASE("DataParallel: run() for any model, each shard's weight its share of the rows") {
  Threads keep;
  Eigen::setNbThreads(2);
  const Batch<double> b = batch<double>(25);
  heed::CrossEntropyLoss<double> ce;
  heed::Sequential<double> ref = mlp<double>(), m = mlp<double>();
  const double want = plain_step(ref, b, ce);
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 4});
  std::vector<heed::CrossEntropyLoss<double>> losses(4);
  std::vector<Index> begins(4, -1);
  m.zero_grad();
  const double loss = dp.run(25, [&](heed::Sequential<double>& net, Index s, Index begin, Index n, double w) {
    begins[static_cast<std::size_t>(s)] = begin;  // (doctest's CHECK is not thread-safe)
    heed::CrossEntropyLoss<double>& l = losses[static_cast<std::size_t>(s)];
    const double v = l.forward(net.forward(b.x.middleRows(begin, n)), b.y.segment(begin, n));
    net.backward(w * l.backward());
    return w * v;
  });
  CHECK(std::abs(loss - want) <= 1e-14);
  CHECK(max_diff(grads(m), grads(ref)) <= 1e-14);
  CHECK(begins == std::vector<Index>{0, 6, 12, 18});
}

TEST_CASE("DataParallel: bad input is refused with the module named") {
  Threads keep;
  heed::Sequential<double> m = mlp<double>();
  heed::CrossEntropyLoss<double> ce;
  CHECK_THROWS_WITH_AS(heed::DataParallel<heed::Sequential<double>>(m, [] { return mlp<double>(); }, {.shards = -1}),
                       "DataParallel: shards must be >= 0 (0: the thread count), got -1", heed::ValueError);
  auto other = [] {
    heed::Sequential<double> n;
    n.emplace<heed::Linear<double>>(12, 32);
    n.emplace<heed::ReLU<double>>();
    n.emplace<heed::Linear<double>>(32, 5);
    return n;
  };
  CHECK_THROWS_WITH_AS(heed::DataParallel<heed::Sequential<double>>(m, other, {.shards = 2}),
                       "DataParallel: replica 1 from the factory differs from the model: parameter '0.weight' "
                       "(64, 12), replica's '0.weight' (32, 12)",
                       heed::ValueError);
  heed::DataParallel<heed::Sequential<double>> dp(m, [] { return mlp<double>(); }, {.shards = 2});
  CHECK_THROWS_AS(dp.replica(2), heed::ValueError);
  const Batch<double> b = batch<double>(10);
  CHECK_THROWS_WITH_AS(dp.step(b.x, Labels(b.y.head(9)), ce),
                       "DataParallel: input has 10 rows but the target 9", heed::ShapeError);
  CHECK_THROWS_AS(dp.step(Matrix<double>(0, 12), Labels(0), ce), heed::ValueError);
  CHECK_THROWS_AS(dp.run(0, [](heed::Sequential<double>&, Index, Index, Index, double) { return 0.0; }), heed::ValueError);
  // A shard's error reaches the caller, from one thread or two.
  for (int threads : {1, 2}) {
    Eigen::setNbThreads(threads);
    CHECK_THROWS_WITH_AS(dp.step(Matrix<double>(10, 11), b.y, ce),
                         "Sequential[0] (Linear): Linear: input expected (*, 12), got (5, 11)", heed::ShapeError);
  }
  // and the next good step is right again.
  heed::Sequential<double> ref = mlp<double>();
  const double want = plain_step(ref, b, ce);
  m.zero_grad();
  CHECK(std::abs(dp.step(b.x, b.y, ce) - want) <= 1e-14);
}
