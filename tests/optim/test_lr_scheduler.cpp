// LR schedulers against torch.optim.lr_scheduler's sequences (reference_values.hpp).
#include <cmath>
#include <memory>

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
    heed::StepLR<T> s(opt, 3, 0.5);
    check_lrs(s, ref::kStepLR);
  }
  SUBCASE("MultiStepLR") {
    heed::MultiStepLR<T> s(opt, {5, 2}, 0.1);
    check_lrs(s, ref::kMultiStepLR);
  }
  SUBCASE("ExponentialLR") {
    heed::ExponentialLR<T> s(opt, 0.9);
    check_lrs(s, ref::kExponentialLR);
  }
  SUBCASE("CosineAnnealingLR, past T_max as well") {
    heed::CosineAnnealingLR<T> s(opt, 5, 0.01);
    check_lrs(s, ref::kCosineLR);
  }
  SUBCASE("LinearLR warm-up") {
    heed::LinearLR<T> s(opt, 0.1, 1.0, 4);
    CHECK(s.base_lr() == T(0.1));
    check_lrs(s, ref::kLinearLR);
  }
  SUBCASE("SequentialLR: linear warm-up then cosine") {
    auto warm = std::make_shared<heed::LinearLR<T>>(opt, 0.1, 1.0, 3);
    auto cos = std::make_shared<heed::CosineAnnealingLR<T>>(opt, 7);
    // The cosine was built while the warm-up held lr at 0.01: it must still start from 0.1.
    CHECK(cos->base_lr() == T(0.1));
    heed::SequentialLR<T> s(opt, {warm, cos}, {3});
    check_lrs(s, ref::kSequentialLR);
  }
  SUBCASE("WarmupCosineLR is SequentialLR(LinearLR, CosineAnnealingLR)") {
    heed::WarmupCosineLR<T> s(opt, 3, 10, 0.1);
    check_lrs(s, ref::kSequentialLR);
  }
  SUBCASE("LambdaLR") {
    heed::LambdaLR<T> s(opt, [](std::int64_t e) { return 1.0 / static_cast<double>(e + 1); });
    check_lrs(s, {0.1, 0.05, 0.1 / 3, 0.025});
  }
}

TEST_CASE("A scheduler resumes from its state() exactly") {
  Weight<double> pa, pb;
  heed::SGD<double> a(pa.params(), {.lr = 0.1}), b(pb.params(), {.lr = 0.1});
  heed::CosineAnnealingLR<double> sa(a, 10), sb(b, 10);
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
  expect_error<heed::ValueError>([&] { heed::StepLR<double>(opt, 0); }, {"StepLR", "step_size", "got 0"});
  expect_error<heed::ValueError>([&] { heed::ExponentialLR<double>(opt, -0.5); },
                                 {"ExponentialLR", "gamma", "-0.5"});
  expect_error<heed::ValueError>([&] { heed::CosineAnnealingLR<double>(opt, 0); },
                                 {"CosineAnnealingLR", "T_max"});
  expect_error<heed::ValueError>([&] { heed::LinearLR<double>(opt, 0.0, 1.0, 5); },
                                 {"LinearLR", "start_factor", "(0, 1]", "got 0"});
  expect_error<heed::ValueError>([&] { heed::LinearLR<double>(opt, 0.5, 1.5, 5); },
                                 {"LinearLR", "end_factor", "1.5"});
  auto s1 = std::make_shared<heed::StepLR<double>>(opt, 2);
  auto s2 = std::make_shared<heed::ExponentialLR<double>>(opt, 0.9);
  expect_error<heed::ValueError>([&] { heed::SequentialLR<double>(opt, {s1, s2}, {}); },
                                 {"SequentialLR", "expected 1 milestones", "got 0"});
  expect_error<heed::ValueError>([&] { heed::SequentialLR<double>(opt, {s1, s2}, {0}); },
                                 {"SequentialLR", "milestones"});
  expect_error<heed::ValueError>([&] { heed::WarmupCosineLR<double>(opt, 5, 5); },
                                 {"WarmupCosineLR", "total_iters", "> warmup_iters (5)", "got 5"});
  Weight<double> q;
  heed::SGD<double> other(q.params(), {.lr = 0.1});
  auto s3 = std::make_shared<heed::StepLR<double>>(other, 2);
  expect_error<heed::ValueError>([&] { heed::SequentialLR<double>(opt, {s1, s3}, {2}); },
                                 {"SequentialLR", "scheduler 1", "same optimizer"});
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
