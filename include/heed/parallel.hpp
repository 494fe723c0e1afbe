#pragma once
// Training parallelism: DataParallel (a step split over threads by rows of the batch).
#include "parallel/data_parallel.hpp"
