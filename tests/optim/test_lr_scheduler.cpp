// LR schedulers against torch.optim.lr_scheduler's sequences (reference_values.hpp).
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "helpers.hpp"

using namespace optim_test;

// lr after construction, then after each of expected.size() - 1 step()s.
template <class T>
void check_lrs(heed::LRScheduler<T>& s, const std::vector<double>& expected) {
  auto& opt = s.optimizer();
  for (std::size_t k = 0; k < expected.size(); ++k) {
    if (k > 0) s.step();
    CAPTURE(k);
    CHECK(s.last_epoch() == static_cast<std::int64_t>(k));
    CHECK(static_cast<double>(opt.lr()) == doctest::Approx(expected[k]).epsilon(tol<T>()));
    CHECK(s.last_lr() == opt.lr());
  }
}

TEST_CASE_TEMPLATE("Schedulers match torch.optim.lr_scheduler", T, float, double) {
  Weight<T> p;
  heed::SGD<T> opt(p.params(), {.lr = T(0.1)});
  SUBCASE("StepLR") {
    heed::StepLR<T> s(opt, {.step_size = 3, .gamma = 0.5});
    check_lrs(s, ref::kStepLR);
  }
  SUBCASE("MultiStepLR") {
    heed::MultiStepLR<T> s(opt, {.milestones = {5, 2}, .gamma = 0.1});
    check_lrs(s, ref::kMultiStepLR);
  }
  SUBCASE("ExponentialLR") {
    heed::ExponentialLR<T> s(opt, {.gamma = 0.9});
    check_lrs(s, ref::kExponentialLR);
  }
  SUBCASE("CosineAnnealingLR, past T_max as well") {
    heed::CosineAnnealingLR<T> s(opt, {.T_max = 5, .eta_min = 0.01});
    check_lrs(s, ref::kCosineLR);
  }
  SUBCASE("LinearLR warm-up") {
    heed::LinearLR<T> s(opt, {.start_factor = 0.1, .end_factor = 1.0, .total_iters = 4});
    CHECK(s.base_lr() == T(0.1));
    check_lrs(s, ref::kLinearLR);
  }
  SUBCASE("SequentialLR: linear warm-up then cosine") {
    auto warm = std::make_shared<heed::LinearLR<T>>(
        opt, heed::LinearLROptions<T>{.start_factor = 0.1, .end_factor = 1.0, .total_iters = 3});
    auto cos = std::make_shared<heed::CosineAnnealingLR<T>>(opt, heed::CosineAnnealingLROptions<T>{.T_max = 7});
    // The cosine was built while the warm-up held lr at 0.01: it must still start from 0.1.
    CHECK(cos->base_lr() == T(0.1));
    heed::SequentialLR<T> s(opt, {.schedulers = {warm, cos}, .milestones = {3}});
    check_lrs(s, ref::kSequentialLR);
  }
  SUBCASE("WarmupCosineLR is SequentialLR(LinearLR, CosineAnnealingLR)") {
    heed::WarmupCosineLR<T> s(opt, {.warmup_iters = 3, .total_iters = 10, .start_factor = 0.1});
    check_lrs(s, ref::kSequentialLR);
  }
  SUBCASE("LambdaLR") {
    heed::LambdaLR<T> s(opt, {.lr_lambda = [](std::int64_t e) { return 1.0 / static_cast<double>(e + 1); }});
    check_lrs(s, {0.1, 0.05, 0.1 / 3, 0.025});
  }
}

TEST_CASE("A scheduler resumes from its state() exactly") {
  Weight<double> pa, pb;
  heed::SGD<double> a(pa.params(), {.lr = 0.1}), b(pb.params(), {.lr = 0.1});
  heed::CosineAnnealingLR<double> sa(a, {.T_max = 10}), sb(b, {.T_max = 10});
  for (int k = 0; k < 4; ++k) sa.step();
  auto st = sb.state();
  REQUIRE(st.size() == 1);
  CHECK(st[0].first == "last_epoch");
  *st[0].second = *sa.state()[0].second;
  CHECK(sb.last_epoch() == 4);
  CHECK(sb.last_lr() == sa.last_lr());
  sa.step();
  sb.step();
  CHECK(b.lr() == a.lr());
  sb.set_last_epoch(0);
  CHECK(b.lr() == 0.1);
}

TEST_CASE("Bad scheduler arguments throw ValueError") {
  Weight<double> p;
  heed::SGD<double> opt(p.params(), {.lr = 0.1});
  expect_error<heed::ValueError>([&] { heed::StepLR<double>(opt, {.step_size = 0}); },
                                 {"StepLR", "step_size", "got 0"});
  expect_error<heed::ValueError>([&] { heed::StepLR<double>(opt, {.step_size = 2, .gamma = -1}); },
                                 {"StepLR", "gamma", "got -1"});
  expect_error<heed::ValueError>([&] { heed::MultiStepLR<double>(opt, {.milestones = {3, -1}}); },
                                 {"MultiStepLR", "milestones expected >= 0, got -1 at index 1"});
  expect_error<heed::ValueError>([&] { heed::ExponentialLR<double>(opt, {.gamma = -0.5}); },
                                 {"ExponentialLR", "gamma", "-0.5"});
  expect_error<heed::ValueError>([&] { heed::CosineAnnealingLR<double>(opt, {.T_max = 0}); },
                                 {"CosineAnnealingLR", "T_max", "got 0"});
  expect_error<heed::ValueError>([&] { heed::CosineAnnealingLR<double>(opt, {.T_max = 3, .eta_min = -1}); },
                                 {"CosineAnnealingLR", "eta_min", "got -1"});
  expect_error<heed::ValueError>([&] { heed::LinearLR<double>(opt, {.start_factor = 0.0}); },
                                 {"LinearLR", "start_factor", "(0, 1]", "got 0"});
  expect_error<heed::ValueError>([&] { heed::LinearLR<double>(opt, {.end_factor = 1.5}); },
                                 {"LinearLR", "end_factor", "1.5"});
  expect_error<heed::ValueError>([&] { heed::LinearLR<double>(opt, {.total_iters = 0}); },
                                 {"LinearLR", "total_iters", "got 0"});
  expect_error<heed::ValueError>([&] { heed::LambdaLR<double>(opt, {}); },
                                 {"LambdaLR", "lr_lambda", "empty"});
  auto s1 = std::make_shared<heed::StepLR<double>>(opt, heed::StepLROptions<double>{.step_size = 2});
  auto s2 = std::make_shared<heed::ExponentialLR<double>>(opt, heed::ExponentialLROptions<double>{.gamma = 0.9});
  expect_error<heed::ValueError>([&] { heed::SequentialLR<double>(opt, {}); },
                                 {"SequentialLR", "at least one scheduler", "got 0"});
  expect_error<heed::ValueError>([&] { heed::SequentialLR<double>(opt, {.schedulers = {s1, s2}}); },
                                 {"SequentialLR", "expected 1 milestones", "got 0"});
  expect_error<heed::ValueError>(
      [&] { heed::SequentialLR<double>(opt, {.schedulers = {s1, s2}, .milestones = {0}}); },
      {"SequentialLR", "milestones"});
  expect_error<heed::ValueError>(
      [&] { heed::WarmupCosineLR<double>(opt, {.warmup_iters = 5, .total_iters = 5}); },
      {"WarmupCosineLR", "total_iters", "> warmup_iters (5)", "got 5"});
  expect_error<heed::ValueError>(
      [&] { heed::WarmupCosineLR<double>(opt, {.warmup_iters = -1, .total_iters = 5}); },
      {"WarmupCosineLR", "warmup_iters", "got -1"});
  Weight<double> q;
  heed::SGD<double> other(q.params(), {.lr = 0.1});
  auto s3 = std::make_shared<heed::StepLR<double>>(other, heed::StepLROptions<double>{.step_size = 2});
  expect_error<heed::ValueError>(
      [&] { heed::SequentialLR<double>(opt, {.schedulers = {s1, s3}, .milestones = {2}}); },
      {"SequentialLR", "scheduler 1", "same optimizer"});
}

TEST_CASE("A required option left out throws ValueError naming it") {
  // PyTorch's required arguments have no valid default: {} must not silently pick one.
  Weight<double> p;
  heed::SGD<double> opt(p.params(), {.lr = 0.1});
  CHECK_THROWS_WITH_AS(heed::StepLR<double>(opt, {}),
                       "StepLR: invalid step_size, expected >= 1, got 0", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::ExponentialLR<double>(opt, {}),
                       "ExponentialLR: invalid gamma, expected a finite value >= 0, got nan",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::CosineAnnealingLR<double>(opt, {}),
                       "CosineAnnealingLR: invalid T_max, expected >= 1, got 0", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::LambdaLR<double>(opt, {}),
                       "LambdaLR: lr_lambda expected a function, got an empty one", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::WarmupCosineLR<double>(opt, {}),
                       "WarmupCosineLR: total_iters expected > warmup_iters (0), got 0",
                       heed::ValueError);
  CHECK(opt.lr() == 0.1);  // nothing was set by the failed constructions
}

TEST_CASE("Option structs carry PyTorch's defaults") {
  Weight<double> p;
  heed::SGD<double> opt(p.params(), {.lr = 0.1});
  CHECK(heed::StepLR<double>(opt, {.step_size = 1}).options().gamma == 0.1);
  CHECK(heed::MultiStepLR<double>(opt, {}).options().gamma == 0.1);
  CHECK(heed::MultiStepLR<double>(opt, {.milestones = {4, 1, 4}}).options().milestones ==
        std::vector<std::int64_t>{1, 4, 4});
  CHECK(heed::CosineAnnealingLR<double>(opt, {.T_max = 1}).options().eta_min == 0);
  heed::LinearLR<double> lin(opt);
  CHECK(lin.options().start_factor == 1.0 / 3);
  CHECK(lin.options().end_factor == 1.0);
  CHECK(lin.options().total_iters == 5);
  heed::WarmupCosineLR<double> wc(opt, {.total_iters = 4});
  CHECK(wc.options().warmup_iters == 0);
  CHECK(wc.options().start_factor == 0.01);
  CHECK(wc.options().eta_min == 0);
  CHECK(opt.lr() == doctest::Approx(0.1));  // no warm-up: epoch 0 is the base lr
}

TEST_CASE_TEMPLATE("LambdaLR: an invalid lr names the scheduler and the epoch", T, float, double) {
  Weight<T> p;
  heed::SGD<T> opt(p.params(), {.lr = T(0.1)});
  // Valid for epochs 0..2, negative from epoch 3.
  heed::LambdaLR<T> s(opt, {.lr_lambda = [](std::int64_t e) { return e < 3 ? 1.0 : -0.01; }});
  s.step();
  s.step();
  CHECK_THROWS_WITH_AS(s.step(),
                       doctest::Contains("LambdaLR: lr_lambda(3) gave an invalid lr -0.001 (factor "
                                         "-0.01 x base lr 0.1"),
                       heed::ValueError);
  // The failed step changed nothing: still epoch 2 at the base lr.
  CHECK(s.last_epoch() == 2);
  CHECK(opt.lr() == T(0.1));
  CHECK_THROWS_WITH_AS(heed::LambdaLR<T>(opt, {.lr_lambda = [](std::int64_t) { return std::nan(""); }}),
                       doctest::Contains("LambdaLR: lr_lambda(0) gave an invalid lr nan"),
                       heed::ValueError);
  if constexpr (std::is_same_v<T, float>)  // finite in double, not in float
    CHECK_THROWS_WITH_AS(heed::LambdaLR<T>(opt, {.lr_lambda = [](std::int64_t) { return 1e300; }}),
                         doctest::Contains("LambdaLR: lr_lambda(0) gave an invalid lr 1e+299"),
                         heed::ValueError);
  // Inside a SequentialLR the lambda's own epoch is named: overall epoch 4 is its epoch 2.
  auto first = std::make_shared<heed::StepLR<T>>(opt, heed::StepLROptions<T>{.step_size = 5});
  auto lambda = std::make_shared<heed::LambdaLR<T>>(
      opt, heed::LambdaLROptions<T>{.lr_lambda = [](std::int64_t e) { return e < 2 ? 1.0 : -1.0; }});
  heed::SequentialLR<T> seq(opt, {.schedulers = {first, lambda}, .milestones = {2}});
  for (int k = 0; k < 3; ++k) seq.step();
  CHECK_THROWS_WITH_AS(seq.step(), doctest::Contains("LambdaLR: lr_lambda(2) gave an invalid lr -0.1"),
                       heed::ValueError);
  CHECK(seq.last_epoch() == 3);
}

TEST_CASE_TEMPLATE("ReduceLROnPlateau matches torch", T, float, double) {
  Weight<T> p;
  heed::SGD<T> opt(p.params(), {.lr = T(0.1)});
  auto run = [&](heed::ReduceLROnPlateau<T>& s, const std::vector<double>& expected) {
    REQUIRE(expected.size() == ref::kPlateauMetrics.size());
    for (std::size_t k = 0; k < expected.size(); ++k) {
      s.step(static_cast<T>(ref::kPlateauMetrics[k]));
      CAPTURE(k);
      CHECK(static_cast<double>(s.last_lr()) == doctest::Approx(expected[k]).epsilon(tol<T>()));
    }
    CHECK(s.last_epoch() == static_cast<std::int64_t>(expected.size()));
  };
  SUBCASE("min, relative threshold, cooldown, min_lr") {
    heed::ReduceLROnPlateau<T> s(opt, {.factor = 0.5, .patience = 2, .threshold = 0.01,
                                       .cooldown = 1, .min_lr = 0.02});
    run(s, ref::kPlateauMinRel);
    CHECK(s.best() == T(0.9));  // 0.895 is not 1% below 0.9
    CHECK(s.state().size() == 4);
  }
  SUBCASE("max, absolute threshold") {
    heed::ReduceLROnPlateau<T> s(opt, {.mode = heed::Mode::Max, .factor = 0.1, .patience = 1,
                                       .threshold = 0.02,
                                       .threshold_mode = heed::ThresholdMode::Abs});
    run(s, ref::kPlateauMaxAbs);
  }
}

TEST_CASE("ReduceLROnPlateau validates its options") {
  Weight<double> p;
  heed::SGD<double> opt(p.params(), {.lr = 0.1});
  expect_error<heed::ValueError>([&] { heed::ReduceLROnPlateau<double>(opt, {.factor = 1.0}); },
                                 {"ReduceLROnPlateau", "factor", "[0, 1)", "got 1"});
  expect_error<heed::ValueError>([&] { heed::ReduceLROnPlateau<double>(opt, {.patience = -2}); },
                                 {"ReduceLROnPlateau", "patience", "-2"});
  expect_error<heed::ValueError>([&] { heed::ReduceLROnPlateau<double>(opt, {.min_lr = -1}); },
                                 {"ReduceLROnPlateau", "min_lr"});
}
