# Collects run.sh's outputs into one table (printed), bench/compare/results.md and
# docs/compare_attention.svg.
#   /usr/bin/python3 report.py OUTDIR RESULTS_MD SVG
# OUTDIR holds heed_attention.json (Google Benchmark JSON), torch_attention.json,
# mnist_<side>.log / mnist_<side>.time (stdout and /usr/bin/time -v) for side in
# heed, torch_article, torch_preloaded, and meta.txt (key=value lines). From
# bench/compare/libtorch.sh (each optional: a missing file is reported as not measured):
# libtorch_{attention,transformer}_t{1,2}.json, mnist_libtorch_t{1,2}.{log,time},
# mnist_libtorch_{cnn,attention}.{log,time}, the contention runs mnist_{libtorch_load_t1,
# libtorch_load_t2,heed_load_default,heed_load_t1}.{log,time}, libtorch_load.txt; and
# heed_peak.json (Google Benchmark JSON with fma_peak/threads:N and a GFLOPS counter).
import json
import math
import os
import re
import sys

out_dir, md_path, svg_path = sys.argv[1:4]

# (label, heed benchmark prefix, torch prefix, colour)
PAIRS = [
    ('SDPA plain', 'attention/scaled', 'torch/sdpa_math', '#1f77b4'),
    ('SDPA fused', 'attention/fused', 'torch/sdpa_math', '#2ca02c'),
    ('MHA need_weights', 'mha/plain', 'torch/mha/plain', '#d62728'),
    ('MHA no weights', 'mha/fused', 'torch/mha/fused', '#9467bd'),
]


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ''


meta = dict(l.split('=', 1) for l in read(os.path.join(out_dir, 'meta.txt')).splitlines() if '=' in l)

# ---- heed: median (or single) real time in ms per benchmark name ---------------------------
heed = {}
try:
    hj = json.load(open(os.path.join(out_dir, 'heed_attention.json')))
except (OSError, ValueError):
    hj = {'benchmarks': []}
unit = {'ns': 1e-6, 'us': 1e-3, 'ms': 1.0, 's': 1e3}
for b in hj['benchmarks']:
    if b.get('run_type') == 'aggregate' and b.get('aggregate_name') != 'median':
        continue
    name = re.sub(r'/iterations:\d+', '', b.get('run_name', b['name']).replace('/real_time', ''))
    if b.get('error_occurred'):
        heed[name] = {'skipped': b.get('error_message', 'skipped')}
        continue
    heed[name] = {'ms': b['real_time'] * unit[b.get('time_unit', 'ns')],
                  'flops': b.get('FLOP/s'), 'peak': b.get('peak_extra_MiB'),
                  'within': b.get('within_64MiB')}

torch = {}
try:
    for r in json.load(open(os.path.join(out_dir, 'torch_attention.json')))['results']:
        torch[r['name']] = r
except (OSError, ValueError):
    pass



def load_results(name):  # attention_torch / transformer_torch JSON (Python or libtorch) by name
    try:
        return {r['name']: r for r in json.load(open(os.path.join(out_dir, name)))['results']}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# libtorch (bench/compare/libtorch.sh): 1 and 2 threads; `lbest` picks the faster per case
lt_att = {t: load_results(f'libtorch_attention_t{t}.json') for t in (1, 2)}
lt_tr = {t: load_results(f'libtorch_transformer_t{t}.json') for t in (1, 2)}


def lt_ms(res, name):  # ms of one libtorch case, None when skipped or not run
    r = res.get(name, {})
    return r['seconds'] * 1e3 if 'seconds' in r else None


def lbest(results, name):  # (ms, threads) of the faster of libtorch's 1 and 2 thread runs
    got = [(lt_ms(results[t], name), t) for t in (1, 2) if lt_ms(results[t], name) is not None]
    return min(got) if got else (None, None)


lt_load = dict(l.split(' ', 1) for l in read(os.path.join(out_dir, 'libtorch_load.txt')).splitlines() if ' ' in l)

# ---- heed: MNIST epoch vs its GEMM bound (bench_mnist_epoch) -------------------------------
epoch = {}
try:
    ej = json.load(open(os.path.join(out_dir, 'heed_mnist_epoch.json')))
except (OSError, ValueError):
    ej = {'benchmarks': []}
for b in ej['benchmarks']:
    if b.get('run_type') == 'aggregate' and b.get('aggregate_name') != 'median':
        continue
    # epoch/threads:T/shards:2 (mnist_mlp's default shards) and the faster gemm_bound/<backend>/threads:T
    name = b.get('run_name', b['name'])
    ms = b['real_time'] * unit[b.get('time_unit', 'ns')]
    mm = re.match(r'epoch/threads:(\d+)/shards:2(/|$)', name)
    mg = re.match(r'gemm_bound/\w+/threads:(\d+)', name)
    if b.get('error_occurred'):
        continue
    if mm:
        epoch[('MnistEpoch', int(mm.group(1)))] = ms
    elif mg:
        key = ('GemmBound', int(mg.group(1)))
        epoch[key] = min(ms, epoch.get(key, ms))

lens = sorted({int(m.group(1)) for n in list(heed) + list(torch) + list(lt_att[1]) + list(lt_att[2]) for m in [re.search(r'/T:(\d+)$', n)] if m})


def fmt_ms(v):
    return '—' if v is None else (f'{v:.0f}' if v >= 100 else f'{v:.2f}' if v < 10 else f'{v:.1f}')


def fmt_mib(v):
    return '—' if v is None or v < 0 else f'{v:.0f}'


# ---- MNIST -------------------------------------------------------------------------------
def mnist(side):
    log, tv = read(os.path.join(out_dir, f'mnist_{side}.log')), read(os.path.join(out_dir, f'mnist_{side}.time'))
    acc = re.findall(r'Accuracy: ([\d.]+)%', log)
    train = re.findall(r'Training time: ([\d.]+) s', log)
    wall = re.search(r'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)', tv)
    rss = re.search(r'Maximum resident set size \(kbytes\): (\d+)', tv)
    status = re.search(r'Exit status: (\d+)', tv)
    secs = None
    if wall:
        parts = [float(p) for p in wall.group(1).split(':')]
        secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {'acc': float(acc[-1]) if acc else None, 'train': float(train[-1]) if train else None,
            'wall': secs, 'rss': int(rss.group(1)) / 1024 if rss else None,
            'status': status.group(1) if status else '?'}


sides = [('heed `examples/mnist_mlp --threads 2`', 'heed'),
         ('heed `examples/mnist_mlp --threads 1`', 'heed_t1'),
         ('PyTorch, the article as written (torchvision + DataLoader)', 'torch_article'),
         ('PyTorch, pre-loaded tensors', 'torch_preloaded'),
         ('libtorch C++ `mnist_mlp_torch --threads 1` (pre-loaded tensors)', 'libtorch_t1'),
         ('libtorch C++ `mnist_mlp_torch --threads 2` (pre-loaded tensors)', 'libtorch_t2')]
m = {k: mnist(k) for _, k in sides}


def ratio(a, b):
    return '—' if a is None or b is None or b == 0 else f'{a / b:.2f}'


lines = []
lines.append('# heed vs PyTorch')
lines.append('')
lines.append(f"Generated by `bench/compare/run.sh{' --quick' if meta.get('quick') == '1' else ''}` on "
             f"{meta.get('date', '?')}; {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores, "
             f"load average before the run {meta.get('load', '?')}, after {meta.get('load_after', '?')}. "
             f"PyTorch {meta.get('torch', '?')} (OpenBLAS), 2 threads on both sides, float32. "
             'Ratios are heed / PyTorch: below 1 means heed is faster.')
if meta.get('note'):
    lines.append('')
    lines.append(f"Note: {meta['note']}")
lines.append('')
# ---- the targets of issue #4, each with its measured value ----------------------------------
def best(names):  # fastest measured (ms, name) among benchmark results
    got = [(v['ms'], n) for n, v in names if v and 'ms' in v]
    return min(got) if got else (None, None)


def tbest(names):
    got = [(torch[n]['seconds'] * 1e3, n) for n in names if 'seconds' in torch.get(n, {})]
    return min(got) if got else (None, None)


def verdict(ok):
    return '—' if ok is None else ('**met**' if ok else '**missed**')


targets = []
hm, tm = m['heed'], m['torch_preloaded']
sp = tm['wall'] / hm['wall'] if hm['wall'] and tm['wall'] else None
targets.append((f"MNIST, {meta.get('epochs', '?')} epoch(s), whole process: heed >= 5x faster than PyTorch pre-loaded",
                '—' if sp is None else f'{sp:.1f}x', verdict(None if sp is None else sp >= 5)))
torch_accs = [r['acc'] for k, r in m.items() if not k.startswith('heed') and r['acc'] is not None]
acc_ok = None if hm['acc'] is None or not torch_accs else hm['acc'] >= min(torch_accs) - 0.3
targets.append(('MNIST test accuracy in PyTorch\'s range (>= its lower run - 0.3 points)',
                '—' if hm['acc'] is None else f"{hm['acc']:.2f}% (PyTorch {', '.join('%.2f%%' % a for a in torch_accs)})",
                verdict(acc_ok)))
targets.append(('MNIST example peak memory < 150 MiB', f"{fmt_mib(hm['rss'])} MiB",
                verdict(None if hm['rss'] is None else hm['rss'] < 150)))
for th in (2, 1):
    e, g = epoch.get(('MnistEpoch', th)), epoch.get(('GemmBound', th))
    if e and g:
        targets.append((f'MNIST epoch within 1.5x of the GEMM-only bound, {th} thread(s)',
                        f'{e:.0f} ms vs {g:.0f} ms = {e / g:.2f}x', verdict(e / g <= 1.5)))
for T in lens:
    for label, hps, tps in (('scaled dot-product', ['attention/scaled', 'attention/fused'], ['torch/sdpa_math']),
                            ('MultiheadAttention', ['mha/plain', 'mha/fused'], ['torch/mha/plain', 'torch/mha/fused'])):
        hb, hn = best([(n, heed.get(f'{n}/fwdbwd/T:{T}')) for n in hps])
        tb, tn = tbest([f'{n}/fwdbwd/T:{T}' for n in tps])
        if hb is None:
            continue
        if tb is None:
            val, ok = f'heed {fmt_ms(hb)} ms ({hn}); PyTorch skipped (memory budget)', None
        else:
            val, ok = f'{tb / hb:.2f}x (heed {hn} {fmt_ms(hb)} ms, PyTorch {fmt_ms(tb)} ms)', tb / hb >= 1.5
        targets.append((f'{label} fwd+bwd, T = {T}: heed\'s fastest path >= 1.5x faster', val, verdict(ok)))
fused_mem = [(T, heed[f'attention/fused/fwdbwd/T:{T}']['peak']) for T in lens
             if heed.get(f'attention/fused/fwdbwd/T:{T}', {}).get('peak') is not None]
if len(fused_mem) >= 2:
    (t0, p0), (t1, p1) = fused_mem[0], fused_mem[-1]
    per_k = ', '.join(f'{p / T * 1024:.1f}' for T, p in fused_mem)
    targets.append(('fused path memory linear in T (MiB per 1024 tokens at each T stays flat, within 1.25x)',
                    per_k, verdict(p1 / t1 <= 1.25 * p0 / t0)))
lines.append('## Targets')
lines.append('')
lines.append('| target | measured | |')
lines.append('|---|---|---|')
for name, val, ok in targets:
    lines.append(f'| {name} | {val} | {ok} |')
lines.append('')
targets15_at = len(lines)  # the libtorch targets (issue #15) go here, built once all is read
lines.append(f"## MNIST classifier, {meta.get('epochs', '?')} epoch(s), whole process")
lines.append('')
lines.append('| run | wall s | training s | peak RSS MiB | test accuracy | exit |')
lines.append('|---|---:|---:|---:|---:|---:|')
for label, k in sides:
    r = m[k]
    lines.append(f"| {label} | {fmt_ms(r['wall'])} | {fmt_ms(r['train'])} | {fmt_mib(r['rss'])} | "
                 f"{'—' if r['acc'] is None else '%.2f%%' % r['acc']} | {r['status']} |")
lines.append('')
lines.append(f"Wall-time ratio heed / article: {ratio(m['heed']['wall'], m['torch_article']['wall'])}; "
             f"heed / pre-loaded: {ratio(m['heed']['wall'], m['torch_preloaded']['wall'])}. "
             f"Peak RSS ratio heed / article: {ratio(m['heed']['rss'], m['torch_article']['rss'])}. "
             f"heed / libtorch 1 thread: {ratio(m['heed']['wall'], m['libtorch_t1']['wall'])}, "
             f"2 threads: {ratio(m['heed']['wall'], m['libtorch_t2']['wall'])} (libtorch: "
             '`bench/compare/libtorch/mnist_mlp_torch`, the pre-loaded PyTorch script in C++).')
lines.append('')
# ---- the conv net of examples/mnist_cnn (bench/compare/cnn.sh) -------------------------------
def epoch_times(name):
    log = read(os.path.join(out_dir, f'{name}.log'))
    return [float(t) for t in re.findall(r'^Epoch \[\d+/\d+\], Loss: [\d.]+, Time: ([\d.]+) s', log, re.M)]


lines.append("## MNIST conv net (examples/mnist_cnn: conv32-3x3, conv64-3x3, max-pool, dense 128), 2 threads")
lines.append('')
lines.append('PyTorch runs `bench/compare/mnist_cnn_torch.py`, the same network and recipe; its convolutions go '
             'through oneDNN.')
lines.append('')
lines.append('libtorch runs `bench/compare/libtorch/mnist_cnn_torch`, the same script in C++ (also oneDNN).')
lines.append('')
lines.append('| model | heed s/epoch | PyTorch s/epoch | ratio | libtorch s/epoch | heed / libtorch | heed accuracy | '
             'PyTorch accuracy | libtorch accuracy | heed MiB | PyTorch MiB | libtorch MiB |')
lines.append('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
cnn_epoch = {}
for model in ('cnn', 'attention'):
    r = {}
    for side in ('heed', 'torch', 'libtorch'):
        name = f'mnist_{side}_{model}'
        ts = epoch_times(name)
        tv = read(os.path.join(out_dir, f'{name}.time'))
        acc = re.findall(r'Accuracy: ([\d.]+)%', read(os.path.join(out_dir, f'{name}.log')))
        rss = re.search(r'Maximum resident set size \(kbytes\): (\d+)', tv)
        r[side] = (sum(ts) / len(ts) if ts else None, f'{acc[-1]}%' if acc else '—',
                   int(rss.group(1)) / 1024 if rss else None)
    (he, ha, hm), (te, ta, tm), (le, la, lm) = r['heed'], r['torch'], r['libtorch']
    cnn_epoch[model] = (he, le)
    lines.append(f'| {model} | {fmt_ms(he)} | {fmt_ms(te)} | {ratio(he, te)} | {fmt_ms(le)} | {ratio(he, le)} | '
                 f'{ha} | {ta} | {la} | {fmt_mib(hm)} | {fmt_mib(tm)} | {fmt_mib(lm)} |')
lines.append('')
lines.append('## Attention, batch 8, 8 heads, head dim 64 (embed 512), self-attention, times in ms (median)')
lines.append('')
lines.append('`bound` is heed\'s FLOP/s as a fraction of `gemm_bound` (the plain path\'s matrix products '
             'alone, plain Eigen) in the same run (SDPA rows only; above 100% means the bound itself was '
             'slowed, e.g. by other load, or the fused kernel\'s cache-sized tiles beat the big products). Peak extra memory is measured (VmHWM after resetting '
             'it, minus VmRSS before) around one call on fresh objects. PyTorch 1.13 has no fused CPU '
             'attention: both heed paths of scaled dot-product attention are compared with its matmul + '
             'softmax + matmul, and torch.nn.MultiheadAttention forms the weights whatever need_weights says.')
lines.append('')
lines.append('libtorch: `bench/compare/libtorch/attention_torch` (the same cases through the C++ API, no '
             'interpreter); `libtorch best` is the faster of its 1- and 2-thread runs (threads in brackets), '
             '`heed / lt` the ratio against it.')
lines.append('')
lines.append('| path | pass | T | heed ms | PyTorch ms | ratio | libtorch best ms | heed / lt | libtorch 2 thr ms | '
             'heed bound | heed peak MiB | PyTorch peak MiB | libtorch peak MiB |')
lines.append('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
table_rows = []
for label, hp, tp, _ in PAIRS:
    for phase in ('fwd', 'fwdbwd'):
        for T in lens:
            h = heed.get(f'{hp}/{phase}/T:{T}')
            t = torch.get(f'{tp}/{phase}/T:{T}')
            ltn = f"lib{tp}/{phase}/T:{T}"  # torch/... -> libtorch/...
            lb, lbt = lbest(lt_att, ltn)
            l2 = lt_att[2].get(ltn)
            if h is None and t is None and lb is None and l2 is None:
                continue
            g = heed.get(f'gemm_bound/{phase}/T:{T}')
            hms = h.get('ms') if h else None
            tms = t.get('seconds') * 1e3 if t and 'seconds' in t else None
            # MHA's FLOP/s include its projections, which gemm_bound does not: no bound column there
            bound = (f"{h['flops'] / g['flops']:.0%}" if hp.startswith('attention/') and h and g
                     and h.get('flops') and g.get('flops') else '—')
            hs = 'skipped' if h and 'skipped' in h else fmt_ms(hms)
            ts = 'skipped' if t and t.get('skipped') else fmt_ms(tms)
            lbs = f'{fmt_ms(lb)} ({lbt})' if lb is not None else ('skipped' if l2 and l2.get('skipped') else '—')
            l2s = 'skipped' if l2 and l2.get('skipped') else fmt_ms(lt_ms(lt_att[2], ltn))
            lpk = (lt_att[lbt] if lbt else lt_att[2]).get(ltn, {}).get('peak_extra_MiB')
            lines.append(f"| {label} | {phase} | {T} | {hs} | {ts} | {ratio(hms, tms)} | {lbs} | {ratio(hms, lb)} | "
                         f"{l2s} | {bound} | {fmt_mib(h.get('peak') if h else None)} | "
                         f"{fmt_mib(t.get('peak_extra_MiB') if t else None)} | {fmt_mib(lpk)} |")
            table_rows.append((label, phase, T, hms, tms))
big = heed.get('fused_single_head_16k/fwdbwd')
lines.append('')
if big and 'ms' in big:
    lines.append(f"Single head, Tq = Tk = 16384, d = 64, fused forward + backward: {big['ms'] / 1e3:.1f} s, "
                 f"peak extra memory {big['peak']:.1f} MiB (limit 64 MiB: "
                 f"{'met' if big.get('within') else 'NOT met'}); the plain path would keep a 1024 MiB "
                 'weight matrix.')
else:
    lines.append('Single head, Tq = Tk = 16384 fused run: not run (`--quick`) or failed.')
# ---- TransformerEncoderLayer, 1 thread (bench_transformer, transformer_torch.py) ------------
def bench_ms(path):  # Google Benchmark JSON -> {name: {'ms', 'cpu_ms', 'peak', 'vs_gemm'}}
    try:
        j = json.load(open(path))
    except (OSError, ValueError):
        return {}
    r = {}
    for b in j['benchmarks']:
        if b.get('run_type') == 'aggregate' and b.get('aggregate_name') != 'median':
            continue
        if b.get('error_occurred'):
            continue
        name = re.sub(r'/(iterations|min_time):[\d.]+', '', b.get('run_name', b['name']).replace('/real_time', ''))
        u = unit[b.get('time_unit', 'ns')]
        r[name] = {'ms': b['real_time'] * u, 'cpu_ms': b['cpu_time'] * u,
                   'peak': b.get('peak_extra_MiB'), 'vs_gemm': b.get('vs_gemm')}
    return r


htr = bench_ms(os.path.join(out_dir, 'heed_transformer.json'))
ttr = {}
try:
    for r in json.load(open(os.path.join(out_dir, 'torch_transformer.json')))['results']:
        ttr[r['name']] = r
except (OSError, ValueError):
    pass
if htr or ttr or lt_tr[1] or lt_tr[2]:
    tr_lens = sorted({int(mm.group(1)) for n in list(htr) + list(ttr) + list(lt_tr[1]) + list(lt_tr[2])
                      for mm in [re.search(r'/T:(\d+)$', n)] if mm})
    lines.append('')
    lines.append('## TransformerEncoderLayer(512, 8 heads, ff 2048, dropout 0), batch 8, 1 thread, times in ms')
    lines.append('')
    lines.append('heed `bench_transformer` (`vs_gemm`: its time over the same matrix products in plain Eigen, '
                 'timed in the same process) against `torch.nn.TransformerEncoderLayer(batch_first=True)` in '
                 'training mode (`transformer_torch.py`); post-norm (`layer`, the default) and `norm_first` '
                 '(`layer_prenorm`). Peak extra memory as above. libtorch: '
                 '`bench/compare/libtorch/transformer_torch`, `torch::nn::TransformerEncoderLayer` (the C++ API '
                 'has no batch_first: inputs are transposed around it; no norm_first: the pre-norm layer is '
                 'composed from the same modules), at 1 thread (`lt 1`, the ratio is heed / it) and 2 threads.')
    lines.append('')
    lines.append('| layer | pass | T | heed ms | PyTorch ms | ratio | libtorch 1 thr ms | heed / lt 1 | libtorch 2 thr ms | '
                 'heed vs_gemm | heed peak MiB | PyTorch peak MiB | libtorch peak MiB |')
    lines.append('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for tag in ('layer', 'layer_prenorm'):
        for phase in ('fwd', 'fwdbwd'):
            for T in tr_lens:
                h, t = htr.get(f'{tag}/{phase}/T:{T}'), ttr.get(f'torch/{tag}/{phase}/T:{T}')
                ltn = f'libtorch/{tag}/{phase}/T:{T}'
                l1, l2 = lt_ms(lt_tr[1], ltn), lt_ms(lt_tr[2], ltn)
                if h is None and t is None and ltn not in lt_tr[1] and ltn not in lt_tr[2]:
                    continue
                hms = h['ms'] if h else None
                tms = t['seconds'] * 1e3 if t and 'seconds' in t else None
                vg = f"{h['vs_gemm']:.2f}" if h and h.get('vs_gemm') else '—'
                l1s = 'skipped' if lt_tr[1].get(ltn, {}).get('skipped') else fmt_ms(l1)
                l2s = 'skipped' if lt_tr[2].get(ltn, {}).get('skipped') else fmt_ms(l2)
                lines.append(f"| {tag} | {phase} | {T} | {fmt_ms(hms)} | {fmt_ms(tms)} | {ratio(hms, tms)} | {l1s} | "
                             f"{ratio(hms, l1)} | {l2s} | {vg} | {fmt_mib(h.get('peak') if h else None)} | "
                             f"{fmt_mib(t.get('peak_extra_MiB') if t else None)} | "
                             f"{fmt_mib(lt_tr[1].get(ltn, {}).get('peak_extra_MiB'))} |")
# ---- one core busy (bench/compare/libtorch.sh contention) -------------------------------------
def mean_epoch(name):
    ts = epoch_times(name)
    return sum(ts) / len(ts) if ts else None


load_sides = [('heed `mnist_mlp` (default threads)', 'heed_load_default'),
              ('heed `mnist_mlp --threads 1`', 'heed_load_t1'),
              ('libtorch `mnist_mlp_torch --threads 1`', 'libtorch_load_t1'),
              ('libtorch `mnist_mlp_torch --threads 2`', 'libtorch_load_t2')]
ml = {k: mnist(k) for _, k in load_sides}
if any(r['wall'] is not None for r in ml.values()):
    lines.append('')
    lines.append('## MNIST classifier with one core busy (another CPU-bound process), 3 epochs, whole process')
    lines.append('')
    lines.append('`bench/compare/libtorch.sh contention`: a spinning shell loop holds one core for the whole run.')
    lines.append('')
    lines.append('| run | wall s | training s | mean epoch s | test accuracy | load before |')
    lines.append('|---|---:|---:|---:|---:|---|')
    for label, k in load_sides:
        r = ml[k]
        lines.append(f"| {label} | {fmt_ms(r['wall'])} | {fmt_ms(r['train'])} | {fmt_ms(mean_epoch('mnist_' + k))} | "
                     f"{'—' if r['acc'] is None else '%.2f%%' % r['acc']} | {lt_load.get('mnist_' + k, '—')} |")
if lt_load:
    lines.append('')
    lines.append('Load average (1, 5, 15 min) before each libtorch.sh step: ' +
                 '; '.join(f'{k} {v}' for k, v in lt_load.items()) + '.')

# ---- the targets of issue #15, each met / missed / not measured ------------------------------
NM = 'not measured'


def verdict15(ok):
    return NM if ok is None else ('**met**' if ok else '**missed**')


t15 = []
hm = m['heed']
heed_runs = [(r['wall'], k) for k, r in (('heed --threads 2', m['heed']), ('heed --threads 1', m['heed_t1']))
             if r['wall'] is not None]
# the target counts 10 epochs: a --quick run (1 epoch) cannot meet or miss it
t15.append(('MNIST, 10 epochs, whole process, heed (its faster thread count) on the idle machine: <= 5 s',
            NM if not heed_runs else f"{min(heed_runs)[0]:.2f} s ({min(heed_runs)[1]}, {meta.get('epochs', '?')} epoch(s))",
            verdict15(None if not heed_runs or meta.get('epochs') != '10' else min(heed_runs)[0] <= 5)))
lt_runs = [(m[k]['wall'], f'libtorch --threads {k[-1]}') for k in ('libtorch_t1', 'libtorch_t2') if m[k]['wall'] is not None]
if heed_runs and lt_runs:
    (hw, hk), (lw, lk) = min(heed_runs), min(lt_runs)
    t15.append(('MNIST whole process: heed >= 3x faster than libtorch, each at its best thread count',
                f'{lw / hw:.2f}x ({hk} {hw:.2f} s, {lk} {lw:.2f} s)', verdict15(lw / hw >= 3)))
else:
    t15.append(('MNIST whole process: heed >= 3x faster than libtorch, each at its best thread count', NM, NM))
t15.append(('MNIST heed peak memory <= 150 MiB', NM if hm['rss'] is None else f"{hm['rss']:.0f} MiB",
            verdict15(None if hm['rss'] is None else hm['rss'] <= 150)))
hd, h1 = ml['heed_load_default']['wall'], ml['heed_load_t1']['wall']
t15.append(('One core busy: heed default threads within 1.25x of heed --threads 1',
            NM if hd is None or h1 is None else f'{hd / h1:.2f}x ({hd:.2f} s vs {h1:.2f} s)',
            verdict15(None if hd is None or h1 is None else hd / h1 <= 1.25)))
ll = [(ml[k]['wall'], k[-1]) for k in ('libtorch_load_t1', 'libtorch_load_t2') if ml[k]['wall'] is not None]
t15.append(('One core busy: heed default not slower than libtorch at its best under the same load',
            NM if hd is None or not ll else f'heed {hd:.2f} s, libtorch {min(ll)[0]:.2f} s ({min(ll)[1]} thread(s))',
            verdict15(None if hd is None or not ll else hd <= min(ll)[0])))
e1, e2 = epoch.get(('MnistEpoch', 1)), epoch.get(('MnistEpoch', 2))
src = 'bench_mnist_epoch'
if not (e1 and e2):  # fall back to the examples' own epoch times
    e1, e2, src = mean_epoch('mnist_heed_t1'), mean_epoch('mnist_heed'), 'mnist_mlp logs'
    e1, e2 = (e1 * 1e3 if e1 else None), (e2 * 1e3 if e2 else None)
t15.append(('Idle machine: heed MLP epoch, 2 threads >= 1.7x faster than 1 thread',
            NM if not (e1 and e2) else f'{e1 / e2:.2f}x ({e1:.0f} ms vs {e2:.0f} ms, {src})',
            verdict15(None if not (e1 and e2) else e1 / e2 >= 1.7)))
for T in (128, 256, 512, 1024, 2048, 4096):
    hb, hn = best([(n, heed.get(f'{n}/fwdbwd/T:{T}')) for n in ('mha/plain', 'mha/fused')])
    got = [(lbest(lt_att, f'libtorch/mha/{p}/fwdbwd/T:{T}'), p) for p in ('plain', 'fused')]
    got = [(ms, th, p) for (ms, th), p in got if ms is not None]
    name = f'MultiheadAttention fwd+bwd, T = {T}: heed >= 1.5x faster than libtorch (best of 1, 2 threads)'
    if hb is None or not got:
        t15.append((name, NM if hb is None else f'heed {hn} {fmt_ms(hb)} ms; libtorch {NM}', NM))
    else:
        lb, lth, lp = min(got)
        t15.append((name, f'{lb / hb:.2f}x (heed {hn} {fmt_ms(hb)} ms, libtorch {lp} {fmt_ms(lb)} ms at {lth} thr)',
                    verdict15(lb / hb >= 1.5)))
for T in (128, 256, 512, 1024, 2048, 4096):
    h = htr.get(f'layer/fwdbwd/T:{T}')
    l1 = lt_ms(lt_tr[1], f'libtorch/layer/fwdbwd/T:{T}')
    name = f'TransformerEncoderLayer fwd+bwd, T = {T}: heed >= 1.5x faster than libtorch (both 1 thread)'
    if not h or l1 is None:
        t15.append((name, NM if not h else f"heed {fmt_ms(h['ms'])} ms; libtorch {NM}", NM))
    else:
        t15.append((name, f"{l1 / h['ms']:.2f}x (heed {fmt_ms(h['ms'])} ms, libtorch {fmt_ms(l1)} ms)",
                    verdict15(l1 / h['ms'] >= 1.5)))
# The lead's FMA peak: heed_peak.json, a benchmark fma_peak/threads:N with a GFLOPS counter; the
# fused attention path runs at bench_attention's thread count (2 in run.sh).
peak = {}
try:
    for b in json.load(open(os.path.join(out_dir, 'heed_peak.json'))).get('benchmarks', []):
        mm = re.match(r'fma_peak/threads:(\d+)', b.get('run_name', b.get('name', '')))
        if mm and b.get('GFLOPS') and (b.get('run_type') != 'aggregate' or b.get('aggregate_name') == 'median'):
            peak[int(mm.group(1))] = float(b['GFLOPS'])
except (OSError, ValueError, AttributeError, TypeError):
    pass
att_threads = int(hj.get('context', {}).get('heed_threads', 2))
fused = [(T, heed[f'attention/fused/{ph}/T:{T}']['flops'] / 1e9, ph) for T in lens if T >= 512
         for ph in ('fwd', 'fwdbwd') if (heed.get(f'attention/fused/{ph}/T:{T}') or {}).get('flops')]
pk = peak.get(att_threads)
if pk and fused:
    worst = min(fused, key=lambda x: x[1])
    t15.append((f'Fused attention >= 80% of the FMA peak at T >= 512 ({att_threads} threads)',
                f'lowest {worst[1] / pk:.0%} ({worst[2]} T = {worst[0]}: {worst[1]:.1f} of {pk:.1f} GFLOP/s)',
                verdict15(worst[1] / pk >= 0.8)))
else:
    t15.append((f'Fused attention >= 80% of the FMA peak at T >= 512 ({att_threads} threads)',
                NM + ('' if pk else ' (no heed_peak.json fma_peak)'), NM))
he, le = cnn_epoch.get('cnn', (None, None))
t15.append(('CNN example epoch (2 threads) >= 1.5x faster than libtorch (oneDNN), same network',
            NM if he is None or le is None else f'{le / he:.2f}x (heed {he:.2f} s, libtorch {le:.2f} s)',
            verdict15(None if he is None or le is None else le / he >= 1.5)))
block = ['## Targets of issue #15 (heed against libtorch)', '',
         'Each measured in this run; "not measured" when its input is missing (e.g. libtorch not built, '
         f"or `--quick`). Load average before the run {meta.get('load', '?')}, after {meta.get('load_after', '?')} "
         '(per step below the tables): the "idle machine" targets mean something only at a load well under '
         f"{meta.get('nproc', 'the core count')}.", '', '| target | measured | |', '|---|---|---|']
block += [f'| {n} | {v} | {ok} |' for n, v, ok in t15] + ['']
lines[targets15_at:targets15_at] = block
lines.append('')
lines.append('![time against sequence length](../../docs/compare_attention.svg)')
md = '\n'.join(lines) + '\n'
with open(md_path, 'w') as f:
    f.write(md)
print(md)

# ---- SVG: time against T, log-log, one panel per pass -------------------------------------
W, Hh, L, R, Tp, Bm = 440, 340, 60, 10, 30, 50
legend_h = 20 * (len(PAIRS) + 1) + 10
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{Hh + legend_h}" '
       'font-family="sans-serif" font-size="11">', f'<rect width="{2 * W}" height="{Hh + legend_h}" fill="white"/>']
series_all = []
for label, hp, tp, colour in PAIRS:
    for phase in ('fwd', 'fwdbwd'):
        hpts = [(T, heed[f'{hp}/{phase}/T:{T}']['ms']) for T in lens if 'ms' in heed.get(f'{hp}/{phase}/T:{T}', {})]
        tpts = [(T, torch[f'{tp}/{phase}/T:{T}']['seconds'] * 1e3) for T in lens
                if 'seconds' in torch.get(f'{tp}/{phase}/T:{T}', {})]
        series_all.append((phase, colour, '', hpts))
        if label != 'SDPA fused':  # its PyTorch counterpart is the SDPA plain one
            series_all.append((phase, colour, '6,4', tpts))
            # libtorch, the faster of its 1- and 2-thread runs at each T: dotted
            lpts = [(T, lbest(lt_att, f'lib{tp}/{phase}/T:{T}')[0]) for T in lens]
            series_all.append((phase, colour, '2,3', [(T, v) for T, v in lpts if v is not None]))
ys = [v for s in series_all for _, v in s[3] if v > 0]
if lens and ys:
    xmin, xmax = math.log2(min(lens)), math.log2(max(lens))
    if xmax == xmin:
        xmax += 1
    ymin, ymax = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    if ymax == ymin:
        ymax += 1
    for p, phase in enumerate(('fwd', 'fwdbwd')):
        ox = p * W
        pw, ph = W - L - R, Hh - Tp - Bm

        def X(T):
            return ox + L + (math.log2(T) - xmin) / (xmax - xmin) * pw

        def Y(v):
            return Tp + ph - (math.log10(v) - ymin) / (ymax - ymin) * ph
        title = 'forward' if phase == 'fwd' else 'forward + backward'
        svg.append(f'<text x="{ox + L + pw / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>')
        svg.append(f'<rect x="{ox + L}" y="{Tp}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
        for T in lens:
            svg.append(f'<line x1="{X(T):.1f}" y1="{Tp + ph}" x2="{X(T):.1f}" y2="{Tp + ph + 4}" stroke="black"/>')
            svg.append(f'<text x="{X(T):.1f}" y="{Tp + ph + 16}" text-anchor="middle">{T}</text>')
        for e in range(ymin, ymax + 1):
            y = Y(10 ** e)
            svg.append(f'<line x1="{ox + L}" y1="{y:.1f}" x2="{ox + L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            svg.append(f'<text x="{ox + L - 5}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
        svg.append(f'<text x="{ox + L + pw / 2}" y="{Tp + ph + 34}" text-anchor="middle">sequence length T (log scale)</text>')
        svg.append(f'<text x="{ox + 14}" y="{Tp + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 {ox + 14} {Tp + ph / 2})">time per call, ms (log scale)</text>')
        for ph_, colour, dash, pts in series_all:
            if ph_ != phase or not pts:
                continue
            d = ' '.join(f'{X(T):.1f},{Y(v):.1f}' for T, v in pts)
            extra = f' stroke-dasharray="{dash}"' if dash else ''
            svg.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2"{extra}/>')
            for T, v in pts:
                svg.append(f'<circle cx="{X(T):.1f}" cy="{Y(v):.1f}" r="2.5" fill="{colour}"/>')
    # legend
    y0 = Hh + 10
    torch_names = {'SDPA plain': 'torch matmul+softmax+matmul', 'MHA need_weights': 'torch MHA need_weights=True',
                   'MHA no weights': 'torch MHA need_weights=False'}
    for i, (label, _, _, colour) in enumerate(PAIRS):
        y = y0 + 20 * i
        svg.append(f'<line x1="{L}" y1="{y}" x2="{L + 30}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="{L + 36}" y="{y + 4}">heed {label}</text>')
        if label in torch_names:
            svg.append(f'<line x1="{W + L}" y1="{y}" x2="{W + L + 30}" y2="{y}" stroke="{colour}" '
                       'stroke-width="2" stroke-dasharray="6,4"/>')
            svg.append(f'<text x="{W + L + 36}" y="{y + 4}">{torch_names[label]}</text>')
            if any(lbest(lt_att, f'lib{tp}/{ph}/T:{T}')[0] for ph in ('fwd', 'fwdbwd') for T in lens
                   for lab, _, tp, _ in PAIRS if lab == label):
                lx = W + L + 230
                svg.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 30}" y2="{y}" stroke="{colour}" '
                           'stroke-width="2" stroke-dasharray="2,3"/>')
                svg.append(f'<text x="{lx + 36}" y="{y + 4}">libtorch {torch_names[label][6:]}</text>')
    y = y0 + 20 * len(PAIRS)
    svg.append(f'<text x="{L}" y="{y + 4}">solid: heed, dashed: PyTorch {meta.get("torch", "")}, dotted: libtorch C++ (best of 1, 2 threads); '
               f'batch 8, 8 heads, head dim 64, float32, 2 threads; {meta.get("date", "")}, load {meta.get("load", "?")}</text>')
svg.append('</svg>')
os.makedirs(os.path.dirname(svg_path) or '.', exist_ok=True)
with open(svg_path, 'w') as f:
    f.write('\n'.join(svg) + '\n')
