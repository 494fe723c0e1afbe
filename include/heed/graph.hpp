#pragma once
// Graph<T>: composites that write only their forward (graph/graph.hpp).
#include "graph/graph.hpp"
