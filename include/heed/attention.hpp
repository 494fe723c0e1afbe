#pragma once
// All of heed/attention/.
#include "attention/masks.hpp"
#include "attention/dot_product_score.hpp"
#include "attention/scaled_dot_product_score.hpp"
#include "attention/additive_score.hpp"
#include "attention/general_score.hpp"
#include "attention/attention.hpp"
#include "attention/fused_attention.hpp"
#include "attention/multihead_attention.hpp"
#include "attention/self_attention.hpp"
