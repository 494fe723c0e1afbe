// The optimizer + scheduler state through io::Checkpoint: a run interrupted and resumed from a
// checkpoint ends bit-identical to an uninterrupted one. Also a smoke test that the optimizers
// drive a real Linear + MSELoss regression down.
#include <filesystem>
#include <heed/io/checkpoint.hpp>
#include <heed/layers/linear.hpp>
#include <heed/losses/mse.hpp>

#include "helpers.hpp"

using namespace optim_test;

namespace {

struct Run {
  heed::Linear<float> net;
  heed::AdamW<float> opt;
  heed::CosineAnnealingLR<float> sched;
  explicit Run(heed::Generator& g)
      : net(3, 2, true, g), opt(net.parameters(), {.lr = 0.05f}), sched(opt, {.T_max = 20}) {}
  void train(int steps, const Matrix<float>& x, const Matrix<float>& y) {
    heed::MSELoss<float> loss;
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      loss.forward(net.forward(x), y);
      net.backward(loss.backward());
      heed::clip_grad_norm_(opt.parameters(), 1.0f);
      opt.step();
      sched.step();
    }
  }
  heed::Checkpoint<float> checkpoint() {
    heed::Checkpoint<float> ck;
    ck.model(net).optimizer(opt).optimizer(sched, "scheduler");
    return ck;
  }
};

}  // namespace

TEST_CASE("AdamW + cosine schedule resume bit-exactly through io::Checkpoint") {
  heed::Generator gx(3);
  Matrix<float> x(8, 3), y(8, 2);
  for (heed::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(gx.normal());
  for (heed::Index i = 0; i < y.size(); ++i) y.data()[i] = static_cast<float>(gx.normal());
  heed::Generator g1(7), g2(7), g3(99);
  Run straight(g1), first(g2), resumed(g3);  // resumed starts from other weights on purpose
  straight.train(10, x, y);
  first.train(6, x, y);
  const auto path = (std::filesystem::temp_directory_path() / "heed_test_optim_resume.heed").string();
  first.checkpoint().save(path);
  resumed.checkpoint().load(path);
  std::filesystem::remove(path);
  CHECK(resumed.opt.step_count() == 6);
  CHECK(resumed.sched.last_epoch() == 6);
  CHECK(resumed.opt.lr() == first.opt.lr());
  resumed.train(4, x, y);
  const auto ps = straight.net.parameters(), pr = resumed.net.parameters();
  for (std::size_t i = 0; i < ps.size(); ++i) CHECK(*ps[i].value == *pr[i].value);
}

TEST_CASE_TEMPLATE("Every optimizer fits a linear regression", T, float, double) {
  heed::Generator g(5);
  Matrix<T> x(32, 4), wt(4, 1);
  for (heed::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(g.normal());
  for (heed::Index i = 0; i < wt.size(); ++i) wt.data()[i] = static_cast<T>(g.normal());
  const Matrix<T> y = x * wt;
  auto fit = [&](auto make) {
    heed::Generator gi(1);
    heed::Linear<T> net(4, 1, true, gi);
    auto opt = make(net.parameters());
    heed::MSELoss<T> loss;
    T first = 0, last = 0;
    for (int i = 0; i < 300; ++i) {
      opt->zero_grad();
      last = loss.forward(net.forward(x), y);
      if (i == 0) first = last;
      net.backward(loss.backward());
      opt->step();
    }
    CHECK(last < first * T(0.01));
  };
  using P = std::vector<Parameter<T>>;
  fit([](P p) { return std::make_unique<heed::SGD<T>>(p, heed::SGDOptions<T>{.lr = T(0.05), .momentum = T(0.9)}); });
  fit([](P p) { return std::make_unique<heed::SGD<T>>(p, heed::SGDOptions<T>{.lr = T(0.05), .momentum = T(0.9), .nesterov = true}); });
  fit([](P p) { return std::make_unique<heed::Adam<T>>(p, heed::AdamOptions<T>{.lr = T(0.05)}); });
  fit([](P p) { return std::make_unique<heed::AdamW<T>>(p, heed::AdamWOptions<T>{.lr = T(0.05), .weight_decay = T(1e-4)}); });
  fit([](P p) { return std::make_unique<heed::RMSprop<T>>(p, heed::RMSpropOptions<T>{.lr = T(0.01)}); });
}
