#pragma once
// heed: header-only neural networks and attention on Eigen. The umbrella header.
#include "core.hpp"
#include "activations.hpp"
#include "layers.hpp"
#include "losses.hpp"
#include "optim.hpp"
#include "attention.hpp"
#include "transformer.hpp"
#include "data.hpp"
#include "metrics.hpp"
#include "io.hpp"
#include "models.hpp"
#include "graph.hpp"
