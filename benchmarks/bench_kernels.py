"""Kernel benchmark: forward+backward time per layer type and per conv algorithm.

    python benchmarks/bench_kernels.py [--threads N] [--repeat R] [--quick] [--no-startup]
    python benchmarks/bench_kernels.py --headline [--threads 1] [--rounds 3] [--all-shapes] [--only WORDS]
    python benchmarks/bench_kernels.py --passes [--threads 1] [--rounds 3] [--only WORDS]

Prints markdown tables (paste into benchmarks/README.md, section "Kernels"):

1. start-up: time from ``import`` to the end of the first conv/pool forward+backward in a
   fresh interpreter, with an empty numba cache (cold: JIT compiles) and again with the
   cache it just filled (cached);
2. forward+backward (min of R) per conv algorithm at LeNet / CIFAR / ImageNet-like
   shapes, plus a few shapes for the ``auto`` rule (depthwise, 7x7, 11x11/4);
3. the other layer types at CIFAR-like shapes;
4. the same layers in PyTorch CPU with the same thread count (when importable), as
   the ratio ours / torch;
5. BLAS threads 1 vs N for the im2col GEMMs while numba uses N threads.

float32 throughout.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cnncalc.runtime import _numba  # noqa: E402  (sets cache dir / BLAS env before numpy)
import numpy as np  # noqa: E402

from cnncalc.runtime.kernels import activation as act  # noqa: E402
from cnncalc.runtime.kernels import conv, dense, loss, norm, pool  # noqa: E402

STARTUP_SNIPPET = r"""
import time, sys
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from cnncalc.runtime import _numba
import numpy as np
from cnncalc.runtime.kernels import conv, pool
t1 = time.perf_counter()
x = np.ones((1, 2, 8, 8), np.float32); w = np.ones((2, 2, 3, 3), np.float32)
for algo in ("direct", "im2col"):
    y, c = conv.conv2d_forward(x, w, None, 1, 1, algo=algo); conv.conv2d_backward(y, c)
y, c = pool.maxpool2d_forward(x, 2); pool.pool2d_backward(y, c)
y, c = pool.avgpool2d_forward(x, 2); pool.pool2d_backward(y, c)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def startup(threads):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d, NUMBA_NUM_THREADS=str(threads))
        rows = []
        for label in ("cold (empty cache)", "cached"):
            out = subprocess.run([sys.executable, "-c", STARTUP_SNIPPET.format(root=root)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            imp, first = map(float, out.split())
            rows.append((label, imp, first))
    return rows


def timeit(fn, repeat):
    fn()  # warm-up (JIT, allocator)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.min(ts))  # min: the VM shows bursts of steal time


def conv_case(N, C, H, F, k, s=1, p=None, groups=1):
    p = k // 2 if p is None else p
    r = np.random.default_rng(0)
    x = r.standard_normal((N, C, H, H)).astype(np.float32)
    w = r.standard_normal((F, C // groups, k, k)).astype(np.float32)
    b = r.standard_normal(F).astype(np.float32)
    return x, w, b, s, p, groups


CONV_SHAPES = {
    "LeNet 32x32x1->6 5x5 (N=64)": (64, 1, 32, 6, 5, 1, 0),
    "CIFAR 32x32x64->64 3x3 (N=16)": (16, 64, 32, 64, 3, 1, 1),
    "ImageNet-like 56x56x64->64 3x3 (N=2)": (2, 64, 56, 64, 3, 1, 1),
    "VGG-like 56x56x64->64 3x3 (N=8)": (8, 64, 56, 64, 3, 1, 1),
}
AUTO_SHAPES = {
    "depthwise 56x56x64 3x3 (N=2)": (2, 64, 56, 64, 3, 1, 1, 64),
    "depthwise s2 112x112x64 3x3 (N=2)": (2, 64, 112, 64, 3, 2, 1, 64),
    "7x7 s1 28x28x16->16 (N=4)": (4, 16, 28, 16, 7, 1, 3, 1),
    "7x7 s2 112x112x3->64 (N=2)": (2, 3, 112, 64, 7, 2, 3, 1),
    "11x11 s4 227x227x3->96 (N=1)": (1, 3, 227, 96, 11, 4, 0, 1),
    "1x1 28x28x128->64 (N=4)": (4, 128, 28, 64, 1, 1, 0, 1),
    "5x5 s1 16x16x32->32 (N=8)": (8, 32, 16, 32, 5, 1, 2, 1),
}


def bench_conv(shape, algo, repeat):
    N, C, H, F, k, s, p, *g = shape
    x, w, b, s, p, groups = conv_case(N, C, H, F, k, s, p, g[0] if g else 1)

    def run():
        y, c = conv.conv2d_forward(x, w, b, s, p, 1, groups, algo, keep_cols=True)  # as in training
        conv.conv2d_backward(y, c)

    return timeit(run, repeat)


def torch_conv(torch, shape, repeat):
    N, C, H, F, k, s, p, *g = shape
    x, w, b, s, p, groups = conv_case(N, C, H, F, k, s, p, g[0] if g else 1)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))

    def run():
        y = torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, groups)
        y.backward(y.detach())

    return timeit(run, repeat)


def torch_worker(threads, repeat, quick):
    """Runs in its own interpreter: OpenMP workers of numba and of torch both spin-wait
    after a parallel region, so timing them in one process slows whichever runs second."""
    import json

    import torch

    torch.set_num_threads(threads)
    out = {}
    shapes = dict(CONV_SHAPES)
    if not quick:
        shapes.update(AUTO_SHAPES)
    for name, shp in shapes.items():
        out[name] = torch_conv(torch, shp, repeat) * 1e3
    x, cases = layer_cases()
    for name, _fn, tf in cases:
        if tf is None:
            continue
        xt = torch.tensor(x, requires_grad=True)
        f = tf(torch, xt)

        def run():
            y = f()
            y.backward(y.detach())

        out[name] = timeit(run, repeat) * 1e3
    print(json.dumps(out))


def torch_times(threads, repeat, quick):
    import json

    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return {}
    except Exception:
        return {}
    args = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--threads", str(threads),
            "--repeat", str(repeat)] + (["--quick"] if quick else [])
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode:
        print(f"(torch worker failed: {res.stderr.strip()[-300:]})")
        return {}
    return json.loads(res.stdout.strip().splitlines()[-1])


def layer_cases():
    """(name, ours_fn, torch_fn_factory) at CIFAR-like shapes."""
    r = np.random.default_rng(1)
    x = r.standard_normal((16, 64, 32, 32)).astype(np.float32)
    g, be = np.ones(64, np.float32), np.zeros(64, np.float32)
    xd = r.standard_normal((64, 4096)).astype(np.float32)
    wd = r.standard_normal((512, 4096)).astype(np.float32) * 0.01
    bd = np.zeros(512, np.float32)
    z = r.standard_normal((256, 1000)).astype(np.float32)
    lab = r.integers(0, 1000, 256)
    wt_ = r.standard_normal((64, 32, 4, 4)).astype(np.float32)
    xs = r.standard_normal((16, 64, 16, 16)).astype(np.float32)
    OH = conv.conv2d_output_size(16, 16, 3, 1, 0, 1)
    wl = r.standard_normal(OH + (32, 64, 3, 3)).astype(np.float32)

    def fb(fwd, bwd):
        def run():
            y, c = fwd()
            bwd(y, c)
        return run

    cases = [
        ("maxpool 2x2/2 on 16x64x32x32", fb(lambda: pool.maxpool2d_forward(x, 2), pool.pool2d_backward),
         lambda T, t: lambda: T.nn.functional.max_pool2d(t, 2)),
        ("avgpool 3x3/2 p1 on 16x64x32x32", fb(lambda: pool.avgpool2d_forward(x, 3, 2, 1), pool.pool2d_backward),
         lambda T, t: lambda: T.nn.functional.avg_pool2d(t, 3, 2, 1)),
        ("relu on 16x64x32x32", fb(lambda: act.relu_forward(x), act.relu_backward),
         lambda T, t: lambda: T.relu(t)),
        ("batchnorm train on 16x64x32x32",
         fb(lambda: norm.batchnorm_forward(x, g, be, np.zeros(64, np.float32), np.ones(64, np.float32)),
            norm.batchnorm_backward),
         lambda T, t: (lambda rm=T.zeros(64), rv=T.ones(64), gg=T.ones(64, requires_grad=True),
                       bb=T.zeros(64, requires_grad=True):
                       T.nn.functional.batch_norm(t, rm, rv, gg, bb, training=True))),
        ("LRN size 5 on 16x64x32x32", fb(lambda: norm.lrn_forward(x, 5), norm.lrn_backward),
         lambda T, t: lambda: T.nn.functional.local_response_norm(t, 5)),
        ("dense 4096->512 (N=64)", fb(lambda: dense.dense_forward(xd, wd, bd), dense.dense_backward), None),
        ("softmax-CE 256x1000", lambda: loss.softmax_cross_entropy(z, lab), None),
        ("conv_transpose 4x4/2 16x64x16x16->32", fb(
            lambda: conv.conv_transpose2d_forward(xs, wt_, None, 2, 1, algo="im2col"), conv.conv_transpose2d_backward),
         None),
        ("locally-connected 3x3 16x64x16x16->32", fb(
            lambda: conv.locally_connected2d_forward(xs, wl), conv.locally_connected2d_backward), None),
    ]
    return x, cases


HEADLINE = "VGG-like 56x56x64->64 3x3 (N=8)"


def conv_worker(which, name, threads, repeat):
    """One side of the headline comparison, in a fresh interpreter: min ms of ``repeat``."""
    shp = {**CONV_SHAPES, **AUTO_SHAPES}[name]
    if which == "torch":
        import torch

        torch.set_num_threads(threads)
        print(torch_conv(torch, shp, repeat) * 1e3)
    else:
        _numba.set_threads(threads)
        print(bench_conv(shp, "auto", repeat) * 1e3)


def _alternate(worker_flag, name, threads, rounds, repeat, parse):
    """``{"ours": [...], "torch": [...]}``: ``rounds`` runs of each side's worker for shape
    ``name``, alternating fresh processes (so background load hits both alike), each run's
    stdout read by ``parse``."""
    res = {"ours": [], "torch": []}
    for _ in range(rounds):
        for which in ("ours", "torch"):
            r = subprocess.run([sys.executable, os.path.abspath(__file__), worker_flag, which, "--shape", name,
                                "--threads", str(threads), "--repeat", str(repeat)],
                               capture_output=True, text=True, check=True)
            res[which].append(parse(r.stdout))
    return res


def headline(threads, rounds, repeat, names=(HEADLINE,)):
    """Conv forward+backward, cnncalc (auto) against PyTorch, alternating fresh processes."""
    import statistics

    print(f"\n## conv forward+backward, cnncalc auto vs PyTorch, {threads} thread(s), "
          f"{rounds} alternating rounds in fresh processes (each the min of {repeat} runs), ms\n")
    print("| shape | cnncalc min / median | PyTorch min / median | ratio (median) | ratio (min) |\n|---|---|---|---|---|")
    for name in names:
        res = _alternate("--conv-worker", name, threads, rounds, repeat, lambda out: float(out.split()[-1]))
        (lo, mo), (lt, mt) = ((min(v), statistics.median(v)) for v in (res["ours"], res["torch"]))
        print(f"| {name} | {lo:.1f} / {mo:.1f} | {lt:.1f} / {mt:.1f} | {mo / mt:.2f} | {lo / lt:.2f} |", flush=True)


def pass_worker(which, name, threads, repeat):
    """Forward, data gradient and weight gradient timed apart (wall and thread CPU time, min
    and median of ``repeat``), in a fresh interpreter; PyTorch's backward passes through
    ``aten.convolution_backward`` with one output mask at a time. Prints JSON."""
    import json

    N, C, H, F, k, s, p, *g = {**CONV_SHAPES, **AUTO_SHAPES}[name]
    x, w, b, s, p, groups = conv_case(N, C, H, F, k, s, p, g[0] if g else 1)
    dy = np.random.default_rng(1).standard_normal(
        (N, F) + conv.conv2d_output_size(H, H, k, s, p)).astype(np.float32)
    if which == "torch":
        import torch

        torch.set_num_threads(threads)
        xt, wt, bt, dyt = (torch.tensor(a) for a in (x, w, b, dy))
        cb = torch.ops.aten.convolution_backward

        def bwd(mask):
            return lambda: cb(dyt, xt, wt, [F], [s, s], [p, p], [1, 1], False, [0, 0], groups, mask)

        fns = {"fwd": lambda: torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, groups),
               "dx": bwd([True, False, False]), "dw": bwd([False, True, False]),
               "db": bwd([False, False, True])}
    else:
        _numba.set_threads(threads)
        fns = {"fwd": lambda: conv.conv2d_forward(x, w, b, s, p, 1, groups),
               "dx": lambda: conv.conv2d_data_grad(dy, w, x.shape, s, p, 1, groups),
               "dw": lambda: conv.conv2d_weight_grad(dy, x, w.shape, s, p, 1, groups),
               "db": lambda: dy.sum(axis=(0, 2, 3))}
    out = {}
    for key, fn in fns.items():
        fn()
        wall, cpu = [], []
        for _ in range(repeat):
            t, c = time.perf_counter(), time.thread_time()
            fn()
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - t)
        out[key] = [float(np.min(wall)) * 1e3, float(np.median(wall)) * 1e3,
                    float(np.min(cpu)) * 1e3, float(np.median(cpu)) * 1e3]
    print(json.dumps(out))


def passes(threads, rounds, repeat, names):
    """Per pass (forward, data grad, weight grad, bias grad), cnncalc (auto) against PyTorch,
    alternating fresh processes; min / median over the rounds of each round's min / median."""
    import json

    print(f"\n## conv passes apart, {threads} thread(s), {rounds} alternating rounds in fresh processes "
          f"(each {repeat} runs), ms: wall min / median, CPU min / median\n")
    print("| shape | pass | cnncalc wall | PyTorch wall | cnncalc CPU | PyTorch CPU | ratio (CPU min) |\n"
          "|---|---|---|---|---|---|---|")
    for name in names:
        res = _alternate("--pass-worker", name, threads, rounds, repeat,
                         lambda out: json.loads(out.strip().splitlines()[-1]))
        for key in ("fwd", "dx", "dw", "db"):
            o = [min(r[key][0] for r in res["ours"]), float(np.median([r[key][1] for r in res["ours"]])),
                 min(r[key][2] for r in res["ours"]), float(np.median([r[key][3] for r in res["ours"]]))]
            t = [min(r[key][0] for r in res["torch"]), float(np.median([r[key][1] for r in res["torch"]])),
                 min(r[key][2] for r in res["torch"]), float(np.median([r[key][3] for r in res["torch"]]))]
            print(f"| {name} | {key} | {o[0]:.2f} / {o[1]:.2f} | {t[0]:.2f} / {t[1]:.2f} | {o[2]:.2f} / {o[3]:.2f} "
                  f"| {t[2]:.2f} / {t[3]:.2f} | {o[2] / t[2]:.2f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="skip the auto-rule shapes")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--conv-worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--pass-worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--passes", action="store_true",
                    help="the depthwise shapes (or --only), forward / data grad / weight grad timed apart vs PyTorch")
    ap.add_argument("--only", default="",
                    help="with --headline or --passes: only the shapes whose name contains one of these "
                         "comma-separated words")
    ap.add_argument("--shape", default=HEADLINE, help=argparse.SUPPRESS)
    ap.add_argument("--headline", action="store_true",
                    help="only the alternating cnncalc-vs-PyTorch comparison of the headline conv shapes")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the headline comparison")
    ap.add_argument("--all-shapes", action="store_true",
                    help="with --headline: every conv shape of the Kernels table, not only the headline ones")
    a = ap.parse_args()
    if a.torch_worker:
        return torch_worker(a.threads, a.repeat, a.quick)
    if a.conv_worker:
        return conv_worker(a.conv_worker, a.shape, a.threads, a.repeat)
    if a.pass_worker:
        return pass_worker(a.pass_worker, a.shape, a.threads, a.repeat)
    only = [w for w in a.only.split(",") if w]
    if a.passes:
        names = [n for n in {**CONV_SHAPES, **AUTO_SHAPES} if any(w in n for w in (only or ["depthwise"]))]
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        passes(a.threads, a.rounds, max(a.repeat, 20), names)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return
    if a.headline:
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        names = tuple(CONV_SHAPES) + (tuple(AUTO_SHAPES) if a.all_shapes else ())
        headline(a.threads, a.rounds, a.repeat, tuple(n for n in names if not only or any(w in n for w in only)))
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return
    n = _numba.set_threads(a.threads)
    tt = torch_times(n, a.repeat, a.quick)
    nan = float("nan")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba threads {n} (layer {_numba.numba.config.THREADING_LAYER}), "
          f"BLAS threads 1, python {platform.python_version()}, numpy {np.__version__}, numba {_numba.numba.__version__}"
          + (", torch in a separate process with the same thread count" if tt else ", torch not available"))

    if not a.no_startup:
        print("\n## start-up (fresh interpreter)\n\n| cache | import s | first conv+pool fwd/bwd s |\n|---|---|---|")
        for label, imp, first in startup(n):
            print(f"| {label} | {imp:.2f} | {first:.2f} |")

    shapes = dict(CONV_SHAPES)
    if not a.quick:
        shapes.update(AUTO_SHAPES)
    print("\n## conv2d forward+backward, ms (float32)\n")
    print("| shape | direct | im2col | fft | depthwise | auto picks | torch | best/torch |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, shp in shapes.items():
        ts = {algo: bench_conv(shp, algo, a.repeat) * 1e3 for algo in conv.ALGOS}
        N, C, H, F, k, s, p, *g = shp
        if g and g[0] > 1:  # the depthwise kernel (what auto picks for thin groups)
            ts["depthwise"] = bench_conv(shp, "depthwise", a.repeat) * 1e3
        pick = conv.choose_algo((N, C, H, H), (F, C // (g[0] if g else 1), k, k), s, 1, g[0] if g else 1)
        t = tt.get(name, nan)
        best = min(ts.values())
        dwk = f"{ts['depthwise']:.1f}" if "depthwise" in ts else ""
        print(f"| {name} | {ts['direct']:.1f} | {ts['im2col']:.1f} | {ts['fft']:.1f} | {dwk} | {pick} "
              f"| {t:.1f} | {best / t:.1f}x |")

    _, cases = layer_cases()
    print("\n## other layers forward+backward, ms (float32)\n\n| layer | ours | torch | ratio |\n|---|---|---|---|")
    for name, fn, _tf in cases:
        ours = timeit(fn, a.repeat) * 1e3
        if name in tt:
            print(f"| {name} | {ours:.2f} | {tt[name]:.2f} | {ours / tt[name]:.1f}x |")
        else:
            print(f"| {name} | {ours:.2f} | | |")

    print("\n## BLAS threads during im2col (numba threads %d), CIFAR conv fwd+bwd ms\n" % n)
    print("| BLAS threads | im2col ms |\n|---|---|")
    for bt in (1, n):
        _numba.set_threads(n, blas_threads=bt)
        print(f"| {bt} | {bench_conv(CONV_SHAPES['CIFAR 32x32x64->64 3x3 (N=16)'], 'im2col', a.repeat) * 1e3:.1f} |")
    _numba.set_threads(n, blas_threads=1)


if __name__ == "__main__":
    main()
