#!/usr/bin/env python3
"""PyTorch reference fixtures for heed's modules, read by tests/interop/test_modules.cpp.

For each module below and each dtype (float32 -> *_f32, float64 -> *_f64) this builds the
PyTorch module with PyTorch's own initialisation from a fixed seed, and writes ONE safetensors
file, data/<module>_<dtype>.safetensors, holding

  * the module's state_dict, exactly module.state_dict()'s keys and shapes, so
    heed::load_weights(module, path) loads it (the C++ test skips the reserved names below);
  * "__input__.<name>": the inputs (float tensors in the file's dtype; token ids, lengths and
    boolean masks as I64, masks 1 = True);
  * "__output__.<name>": the outputs PyTorch computed in that dtype.

Every 1-D parameter (biases, LayerNorm vectors: zeros and ones after PyTorch's init) gets
N(0, 0.1^2) noise first, so that a bias loaded into the wrong place cannot go unnoticed. The
float64 module is the float32 one converted with .double() (the same weights, widened); its
inputs are the float32 inputs widened, the outputs are computed in float64.

Transformer layers run in eval mode (dropout 0.1 inactive) with grad enabled, so PyTorch 1.13
takes its ordinary path, not the fused "fast path" (which changes padded rows). Dims are
small: d_model 8, nhead 2, dim_feedforward 16, batch 2, sequences 5 (source) and 4 (target).

It also writes torch.save(state_dict) files for the torch.save reader (not read by the tests
yet): data/mlp_f32.pt and data/lstm_f32.pt, the same weights as the *_f32.safetensors files.

The safetensors bytes are laid out by hand (torch 1.13 has no safetensors module), as
tests/io/safetensors_fixture.py does: u64 little-endian header size N, N bytes of JSON padded
with spaces to a multiple of 8, then the data buffer. roundtrip_check.py imports
read_safetensors / write_safetensors from here.

Run: /usr/bin/python3 tests/interop/modules_reference.py   (Debian's python3-torch, 1.13)
"""
import json
import os
import struct
import sys

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

assert sys.byteorder == "little"

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32"}
FROM_DTYPE = {v: k for k, v in DTYPES.items()}
D, NHEAD, FF, B, TS, TT = 8, 2, 16, 2, 5, 4


# --- safetensors by hand ------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """tensors: an ordered {name: tensor}; written in that order."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return 8 + len(h) + offset


def read_safetensors(path):
    """({name: tensor}, metadata) of a safetensors file with F32, F64, I64 or I32 tensors."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = FROM_DTYPE[info["dtype"]]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else \
            torch.zeros(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out, metadata


# --- the modules ----------------------------------------------------------------------------

class MLP(nn.Module):
    """The article's Net in miniature: fc1..fc3 with ReLU between, 12-8-6-4."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 6)
        self.fc3 = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def causal(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), 1)  # True = not allowed


def padding(lengths, n):
    return torch.arange(n)[None, :] >= torch.tensor(lengths)[:, None]  # True = padding


def build(name):
    """(module, inputs {name: float32 tensor or int64/bool}, run(module, inputs) -> outputs)."""
    if name == "linear":
        return nn.Linear(6, 4), {"x": torch.randn(5, 6)}, lambda m, i: {"y": m(i["x"])}
    if name == "mlp":
        return MLP(), {"x": torch.randn(5, 12)}, lambda m, i: {"y": m(i["x"])}
    if name == "layer_norm":
        return nn.LayerNorm(D), {"x": 2.0 * torch.randn(B, TS, D) + 0.5}, lambda m, i: {"y": m(i["x"])}
    if name == "embedding":
        ids = torch.tensor([[3, 0, 7, 9, 1], [0, 0, 4, 4, 2]])  # 0 is padding_idx
        return nn.Embedding(10, D, padding_idx=0), {"ids": ids}, lambda m, i: {"y": m(i["ids"])}
    if name == "gru":
        m = nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True)

        def run(m, i):
            y, h_n = m(i["x"], i["h0"])
            return {"y": y, "h_n": h_n}
        return m, {"x": torch.randn(B, TS, 4), "h0": 0.5 * torch.randn(4, B, 6)}, run
    if name == "lstm":
        m = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)

        def run(m, i):
            y, (h_n, c_n) = m(i["x"], (i["h0"], i["c0"]))
            packed = pack_padded_sequence(i["x"], i["lengths"], batch_first=True, enforce_sorted=False)
            py, (ph, pc) = m(packed, (i["h0"], i["c0"]))
            py, _ = pad_packed_sequence(py, batch_first=True, total_length=TS)
            return {"y": y, "h_n": h_n, "c_n": c_n, "packed_y": py, "packed_h_n": ph, "packed_c_n": pc}
        return m, {"x": torch.randn(B, TS, 4), "h0": 0.5 * torch.randn(4, B, 6),
                   "c0": 0.5 * torch.randn(4, B, 6), "lengths": torch.tensor([5, 3])}, run
    if name == "multihead_attention":
        m = nn.MultiheadAttention(D, NHEAD, batch_first=True)

        def run(m, i):
            y, w = m(i["query"], i["key"], i["value"], key_padding_mask=i["key_padding_mask"])
            _, wh = m(i["query"], i["key"], i["value"], key_padding_mask=i["key_padding_mask"],
                      average_attn_weights=False)
            return {"y": y, "weights": w, "weights_per_head": wh}
        return m, {"query": torch.randn(B, TT, D), "key": torch.randn(B, TS, D), "value": torch.randn(B, TS, D),
                   "key_padding_mask": padding([5, 3], TS)}, run
    if name.startswith("encoder_layer"):
        pre = name.endswith("pre")
        m = nn.TransformerEncoderLayer(D, NHEAD, FF, dropout=0.1, activation="gelu" if pre else "relu",
                                       batch_first=True, norm_first=pre)

        def run(m, i):
            return {"y": m(i["src"], src_mask=i["src_mask"], src_key_padding_mask=i["src_key_padding_mask"])}
        return m, {"src": torch.randn(B, TS, D), "src_mask": causal(TS),
                   "src_key_padding_mask": padding([5, 3], TS)}, run
    if name.startswith("decoder_layer"):
        pre = name.endswith("pre")
        m = nn.TransformerDecoderLayer(D, NHEAD, FF, dropout=0.1, activation="gelu" if pre else "relu",
                                       batch_first=True, norm_first=pre)

        def run(m, i):
            return {"y": m(i["tgt"], i["memory"], tgt_mask=i["tgt_mask"],
                           tgt_key_padding_mask=i["tgt_key_padding_mask"],
                           memory_key_padding_mask=i["memory_key_padding_mask"])}
        return m, {"tgt": torch.randn(B, TT, D), "memory": torch.randn(B, TS, D), "tgt_mask": causal(TT),
                   "tgt_key_padding_mask": padding([4, 3], TT),
                   "memory_key_padding_mask": padding([5, 3], TS)}, run
    if name == "transformer":
        m = nn.Transformer(D, NHEAD, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF,
                           dropout=0.1, batch_first=True)

        def run(m, i):
            return {"y": m(i["src"], i["tgt"], tgt_mask=i["tgt_mask"],
                           src_key_padding_mask=i["src_key_padding_mask"],
                           tgt_key_padding_mask=i["tgt_key_padding_mask"],
                           memory_key_padding_mask=i["src_key_padding_mask"])}
        return m, {"src": torch.randn(B, TS, D), "tgt": torch.randn(B, TT, D), "tgt_mask": causal(TT),
                   "src_key_padding_mask": padding([5, 3], TS),
                   "tgt_key_padding_mask": padding([4, 3], TT)}, run
    raise ValueError(name)


MODULES = ["linear", "mlp", "layer_norm", "embedding", "gru", "lstm", "multihead_attention",
           "encoder_layer_post", "encoder_layer_pre", "decoder_layer_post", "decoder_layer_pre",
           "transformer"]
PT_FILES = ["mlp", "lstm"]  # also written with torch.save (float32)


def stored(t, dtype):
    """How an input is stored: float in the file's dtype, ints and bools as I64."""
    if t.dtype == torch.bool or not t.is_floating_point():
        return t.to(torch.int64)
    return t.to(dtype)


def fed(t, dtype):
    """How an input is fed to the module: floats in its dtype, the rest unchanged."""
    return t.to(dtype) if t.is_floating_point() else t


def main():
    os.makedirs(DATA, exist_ok=True)
    total = 0
    for k, name in enumerate(MODULES):
        torch.manual_seed(1000 + k)
        m, inputs, run = build(name)
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
        m.eval()  # dropout off; grad stays enabled (no fast path, see the docstring)
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            md = m.to(dtype)
            outputs = run(md, {n: fed(t, dtype) for n, t in inputs.items()})
            tensors = dict(md.state_dict())
            tensors.update({"__input__." + n: stored(t, dtype) for n, t in inputs.items()})
            tensors.update({"__output__." + n: t.detach() for n, t in outputs.items()})
            for n, t in tensors.items():
                assert t.dtype in (dtype, torch.int64), (name, n, t.dtype)
            path = os.path.join(DATA, f"{name}_{suffix}.safetensors")
            size = write_safetensors(path, tensors, {"format": "pt", "module": name,
                                                     "torch": torch.__version__,
                                                     "source": "tests/interop/modules_reference.py"})
            back, _ = read_safetensors(path)  # the hand-written reader agrees with the writer
            assert all(torch.equal(back[n], t) for n, t in tensors.items())
            total += size
            print(f"{os.path.relpath(path, HERE)}: {size} bytes")
            if suffix == "f32" and name in PT_FILES:
                pt = os.path.join(DATA, f"{name}_f32.pt")
                torch.save(md.state_dict(), pt)
                back = torch.load(pt)
                assert list(back) == list(md.state_dict())
                assert all(torch.equal(back[n], t) for n, t in md.state_dict().items())
                total += os.path.getsize(pt)
                print(f"{os.path.relpath(pt, HERE)}: {os.path.getsize(pt)} bytes")
        m.to(torch.float32)
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
