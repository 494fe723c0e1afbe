#!/usr/bin/env bash
# The main job: install what is missing, fetch MNIST, build in Release, train the article's
# classifier. Arguments go to the example, e.g. scripts/mnist.sh --recipe improved
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/fetch-mnist.sh data/mnist
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mnist_mlp
exec build/release/examples/mnist_mlp --data data/mnist "$@"
