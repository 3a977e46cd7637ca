"""Threads: is ``train``'s default thread count the fastest, and never slower than 1 thread?

``python benchmarks/bench_threads.py [--rounds R] [--batch 64] [--images 2048]``

Each round runs, in fresh interpreters and alternating, LeNet-5 training steps (forward,
loss, backward, SGD; the worker of bench_train.py) with 1 thread, 2 threads and the default
(``cnncalc.runtime._numba.default_threads()``: usable cores minus the 1-minute load average,
rounded, at least 1), and prints each round's images/s with the load average before it and
the thread count the default chose. The verdict compares the default's min and median with
the 1-thread ones (the rule's promise) and with the best fixed count.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def worker(threads: int, batch: int, steps: int) -> None:
    from bench_train import data, ours

    from cnncalc.runtime import _numba

    n = threads or _numba.default_threads()
    ips = ours(data(), n, steps, "auto", batch)[0]
    print(f"{n} {ips:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    steps = max(20, a.images // a.batch)
    if a.worker is not None:
        worker(a.worker, a.batch, steps)
        return
    cases = {"1 thread": 1, "2 threads": 2, "default": 0}
    got = {k: [] for k in cases}
    chose = []
    print(f"LeNet-5 training, batch {a.batch}, {steps} steps per run, images/s (wall time); "
          f"{os.cpu_count()} cores")
    print("| round | load average (1 min) | 1 thread | 2 threads | default (threads chosen) |")
    print("|---|---|---|---|---|")
    for r in range(a.rounds):
        load = os.getloadavg()[0]
        row = {}
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            out = subprocess.run([sys.executable, __file__, "--worker", str(cases[name]), "--batch", str(a.batch),
                                  "--images", str(a.images)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(HERE.parent)}).stdout.split()
            n, ips = int(out[-2]), float(out[-1])
            got[name].append(ips)
            row[name] = (n, ips)
        chose.append(row["default"][0])
        print(f"| {r + 1} | {load:.2f} | {row['1 thread'][1]:,.0f} | {row['2 threads'][1]:,.0f} | "
              f"{row['default'][1]:,.0f} ({row['default'][0]}) |", flush=True)
    med = {k: statistics.median(v) for k, v in got.items()}
    best = {k: max(v) for k, v in got.items()}
    print(f"median: 1 thread {med['1 thread']:,.0f}, 2 threads {med['2 threads']:,.0f}, default "
          f"{med['default']:,.0f} (chose {sorted(set(chose))}); default / 1 thread: median "
          f"{med['default'] / med['1 thread']:.2f}, best {best['default'] / best['1 thread']:.2f}; default / "
          f"fastest fixed count (median): {med['default'] / max(med['1 thread'], med['2 threads']):.2f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
