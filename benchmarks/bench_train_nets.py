"""Training throughput past LeNet: cnncalc vs PyTorch on one thread (issue 27, item 1).

``python benchmarks/bench_train_nets.py [--rounds R] [--nets cifar_resnet20,mobilenet_v2,vgg11-bn]
[--batches 32,128] [--images 256] [--clock cpu] [--tree OTHER_CHECKOUT] [--profile NET]``

Each case is a shipped spec at 32x32x3 (``--input``) trained with SGD (momentum 0.9, weight
decay 5e-4, softmax cross-entropy) on random images and labels (seeded), batch B, 1 thread on
each side. The PyTorch peer is the same network as the spec exports it
(``cnncalc.interop.torch_export.torch_source``: the module ``cnncalc export --format torch``
writes), in train mode, ``torch.set_num_threads(1)``. Each round runs the two sides in their
own fresh interpreters, alternating which goes first; a run does 2 warm-up steps, then times
``max(2, images // B)`` steps (wall time, or with ``--clock cpu`` the worker's CPU time). The table gives min and median seconds per image
over the rounds as images/s (best = the fastest round) and the ratio cnncalc / PyTorch
(> 1: cnncalc faster), with the load average before each case. ``--tree`` times another
checkout's cnncalc in the same rounds (its own worker script and code, alternating with the
other two), i.e. *before* and *after* from one run. ``--profile NET`` prints cProfile's top
functions of cnncalc's steps instead.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _graph(spec):
    import cnncalc

    g = cnncalc.load(spec)
    g.infer((32, 32, 3))
    return g


def _data(g, batch, k=3):
    import numpy as np

    from cnncalc.runtime.trainer import outputs_of

    rng = np.random.default_rng(0)
    h, w, c = g.input_shape
    classes = outputs_of(g)[1]
    return [(rng.standard_normal((batch, c, h, w)).astype(np.float32),
             rng.integers(0, classes, batch)) for _ in range(k)]


def ours(spec, batch, steps):
    from cnncalc.runtime import _numba
    from cnncalc.runtime.optim import SGD
    from cnncalc.runtime.trainer import TrainNet, flat, initialize

    _numba.set_threads(1)
    g = _graph(spec)
    net = TrainNet(g)
    initialize(net, "he", 0)
    params = flat(net.params)
    opt = SGD(0.01, momentum=0.9, weight_decay=5e-4)
    data = _data(g, batch)

    def step(i):
        x, y = data[i % len(data)]
        net.loss(x, y, input_grad=False)
        opt.step(params, flat(net.grads))
    return step


def theirs(spec, batch, steps):
    import torch

    from cnncalc.interop.torch_export import torch_source

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = _graph(spec)
    ns: dict = {}
    exec(compile(torch_source(g), f"{spec}_net.py", "exec"), ns)
    model = ns["Net"]().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = torch.nn.CrossEntropyLoss()
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in _data(g, batch)]

    def step(i):
        x, y = data[i % len(data)]
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = lossf(out.reshape(out.shape[0], -1), y)
        loss.backward()
        opt.step()
    return step


CLOCK = time.perf_counter  # --clock cpu: time.process_time


def timed(make, spec, batch, steps):
    step = make(spec, batch, steps)
    for i in range(2):
        step(i)
    t = CLOCK()
    for i in range(steps):
        step(i)
    return steps * batch / (CLOCK() - t)


def profile(spec, batch, steps):
    import cProfile
    import io
    import pstats

    step = ours(spec, batch, steps)
    for i in range(2):
        step(i)
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for i in range(steps):
        step(i)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
    print(f"profile of {steps} cnncalc steps of {spec} at batch {batch}, 1 thread (CPU time, tottime):")
    print("\n".join(s.getvalue().splitlines()[:45]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nets", default="cifar_resnet20,mobilenet_v2,vgg11-bn")
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--images", type=int, default=256, help="images per timed run")
    ap.add_argument("--profile", default=None, metavar="NET")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time (default) or the worker's CPU time (a process waiting for a shared core "
                         "is not charged for the wait; both sides run 1 thread)")
    ap.add_argument("--tree", default=None, metavar="OTHER_CHECKOUT",
                    help="also time this checkout's cnncalc (e.g. the branch point), alternating in the same rounds")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        global CLOCK
        CLOCK = time.process_time if a.clock == "cpu" else time.perf_counter
        print(f"{timed(ours if a.worker == 'ours' else theirs, a.spec, a.batch, a.steps):.3f}")
        return
    if a.profile:
        b = int(a.batches.split(",")[0])
        profile(a.profile, b, max(2, a.images // b))
        return
    sides = ["ours", "torch"] + (["tree"] if a.tree else [])
    tree = Path(a.tree).resolve() if a.tree else None

    def run(side, spec, batch, steps):
        root = tree if side == "tree" else ROOT
        env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_train_nets.py"), "--worker",
                              "torch" if side == "torch" else "ours", "--spec", spec, "--batch", str(batch),
                              "--steps", str(steps), "--clock", a.clock], capture_output=True, text=True, env=env,
                             cwd=root)
        if out.returncode:
            raise SystemExit(f"{side} {spec} {batch}: {out.stderr[-3000:]}")
        return float(out.stdout.split()[-1])

    print(f"training images/s ({a.clock} time) at 32x32x3, 1 thread each side, {a.rounds} rounds alternating in fresh "
          f"processes; {os.cpu_count()} cores" + (f"; before = {tree}" if tree else ""))
    head = "| net | batch | load avg | cnncalc best / median | PyTorch best / median | ratio median | ratio best |"
    if tree:
        head += " before best / median | before ratio median |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for spec in a.nets.split(","):
        for batch in (int(b) for b in a.batches.split(",")):
            steps = max(2, a.images // batch)
            load = os.getloadavg()[0]
            got = {side: [] for side in sides}
            for r in range(a.rounds):
                for side in (sides if r % 2 == 0 else sides[::-1]):
                    got[side].append(run(side, spec, batch, steps))
            o, t = got["ours"], got["torch"]
            mo, mt = statistics.median(o), statistics.median(t)
            line = (f"| {spec} | {batch} | {load:.2f} | {max(o):,.1f} / {mo:,.1f} | {max(t):,.1f} / {mt:,.1f} | "
                    f"{mo / mt:.2f} | {max(o) / max(t):.2f} |")
            if tree:
                b_ = got["tree"]
                line += f" {max(b_):,.1f} / {statistics.median(b_):,.1f} | {statistics.median(b_) / mt:.2f} |"
            print(line, flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
