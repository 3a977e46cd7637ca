"""Benchmarks for deep graphs past summarize (issue 27 item 4, issue 25 item 14)
(run: python benchmarks/bench_report.py [--rounds R] [--tree DIR] [--skip-scale] [--skip-cold]).

1. Cold start against the import floor, as bench_summarize measures it: each round runs the
   floor `python -c "import click, yaml, rich"` and then one command, each in a fresh
   interpreter loading bytecode, for every command below; odd rounds go through the commands
   in reverse. A command's ratio is its run over the floor run just before it (paired, so the
   load of the shared machine cancels as far as it can); min and median over the R rounds
   (default 3) of wall time and of user+system CPU time (os.wait4). Goals: `report` <= 3x,
   ("met": paired wall min within the goal; "CPU": only the CPU-time ratio is),
   `graph` <= 2x, `summarize --format json` <= 1.2x, for cifar_resnet1202 and densenet201.
   --tree times another checkout (e.g. the code before a change) in the same run,
   alternating with this one.
2. Scale, inside every limit (one run each, fresh interpreter): a 49,990-layer chain, a
   24,000-branch merge, 24,000 residual blocks (48,001 layers): summarize, summarize --format
   json, graph, report; and the ONNX cnncalc exports from the chain, summarized back.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)
FLOOR = [sys.executable, "-c", "import click, yaml, rich"]
OUT = Path(tempfile.mkdtemp(prefix="cnncalc-bench-report-"))

COLD = [  # (label, argv after `python -m cnncalc`, goal: at most this many floors)
    ("report cifar_resnet1202", ["report", "specs/cifar_resnet1202.yaml", "-o", str(OUT / "a.html"), "--force"], 3.0),
    ("report densenet201", ["report", "specs/densenet201.yaml", "-o", str(OUT / "b.html"), "--force"], 3.0),
    ("graph cifar_resnet1202", ["graph", "specs/cifar_resnet1202.yaml"], 2.0),
    ("graph densenet201", ["graph", "specs/densenet201.yaml"], 2.0),
    ("summarize --format json cifar_resnet1202", ["summarize", "specs/cifar_resnet1202.yaml", "--format", "json"], 1.2),
    ("summarize --format json densenet201", ["summarize", "specs/densenet201.yaml", "--format", "json"], 1.2),
    # (the smallest net: what cnncalc's own start-up costs over the floor, for the goal above)
    ("summarize --format json lenet5", ["summarize", "specs/lenet5.yaml", "--format", "json"], 1.2),
]


def _run(cmd: list[str], env: dict, timeout: float | None = None) -> tuple[float, float, int]:
    """(wall s, user+system CPU s, max RSS KiB) of one fresh-interpreter run; stdout to a pipe
    that is read and dropped (not a terminal, as a program reading the output sees it)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=env["PYTHONPATH"])
    try:
        _, status, usage = _wait(proc, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf"), float("inf"), 0
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _wait(proc, timeout):
    if timeout is None:
        return os.wait4(proc.pid, 0)
    end = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.monotonic() > end:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)


def cold(rounds: int, tree: Path | None) -> None:
    sides = [("this tree", ENV)]
    if tree is not None:
        sides.append((str(tree), dict(ENV, PYTHONPATH=str(tree))))
    for _, env in sides:  # write the .pyc files (an installed package has them)
        for _, args, _ in COLD:
            _run([sys.executable, "-m", "cnncalc", *args], env)
    _run(FLOOR, ENV)
    floors: list[tuple[float, float, int]] = []
    runs: dict[tuple[str, str], list] = {}
    for r in range(rounds):
        order = COLD if r % 2 == 0 else COLD[::-1]
        for label, args, _ in order:
            for side, env in (sides if r % 2 == 0 else sides[::-1]):
                f = _run(FLOOR, ENV)
                floors.append(f)
                runs.setdefault((side, label), []).append((f, _run([sys.executable, "-m", "cnncalc", *args], env)))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    fw, fc = [f[0] for f in floors], [f[1] for f in floors]
    print(f"import floor (python -c 'import click, yaml, rich'), {len(floors)} runs: wall min {min(fw) * 1000:.0f} ms, "
          f"median {statistics.median(fw) * 1000:.0f} ms; CPU min {min(fc) * 1000:.0f} ms, "
          f"median {statistics.median(fc) * 1000:.0f} ms")
    print("ratio = the command's run / the floor run just before it; min and median over the rounds\n")
    for side, _ in sides:
        if len(sides) > 1:
            print(f"== {side}")
        print(f"{'command':42s} {'wall ms':>8s} {'wall x min':>10s} {'median':>7s} {'cpu x min':>10s} "
              f"{'median':>7s} {'MiB':>6s} {'goal':>5s}")
        for label, _, goal in COLD:
            pairs = runs[(side, label)]
            rw = [c[0] / f[0] for f, c in pairs]
            rc = [c[1] / f[1] for f, c in pairs]
            met = "met" if min(rw) <= goal else ("CPU" if min(rc) <= goal else "NOT")
            print(f"{label:42s} {min(c[0] for _, c in pairs) * 1000:8.0f} {min(rw):10.2f} {statistics.median(rw):7.2f} "
                  f"{min(rc):10.2f} {statistics.median(rc):7.2f} {max(c[2] for _, c in pairs) / 1024:6.0f} "
                  f"{goal:4.1f}x {met}")
        print()


def _specs() -> dict[str, Path]:
    d = OUT / "specs"
    d.mkdir(exist_ok=True)
    specs = {
        "chain 49,990 layers": "name: chain50k\ninput: 8x8x4\nlayers:\n  - {conv: 4, kernel: 3, pad: 1, repeat: 49990}\n",
        "merge of 24,000 branches": ("name: wide24k\ninput: 8x8x4\nlayers:\n  - {conv: 4, kernel: 3, pad: 1}\n"
                                     "  - {add: [" + ", ".join(["[relu]"] * 24000) + "]}\n"),
        "24,000 residual blocks": ("name: deep24k\ninput: 8x8x4\nlayers:\n  - {conv: 4, kernel: 3, pad: 1}\n"
                                   "  - {add: [[{conv: 4, kernel: 3, pad: 1}], []], repeat: 24000}\n"),
    }
    out = {}
    for label, text in specs.items():
        p = d / (label.split()[0] + ".yaml")
        p.write_text(text)
        out[label] = p
    return out


def scale(timeout: float) -> None:
    print(f"scale: one run each in a fresh interpreter (timeout {timeout:.0f} s); CPU = user+system")
    print(f"{'input':28s} {'command':24s} {'wall s':>8s} {'CPU s':>7s} {'MiB':>6s}")
    specs = _specs()
    for label, p in specs.items():
        for cmd, args in (("summarize", ["summarize", str(p)]),
                          ("summarize --format json", ["summarize", str(p), "--format", "json"]),
                          ("graph", ["graph", str(p)]),
                          ("report", ["report", str(p), "-o", str(OUT / "s.html"), "--force"])):
            w, c, m = _run([sys.executable, "-m", "cnncalc", *args], ENV, timeout)
            print(f"{label:28s} {cmd:24s} {w:8.2f} {c:7.2f} {m / 1024:6.0f}", flush=True)
    chain = specs["chain 49,990 layers"]
    onnx = OUT / "chain.onnx"
    w, c, m = _run([sys.executable, "-m", "cnncalc", "export", str(chain), "--to", "onnx", "-o", str(onnx), "--force"],
                   ENV, timeout)
    print(f"{'chain 49,990 layers':28s} {'export --to onnx':24s} {w:8.2f} {c:7.2f} {m / 1024:6.0f}")
    w, c, m = _run([sys.executable, "-m", "cnncalc", "summarize", str(onnx)], ENV, timeout)
    print(f"{'chain.onnx (49,990 nodes)':28s} {'summarize':24s} {w:8.2f} {c:7.2f} {m / 1024:6.0f}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", type=Path, default=None, help="another cnncalc checkout to time alongside")
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--timeout", type=float, default=600.0, help="per scale run, seconds")
    a = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if not a.skip_cold:
        cold(a.rounds, a.tree)
    if not a.skip_scale:
        scale(a.timeout)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
