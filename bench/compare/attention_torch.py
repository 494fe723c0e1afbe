# PyTorch's side of the attention comparison, at heed's bench_attention shapes: batch 8, 8 heads,
# head dim 64 (embed 512), float32, 2 threads, self-attention with Tq = Tk = T.
#
#   torch/sdpa_math/{fwd,fwdbwd}/T:n   softmax(Q K^T / sqrt(d)) V with matmul on (B, H, T, d):
#                                      torch 1.13 has no fused CPU attention, this is its math
#   torch/mha/{plain,fused}/...        torch.nn.MultiheadAttention(512, 8, batch_first=True),
#                                      need_weights True ("plain") / False (named after the heed
#                                      path it is compared with; torch forms the weights anyway)
#
# Each case: one warm-up call, then timed calls (time.perf_counter) until min_time seconds and at
# least `reps` calls; the median is reported. peak_extra_MiB is measured as in bench_attention:
# peak RSS reset through /proc/self/clear_refs, VmHWM - VmRSS around the warm-up call.
#   /usr/bin/python3 attention_torch.py --lens 128,256 --out torch.json [--reps 5]
#        [--min-time 1.0] [--mem-budget-mib N]
import argparse
import ctypes
import json
import statistics
import time

import torch
import torch.nn as nn

B, H, D = 8, 8, 64
E = H * D


def status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return -1


_libc = ctypes.CDLL('libc.so.6')
# As bench_attention: a fixed mmap threshold (M_MMAP_THRESHOLD = -3) so freed big blocks go back
# to the system, and malloc_trim before each measurement, so no case reuses another's memory.
_libc.mallopt(-3, 128 * 1024)


def peak_extra_mib(fn):
    _libc.malloc_trim(0)
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        fn()
        return -1.0
    before = status_kib('VmRSS:')
    fn()
    return (status_kib('VmHWM:') - before) / 1024.0


def timed(fn, reps, min_time):
    extra = peak_extra_mib(fn)  # also the warm-up
    times = []
    start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - start < min_time and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times), extra


def sdpa_case(T, backward):
    q, k, v, dout = (torch.randn(B, H, T, D) for _ in range(4))
    if backward:
        for t in (q, k, v):
            t.requires_grad_(True)
    scale = D ** -0.5

    def fn():
        out = torch.softmax((q @ k.transpose(-2, -1)) * scale, dim=-1) @ v
        if backward:
            for t in (q, k, v):
                t.grad = None
            out.backward(dout)
    return fn


def mha_case(T, backward, need_weights):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    x = torch.randn(B, T, E, requires_grad=backward)
    dout = torch.randn(B, T, E)

    def fn():
        if backward:
            out, _ = mha(x, x, x, need_weights=need_weights)
            mha.zero_grad(set_to_none=True)
            x.grad = None
            out.backward(dout)
        else:
            with torch.no_grad():
                mha(x, x, x, need_weights=need_weights)
    return fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lens', default='128,256,512,1024,2048,4096')
    ap.add_argument('--out', required=True)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--min-time', type=float, default=1.0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--mem-budget-mib', type=float, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    budget = a.mem_budget_mib
    if budget <= 0:
        with open('/proc/meminfo') as f:
            avail = next(int(l.split()[1]) for l in f if l.startswith('MemAvailable:'))
        budget = avail / 1024 / 2
    results = []
    for T in [int(s) for s in a.lens.split(',')]:
        weights_mib = B * H * T * T * 4 / 2**20
        for backward in (False, True):
            phase = 'fwdbwd' if backward else 'fwd'
            # scores, probabilities and (backward) their gradients: ~3-4 (B, H, T, T) tensors
            need = weights_mib * (4 if backward else 2)
            cases = [(f'torch/sdpa_math/{phase}/T:{T}', lambda: sdpa_case(T, backward)),
                     (f'torch/mha/plain/{phase}/T:{T}', lambda: mha_case(T, backward, True)),
                     (f'torch/mha/fused/{phase}/T:{T}', lambda: mha_case(T, backward, False))]
            for name, make in cases:
                if need > budget:
                    print(f'{name}: skipped, needs ~{need:.0f} MiB, budget {budget:.0f} MiB', flush=True)
                    results.append({'name': name, 'skipped': True})
                    continue
                reps = a.reps if T < 2048 else min(a.reps, 3)
                sec, n, extra = timed(make(), reps, a.min_time if T < 2048 else 0)
                print(f'{name}: median {sec * 1e3:.2f} ms over {n} calls, peak extra {extra:.0f} MiB',
                      flush=True)
                results.append({'name': name, 'seconds': sec, 'calls': n, 'peak_extra_MiB': extra})
    with open(a.out, 'w') as f:
        json.dump({'torch': torch.__version__, 'threads': a.threads, 'results': results}, f, indent=1)


if __name__ == '__main__':
    main()
