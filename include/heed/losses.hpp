#pragma once
// All of heed/losses/: each forward(input, target) returns the loss, backward() dL/dinput.
#include "losses/bce_with_logits.hpp"
#include "losses/cross_entropy.hpp"
#include "losses/mse.hpp"
