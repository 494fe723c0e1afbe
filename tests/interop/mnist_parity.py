#!/usr/bin/env python3
"""Writes tests/interop/data/mnist_parity.safetensors: one epoch of the article's MNIST run in
PyTorch, for tests/interop/mnist/mnist_parity.cpp to reproduce step by step with heed.

The article's recipe (Net = 784-256-128-64-10 with ReLU, CrossEntropyLoss mean, Adam lr 1e-3
with its defaults, batch 100 shuffled, inputs ToTensor (/255) then Normalize((0.5,), (0.5,))),
float32, torch.manual_seed(0), torch.set_num_threads(1). torchvision is not needed: the IDX
files are read with numpy, and the inputs are computed with the same tensor ops as ToTensor
(uint8 -> float, .div(255)) and Normalize (.sub(mean).div(std)). The batch order is the one a
DataLoader(shuffle=True) draws after Net() has been initialised, as in the article's script.

The initial weights are rounded to F16 (the file stays under 1 MB) and PyTorch trains from
the rounded values, so both sides start from the same point.

  name                  dtype  shape        what
  fc1.weight ... fc4.bias F16  PyTorch's    the initial weights (Net() under manual_seed(0))
  input_lut             F32    (256,)       the normalised input value of each byte, as computed
  order                 I32    (60000,)     the epoch's sample order: batch s is order[100s:100s+100]
  losses                F64    (600,)       loss.item() after each step's forward
  test_accuracy         F64    ()           test accuracy after the epoch, in [0, 1]
  test_correct          I64    ()           correctly classified test images (of 10,000)
  losses_f64            F64    (600,)       the same epoch in float64 (Net().double())
  test_correct_f64      I64    ()
  losses_permuted       F64    (600,)       float32 again, fc1's 256 units permuted: the same
  test_correct_permuted I64    ()           function, other rounding (PyTorch against itself)

Float32 training is chaotic: rounding differences of 1e-7 (summation order in a GEMM) grow
step by step, and PyTorch against itself with permuted units drifts as far as heed does.
So the float64 losses are the check that heed computes the same training as PyTorch, and
the float32 ones measure where the drift becomes visible.

Run: /usr/bin/python3 tests/interop/mnist_parity.py data/mnist  (about 10 s)
"""
import copy
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

assert sys.byteorder == "little"


class Net(nn.Module):  # the article's, unchanged
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 64)
        self.fc4 = nn.Linear(64, 10)

    def forward(self, x):
        x = x.view(-1, 784)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        x = torch.relu(self.fc3(x))
        x = self.fc4(x)
        return x


def idx(path, dims):
    with open(path, "rb") as f:
        data = f.read()
    magic, *shape = struct.unpack(">" + "I" * (1 + dims), data[: 4 + 4 * dims])
    assert magic == 0x800 + dims, path
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, prefix):
    images = idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte"), 3)
    labels = idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte"), 1)
    return images.reshape(len(images), 784), labels


def normalise(images):
    """ToTensor then Normalize((0.5,), (0.5,)), with their tensor ops."""
    x = torch.from_numpy(np.array(images)).to(torch.float32).div(255)
    mean, std = torch.as_tensor((0.5,)), torch.as_tensor((0.5,))
    return x.sub(mean).div(std)


def safetensors(path, tensors, metadata):
    """The safetensors layout by hand (torch 1.13 has no safetensors module)."""
    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
              torch.int64: "I64", torch.int32: "I32"}
    header, data = {"__metadata__": metadata}, b""
    for name, t in tensors:
        b = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    os.replace(tmp, path)
    return 8 + len(h) + len(data)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: mnist_parity.py MNIST_DIR")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train_images, train_labels = load(sys.argv[1], "train")
    test_images, test_labels = load(sys.argv[1], "t10k")

    model = Net()
    with torch.no_grad():  # F16 in the file; both sides start from the rounded values
        for p in model.parameters():
            p.copy_(p.half().float())
    initial = [(k, v.detach().clone().half()) for k, v in model.state_dict().items()]

    x_train = normalise(train_images)
    y_train = torch.from_numpy(train_labels.astype(np.int64))
    x_test = normalise(test_images)
    y_test = torch.from_numpy(test_labels.astype(np.int64))
    start = copy.deepcopy(model.state_dict())
    index = torch.arange(len(x_train))
    loader = DataLoader(TensorDataset(index), batch_size=100, shuffle=True)
    order = torch.cat([i for (i,) in loader])  # the article's draw: the loader's first epoch
    assert sorted(order.tolist()) == list(range(60000))

    def train(dtype, permute=None):
        """One epoch from `start` in `order`; the per-step losses and the test images right.
        permute: the same network with fc1's outputs (fc2's inputs) in another order, which
        changes only float rounding (the order of fc2's sums): PyTorch against itself."""
        net = Net().to(dtype)
        state = {k: v.to(dtype) for k, v in start.items()}
        if permute is not None:
            state["fc1.weight"] = state["fc1.weight"][permute]
            state["fc1.bias"] = state["fc1.bias"][permute]
            state["fc2.weight"] = state["fc2.weight"][:, permute]
        net.load_state_dict(state)
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.Adam(net.parameters(), lr=0.001)
        xs = x_train.to(dtype)
        losses = []
        for s in range(0, len(order), 100):
            i = order[s:s + 100]
            optimizer.zero_grad()
            loss = criterion(net(xs[i]), y_train[i])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        with torch.no_grad():
            xt = x_test.to(dtype)
            correct = sum(int((net(xt[s:s + 100]).argmax(1) == y_test[s:s + 100]).sum())
                          for s in range(0, len(xt), 100))
        return losses, correct

    losses, correct = train(torch.float32)
    losses_f64, correct_f64 = train(torch.float64)
    losses_perm, correct_perm = train(torch.float32, torch.randperm(256, generator=torch.Generator().manual_seed(1)))
    assert len(losses) == 600
    lut = normalise(np.arange(256, dtype=np.uint8).reshape(1, 256)).reshape(256)

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist_parity.safetensors")
    size = safetensors(out, initial + [
        ("input_lut", lut),
        ("order", order.to(torch.int32)),
        ("losses", torch.tensor(losses, dtype=torch.float64)),
        ("test_accuracy", torch.tensor(correct / len(x_test), dtype=torch.float64)),
        ("test_correct", torch.tensor(correct, dtype=torch.int64)),
        ("losses_f64", torch.tensor(losses_f64, dtype=torch.float64)),
        ("test_correct_f64", torch.tensor(correct_f64, dtype=torch.int64)),
        ("losses_permuted", torch.tensor(losses_perm, dtype=torch.float64)),
        ("test_correct_permuted", torch.tensor(correct_perm, dtype=torch.int64)),
    ], {"source": "tests/interop/mnist_parity.py", "torch": torch.__version__, "seed": "0",
        "recipe": "article: Adam lr 1e-3, batch 100, CrossEntropyLoss, (x/255 - 0.5)/0.5"})
    print(f"{os.path.normpath(out)}: {size} bytes; first loss {losses[0]:.6f}, last "
          f"{losses[-1]:.6f}, mean {sum(losses) / len(losses):.6f}; test accuracy "
          f"{100 * correct / len(x_test):.2f}%")

    def drift(a, b):
        rel = [abs(p - q) / abs(q) for p, q in zip(a, b)]
        over = next((k + 1 for k, r in enumerate(rel) if r > 1e-4), None)
        return f"max {max(rel):.3g} at step {rel.index(max(rel)) + 1}, first step over 1e-4: {over}"
    print(f"float64 run: test accuracy {correct_f64 / 100:.2f}%; float32 against it: {drift(losses, losses_f64)}")
    print(f"float32 with fc1's units permuted (PyTorch against itself, rounding only): test accuracy "
          f"{correct_perm / 100:.2f}%; {drift(losses_perm, losses)}")


if __name__ == "__main__":
    main()
