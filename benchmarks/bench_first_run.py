"""Time to the first training batch, cold (empty kernel cache) and warm (cached kernels).

``python benchmarks/bench_first_run.py [--rounds R] [--specs lenet5,cifar_resnet20] [--batch 32]``

Each run is a fresh interpreter that imports cnncalc, loads the spec, builds the network
(He init, seed 0) and runs one training step (forward, softmax cross-entropy, backward, SGD
update) on a random batch of the spec's input shape, on 1 thread; the time is wall time from
starting the process to the end of that step, measured by the parent. *Cold* runs get a new,
empty ``NUMBA_CACHE_DIR`` (every kernel compiles), *warm* runs reuse the folder the cold run
just filled. Rounds alternate cold and warm; min and median per spec, with the load average.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = """
import numpy as np
import cnncalc
from cnncalc.runtime import _numba
from cnncalc.runtime.optim import SGD
from cnncalc.runtime.trainer import TrainNet, flat, initialize
_numba.set_threads(1)
g = cnncalc.load({spec!r})
net = TrainNet(g)
initialize(net, "he", 0)
params = flat(net.params)
opt = SGD(0.01, momentum=0.9)
h, w, c = g.input_shape
rng = np.random.default_rng(0)
x = rng.random(({batch}, c, h, w), dtype=np.float32)
classes = int(np.prod(g.layers[-1].layer.out_shape))
y = rng.integers(0, classes, {batch})
net.loss(x, y, input_grad=False)
opt.step(params, flat(net.grads))
print("first-batch", flush=True)
"""


def run(spec: str, batch: int, cache: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", SNIPPET.format(spec=spec, batch=batch)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    s = time.perf_counter() - t
    if r.returncode or "first-batch" not in r.stdout:
        raise SystemExit(f"{spec}: failed: {r.stderr[-2000:]}")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--specs", default="lenet5,cifar_resnet20")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    print(f"time to the first training batch (batch {a.batch}, 1 thread), wall seconds from process start; "
          f"{os.cpu_count()} cores")
    print("| spec | round | load average (1 min) | cold | warm |")
    print("|---|---|---|---|---|")
    res = {}
    for spec in a.specs.split(","):
        cold, warm = [], []
        for r in range(a.rounds):
            load = os.getloadavg()[0]
            d = tempfile.mkdtemp(prefix="cnncalc-cold-")
            try:
                cold.append(run(spec, a.batch, d))
                warm.append(run(spec, a.batch, d))
            finally:
                shutil.rmtree(d, ignore_errors=True)
            print(f"| {spec} | {r + 1} | {load:.2f} | {cold[-1]:.1f} | {warm[-1]:.1f} |", flush=True)
        res[spec] = (cold, warm)
    for spec, (cold, warm) in res.items():
        print(f"{spec}: cold min {min(cold):.1f} s, median {statistics.median(cold):.1f} s; warm min "
              f"{min(warm):.1f} s, median {statistics.median(warm):.1f} s")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
