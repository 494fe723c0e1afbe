#!/usr/bin/env python3
"""heed -> safetensors -> PyTorch: checks the files test_interop writes with HEED_INTEROP_OUT.

Usage: /usr/bin/python3 tests/interop/roundtrip_check.py DIR   (scripts/interop.sh runs it)

DIR holds, per module and dtype (f32, f64), two files written by test_modules.cpp's round-trip
test case from heed modules with heed's own initialisation:

  <module>_<dtype>.safetensors     heed::save_safetensors(model, path): the state_dict only
  <module>_<dtype>.io.safetensors  "__input__.*" and heed's "__output__.*", PyTorch's shapes

For each pair this builds the PyTorch module with the configuration the C++ test uses, loads
the weights with module.load_state_dict(tensors, strict=True) (every name present, nothing
extra, every shape PyTorch's), runs it in eval mode on the inputs and compares with heed's
outputs: max |PyTorch - heed| <= 1e-5 (float32) or 1e-10 (float64). The files are read by
hand (read_safetensors in modules_reference.py: torch 1.13 has no safetensors module).
Exits 1 on any mismatch, or when DIR holds no files.
"""
import glob
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modules_reference import MLP, read_safetensors  # noqa: E402

D, NHEAD, FF = 8, 2, 16
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def build_and_run(name, i):
    """(module, run) for a round-trip module name; run(m) -> {output name: tensor}."""
    if name == "mlp":
        return MLP(), lambda m: {"y": m(i["x"])}
    if name == "lstm":
        def run(m):
            y, (h_n, c_n) = m(i["x"])
            return {"y": y, "h_n": h_n, "c_n": c_n}
        return nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True), run
    if name == "multihead_attention":
        def run(m):
            y, w = m(i["query"], i["key"], i["value"], key_padding_mask=i["key_padding_mask"].bool())
            return {"y": y, "weights": w}
        return nn.MultiheadAttention(D, NHEAD, batch_first=True), run
    if name == "encoder_layer":
        return (nn.TransformerEncoderLayer(D, NHEAD, FF, dropout=0.1, batch_first=True),
                lambda m: {"y": m(i["src"], src_key_padding_mask=i["src_key_padding_mask"].bool())})
    raise ValueError(f"unknown round-trip module {name!r}")


def check(weights_path, io_path):
    base = os.path.basename(weights_path)[:-len(".safetensors")]
    name, suffix = base.rsplit("_", 1)
    dtype = {"f32": torch.float32, "f64": torch.float64}[suffix]
    weights, metadata = read_safetensors(weights_path)
    io, _ = read_safetensors(io_path)
    assert metadata.get("format") == "pt", f"{base}: metadata {metadata}"
    for n, t in weights.items():
        assert t.dtype == dtype, f"{base}: {n} is {t.dtype}, expected {dtype}"
    inputs = {n[len("__input__."):]: t for n, t in io.items() if n.startswith("__input__.")}
    outputs = {n[len("__output__."):]: t for n, t in io.items() if n.startswith("__output__.")}
    m, run = build_and_run(name, inputs)
    m = m.to(dtype)
    try:
        m.load_state_dict(weights, strict=True)
    except RuntimeError as e:  # missing, unexpected or mis-shaped names, all listed
        print(f"FAIL {base}: load_state_dict(strict=True): {e}")
        return False
    m.eval()  # dropout off; grad enabled, so PyTorch 1.13 takes its ordinary path
    got = run(m)
    assert set(got) == set(outputs), f"{base}: outputs {sorted(got)} vs heed's {sorted(outputs)}"
    ok = True
    for n, want in outputs.items():
        g = got[n].detach()
        if g.shape != want.shape:
            print(f"FAIL {base}.{n}: PyTorch shape {tuple(g.shape)}, heed {tuple(want.shape)}")
            ok = False
            continue
        diff = (g - want).abs().max().item()
        good = diff <= TOL[dtype]
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {base}.{n}: max |PyTorch - heed| = {diff:.3g}"
              f" (tolerance {TOL[dtype]:g}, {len(weights)} tensors loaded strictly)")
    return ok


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    pairs = [(p[:-len(".io.safetensors")] + ".safetensors", p)
             for p in sorted(glob.glob(os.path.join(d, "*.io.safetensors")))]
    if not pairs:
        sys.exit(f"roundtrip_check: no *.io.safetensors files in {d}")
    ok = True
    for w, io in pairs:
        ok &= check(w, io)
    print("round trip: " + ("all outputs match" if ok else "MISMATCH"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
