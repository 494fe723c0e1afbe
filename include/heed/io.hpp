#pragma once
// All of heed/io/: checkpoints (save/load) in a versioned, checksummed binary format, and
// safetensors files (read and write), torch.save files (read).
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/checkpoint_format.hpp"
#include "io/crc32.hpp"
#include "io/safetensors.hpp"
#include "io/torch_file.hpp"
