#pragma once
// Placeholder until the torch.save reader lands: refuses every file.
#include <string>
#include <vector>

#include "tensor_file.hpp"

namespace heed::io {

class TorchFile : public TensorFile {
 public:
  explicit TorchFile(const std::string& path) : TensorFile(path) { fail("torch.save files are not supported yet"); }
  const char* format() const override { return "torch.save"; }
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  std::vector<std::string> skipped_;
};

}  // namespace heed::io
