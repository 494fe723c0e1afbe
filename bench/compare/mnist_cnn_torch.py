#!/usr/bin/env python3
"""examples/mnist_cnn in PyTorch: the same network, recipe and data path, for epoch times and
accuracy beside heed's.

  /usr/bin/python3 bench/compare/mnist_cnn_torch.py DATA_DIR [--model cnn|attention]
      [--epochs 12] [--threads 2] [--seed 0] [--export-init FILE.pt] [--load FILE]

The network is examples/mnist_net.hpp's mnist_cnn_net with the same state_dict keys (conv1.weight
... fc2.bias; attn.conv.weight with --model attention), so --export-init writes PyTorch's initial
weights with torch.save for `mnist_cnn --init-from FILE.pt`, and --load FILE starts from weights
`mnist_cnn --export FILE.safetensors` wrote (or a torch.save file); with --epochs 0 both sides
then print the same test accuracy. Data: the IDX files read into tensors
once, normalised (x/255 - 0.5)/0.5; each epoch's batches of 100 are slices of a random
permutation; Adam lr 1e-3, cross-entropy. PyTorch 1.13 on this machine runs its convolutions
through oneDNN (MKL-DNN). Prints a line per epoch with its time, then "Accuracy: xx.xx%".
"""
import argparse
import os
import struct
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

_tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests")
sys.path.insert(0, os.path.join(_tests, "conv"))
sys.path.insert(0, os.path.join(_tests, "interop"))
from conv_reference import SpatialAttention  # noqa: E402  (heed::SpatialAttention2d in PyTorch)
from modules_reference import read_safetensors  # noqa: E402  (torch 1.13 has no safetensors module)


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    (magic,) = struct.unpack(">i", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "i" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(d, prefix):
    x = torch.from_numpy(read_idx(f"{d}/{prefix}-images-idx3-ubyte").copy()).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(read_idx(f"{d}/{prefix}-labels-idx1-ubyte").copy()).long()
    return (x.float() / 255 - 0.5) / 0.5, y


def make_net(attention):
    layers = [("conv1", nn.Conv2d(1, 32, 3)), ("relu1", nn.ReLU()), ("conv2", nn.Conv2d(32, 64, 3)),
              ("relu2", nn.ReLU())]
    if attention:
        layers.append(("attn", SpatialAttention(7)))
    layers += [("pool", nn.MaxPool2d(2)), ("drop1", nn.Dropout(0.25)), ("flatten", nn.Flatten()),
               ("fc1", nn.Linear(9216, 128)), ("relu3", nn.ReLU()), ("drop2", nn.Dropout(0.5)),
               ("fc2", nn.Linear(128, 10))]
    return nn.Sequential(OrderedDict(layers))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--model", choices=["cnn", "attention"], default="cnn")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export-init")
    ap.add_argument("--load")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train_x, train_y = load(a.data, "train")
    test_x, test_y = load(a.data, "t10k")
    model = make_net(a.model == "attention")
    if a.export_init:
        torch.save(model.state_dict(), a.export_init)
    if a.load:
        state = read_safetensors(a.load)[0] if a.load.endswith(".safetensors") else torch.load(a.load)
        model.load_state_dict(state)
        print(f"Loaded {a.load}")
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(f"PyTorch {torch.__version__}, model {a.model}, {torch.get_num_threads()} thread(s), "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    B, n, total = 100, train_x.shape[0], 0.0
    for epoch in range(a.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        loss_sum, steps = 0.0, 0
        for s in range(0, n, B):
            idx = perm[s:s + B]
            optimizer.zero_grad()
            loss = criterion(model(train_x[idx]), train_y[idx])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            steps += 1
        secs = time.perf_counter() - t0
        total += secs
        print(f"Epoch [{epoch + 1}/{a.epochs}], Loss: {loss_sum / steps:.4f}, Time: {secs:.2f} s", flush=True)
    if a.epochs:
        print(f"Training time: {total:.2f} s ({total / a.epochs:.2f} s per epoch)")
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, test_x.shape[0], 1000):
            correct += (model(test_x[s:s + 1000]).argmax(1) == test_y[s:s + 1000]).sum().item()
    print(f"Accuracy: {100.0 * correct / test_x.shape[0]:.2f}%")


if __name__ == "__main__":
    main()
