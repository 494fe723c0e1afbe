# The article's PyTorch MNIST classifier as written (torchvision datasets + DataLoader), with
# torch.set_num_threads(2) and the data read from a prepared root (no download).
#   /usr/bin/python3 mnist_torch_article.py ROOT EPOCHS
# ROOT must hold MNIST/raw/<the four uncompressed IDX files> (run.sh links them there).
import sys
import time

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

root, num_epochs = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(2)
torch.manual_seed(0)

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
train_set = datasets.MNIST(root=root, train=True, download=False, transform=transform)
test_set = datasets.MNIST(root=root, train=False, transform=transform)
train_loader = DataLoader(train_set, batch_size=100, shuffle=True)
test_loader = DataLoader(test_set, batch_size=100, shuffle=False)


class Net(nn.Module):
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
        return self.fc4(x)


model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)

t_train = time.perf_counter()
for epoch in range(num_epochs):
    t0 = time.perf_counter()
    running_loss = 0.0
    for i, (inputs, labels) in enumerate(train_loader):
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    print(f'Epoch [{epoch + 1}/{num_epochs}], Loss: {running_loss / (i + 1):.4f}, '
          f'Time: {time.perf_counter() - t0:.2f} s', flush=True)
print(f'Training time: {time.perf_counter() - t_train:.2f} s')

with torch.no_grad():
    correct = 0
    total = 0
    for inputs, labels in test_loader:
        outputs = model(inputs)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print(f'Accuracy: {100 * correct / total:.2f}%')
