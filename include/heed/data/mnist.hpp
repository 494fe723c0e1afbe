#pragma once
// MNIST from the four standard uncompressed IDX files in one directory (scripts/fetch-mnist.sh
// downloads and verifies them).
#include <filesystem>
#include <string>

#include "../core/error.hpp"
#include "idx.hpp"

namespace heed {

struct MnistData {
  ByteMatrix train_images;  // (60000, 784) bytes 0..255
  Labels train_labels;      // (60000) in [0, 10)
  ByteMatrix test_images;   // (10000, 784)
  Labels test_labels;       // (10000)
};

namespace detail {

inline void mnist_pair(const std::filesystem::path& dir, const char* images_name,
                       const char* labels_name, ByteMatrix& images, Labels& labels) {
  const std::string ip = (dir / images_name).string(), lp = (dir / labels_name).string();
  for (const std::string& p : {ip, lp})
    if (!std::filesystem::exists(p))
      throw IoError("load_mnist: missing " + p +
                    "; run scripts/fetch-mnist.sh to download MNIST (or pass the directory "
                    "holding the four uncompressed IDX files)");
  IdxImages img = read_idx_images(ip);
  labels = read_idx_labels(lp, 10);
  if (img.rows != 28 || img.cols != 28)
    throw FormatError("load_mnist: " + ip + ": images expected 28 x 28, got " +
                      std::to_string(img.rows) + " x " + std::to_string(img.cols));
  if (img.size() != labels.size())
    throw FormatError("load_mnist: count mismatch: " + ip + " has " + std::to_string(img.size()) +
                      " images but " + lp + " has " + std::to_string(labels.size()) + " labels");
  images = std::move(img.pixels);
}

}  // namespace detail

// Reads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte from `dir`.
inline MnistData load_mnist(const std::string& dir) {
  MnistData d;
  detail::mnist_pair(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", d.train_images,
                     d.train_labels);
  detail::mnist_pair(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", d.test_images,
                     d.test_labels);
  return d;
}

}  // namespace heed
