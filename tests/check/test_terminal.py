"""The gradebook as an instructor sees it on a terminal (issue 28): a class of 30 drawn by rich
at 60, 80, 120 and 200 columns — every name and every number whole, one line per student,
the table short — in-process (FORCE_COLOR and COLUMNS, as a terminal sets them) and through
a real pseudo-terminal (`script`), as the instructor runs it.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.check.classgen import make_class
from tests.conftest import ROOT

WIDTHS = (60, 80, 120, 200)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HOMEWORK = ROOT / "examples" / "homework"


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    d = tmp_path_factory.mktemp("class")
    info = make_class(d, 30)
    return d, info


def _rows(d) -> list[dict]:
    """Every row the gradebook must show: (name, score, percent) from the JSON gradebook."""
    from click.testing import CliRunner

    from cnncalc.cli import main

    r = CliRunner().invoke(main, ["check", "--key", str(d / "QUESTIONS.yaml"), str(d / "submissions"),
                                  "--roster", str(d / "roster.csv"), "-F", "json"])
    book = json.loads(r.stdout)
    roster = dict(line.split(",", 1) for line in (d / "roster.csv").read_text().splitlines()[1:])
    rows = []
    for g in book["submissions"]:
        name = roster.get(g["id"], '"' + (g["student"] or "") + '"').strip('"')
        rows.append((name, f"{g['score']}/{g['points']}", g["percent"]))
    rows += [(a["student"], "0/13", "0.0") for a in book["absent"]]
    return rows


def check_gradebook(out: str, width: int, rows) -> None:
    lines = [line.rstrip() for line in ANSI.sub("", out).splitlines()]
    assert max(map(len, lines)) <= width, [line for line in lines if len(line) > width]
    scores = "Score" in next(x for x in lines if x.lstrip().startswith("Student"))   # (left out at 60)
    for name, score, pct in rows:                 # one line per student: name, score, % whole on it
        line = next((x for x in lines if f" {name} " in f" {x} "), None)
        assert line is not None, (width, name, out)
        assert not scores or re.search(rf"(?<![\d.]){re.escape(score)}(?![\d/])", line), (width, name, score, line)
        assert re.search(rf"(?<![\d.]){re.escape(pct)}(?!\d)", line), (width, name, pct, line)
    start = next(i for i, x in enumerate(lines) if x.lstrip().startswith("Student"))
    end = next(i for i in range(start + 2, len(lines)) if not lines[i].strip())
    assert end - start - 2 <= len(rows) + 5, f"the table takes {end - start - 2} lines for {len(rows)} students"
    # the per-question table: every question's share of right answers, whole
    q = next(i for i, x in enumerate(lines) if x.strip() == "Questions")
    for n in ("1a", "1b", "2", "3", "4", "5a", "5b", "6", "7a", "7b", "7c", "8a", "8b", "8c"):
        assert any(re.match(rf"\s*{n}\s.*\d+%", x) for x in lines[q:]), (width, n)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_gradebook_of_30_at_every_width(klass, cli, width):
    d, _ = klass
    r = cli("check", "--key", d / "QUESTIONS.yaml", d / "submissions", "--roster", d / "roster.csv",
            env={"FORCE_COLOR": "1", "COLUMNS": str(width)})
    assert r.exit_code == 1, r.output
    assert "\x1b[" in r.stdout                       # rich, as on a terminal
    check_gradebook(r.stdout, width, _rows(d))
    if width >= 120:                                 # wide enough: every column, no note about it
        assert "not shown at" not in r.stdout
    if width >= 80:                                  # the score is left out only below 80 columns
        assert "Score" in r.stdout


def test_piped_the_gradebook_is_plain_and_complete(klass, cli):
    d, _ = klass
    r = cli("check", "--key", d / "QUESTIONS.yaml", d / "submissions", "--roster", d / "roster.csv",
            env={"NO_COLOR": "1"})
    assert "\x1b[" not in r.stdout and "not shown at" not in r.stdout
    check_gradebook(r.stdout, 10_000, _rows(d))
    assert "Maximilian Oyelaran-Whitfield  s2005" in r.stdout


def pty(cmd: str, width: int, cwd) -> str:
    """Run ``cmd`` in a real pseudo-terminal of ``width`` columns (util-linux `script`)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color")
    for k in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        env.pop(k, None)
    r = subprocess.run(["script", "-q", "-e", "-c", f"stty cols {width} rows 200; {cmd}", "/dev/null"],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    return r.stdout.replace("\r\n", "\n")


needs_script = pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script")


@pytest.mark.slow
@needs_script
@pytest.mark.parametrize("width", WIDTHS)
def test_the_gradebook_in_a_real_terminal(klass, width):
    d, _ = klass
    out = pty(f"{sys.executable} -m cnncalc check --key QUESTIONS.yaml submissions/ --roster roster.csv", width, d)
    assert "\x1b[" in out
    check_gradebook(out, width, _rows(d))


@pytest.mark.slow
@needs_script
def test_the_examples_at_80_columns_in_a_real_terminal():
    """What the project's stop hook looks at: every student's name whole, every verdict PASS."""
    out = ANSI.sub("", pty(f"{sys.executable} -m cnncalc check --key examples/homework/QUESTIONS.yaml "
                           "examples/homework/submissions/", 80, ROOT))
    for name in ("Ada Lovelace", "Bob Stone", "Eve Moneypenny", "Mallory Knox"):
        assert name in out, out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    out = ANSI.sub("", pty(f"{sys.executable} -m cnncalc check examples/homework/ANSWERS.yaml", 80, ROOT))
    assert sum(line.lstrip().startswith("PASS") for line in out.splitlines()) == 21, out
    assert len(out.splitlines()) < 40                # was 142 lines for 21 questions
    for qid in ("alexnet-conv1.weights_per_filter", "conv-32x32x3.params_per_filter", "alexnet-conv1-params-rounded"):
        assert qid in out                            # ids whole, never split mid-word


@pytest.mark.parametrize("width", WIDTHS)
def test_one_answer_file_at_every_width(cli, width):
    """`check ANSWERS.yaml`: a verdict, a number and the answer per line; ids whole when shown;
    the questions' texts of the failed ones as notes when their column is left out."""
    for f, n in (("ANSWERS.yaml", 21), ("WRONG.yaml", 8)):
        r = cli("check", HOMEWORK / f, env={"FORCE_COLOR": "1", "COLUMNS": str(width)})
        out = ANSI.sub("", r.stdout)
        lines = out.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= width
        verdicts = [x for x in lines if re.match(r"\s*(PASS|FAIL)\s+\d+[a-z]?\s", x)]
        assert len(verdicts) == n, out
        if f == "WRONG.yaml":
            ids = ("forgot-stride", "rounded-wrong", "thinks-it-fits", "slide-memory")
            assert all(i in out for i in ids), out          # in the table or in the notes
            if "Asked" not in out:
                assert "1 forgot-stride: AlexNet CONV1 output, computed as if the stride were 1" in " ".join(out.split())


@pytest.mark.parametrize("width", WIDTHS)
def test_the_matrix_splits_to_fit(klass, cli, width):
    """--matrix: every answer of every student (✓ ✗ –), the columns split into as many tables
    as the terminal needs, each student's name whole in each."""
    d, info = klass
    r = cli("check", "--key", d / "QUESTIONS.yaml", d / "submissions", "--roster", d / "roster.csv", "--matrix",
            env={"FORCE_COLOR": "1", "COLUMNS": str(width)})
    lines = [x.rstrip() for x in ANSI.sub("", r.stdout).splitlines()]
    assert max(map(len, lines)) <= width
    end = next(i for i, x in enumerate(lines) if x.strip() == "Questions")
    for sid, name in info["roster"]:
        marks = "".join(re.sub(r"^\s*" + re.escape(name), "", x) for x in lines[:end]
                        if x.lstrip().startswith(name + " "))
        assert len(re.findall("[✓✗–]", marks)) == 14, (width, name, marks)
    if width == 200:
        assert sum(x.lstrip().startswith("Student") for x in lines[:end]) == 1
