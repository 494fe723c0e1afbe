#!/usr/bin/env python3
"""Writes the torch.save fixtures under tests/data/torch/, read by tests/io/test_torch_file.cpp.

torch (1.13, /usr/bin/python3) writes the files with torch.save, so the reader is checked
against PyTorch's own writer; the values are set explicitly (no random init), so the C++ test
states them as formulas and literals. Re-running the script gives the same bytes: torch's zip
writer stores no timestamps, the hand-made zips use a fixed date, and the legacy file's storage
keys (memory addresses) are replaced by "0".

  module.pt      Net().state_dict(): fc (Linear 3 -> 2) and norm (LayerNorm 2), with _metadata
                   fc.weight   F32 (2, 3)  arange(6) / 4 - 0.5
                   fc.bias     F32 (2,)    0.25, -0.75
                   norm.weight F32 (2,)    1.5, -2
                   norm.bias   F32 (2,)    0.125, 0
  params.pt      dict(Net().named_parameters()): the same four, as Parameters
  dtypes.pt      f32 (3,) 1, -2.5, 3.25 | f64 (3,) 0.1, -1e300, 3 | f16 (2, 4) 1, -2.5, 65504,
                 2**-24, inf, nan, -0, 0.5 | bf16 (2, 4) the same bits as the safetensors fixture's
                 bf16_cube | i64 (3,) -1, 2**40, 2**63 - 1 | i32 (2, 3) -2**31, 0, 7, 1, 2, 3 |
                 scalar F32 () 42 | empty F32 (0, 3)
  views.pt       a = arange(24.).reshape(4, 6); {'a': a, 'row': a[2], 'rows': a[1:3],
                 'col': a[:, 1], 't': a.t(), 'exp': ones(1).expand(5)}: one storage for a and its
                 views (row and rows contiguous at offsets 12 and 6; col, t strided), another for exp
                 (stride 0)
  checkpoint.pt  {'model': module.pt's state_dict, 'optimizer': SGD(momentum=0.9).state_dict()
                 after one step with every gradient 0.5 (state {0: {'momentum_buffer': ...}, ...},
                 param_groups [...]), 'epoch': 3, 'lr': 0.1, 'name': 'x', 'flags': [True, None]}
  newer.pt       views.pt's entries plus byteorder ("little") and .data/serialization_id, as
                 newer torch writes them (Python's zipfile, stored)
  zip64_forced.pt views.pt rewritten by Python's zipfile with force_zip64 (zip64 local headers)
  zip64_full.pt  views.pt rewritten by hand with every central field saturated (0xffffffff) and
                 given in zip64 extra fields, and a zip64 end record and locator
  legacy.pt      torch.save({'a': ones(2)}, _use_new_zipfile_serialization=False)
  hostile_system.pt, hostile_eval.pt  valid torch zips (views.pt's entries) whose data.pkl calls
                 posix.system / builtins.eval to create /tmp/heed_torch_hostile_ran: torch.load
                 would run it; the reader must refuse the GLOBAL by name before anything happens

Run: /usr/bin/python3 tests/io/torch_fixture.py
"""
import copy
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch

assert sys.byteorder == "little"

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "torch"))
MARKER = "/tmp/heed_torch_hostile_ran"
DATE = (1980, 1, 1, 0, 0, 0)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.norm = torch.nn.LayerNorm(2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.arange(6.0).reshape(2, 3) / 4 - 0.5)
            self.fc.bias.copy_(torch.tensor([0.25, -0.75]))
            self.norm.weight.copy_(torch.tensor([1.5, -2.0]))
            self.norm.bias.copy_(torch.tensor([0.125, 0.0]))


def path(name):
    return os.path.join(OUT, name)


def entries(name):
    """A torch zip's entries in order, (name, bytes)."""
    with zipfile.ZipFile(path(name)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def rename(es, prefix):
    return [(prefix + n[n.index("/"):], b) for n, b in es]


def write_zipfile(name, es, force_zip64=False):
    with zipfile.ZipFile(path(name), "w", zipfile.ZIP_STORED) as z:
        for n, b in es:
            zi = zipfile.ZipInfo(n, DATE)
            zi.compress_type = zipfile.ZIP_STORED
            with z.open(zi, "w", force_zip64=force_zip64) as f:
                f.write(b)


def write_zip64_full(name, es):
    """Every size and offset in the central directory saturated and given in a zip64 extra
    field; the local headers too; a zip64 end record and locator before the end record."""
    out = b""
    cd = b""
    for n, b in es:
        nb = n.encode()
        crc = zlib.crc32(b)
        off = len(out)
        lextra = struct.pack("<HHQQ", 1, 16, len(b), len(b))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(nb), len(lextra)) + nb + lextra + b
        cextra = struct.pack("<HHQQQ", 1, 24, len(b), len(b), off)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(nb), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + nb + cextra
    cd_off = len(out)
    out += cd
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(es), len(es), len(cd), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path(name), "wb") as f:
        f.write(out)


def hostile(name, module, func, arg):
    """A valid torch zip whose data.pkl would call module.func(arg) when unpickled."""
    pkl = (b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01c" + module + b"\n" + func + b"\nq\x02X" +
           struct.pack("<I", len(arg)) + arg + b"\x85R" + b"s.")
    es = [(n, pkl if n.endswith("/data.pkl") else b) for n, b in rename(entries("views.pt"), name[:-3])]
    write_zipfile(name, es)


def legacy():
    torch.save({"a": torch.ones(2)}, path("legacy.pt"), _use_new_zipfile_serialization=False)
    with open(path("legacy.pt"), "rb") as f:
        b = f.read()
    # The storage key is str(storage._cdata), an address: replace each BINUNICODE of it by "0".
    import re
    keys = set(re.findall(rb"X(.\x00\x00\x00)([0-9]{6,})", b, re.S))
    for ln, k in keys:
        assert struct.unpack("<I", ln)[0] == len(k)
        b = b.replace(b"X" + ln + k, b"X\x01\x00\x00\x000")
    with open(path("legacy.pt"), "wb") as f:
        f.write(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    net = Net()
    torch.save(net.state_dict(), path("module.pt"))
    torch.save(dict(net.named_parameters()), path("params.pt"))

    inf, nan = float("inf"), float("nan")
    torch.save({
        "f32": torch.tensor([1, -2.5, 3.25]),
        "f64": torch.tensor([0.1, -1e300, 3.0], dtype=torch.float64),
        "f16": torch.tensor([1, -2.5, 65504, 2**-24, inf, nan, -0.0, 0.5], dtype=torch.float16).reshape(2, 4),
        "bf16": torch.tensor([0x3f80, -16352, 0x7f7f, 0x0001, -128, 0x7fc0, -32768, 0x3f00],
                             dtype=torch.int16).view(torch.bfloat16).reshape(2, 4),
        "i64": torch.tensor([-1, 2**40, 2**63 - 1], dtype=torch.int64),
        "i32": torch.tensor([[-2**31, 0, 7], [1, 2, 3]], dtype=torch.int32),
        "scalar": torch.tensor(42.0),
        "empty": torch.zeros(0, 3),
    }, path("dtypes.pt"))

    a = torch.arange(24.0).reshape(4, 6)
    torch.save({"a": a, "row": a[2], "rows": a[1:3], "col": a[:, 1], "t": a.t(),
                "exp": torch.ones(1).expand(5)}, path("views.pt"))

    sd = copy.deepcopy(net.state_dict())  # keeps _metadata
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.5)
    opt.step()
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3, "lr": 0.1, "name": "x",
                "flags": [True, None]}, path("checkpoint.pt"))

    views = entries("views.pt")
    write_zipfile("newer.pt", rename(views, "newer") + [("newer/byteorder", b"little"),
                                                        ("newer/.data/serialization_id", b"0123456789")])
    write_zipfile("zip64_forced.pt", rename(views, "zip64_forced"), force_zip64=True)
    write_zip64_full("zip64_full.pt", rename(views, "zip64_full"))
    legacy()
    hostile("hostile_system.pt", b"posix", b"system", b"touch " + MARKER.encode())
    hostile("hostile_eval.pt", b"builtins", b"eval", b"open('" + MARKER.encode() + b"', 'w')")

    # Each file loads back in torch (the hostile ones are not loaded, and legacy.pt's key rename
    # is checked too).
    for n in ["module.pt", "params.pt", "dtypes.pt", "views.pt", "checkpoint.pt", "newer.pt",
              "zip64_forced.pt", "zip64_full.pt", "legacy.pt"]:
        torch.load(path(n))
    assert torch.equal(torch.load(path("zip64_full.pt"))["t"], a.t())
    total = 0
    for n in sorted(os.listdir(OUT)):
        total += os.path.getsize(path(n))
        print(n, os.path.getsize(path(n)))
    print(OUT, total, "bytes")


if __name__ == "__main__":
    main()
