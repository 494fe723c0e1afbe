# PyTorch's side of bench_transformer: torch.nn.TransformerEncoderLayer(512, 8,
# dim_feedforward=2048, dropout=0, batch_first=True) (ReLU; post-norm, or norm_first=True for
# "prenorm"), float32, batch 8, T tokens, in training mode (no fast path: PyTorch 1.13 takes its
# inference fast path only under no_grad in eval mode, heed has none).
#
#   torch/layer{,_prenorm}/{fwd,fwdbwd}/T:n   fwd under torch.no_grad(); fwdbwd = forward, then
#                                             backward of a fixed random upstream gradient into
#                                             every parameter and the input
#
# Timing and memory as attention_torch.py: one warm-up call (its peak RSS growth is
# peak_extra_MiB), then timed calls until min_time seconds and at least `reps` calls; median.
#   /usr/bin/python3 transformer_torch.py --lens 128,256,512 --threads 1 --out torch.json
import argparse
import json

import torch
import torch.nn as nn

from attention_torch import timed

B, E, H, FF = 8, 512, 8, 2048


def layer_case(T, backward, norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=FF, dropout=0.0, batch_first=True,
                                       norm_first=norm_first)
    x = torch.randn(B, T, E, requires_grad=backward)
    dout = torch.randn(B, T, E)

    def fn():
        if backward:
            out = layer(x)
            layer.zero_grad(set_to_none=True)
            x.grad = None
            out.backward(dout)
        else:
            with torch.no_grad():
                layer(x)
    return fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lens', default='128,256,512')
    ap.add_argument('--out', required=True)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--min-time', type=float, default=0.5)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for T in [int(s) for s in a.lens.split(',')]:
        for backward in (False, True):
            phase = 'fwdbwd' if backward else 'fwd'
            for norm_first, tag in ((False, 'layer'), (True, 'layer_prenorm')):
                name = f'torch/{tag}/{phase}/T:{T}'
                sec, n, extra = timed(layer_case(T, backward, norm_first), a.reps, a.min_time)
                print(f'{name}: median {sec * 1e3:.2f} ms over {n} calls, peak extra {extra:.0f} MiB',
                      flush=True)
                results.append({'name': name, 'seconds': sec, 'calls': n, 'peak_extra_MiB': extra})
    with open(a.out, 'w') as f:
        json.dump({'torch': torch.__version__, 'threads': a.threads, 'results': results}, f, indent=1)


if __name__ == '__main__':
    main()
