// Builds against the installed package and trains a tiny network for a few steps.
#include <heed/heed.hpp>
#include <iostream>

int main() {
  heed::manual_seed(1);
  heed::Sequential<float> net;
  net.emplace<heed::Linear<float>>(4, 8);
  net.emplace<heed::ReLU<float>>();
  net.emplace<heed::Linear<float>>(8, 3);
  heed::CrossEntropyLoss<float> loss_fn;
  heed::Adam<float> opt(net.parameters(), {.lr = 1e-2f});
  heed::Matrix<float> x = heed::Matrix<float>::Random(16, 4);
  heed::Labels y(16);
  for (int i = 0; i < 16; ++i) y(i) = i % 3;
  float first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    opt.zero_grad();
    const float l = loss_fn.forward(net.forward(x), y);
    net.backward(loss_fn.backward());
    opt.step();
    (step == 0 ? first : last) = l;
  }
  std::cout << "consumer: loss " << first << " -> " << last << "\n";
  return last < first ? 0 : 1;
}
