#!/usr/bin/env python3
"""PyTorch reference fixtures for heed's image and sequence layers (tests/conv/): Conv2d, Conv1d,
MaxPool2d, MaxPool1d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, and (for
tests/attention/test_spatial_attention.cpp) SpatialAttention2d.

For each configuration in CONFIGS this builds the PyTorch module (PyTorch's own init, seed 0,
then .double() for the float64 files), runs it on a fixed N(0, 1) input and backpropagates a
fixed N(0, 1) upstream gradient, and writes data/<name>_<f32|f64>.safetensors holding

  * the module's state_dict ("weight" (O, C/g, kh, kw) or (O, C/g, k), "bias" (O,));
  * "__input__.x"  (N, C, H, W) or (N, C, L), and "__input__.dy" shaped like the output;
  * "__output__.y", "__output__.dx", and "__output__.d<name>" for every parameter;
  * "__output__.<name>" for every buffer after the forward (BatchNorm's running statistics).

The state_dict is the one before the forward. A BatchNorm gets random weight, bias and running
statistics first (num_batches_tracked 3), so that every term is exercised; "_eval" configs run
in eval mode.

The C++ test builds the same configuration, loads the file with heed::load_weights (skipping
the "__" names), and compares y and every gradient. Deterministic: run it again and the bytes
are the same.

Run: /usr/bin/python3 tests/conv/conv_reference.py   (Debian's python3-torch, 1.13)
"""
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
from modules_reference import write_safetensors  # noqa: E402

DATA = os.path.join(HERE, "data")
N = 3

# name: (constructor, input shape of one sample); the C++ test mirrors each line.
CONFIGS = {
    "plain": (lambda: nn.Conv2d(2, 3, 3), (2, 6, 7)),
    "stride2_pad1": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (3, 7, 8)),
    "dilation2": (lambda: nn.Conv2d(2, 3, (3, 2), dilation=2), (2, 8, 9)),
    "groups2": (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (4, 5, 6)),
    "same_even": (lambda: nn.Conv2d(2, 3, (4, 2), padding="same"), (2, 6, 5)),
    "nobias": (lambda: nn.Conv2d(2, 3, 3, bias=False), (2, 5, 5)),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2), (3, 11)),
    "conv1d_same_groups": (lambda: nn.Conv1d(4, 6, 4, padding="same", groups=2), (4, 9)),
    # pooling (heed/layers/pool2d.hpp; tests/conv/test_pool.cpp): no parameters, y and dx only
    "maxpool_k2": (lambda: nn.MaxPool2d(2), (3, 6, 7)),
    "maxpool_pad_stride": (lambda: nn.MaxPool2d(3, stride=(2, 1), padding=1), (2, 7, 8)),
    "maxpool_dilation_ceil": (lambda: nn.MaxPool2d((3, 2), stride=2, padding=1, dilation=(2, 1), ceil_mode=True), (2, 9, 8)),
    "maxpool_ceil_drop": (lambda: nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True), (2, 5, 6)),
    "maxpool1d": (lambda: nn.MaxPool1d(3, stride=2, padding=1, dilation=2, ceil_mode=True), (3, 12)),
    "avgpool_k2": (lambda: nn.AvgPool2d(2), (3, 6, 7)),
    "avgpool_pad_ceil": (lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 8, 7)),
    "avgpool_exclude_pad": (lambda: nn.AvgPool2d((3, 2), stride=(2, 1), padding=1, ceil_mode=True, count_include_pad=False), (2, 8, 7)),
    "avgpool_divisor": (lambda: nn.AvgPool2d(3, stride=2, padding=1, divisor_override=5), (2, 7, 6)),
    "adaptive_avg": (lambda: nn.AdaptiveAvgPool2d((3, 4)), (2, 7, 10)),
    "adaptive_avg_up": (lambda: nn.AdaptiveAvgPool2d((5, 3)), (2, 4, 7)),
    # BatchNorm (heed/layers/batch_norm.hpp; tests/conv/test_batch_norm.cpp)
    "bn2d": (lambda: randomized(nn.BatchNorm2d(3)), (3, 4, 5)),
    "bn2d_eval": (lambda: randomized(nn.BatchNorm2d(3)).eval(), (3, 4, 5)),
    "bn2d_cumulative": (lambda: randomized(nn.BatchNorm2d(2, momentum=None, eps=1e-3)), (2, 3, 3)),
    "bn2d_noaffine": (lambda: randomized(nn.BatchNorm2d(2, affine=False)), (2, 3, 4)),
    "bn2d_nostats_eval": (lambda: randomized(nn.BatchNorm2d(2, track_running_stats=False)).eval(), (2, 3, 4)),
    "bn1d": (lambda: randomized(nn.BatchNorm1d(4)), (4,)),
    "bn1d_seq": (lambda: randomized(nn.BatchNorm1d(3, momentum=0.3)), (3, 5)),
    # SpatialAttention2d (heed/attention/spatial_attention.hpp)
    "spatial7": (lambda: SpatialAttention(7), (4, 6, 5)),
    "spatial3": (lambda: SpatialAttention(3), (3, 4, 4)),
    # after a ReLU: positions where every channel is 0 tie for the max (amax splits the gradient)
    "spatial_relu": (lambda: nn.Sequential(nn.ReLU(), SpatialAttention(3)), (3, 4, 4)),
}
FLOAT32 = {"plain", "groups2", "maxpool_k2", "avgpool_pad_ceil", "adaptive_avg", "bn2d", "spatial7"}
TORCH_SAVE = {"bn2d"}  # also written with torch.save: num_batches_tracked as a LongStorage


class SpatialAttention(nn.Module):
    """CBAM's spatial attention, as heed::SpatialAttention2d (see its header)."""

    def __init__(self, k=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        a = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(a))


def randomized(m):
    """A BatchNorm with random affine parameters and running statistics (those it has)."""
    with torch.no_grad():
        if m.affine:
            m.weight.normal_()
            m.bias.normal_()
        if m.track_running_stats:
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(3)
    return m


def fixture(name, dtype):
    make, shape = CONFIGS[name]
    torch.manual_seed(0)
    m = make()
    if dtype == torch.float64:
        m = m.double()
    x = torch.randn(N, *shape, dtype=dtype, requires_grad=True)
    t = {k: v.clone() for k, v in m.state_dict().items()}  # before the forward
    y = m(x)
    dy = torch.randn(y.shape, dtype=dtype)
    y.backward(dy)
    t["__input__.x"] = x.detach()
    t["__input__.dy"] = dy
    t["__output__.y"] = y.detach()
    t["__output__.dx"] = x.grad
    for pname, p in m.named_parameters():
        t["__output__.d" + pname] = p.grad
    for bname, b in m.named_buffers():
        t["__output__." + bname] = b
    suffix = "f64" if dtype == torch.float64 else "f32"
    if name in TORCH_SAVE and dtype == torch.float64:  # the same state_dict as torch.save writes it
        torch.save({k: v for k, v in t.items() if not k.startswith("__")}, os.path.join(DATA, f"{name}_{suffix}.pt"))
    path = os.path.join(DATA, f"{name}_{suffix}.safetensors")
    size = write_safetensors(path, t)
    print(f"{path}: {size} bytes, y {tuple(y.shape)}")


def main():
    os.makedirs(DATA, exist_ok=True)
    for name in CONFIGS:
        fixture(name, torch.float64)
        if name in FLOAT32:
            fixture(name, torch.float32)


if __name__ == "__main__":
    main()
