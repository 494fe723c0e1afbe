#pragma once
// All of heed/layers/.
#include "layers/conv.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/embedding.hpp"
#include "layers/gru.hpp"
#include "layers/layer_norm.hpp"
#include "layers/linear.hpp"
#include "layers/lstm.hpp"
#include "layers/module_list.hpp"
#include "layers/pooling.hpp"
#include "layers/residual.hpp"
#include "layers/sequential.hpp"
