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


def fmt(ts):
    return f"min {min(ts):.1f} s, median {statistics.median(ts):.1f} s ({', '.join(f'{t:.1f}' for t in ts)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*", default=["specs/resnet50.yaml"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another cnncalc tree to time alternately (e.g. /work/main)")
    ap.add_argument("--threads", type=int, help="NUMBA_NUM_THREADS for both sides (default: numba's, all cores)")
    a = ap.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    sides = [("this tree", ROOT)] + ([("baseline " + str(a.baseline), a.baseline.resolve())] if a.baseline else [])
    for spec in a.specs:
        for _, tree in sides:
            run(tree, spec, a.threads)  # warm-up: fills the numba cache
        got = {name: ([], []) for name, _ in sides}
        for _ in range(a.rounds):
            for name, tree in sides:
                w, c = run(tree, spec, a.threads)
                got[name][0].append(w)
                got[name][1].append(c)
        for name, (ws, cs) in got.items():
            print(f"cnncalc verify {spec} [{name}]: wall {fmt(ws)}; CPU {fmt(cs)}", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
