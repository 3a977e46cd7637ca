"""Grading a class (run: python benchmarks/bench_grade.py [--rounds R] [--n N]).

200 generated submissions of the shipped example sheet (examples/homework/QUESTIONS.yaml:
AlexNet, VGG-16, a receptive field, a per-student variant question, a design question), each
with its own variant id: half answer from their solution key, half with a wrong answer or
two; the design answer is the sheet's reference network for half, an inline network of
their own (a different width per student, so analysed per student) for the rest.

Each round times, in fresh interpreters and alternating, `python -c "import click, yaml, rich"`
(the import floor), `cnncalc check --key … ONE.yaml` (grading 1 submission: loading the sheet
and analysing its networks) and `cnncalc check --key … DIR/` (all N). Reported: min and median
of the rounds, and the marginal cost per submission. Then, in-process, how many times the
analysis ran for 1 and for N submissions.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)
sys.path.insert(0, str(ROOT))


def make_class(dest: Path, n: int) -> None:
    from cnncalc.check.quiz import render_template
    from cnncalc.check.sheet import Sheet

    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(ROOT / "examples" / "homework" / f, dest / f)
    sheet = Sheet(dest / "QUESTIONS.yaml")
    subs = dest / "submissions"
    subs.mkdir()
    for i in range(n):
        vid = f"s{i:04d}"
        text = render_template(sheet.variant(vid), filled=True).replace("student:", f"student: student {i}")
        if i % 2:
            text = text.replace("alexnet-pool1: 27x27x96", "alexnet-pool1: 26x26x96")
            width = 8 + i % 24
            own = ("{input: 128x128x3, layers: [{conv: %d, kernel: 4, stride: 2, pad: 1}, "
                   "{conv: %d, kernel: 4, stride: 2, pad: 1}, {global_avgpool: }, {conv: 10, kernel: 1}]}"
                   % (width, 2 * width))
            # (the solution key writes the reference network inline, as an indented block)
            text = re.sub(r"^  design:.*\n(?:    .*\n)+", f"  design: {own}\n", text, flags=re.M)
        (subs / f"{vid}.yaml").write_text(text)
    shutil.copy(subs / "s0000.yaml", dest / "one.yaml")
    (dest / "one").mkdir()
    shutil.copy(subs / "s0000.yaml", dest / "one" / "s0000.yaml")


def timed(cmd, cwd) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=cwd, text=True)
    dt = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed ({r.returncode}): {r.stderr}")
    return dt


def analyses(dest: Path, paths) -> int:
    import cnncalc.check.grade as grade
    from cnncalc.check.gradebook import grade_all
    from cnncalc.check.sheet import Sheet

    calls = []
    real = grade.analyze_graph
    grade.analyze_graph = lambda g, **kw: calls.append(1) or real(g, **kw)
    try:
        grade_all(Sheet(dest / "QUESTIONS.yaml"), paths)
    finally:
        grade.analyze_graph = real
    return len(calls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp)
        make_class(dest, a.n)
        py = sys.executable
        sides = {
            "import floor (python -c 'import click, yaml, rich')": [py, "-c", "import click, yaml, rich"],
            "check --key, 1 submission": [py, "-m", "cnncalc", "check", "--key", "QUESTIONS.yaml", "one/",
                                          "-F", "csv"],
            f"check --key, {a.n} submissions": [py, "-m", "cnncalc", "check", "--key", "QUESTIONS.yaml",
                                                "submissions/", "-F", "csv"],
        }
        for cmd in sides.values():
            timed(cmd, dest)                        # warm: bytecode, zoo files in the page cache
        times = {k: [] for k in sides}
        for r in range(a.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))   # alternate the sides
            for k in order:
                times[k].append(timed(sides[k], dest))
        print(f"{'':52s} {'min s':>7s} {'median s':>9s}")
        for k, ts in times.items():
            print(f"{k:52s} {min(ts):7.3f} {statistics.median(ts):9.3f}")
        one, many = (statistics.median(times[k]) for k in list(sides)[1:])
        floor = statistics.median(times[list(sides)[0]])
        print(f"\n{a.n} submissions / 1 submission: {many / one:.2f}x (median); "
              f"1 submission / import floor: {one / floor:.2f}x")
        print(f"marginal cost per submission: {(many - one) / (a.n - 1) * 1000:.1f} ms")
        subs = sorted((dest / "submissions").glob("*.yaml"))
        print(f"\nanalyses run (analyze_graph calls): 1 submission {analyses(dest, subs[:1])}, "
              f"{a.n} submissions {analyses(dest, subs)} "
              f"(the sheet's fixed networks once; each variant question once per distinct draw; "
              f"each student's own design network once)")
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, rounds: {a.rounds}, "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
