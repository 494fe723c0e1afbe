#!/usr/bin/env python3
"""The article's PyTorch MNIST script, for comparing accuracies with examples/mnist_mlp.

The article's model (Net), loss (CrossEntropyLoss), optimiser (Adam lr 1e-3), batches (100,
shuffled) and preprocessing (ToTensor then Normalize((0.5,), (0.5,))), with three changes:
torch.manual_seed(SEED) and torch.set_num_threads(1) first, so a run is repeatable, and the
IDX files read with numpy instead of torchvision (not installed here; the inputs are computed
with the same tensor ops, and the DataLoader draws its order from the global generator as
the article's does). Prints the article's lines: "Epoch [e/n], Loss: ..." and "Accuracy: xx.xx%".

Run: /usr/bin/python3 tests/interop/mnist_article.py data/mnist [--seed 0] [--epochs 10]
(about 2 s per epoch on one thread)
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_parity import Net, load, normalise  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)

    def dataset(prefix):
        images, labels = load(a.data, prefix)
        return TensorDataset(normalise(images), torch.from_numpy(labels.astype("int64")))

    train_loader = DataLoader(dataset("train"), batch_size=100, shuffle=True)
    test_loader = DataLoader(dataset("t10k"), batch_size=100, shuffle=False)
    model = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.001)
    for epoch in range(a.epochs):
        running_loss = 0.0
        for i, (inputs, labels) in enumerate(train_loader):
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        print(f'Epoch [{epoch + 1}/{a.epochs}], Loss: {running_loss / (i + 1):.4f}', flush=True)
    with torch.no_grad():
        correct = total = 0
        for inputs, labels in test_loader:
            _, predicted = torch.max(model(inputs).data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    print(f'Accuracy: {100 * correct / total:.2f}%')


if __name__ == "__main__":
    main()
