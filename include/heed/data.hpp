#pragma once
// All of heed/data/: IDX/MNIST readers, normalisation, the DataLoader, augmentation, splits.
#include "data/augment.hpp"
#include "data/byte_matrix.hpp"
#include "data/data_loader.hpp"
#include "data/idx.hpp"
#include "data/mnist.hpp"
#include "data/normalize.hpp"
#include "data/split.hpp"
