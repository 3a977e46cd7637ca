"""Benchmarks for the analysis side (run: python benchmarks/bench_summarize.py [--rounds R]
[--specs NAME,...] [--tree DIR] [--skip-scale]).

1. Cold start, every shipped spec: `cnncalc summarize specs/NAME.yaml` in a fresh interpreter
   against the import floor `python -c "import click, yaml, rich"`, the two run alternately
   (floor, spec, floor, spec, ...) in each of R rounds (default 3); min and median of each
   spec's wall time over the rounds, divided by the floor's min and median (goal: every spec
   within 1.5x). User+system CPU seconds are measured too (os.wait4): on a shared machine they
   move less than wall time. --tree runs another checkout of cnncalc (e.g. the code before a
   change) in the same run, alternating with this one.
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


def _run(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, user+system CPU seconds) of one fresh-interpreter run (in the tree that
    env's PYTHONPATH names: `python -m` puts the working directory first on sys.path)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=env["PYTHONPATH"])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def spec_names() -> list[str]:
    """Every shipped spec: the zoo (specs/ links to it) and anything only in specs/."""
    names = {p.stem for p in (ROOT / "cnncalc" / "zoo").glob("*.yaml")}
    names |= {p.stem for p in (ROOT / "specs").glob("*.yaml")}
    return sorted(names)


def cold_start(rounds: int, names: list[str], tree: Path | None) -> None:
    floor = [sys.executable, "-c", "import click, yaml, rich"]
    sides = [("this tree", ENV)]
    if tree is not None:
        other = dict(ENV, PYTHONPATH=str(tree))
        sides.append((str(tree), other))
    # warm: write the .pyc files (an installed package has them)
    for _, env in sides:
        _run([sys.executable, "-m", "cnncalc", "summarize", "specs/vgg16.yaml"], env)
    _run(floor, ENV)
    base: list[tuple[float, float]] = []
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            cmd = [sys.executable, "-m", "cnncalc", "summarize", f"specs/{name}.yaml"]
            for label, env in (sides if r % 2 == 0 else sides[::-1]):
                f = _run(floor, ENV)
                base.append(f)
                pairs.setdefault((label, name), []).append(f)
                times.setdefault((label, name), []).append(_run(cmd, env))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    fw = [w for w, _ in base]
    fc = [c for _, c in base]
    print(f"import floor (python -c 'import click, yaml, rich'), {len(base)} runs: wall min {min(fw) * 1000:.1f} ms, "
          f"median {statistics.median(fw) * 1000:.1f} ms; CPU min {min(fc) * 1000:.1f} ms, "
          f"median {statistics.median(fc) * 1000:.1f} ms")
    print("ratio = a spec's run / the floor run just before it (paired, so load on the machine\n"
          "cancels); min and median over the rounds, of wall time and of user+system CPU time\n")
    for label, _ in sides:
        if len(sides) > 1:
            print(f"== {label}")
        print(f"{'spec':24s} {'wall ms':>8s} {'wall x min':>10s} {'median':>7s} {'cpu x min':>10s} {'median':>7s}")
        over = []
        for name in names:
            runs = times[(label, name)]
            floors = pairs[(label, name)]
            rw = [w / fw_ for (w, _), (fw_, _) in zip(runs, floors)]
            rc = [c / fc_ for (_, c), (_, fc_) in zip(runs, floors)]
            if min(rw) > 1.5:
                over.append(name)
            print(f"{name:24s} {min(w for w, _ in runs) * 1000:8.1f} {min(rw):10.2f} {statistics.median(rw):7.2f} "
                  f"{min(rc):10.2f} {statistics.median(rc):7.2f}")
        print(f"goal (every spec within 1.5x the floor, paired wall min): "
              f"{'met' if not over else 'NOT met for ' + ', '.join(over)}\n")


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
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--specs", default=None, help="comma-separated spec names (default: all shipped)")
    ap.add_argument("--tree", type=Path, default=None, help="another cnncalc checkout to time alongside")
    ap.add_argument("--skip-scale", action="store_true")
    a = ap.parse_args()
    cold_start(a.rounds, a.specs.split(",") if a.specs else spec_names(), a.tree)
    if not a.skip_scale:
        scale()
        imports()
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
