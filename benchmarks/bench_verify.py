"""``cnncalc verify`` wall and CPU time (run: python benchmarks/bench_verify.py [--rounds R]
[--baseline TREE] [--threads N] [SPEC ...]).

Each round runs ``python -m cnncalc verify SPEC`` in a fresh interpreter (numba kernels
loaded from the on-disk cache, filled by a warm-up run first); min and median of the
rounds, wall time and the child's CPU time (user + sys). With ``--baseline TREE`` (another
checkout, e.g. the main branch) the same command runs from that tree too, alternating with
this one round by round, so both sides see the same machine load. Goal for
specs/resnet50.yaml at 224x224: <= 15 s on the 2-core dev machine. The load average is
printed before and after: on a shared machine the wall times include waiting, the CPU
times much less so.

``--torch`` adds the peer of issue 27: a fresh ``python -c`` that imports torch and
torchvision, builds the same net (torchvision's constructor of the spec's name), and runs
one forward and backward pass at batch 2, 224x224, on one thread (``torch.set_num_threads(1)``),
alternating with ``verify`` round by round; the ratio of a round is verify's time over the
torch run just after it (paired: the load cancels as far as it can). Goal: <= 1.0x for
resnet50, vgg16, googlenet and mobilenet_v2 (``--threads 1`` makes verify one-threaded too).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(tree: Path, spec: str, threads: int | None) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if threads:
        env["NUMBA_NUM_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cnncalc", "verify", spec], cwd=tree, capture_output=True, text=True,
                       env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in (0, 1):
        raise SystemExit(f"verify {spec} in {tree} failed ({r.returncode}): {r.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


#: the peer: a fresh interpreter, torch + torchvision, the net, one fwd+bwd at batch 2
TORCH = ("import torch, torchvision; torch.set_num_threads(1); "
         "m = torchvision.models.{name}({kw}); x = torch.randn(2, 3, 224, 224); m(x).sum().backward()")
TORCH_KW = {"googlenet": "aux_logits=False, init_weights=True"}


def run_torch(spec: str) -> tuple[float, float]:
    name = Path(spec).stem
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", TORCH.format(name=name, kw=TORCH_KW.get(name, ""))], check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ratios(a, b):
    r = [x / y for x, y in zip(a, b)]
    return f"min {min(r):.2f}x, median {statistics.median(r):.2f}x ({', '.join(f'{x:.2f}' for x in r)})"


def fmt(ts):
    return f"min {min(ts):.1f} s, median {statistics.median(ts):.1f} s ({', '.join(f'{t:.1f}' for t in ts)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*", default=["specs/resnet50.yaml"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another cnncalc tree to time alternately (e.g. /work/main)")
    ap.add_argument("--threads", type=int, help="NUMBA_NUM_THREADS for both sides (default: numba's, all cores)")
    ap.add_argument("--torch", action="store_true", help="time the torch fwd+bwd peer alternately (issue 27)")
    a = ap.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    sides = [("this tree", ROOT)] + ([("baseline " + str(a.baseline), a.baseline.resolve())] if a.baseline else [])
    for spec in a.specs:
        for _, tree in sides:
            run(tree, spec, a.threads)  # warm-up: fills the numba cache
        got = {name: ([], []) for name, _ in sides}
        peer = ([], [])
        for _ in range(a.rounds):
            for name, tree in sides:
                w, c = run(tree, spec, a.threads)
                got[name][0].append(w)
                got[name][1].append(c)
            if a.torch:
                w, c = run_torch(spec)
                peer[0].append(w)
                peer[1].append(c)
        for name, (ws, cs) in got.items():
            print(f"cnncalc verify {spec} [{name}]: wall {fmt(ws)}; CPU {fmt(cs)}", flush=True)
            if a.torch:
                print(f"  / torch fwd+bwd: wall {ratios(ws, peer[0])}; CPU {ratios(cs, peer[1])}", flush=True)
        if a.torch:
            print(f"torch fwd+bwd {Path(spec).stem}: wall {fmt(peer[0])}; CPU {fmt(peer[1])}", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
