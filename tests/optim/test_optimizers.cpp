// SGD, Adam, AdamW and RMSprop against torch.optim (reference_values.hpp), their checkpointable
// state, and hyperparameter validation.
#include <cmath>
#include <limits>
#include <memory>

#include "helpers.hpp"

using namespace optim_test;

TEST_CASE_TEMPLATE("SGD matches torch.optim.SGD", T, float, double) {
  Weight<T> p;
  SUBCASE("plain") {
    heed::SGD<T> opt(p.params(), {.lr = T(0.1)});
    check_trajectory(opt, p, ref::kSgdPlain);
  }
  SUBCASE("momentum") {
    heed::SGD<T> opt(p.params(), {.lr = T(0.1), .momentum = T(0.9)});
    check_trajectory(opt, p, ref::kSgdMomentum);
  }
  SUBCASE("momentum with dampening") {
    heed::SGD<T> opt(p.params(), {.lr = T(0.1), .momentum = T(0.9), .dampening = T(0.1)});
    check_trajectory(opt, p, ref::kSgdDampening);
  }
  SUBCASE("nesterov") {
    heed::SGD<T> opt(p.params(), {.lr = T(0.1), .momentum = T(0.9), .nesterov = true});
    check_trajectory(opt, p, ref::kSgdNesterov);
  }
  SUBCASE("momentum with weight decay") {
    heed::SGD<T> opt(p.params(), {.lr = T(0.1), .momentum = T(0.9), .weight_decay = T(0.1)});
    check_trajectory(opt, p, ref::kSgdWeightDecay);
  }
}

TEST_CASE_TEMPLATE("Adam and AdamW match torch.optim", T, float, double) {
  Weight<T> p;
  SUBCASE("Adam") {
    heed::Adam<T> opt(p.params(), {.lr = T(0.01)});
    CHECK(opt.name() == "Adam");
    check_trajectory(opt, p, ref::kAdam);
  }
  SUBCASE("Adam with L2 weight decay") {
    heed::Adam<T> opt(p.params(), {.lr = T(0.01), .weight_decay = T(0.1)});
    check_trajectory(opt, p, ref::kAdamWeightDecay);
  }
  SUBCASE("Adam amsgrad") {
    heed::Adam<T> opt(p.params(), {.lr = T(0.01), .betas = {T(0.8), T(0.9)}, .amsgrad = true});
    check_trajectory(opt, p, ref::kAdamAmsgrad);
  }
  SUBCASE("AdamW") {
    heed::AdamW<T> opt(p.params(), {.lr = T(0.01), .weight_decay = T(0.1)});
    CHECK(opt.name() == "AdamW");
    check_trajectory(opt, p, ref::kAdamW);
  }
  SUBCASE("AdamW default weight_decay 1e-2, amsgrad") {
    heed::AdamW<T> opt(p.params(), {.lr = T(0.01), .amsgrad = true});
    CHECK(opt.options().weight_decay == T(1e-2));
    check_trajectory(opt, p, ref::kAdamWAmsgrad);
  }
}

TEST_CASE_TEMPLATE("RMSprop matches torch.optim.RMSprop", T, float, double) {
  Weight<T> p;
  SUBCASE("plain") {
    heed::RMSprop<T> opt(p.params(), {.lr = T(0.01)});
    check_trajectory(opt, p, ref::kRmsprop);
  }
  SUBCASE("centered, momentum, weight decay") {
    heed::RMSprop<T> opt(p.params(), {.lr = T(0.01), .weight_decay = T(0.1), .momentum = T(0.9),
                                      .centered = true});
    check_trajectory(opt, p, ref::kRmspropCentered);
  }
}

TEST_CASE("The base class drives any optimizer through a pointer") {
  Weight<double> p;
  std::unique_ptr<heed::Optimizer<double>> opt =
      std::make_unique<heed::SGD<double>>(p.params(), heed::SGDOptions<double>{.lr = 0.1});
  CHECK(opt->lr() == 0.1);
  CHECK(opt->parameters().size() == 1);
  check_trajectory(*opt, p, ref::kSgdPlain);
  CHECK(opt->step_count() == 4);
  opt->zero_grad();
  CHECK(p.g.isZero(0));
}

TEST_CASE("step() leaves the grads untouched (weight decay is not written into them)") {
  Weight<double> p;
  heed::Adam<double> opt(p.params(), {.weight_decay = 0.5});
  load(p.g, ref::kGrads[0]);
  const Matrix<double> g0 = p.g;
  opt.step();
  CHECK(p.g == g0);
}

TEST_CASE("set_lr changes the next update") {
  Weight<double> p;
  heed::SGD<double> opt(p.params(), {.lr = 0.1});
  opt.set_lr(0.5);
  CHECK(opt.lr() == 0.5);
  p.g.setConstant(1.0);
  const Matrix<double> w0 = p.w;
  opt.step();
  CHECK((w0 - p.w).isApprox(Matrix<double>::Constant(2, 3, 0.5)));
  CHECK_THROWS_AS(opt.set_lr(-1.0), heed::ValueError);
}

// Builds the same optimizer twice: A runs 2 steps, B gets A's state copied through state()
// (what a checkpoint does), then both run the last 2 steps and must agree bit for bit.
template <class Make>
void check_state_resume(Make make, const std::vector<std::string>& expected_names) {
  Weight<double> pa, pb;
  auto a = make(pa);
  auto b = make(pb);
  for (int k = 0; k < 2; ++k) {
    load(pa.g, ref::kGrads[k]);
    a->step();
  }
  auto sa = a->state();
  auto sb = b->state();
  REQUIRE(sa.size() == expected_names.size());
  REQUIRE(sb.size() == sa.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].first == expected_names[i]);
    CHECK(sb[i].first == sa[i].first);
    *sb[i].second = *sa[i].second;
  }
  pb.w = pa.w;
  CHECK(b->step_count() == 2);
  for (int k = 2; k < 4; ++k) {
    load(pa.g, ref::kGrads[k]);
    load(pb.g, ref::kGrads[k]);
    a->step();
    b->step();
  }
  CHECK(pa.w == pb.w);
}

TEST_CASE("state() names every buffer and restoring it resumes exactly") {
  using Opt = std::unique_ptr<heed::Optimizer<double>>;
  check_state_resume(
      [](Weight<double>& p) -> Opt {
        return std::make_unique<heed::SGD<double>>(p.params(),
                                                   heed::SGDOptions<double>{.lr = 0.1, .momentum = 0.9});
      },
      {"step", "lr", "weight.momentum_buffer"});
  check_state_resume(
      [](Weight<double>& p) -> Opt {
        return std::make_unique<heed::Adam<double>>(p.params(),
                                                    heed::AdamOptions<double>{.lr = 0.01, .amsgrad = true});
      },
      {"step", "lr", "weight.exp_avg", "weight.exp_avg_sq", "weight.max_exp_avg_sq"});
  check_state_resume(
      [](Weight<double>& p) -> Opt {
        return std::make_unique<heed::AdamW<double>>(p.params(), heed::AdamWOptions<double>{.lr = 0.01});
      },
      {"step", "lr", "weight.exp_avg", "weight.exp_avg_sq"});
  check_state_resume(
      [](Weight<double>& p) -> Opt {
        return std::make_unique<heed::RMSprop<double>>(
            p.params(), heed::RMSpropOptions<double>{.momentum = 0.9, .centered = true});
      },
      {"step", "lr", "weight.square_avg", "weight.momentum_buffer", "weight.grad_avg"});
}

TEST_CASE("state() keys fall back to indices for unnamed parameters; repeated names are refused") {
  Matrix<float> w1(1, 2), g1(1, 2), w2(2, 1), g2(2, 1);
  CHECK_THROWS_AS(heed::SGD<float>({{"weight", &w1, &g1}, {"weight", &w2, &g2}}, {}), heed::ValueError);
  heed::SGD<float> opt({{"", &w1, &g1}, {"", &w2, &g2}}, {.momentum = 0.5f});
  const auto s = opt.state();
  REQUIRE(s.size() == 4);
  CHECK(s[2].first == "0.momentum_buffer");
  CHECK(s[3].first == "1.momentum_buffer");
  CHECK(s[3].second->rows() == 2);
}

TEST_CASE("Bad hyperparameters throw ValueError naming the class and the value") {
  Weight<double> p;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_error<heed::ValueError>([&] { heed::SGD<double>(p.params(), {.lr = -0.1}); },
                                 {"SGD", "lr", "-0.1"});
  expect_error<heed::ValueError>([&] { heed::SGD<double>(p.params(), {.lr = nan}); },
                                 {"SGD", "lr", "nan"});
  expect_error<heed::ValueError>([&] { heed::SGD<double>(p.params(), {.momentum = -0.5}); },
                                 {"SGD", "momentum", "-0.5"});
  expect_error<heed::ValueError>([&] { heed::SGD<double>(p.params(), {.weight_decay = -1}); },
                                 {"SGD", "weight_decay", "-1"});
  expect_error<heed::ValueError>([&] { heed::SGD<double>(p.params(), {.nesterov = true}); },
                                 {"SGD", "nesterov", "momentum 0"});
  expect_error<heed::ValueError>(
      [&] { heed::SGD<double>(p.params(), {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
      {"SGD", "nesterov", "dampening 0.1"});
  expect_error<heed::ValueError>([&] { heed::Adam<double>(p.params(), {.betas = {1.0, 0.999}}); },
                                 {"Adam", "beta at index 0", "[0, 1)", "got 1"});
  expect_error<heed::ValueError>([&] { heed::Adam<double>(p.params(), {.betas = {0.9, -0.1}}); },
                                 {"Adam", "beta at index 1", "-0.1"});
  expect_error<heed::ValueError>([&] { heed::Adam<double>(p.params(), {.eps = -1e-8}); },
                                 {"Adam", "eps", "-1e-08"});
  expect_error<heed::ValueError>([&] { heed::AdamW<double>(p.params(), {.weight_decay = -0.01}); },
                                 {"AdamW", "weight_decay", "-0.01"});
  expect_error<heed::ValueError>([&] { heed::RMSprop<double>(p.params(), {.alpha = -0.9}); },
                                 {"RMSprop", "alpha", "-0.9"});
  expect_error<heed::ValueError>([&] { heed::RMSprop<double>(p.params(), {.momentum = -0.9}); },
                                 {"RMSprop", "momentum"});
  expect_error<heed::ValueError>([&] { heed::Adam<double>({}, {}); }, {"Adam", "empty parameter list"});
  expect_error<heed::ValueError>([&] { heed::SGD<double>({{"w", nullptr, &p.g}}); },
                                 {"SGD", "'w'", "null"});
}

TEST_CASE("A grad whose shape differs from its value throws ShapeError") {
  Weight<double> p;
  heed::Adam<double> opt(p.params());
  p.g.resize(3, 2);
  p.g.setZero();
  const Matrix<double> w0 = p.w;
  expect_error<heed::ShapeError>([&] { opt.step(); }, {"Adam", "'weight'", "(2, 3)", "(3, 2)"});
  CHECK(p.w == w0);
  CHECK(opt.step_count() == 0);
  expect_error<heed::ShapeError>([&] { heed::SGD<double>(p.params()); }, {"SGD", "(2, 3)", "(3, 2)"});
}

// Adam shares a tensor of >= 65536 elements out over Eigen's threads in 512-element chunks: the
// result must be the same bits with 1 and 2 threads. Also the one test that runs that loop with
// several threads, so the tsan preset checks it for races.
TEST_CASE("Adam and AdamW: the threaded update is bit-identical to the serial one") {
  using heed::Index;
  const auto run = [](int threads, bool decoupled, bool amsgrad) {
    const int saved = Eigen::nbThreads();
    Eigen::setNbThreads(threads);
    Matrix<float> w = Matrix<float>::Zero(300, 256), g(300, 256);  // 76,800 elements
    for (Index i = 0; i < w.size(); ++i) w.data()[i] = std::sin(0.001f * static_cast<float>(i));
    std::vector<Parameter<float>> params{{"weight", &w, &g}};
    std::unique_ptr<heed::Optimizer<float>> opt;
    if (decoupled)
      opt = std::make_unique<heed::AdamW<float>>(params, heed::AdamWOptions<float>{.amsgrad = amsgrad});
    else
      opt = std::make_unique<heed::Adam<float>>(
          params, heed::AdamOptions<float>{.weight_decay = 0.1f, .amsgrad = amsgrad});
    for (int step = 0; step < 3; ++step) {
      for (Index i = 0; i < g.size(); ++i)
        g.data()[i] = std::cos(0.01f * static_cast<float>(i * (step + 1)));
      opt->step();
    }
    Eigen::setNbThreads(saved);
    return w;
  };
  for (bool decoupled : {false, true})
    for (bool amsgrad : {false, true}) {
      CAPTURE(decoupled);
      CAPTURE(amsgrad);
      CHECK(run(1, decoupled, amsgrad) == run(2, decoupled, amsgrad));
    }
}

// torch.optim's hyperparameters are Python floats: exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
// rounds 1 - 0.9 (double) to 0.1f, where 1 - 0.9f in float is 0.10000002f. heed forms them the
// same way, so a float run follows PyTorch's float run (tests/interop/mnist_parity).
TEST_CASE("Adam and RMSprop in float use PyTorch's constants: T(1 - beta), not 1 - T(beta)") {
  Weight<float> p;
  p.g.setConstant(1.0f);
  heed::Adam<float> adam(p.params(), {.lr = 0.01f});
  adam.step();
  float m = 0, v = 0;
  for (auto& [name, t] : adam.state()) {
    if (name == "weight.exp_avg") m = (*t)(0, 0);
    if (name == "weight.exp_avg_sq") v = (*t)(0, 0);
  }
  CHECK(m == 0.1f);  // float(1 - 0.9) * 1
  CHECK(m != 1.0f - 0.9f);
  CHECK(v == static_cast<float>(1 - 0.999));

  Weight<float> q;
  q.g.setConstant(1.0f);
  heed::RMSprop<float> rms(q.params(), {.lr = 0.01f});
  rms.step();
  for (auto& [name, t] : rms.state())
    if (name == "weight.square_avg") CHECK((*t)(0, 0) == static_cast<float>(1 - 0.99));
  CHECK(static_cast<float>(1 - 0.99) != 1.0f - 0.99f);
}
