"""``cnncalc verify`` wall time (run: python benchmarks/bench_verify.py [--rounds R] [SPEC ...]).

Each round runs ``python -m cnncalc verify SPEC`` in a fresh interpreter (numba kernels
loaded from the on-disk cache, filled by a warm-up run first); min and median of the
rounds. Goal for specs/resnet50.yaml at 224x224: <= 15 s on the 2-core dev machine. The
load average is printed before and after: on a shared machine the times include waiting.
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


def run(spec: str) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cnncalc", "verify", spec], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode not in (0, 1):
        raise SystemExit(f"verify {spec} failed ({r.returncode}): {r.stderr[-500:]}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*", default=["specs/resnet50.yaml"])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    for spec in a.specs:
        run(spec)  # warm-up: fills the numba cache
        ts = [run(spec) for _ in range(a.rounds)]
        print(f"cnncalc verify {spec}: min {min(ts):.1f} s, median {statistics.median(ts):.1f} s "
              f"({a.rounds} rounds: {', '.join(f'{t:.1f}' for t in ts)})", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
