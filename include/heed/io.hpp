#pragma once
// All of heed/io/: checkpoints (save/load) in a versioned, checksummed binary format, and
// safetensors and torch.save files (TensorFile readers), and load_weights/save_safetensors,
// which move a model's weights to and from PyTorch by state_dict name.
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/checkpoint_format.hpp"
#include "io/crc32.hpp"
#include "io/safetensors.hpp"
#include "io/tensor_file.hpp"
#include "io/torch_file.hpp"
#include "io/weights.hpp"
