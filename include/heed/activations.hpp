#pragma once
// All of heed/activations/: each is both a Module and a Dense policy.
#include "activations/activation.hpp"
#include "activations/gelu.hpp"
#include "activations/identity.hpp"
#include "activations/leaky_relu.hpp"
#include "activations/relu.hpp"
#include "activations/sigmoid.hpp"
#include "activations/softmax.hpp"
#include "activations/tanh.hpp"
