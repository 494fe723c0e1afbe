# The same classifier and training loop, with the data path PyTorch users write for speed: the
# IDX files are read into tensors once, normalised once ((x/255 - 0.5)/0.5), and each epoch's
# batches are index slices of a random permutation. Same model, loss, Adam lr 1e-3, batch 100.
#   /usr/bin/python3 mnist_torch_preloaded.py DATA_DIR EPOCHS
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


def read_idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic, = struct.unpack('>i', data[:4])
    ndim = magic & 0xff
    dims = struct.unpack('>' + 'i' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(d, prefix):
    x = torch.from_numpy(read_idx(f'{d}/{prefix}-images-idx3-ubyte').copy()).reshape(-1, 784)
    y = torch.from_numpy(read_idx(f'{d}/{prefix}-labels-idx1-ubyte').copy()).long()
    return (x.float() / 255 - 0.5) / 0.5, y


data_dir, num_epochs = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(2)
torch.manual_seed(0)
train_x, train_y = load(data_dir, 'train')
test_x, test_y = load(data_dir, 't10k')

model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                      nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)

B = 100
n = train_x.shape[0]
t_train = time.perf_counter()
for epoch in range(num_epochs):
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    running_loss = 0.0
    steps = 0
    for s in range(0, n, B):
        idx = perm[s:s + B]
        optimizer.zero_grad()
        loss = criterion(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        steps += 1
    print(f'Epoch [{epoch + 1}/{num_epochs}], Loss: {running_loss / steps:.4f}, '
          f'Time: {time.perf_counter() - t0:.2f} s', flush=True)
print(f'Training time: {time.perf_counter() - t_train:.2f} s')

with torch.no_grad():
    predicted = model(test_x).argmax(1)
print(f'Accuracy: {100 * (predicted == test_y).float().mean().item():.2f}%')
