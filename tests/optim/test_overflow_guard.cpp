// A gradient spike that would make a running average non-finite (Adam's exp_avg_sq,
// RMSprop's square_avg, ...): step() refuses it before changing anything, training goes on
// after skipping the batch, and clip_grad_norm_ before step() lets the spike through clipped.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "helpers.hpp"

using namespace optim_test;

namespace {

enum class Kind { Adam, AdamL2, AdamW, Amsgrad, AdamWAmsgrad, RMSprop, RMSpropCentered };
constexpr Kind kKinds[] = {Kind::Adam,         Kind::AdamL2,  Kind::AdamW,          Kind::Amsgrad,
                           Kind::AdamWAmsgrad, Kind::RMSprop, Kind::RMSpropCentered};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Adam: return "Adam";
    case Kind::AdamL2: return "Adam weight_decay";
    case Kind::AdamW: return "AdamW";
    case Kind::Amsgrad: return "Adam amsgrad";
    case Kind::AdamWAmsgrad: return "AdamW amsgrad";
    case Kind::RMSprop: return "RMSprop";
    case Kind::RMSpropCentered: return "RMSprop centered momentum weight_decay";
  }
  return "";
}

template <class T>
std::unique_ptr<heed::Optimizer<T>> make(Kind k, std::vector<Parameter<T>> ps) {
  switch (k) {
    case Kind::Adam: return std::make_unique<heed::Adam<T>>(ps, heed::AdamOptions<T>{.lr = T(0.01)});
    case Kind::AdamL2:
      return std::make_unique<heed::Adam<T>>(ps, heed::AdamOptions<T>{.lr = T(0.01), .weight_decay = T(0.1)});
    case Kind::AdamW:
      return std::make_unique<heed::AdamW<T>>(ps, heed::AdamWOptions<T>{.lr = T(0.01), .weight_decay = T(0.1)});
    case Kind::Amsgrad:
      return std::make_unique<heed::Adam<T>>(ps, heed::AdamOptions<T>{.lr = T(0.01), .amsgrad = true});
    case Kind::AdamWAmsgrad:
      return std::make_unique<heed::AdamW<T>>(ps, heed::AdamWOptions<T>{.lr = T(0.01), .amsgrad = true});
    case Kind::RMSprop:
      return std::make_unique<heed::RMSprop<T>>(ps, heed::RMSpropOptions<T>{.lr = T(0.01)});
    case Kind::RMSpropCentered:
      return std::make_unique<heed::RMSprop<T>>(
          ps, heed::RMSpropOptions<T>{.lr = T(0.01), .weight_decay = T(0.1), .momentum = T(0.9),
                                      .centered = true});
  }
  return nullptr;
}

const char* second_moment(Kind k) {
  return k == Kind::RMSprop || k == Kind::RMSpropCentered ? "square_avg" : "exp_avg_sq";
}

// A gradient whose square overflows T: 1e20 in float, 1e160 in double.
template <class T>
T spike() {
  return std::is_same_v<T, float> ? T(1e20f) : T(1e160);
}

// Two parameters; the spike goes into the second, so an update that had already started on
// the first would show.
template <class T>
struct Net {
  Matrix<T> w{2, 3}, gw{2, 3}, b{1, 3}, gb{1, 3};
  Net() {
    load(w, ref::kW0);
    b << T(0.1), T(-0.2), T(0.3);
  }
  std::vector<Parameter<T>> params() { return {{"fc.weight", &w, &gw}, {"fc.bias", &b, &gb}}; }
  // The k-th batch's grads, from the reference trajectory.
  void batch(std::size_t k) {
    load(gw, ref::kGrads[k % ref::kGrads.size()]);
    for (int j = 0; j < 3; ++j) gb(0, j) = static_cast<T>(ref::kGrads[k % ref::kGrads.size()][j]);
  }
  bool finite() const { return w.allFinite() && b.allFinite(); }
};

template <class T>
bool bitwise_equal(const Matrix<T>& a, const Matrix<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0;
}

template <class T>
std::vector<Matrix<T>> snapshot(heed::Optimizer<T>& opt) {
  std::vector<Matrix<T>> s;
  for (const auto& [name, m] : opt.state()) s.push_back(*m);
  return s;
}

// Every state tensor finite and accepted by validate_state (what Checkpoint::load asks).
template <class T>
void check_state_loadable(heed::Optimizer<T>& opt) {
  // .first/.second, not a structured binding: clang 14 cannot capture one (CAPTURE is a lambda).
  for (const auto& entry : opt.state()) {
    const std::string& name = entry.first;
    CAPTURE(name);
    CHECK(entry.second->allFinite());
    CHECK(opt.validate_state(name, *entry.second) == "");
  }
}

// Steps a few normal batches and checks each one moves the weights, the spiked element too.
template <class T>
void train_on(heed::Optimizer<T>& opt, Net<T>& net, std::size_t from, std::size_t steps) {
  for (std::size_t k = from; k < from + steps; ++k) {
    CAPTURE(k);
    const Matrix<T> w0 = net.w, b0 = net.b;
    net.batch(k);
    opt.step();
    REQUIRE(net.finite());
    CHECK((net.w.array() != w0.array()).any());
    CHECK(net.b(0, 1) != b0(0, 1));  // the spiked element is not frozen
  }
  check_state_loadable(opt);
}

// Runs `bad` (which sets grads) on an optimizer three steps in and expects a NumericError
// containing `parts`, with weights, state and step count bitwise unchanged; then trains on.
template <class T, class Bad>
void expect_refused(Kind kind, Bad bad, std::vector<std::string> parts) {
  CAPTURE(kind_name(kind));
  Net<T> net;
  auto opt = make<T>(kind, net.params());
  for (std::size_t k = 0; k < 3; ++k) {
    net.batch(k);
    opt->step();
  }
  const Matrix<T> w0 = net.w, b0 = net.b;
  const auto s0 = snapshot(*opt);
  net.batch(3);
  bad(net);
  parts.insert(parts.end(), {opt->name() + ": step 4", "'fc.bias'", "unchanged", "this batch"});
  expect_error<heed::NumericError>([&] { opt->step(); }, parts);
  CHECK(opt->step_count() == 3);
  CHECK(bitwise_equal(net.w, w0));
  CHECK(bitwise_equal(net.b, b0));
  const auto s1 = snapshot(*opt);
  REQUIRE(s1.size() == s0.size());
  for (std::size_t i = 0; i < s0.size(); ++i) CHECK(bitwise_equal(s1[i], s0[i]));
  check_state_loadable(*opt);
  // Skip the batch: training continues, every weight still moves.
  train_on(*opt, net, 4, 4);
  CHECK(opt->step_count() == 7);
}

}  // namespace

TEST_CASE_TEMPLATE("A gradient spike that would overflow a second moment is refused, nothing changed",
                   T, float, double) {
  for (Kind kind : kKinds)
    expect_refused<T>(kind, [](Net<T>& n) { n.gb(0, 1) = -spike<T>(); },
                      {second_moment(kind), heed::detail::num_str(static_cast<double>(spike<T>())),
                       "element 1", "too large for", "clip_grad_norm_"});
}

TEST_CASE_TEMPLATE("NaN and inf gradients are refused by step() too, nothing changed", T, float,
                   double) {
  for (Kind kind : kKinds) {
    expect_refused<T>(kind, [](Net<T>& n) { n.gb(0, 2) = std::numeric_limits<T>::quiet_NaN(); },
                      {"element 2 is nan", "check_finite"});
    expect_refused<T>(kind, [](Net<T>& n) { n.gb(0, 0) = std::numeric_limits<T>::infinity(); },
                      {"element 0 is inf"});
  }
  // NaN cannot be clipped: the message points at check_finite, not clip_grad_norm_.
  Matrix<T> w = Matrix<T>::Zero(1, 1), g = Matrix<T>::Constant(1, 1, std::numeric_limits<T>::quiet_NaN());
  heed::Adam<T> opt({{"w", &w, &g}});
  try {
    opt.step();
    FAIL("expected NumericError");
  } catch (const heed::NumericError& e) {
    CHECK(std::string(e.what()).find("clip_grad_norm_") == std::string::npos);
  }
}

TEST_CASE_TEMPLATE("clip_grad_norm_ before step() lets a spike through, clipped", T, float, double) {
  for (Kind kind : kKinds) {
    CAPTURE(kind_name(kind));
    Net<T> net;
    auto opt = make<T>(kind, net.params());
    for (std::size_t k = 0; k < 3; ++k) {
      net.batch(k);
      REQUIRE(heed::clip_grad_norm_(net.params(), T(10)) < T(10));  // normal batches: untouched
      opt->step();
    }
    net.batch(3);
    net.gb(0, 1) = -spike<T>();
    const Matrix<T> b0 = net.b;
    const T total = heed::clip_grad_norm_(net.params(), T(1), T(2), /*error_if_nonfinite=*/true);
    CHECK(static_cast<double>(total) ==
          doctest::Approx(static_cast<double>(spike<T>())).epsilon(tol<T>()));
    // Clipped to norm 1, direction kept: the spike is -1, the rest negligible.
    CHECK(static_cast<double>(net.gb(0, 1)) == doctest::Approx(-1).epsilon(tol<T>()));
    opt->step();
    REQUIRE(net.finite());
    CHECK(net.b(0, 1) > b0(0, 1));  // moved against the (negative) spike
    check_state_loadable(*opt);
    train_on(*opt, net, 4, 4);
  }
}

TEST_CASE_TEMPLATE("clip_grad_norm_ is finite for every norm order when squares overflow", T, float,
                   double) {
  Matrix<T> w(1, 3), g(1, 3);
  const T s = spike<T>();
  for (const T order : {T(2), T(3), T(1), std::numeric_limits<T>::infinity()}) {
    CAPTURE(order);
    g << s, -s, T(1);
    const double expect = order == T(1) ? 2.0 * static_cast<double>(s)
                          : std::isinf(order)
                              ? static_cast<double>(s)
                              : std::pow(2.0, 1 / static_cast<double>(order)) * static_cast<double>(s);
    const T total = heed::clip_grad_norm_<T>({{"w", &w, &g}}, T(1), order);
    CHECK(static_cast<double>(total) == doctest::Approx(expect).epsilon(tol<T>()));
    CHECK(g.allFinite());
    CHECK(g(0, 0) > T(0));
  }
}

TEST_CASE_TEMPLATE("The overflow check refuses only what overflows", T, float, double) {
  // sqrt(max) is 1.84467e19 in float and 1.34078e154 in double: just below it v stays finite
  // (the exact element check runs, past the fast bound), just above g^2 overflows.
  const double root = std::sqrt(static_cast<double>(std::numeric_limits<T>::max()));
  const double rel = std::is_same_v<T, float> ? 1e-5 : 1e-14;
  for (const bool ams : {false, true}) {
    Matrix<T> w = Matrix<T>::Zero(1, 2), g(1, 2);
    heed::Adam<T> opt({{"w", &w, &g}}, {.amsgrad = ams});
    g << static_cast<T>(root * (1 - rel)), T(1);
    CHECK(static_cast<double>(g(0, 0)) > static_cast<double>(heed::detail::ema_grad_limit<T>(0.999, 2)));
    opt.step();
    for (const auto& [name, m] : opt.state()) CHECK(m->allFinite());
    g << T(1), static_cast<T>(root * (1 + rel));
    expect_error<heed::NumericError>([&] { opt.step(); },
                                     {"Adam: step 2", "exp_avg_sq", "'w'", "element 1"});
    CHECK(opt.step_count() == 1);
  }
  // The fast bound is within a hair of the true one for the usual betas.
  CHECK(static_cast<double>(heed::detail::ema_grad_limit<T>(0.999, 2)) > 0.99 * root);
  CHECK(static_cast<double>(heed::detail::ema_grad_limit<T>(0.99, 2)) > 0.99 * root);
  CHECK(static_cast<double>(heed::detail::ema_grad_limit<T>(0.9, 1)) >
        0.9 * static_cast<double>(std::numeric_limits<T>::max()));
}

TEST_CASE("A spike in a large tensor (threaded prescan) is refused, nothing changed") {
  Matrix<float> w = Matrix<float>::Random(300, 300), g = Matrix<float>::Random(300, 300) * 1e-2f;
  heed::Adam<float> opt({{"big", &w, &g}});
  opt.step();
  const Matrix<float> w0 = w;
  const auto s0 = snapshot<float>(opt);
  g(299, 299) = 3e19f;  // the last element: every chunk before it is fine
  expect_error<heed::NumericError>([&] { opt.step(); }, {"Adam: step 2", "exp_avg_sq", "'big'", "3e+19"});
  CHECK(bitwise_equal(w, w0));
  const auto s1 = snapshot<float>(opt);
  for (std::size_t i = 0; i < s0.size(); ++i) CHECK(bitwise_equal(s1[i], s0[i]));
  g(299, 299) = 0.01f;
  opt.step();
  CHECK(w.allFinite());
  CHECK(w(299, 299) != w0(299, 299));
}

TEST_CASE("An unnamed parameter is named by its index in the overflow error") {
  Matrix<double> w = Matrix<double>::Zero(1, 2), g(1, 2);
  heed::RMSprop<double> opt({{"", &w, &g}});
  g << 1e200, 0;
  expect_error<heed::NumericError>([&] { opt.step(); },
                                   {"RMSprop: step 1", "square_avg", "parameter 0", "1e+200",
                                    "too large for double"});
}
