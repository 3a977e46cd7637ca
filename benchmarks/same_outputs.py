"""Byte-identity check for speed work on the analysis (run: python benchmarks/same_outputs.py
OTHER_TREE [--only a,b]).

Runs, in this tree and in OTHER_TREE (e.g. ``git archive`` of the branch point), for every
spec in specs/: ``receptive-field --format json`` (decoded and re-encoded with sorted keys),
``graph``, ``graph --depth 2``, ``summarize``, ``summarize --format json``, ``report`` and
``report --batch 3 --no-bias`` (the HTML pages compared byte for byte), each tree in its own
interpreter through click's test runner; prints every output that differs (the page path
that ``report`` echoes is masked) and exits 1 if any does.
"""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DUMP = r'''
import json, sys
from pathlib import Path
from click.testing import CliRunner
from cnncalc.cli import main
out = Path(sys.argv[1]); only = sys.argv[2].split(",") if sys.argv[2] else None
CMDS = {"rf": ["receptive-field", "{s}", "--format", "json"], "graph": ["graph", "{s}"],
        "graph2": ["graph", "{s}", "--depth", "2"], "summ": ["summarize", "{s}"],
        "json": ["summarize", "{s}", "--format", "json"], "report": ["report", "{s}", "-o", "{o}", "--force"],
        "report3": ["report", "{s}", "--batch", "3", "--no-bias", "-o", "{o}", "--force"]}
r = CliRunner()
for s in sorted(Path("specs").glob("*.yaml")):
    if only and s.stem not in only:
        continue
    for k, argv in CMDS.items():
        o = out / f"{s.stem}.{k}.html"
        res = r.invoke(main, [a.format(s=str(s), o=str(o)) for a in argv])
        text = res.output.replace(str(out), "OUT")
        if k == "rf" and res.exit_code == 0:
            text = json.dumps(json.loads(text), sort_keys=True)
        (out / f"{s.stem}.{k}.out").write_text(f"exit {res.exit_code}\n{text}\n{res.exception!r}")
'''


def dump(tree: Path, out: Path, only: str) -> None:
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-c", DUMP, str(out), only], cwd=tree, env=env, check=True)


def main() -> int:
    other = Path(sys.argv[1]).resolve()
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
    tmp = Path(tempfile.mkdtemp(prefix="cnncalc-same-"))
    dump(ROOT, tmp / "this", only)
    dump(other, tmp / "other", only)
    names = sorted(p.name for p in (tmp / "this").iterdir())
    bad = [n for n in names if not filecmp.cmp(tmp / "this" / n, tmp / "other" / n, shallow=False)]
    for n in bad:
        print(f"differs: {n}")
    print(f"{len(names) - len(bad)} of {len(names)} outputs byte-identical ({tmp})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
