"""Benchmarks for the analysis side (run: python benchmarks/bench_summarize.py).

1. Cold start: `cnncalc summarize specs/vgg16.yaml` in a fresh interpreter against
   `python -c "import click, yaml, rich"` (goal: within 1.5x), best of N runs each.
2. Scale: generated specs of 1k … 20k layers analyzed in-process (goal: 10,000 layers
   under a second, time linear in layers).
3. Import hygiene: numba and numpy are never imported by `summarize`.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Measure what an installed user gets: modules load from bytecode (pip compiles it at install
# time). Some shells set PYTHONDONTWRITEBYTECODE, which would make every run recompile.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)


def best_of(cmd: list[str], n: int = 15) -> float:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV, cwd=ROOT)  # warm: write .pyc
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return min(times)


def cold_start() -> None:
    base = best_of([sys.executable, "-c", "import click, yaml, rich"])
    ours = best_of([sys.executable, "-m", "cnncalc", "summarize", "specs/vgg16.yaml"])
    ours_json = best_of([sys.executable, "-m", "cnncalc", "summarize", "specs/vgg16.yaml", "--format", "json"])
    print(f"python -c 'import click, yaml, rich'      {base * 1000:7.1f} ms")
    print(f"cnncalc summarize specs/vgg16.yaml         {ours * 1000:7.1f} ms  ({ours / base:.2f}x)")
    print(f"cnncalc summarize specs/vgg16.yaml -F json {ours_json * 1000:7.1f} ms  ({ours_json / base:.2f}x)")
    print(f"goal: within 1.5x -> {'met' if ours <= 1.5 * base else 'NOT met'}")


def scale() -> None:
    sys.path.insert(0, str(ROOT))
    from cnncalc import analyze
    from cnncalc.spec import load_spec_text

    rows = []
    for n in (1_000, 2_000, 5_000, 10_000, 20_000):
        text = f"input: 8x8x4\nlayers:\n  - {{conv: 4, kernel: 3, pad: 1, activation: relu, repeat: {n}}}\n"
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            r = analyze(load_spec_text(text))
            runs.append(time.perf_counter() - t)
        assert len(r.layers) == n
        rows.append((n, min(runs)))
    print("\nlayers   seconds   µs/layer")
    for n, t in rows:
        print(f"{n:6d}   {t:7.3f}   {t / n * 1e6:8.1f}")
    per = [t / n for n, t in rows]
    print(f"µs/layer spread (max/min): {max(per) / min(per):.2f} (1.0 = perfectly linear)")
    t10k = dict(rows)[10_000]
    print(f"goal: 10,000 layers under 1 s -> {'met' if t10k < 1 else 'NOT met'} ({t10k:.3f} s)")


def imports() -> None:
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnncalc", "summarize", "specs/vgg16.yaml"],
                         capture_output=True, text=True, env=ENV, cwd=ROOT)
    heavy = [l for l in res.stderr.splitlines() if any(m in l for m in ("numba", "numpy"))]
    print(f"\nnumba/numpy modules imported by summarize: {len(heavy)}")


if __name__ == "__main__":
    cold_start()
    scale()
    imports()
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
