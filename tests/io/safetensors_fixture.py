#!/usr/bin/env python3
"""Writes tests/data/safetensors/fixture.safetensors, read by tests/io/test_safetensors.cpp.

An independent writer for heed's safetensors reader: torch makes the tensors and their bytes,
struct and json lay out the file by the safetensors spec (torch 1.13 has no safetensors
module): u64 little-endian header size N, N bytes of JSON padded with spaces to a multiple
of 8, then the data buffer. json.dumps' defaults (", " and ": " separators, ASCII with \\u
escapes, so the emoji becomes a surrogate pair) exercise the reader's whitespace and escape
handling. The header lists the tensors in the order below (not sorted by name), and the data
follows in that order.

  name          dtype  shape      values (row-major)
  f32_matrix    F32    (2, 3)     1, -2.5, 3.25, 0.5, -0.0, 0.001
  f64_vector    F64    (3,)       0.1, -1e300, 3.0
  f16_cube      F16    (2, 2, 2)  1, -2.5, 65504, 2**-24, inf, nan, -0.0, 0.5
  bf16_scalar   BF16   ()         -2.5
  bf16_cube     BF16   (2, 2, 2)  1, -2.5, max (0x7f7f), 2**-133, -inf, nan, -0.0, 0.5
  i64_vector    I64    (3,)       -1, 2**40, 2**63 - 1
  i32_matrix    I32    (2, 3)     -2**31, 0, 7, 1, 2, 3
  f32_scalar    F32    ()         42
  empty         F32    (0, 3)     (no data: data_offsets [k, k])

  __metadata__  {"format": "pt", "source": "heed", "text": "pi \u03c0, e-acute \u00e9, "quoted", emoji \U0001f642"}

Run: /usr/bin/python3 tests/io/safetensors_fixture.py  (writes the file next to the other test data)
"""
import json
import os
import struct
import sys

import torch

assert sys.byteorder == "little"

INF, NAN = float("inf"), float("nan")
TENSORS = [
    ("f32_matrix", torch.tensor([[1, -2.5, 3.25], [0.5, -0.0, 0.001]], dtype=torch.float32)),
    ("f64_vector", torch.tensor([0.1, -1e300, 3.0], dtype=torch.float64)),
    ("f16_cube", torch.tensor([1, -2.5, 65504, 2**-24, INF, NAN, -0.0, 0.5], dtype=torch.float16).reshape(2, 2, 2)),
    ("bf16_scalar", torch.tensor(-2.5, dtype=torch.bfloat16)),
    ("bf16_cube", torch.tensor([0x3f80, -16352, 0x7f7f, 0x0001, -128, 0x7fc0, -32768, 0x3f00],
                               dtype=torch.int16).view(torch.bfloat16).reshape(2, 2, 2)),
    ("i64_vector", torch.tensor([-1, 2**40, 2**63 - 1], dtype=torch.int64)),
    ("i32_matrix", torch.tensor([[-2**31, 0, 7], [1, 2, 3]], dtype=torch.int32)),
    ("f32_scalar", torch.tensor(42.0, dtype=torch.float32)),
    ("empty", torch.zeros(0, 3, dtype=torch.float32)),
]
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32"}
METADATA = {"format": "pt", "source": "heed",
            "text": "pi \u03c0, e-acute \u00e9, \"quoted\", emoji \U0001f642"}


def raw(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def main():
    header = {"__metadata__": METADATA}
    data = b""
    for name, t in TENSORS:
        b = raw(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "safetensors",
                       "fixture.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    print(os.path.normpath(out), 8 + len(h) + len(data), "bytes")


if __name__ == "__main__":
    main()
