#pragma once
// Tensors, errors, the module interface and seeded random numbers.
#include "core/error.hpp"
#include "core/gemm.hpp"
#include "core/init.hpp"
#include "core/module.hpp"
#include "core/parallel.hpp"
#include "core/random.hpp"
#include "core/state_dict.hpp"
#include "core/summary.hpp"
#include "core/tensor.hpp"
