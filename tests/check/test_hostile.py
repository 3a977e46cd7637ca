"""Hostile submission folders (issue 25, items 3–7 and the design-file policy): whatever a
student writes, the gradebook is safe to open (CSV, JUnit XML, markdown, the terminal), the
grader reads nothing outside the folders it was given, and one bad file is one error row.

Each output is parsed with its own parser: ``csv``, ``xml.etree``, markdown-it (a CommonMark
parser with GitHub's tables), and the terminal's text is searched for raw control characters.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT

HOMEWORK = ROOT / "examples" / "homework"
SHEET = "sheet: hw\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: }\n  - {id: b, layer: pool1, shape: }\n"
FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\tTAB", "\rCR", "=1+1"]


def yaml_str(s: str) -> str:
    return json.dumps(s)          # a JSON string is a YAML double-quoted scalar


@pytest.fixture
def course(tmp_path):
    (tmp_path / "Q.yaml").write_text(SHEET)
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ok.yaml").write_text("id: s0\nstudent: Ok\nanswers:\n  a: 55x55x96\n  b: 27x27x96\n")
    return tmp_path


def run(*args, cwd=None, timeout=120):
    """A fresh interpreter (a hang is a timeout, not a stuck test run)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "cnncalc", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


# ------------------------------------------------------------------------------ 3. CSV injection
def test_csv_cells_never_start_a_formula(course, cli, monkeypatch):
    subs = course / "subs"
    for n, f in enumerate(FORMULAS):
        (subs / f"f{n}.yaml").write_text(f"id: {yaml_str(f)}\nstudent: {yaml_str(f)}\nanswers:\n  a: 1x1x1\n  b: 1x1x1\n")
    (subs / "=cmd.yaml").write_text("id: s9\nstudent: ok\nanswers:\n  a: 1x1x1\n  zz=1: 3\n")
    (course / "roster.csv").write_text("id,name\n" + "".join(f"{json.dumps(f)},{json.dumps(f)}\n" for f in FORMULAS[:2]))
    monkeypatch.chdir(subs)                       # file names as they are, not under a folder
    for fmt in ("csv", "lms"):
        for extra in ((), ("--roster", course / "roster.csv")):
            out = cli("check", "--key", course / "Q.yaml", ".", *extra, "-F", fmt).output
            cells = [c for row in csv.reader(io.StringIO(out)) for c in row]
            bad = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
            assert not bad, (fmt, extra, bad)
            for f in FORMULAS:                                 # kept, behind a quote (a CR shown as \r)
                assert "'" + f.replace("\r", "\\r") in cells, (fmt, f)
    matrix = cli("check", "--key", course / "Q.yaml", ".", "-F", "csv").output
    assert "'=cmd.yaml" in [c for row in csv.reader(io.StringIO(matrix)) for c in row]


# ------------------------------------------------------------------------------ 4. links out of the folder
@pytest.mark.parametrize("fmt", ["table", "csv", "json", "junit", "markdown", "lms"])
def test_a_link_out_of_the_folder_is_an_error_row_without_content(course, cli, fmt):
    secret = course.parent / f"{course.name}-secret.yaml"
    secret.write_text("SECRETKEY: 1\nstudent: TOPSECRET\nid: s-secret\nanswers: {a: 1}\n")
    os.symlink(secret, course / "subs" / "a.yaml")
    os.symlink(course / "subs" / "ok.yaml", course / "subs" / "inside.yaml")   # a link inside: read
    r = cli("check", "--key", course / "Q.yaml", course / "subs", "-F", fmt)
    out = r.output
    assert r.exit_code == 2
    for word in ("SECRETKEY", "TOPSECRET", "s-secret"):
        assert word not in out, (fmt, word)
    if fmt == "json":
        d = json.loads(r.stdout)
        st = {Path(g["file"]).name: g["status"] for g in d["submissions"]}
        assert st == {"a.yaml": "error", "inside.yaml": "pass", "ok.yaml": "pass"}
        assert "outside" in next(g["error"] for g in d["submissions"] if g["status"] == "error")


def test_a_linked_folder_is_not_entered(course, cli):
    outside = course.parent / f"{course.name}-elsewhere"
    outside.mkdir()
    (outside / "x.yaml").write_text("student: TOPSECRET\nanswers: {a: 1}\n")
    os.symlink(outside, course / "subs" / "more")
    r = cli("check", "--key", course / "Q.yaml", course / "subs", "-F", "json")
    assert "TOPSECRET" not in r.output and [Path(g["file"]).name for g in json.loads(r.stdout)["submissions"]] == \
        ["ok.yaml"]


# ------------------------------------------------------------------------------ 5. size and type
def test_huge_files_fifos_and_devices_are_one_error_row_each(course):
    subs = course / "subs"
    with open(subs / "huge.yaml", "wb") as f:           # 1 GB, sparse: no disk used
        f.truncate(1 << 30)
    os.mkfifo(subs / "pipe.yaml")
    (subs / "zz.yaml").write_text("id: s1\nanswers:\n  a: 55x55x96\n  b: 26x26x96\n")
    r = run("check", "--key", course / "Q.yaml", subs, "-F", "json", timeout=60)
    assert r.returncode == 2, r.stderr
    st = {Path(g["file"]).name: g["status"] for g in json.loads(r.stdout)["submissions"]}
    assert st == {"huge.yaml": "error", "ok.yaml": "pass", "pipe.yaml": "error", "zz.yaml": "fail"}
    assert "spec_bytes" in r.stderr and "not a regular file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("sheet", ["/dev/zero", "fifo"])
def test_a_device_or_fifo_as_the_sheet(course, sheet):
    if sheet == "fifo":
        sheet = course / "Q.fifo"
        os.mkfifo(sheet)
    r = run("check", "--key", sheet, course / "subs", timeout=60)
    assert r.returncode == 2 and "not a regular file" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_huge_sheet(course):
    with open(course / "big.yaml", "wb") as f:
        f.truncate(1 << 30)
    r = run("check", "--key", course / "big.yaml", course / "subs", timeout=60)
    assert r.returncode == 2 and "spec_bytes" in r.stderr


# ------------------------------------------------------------------------------ 6. JUnit XML
CONTROL = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r") + "\x7f\ufffe\uffff"


def test_junit_is_well_formed_whatever_a_name_holds(course, cli):
    subs = course / "subs"
    name = "Eve" + CONTROL + "]]></x><y a='&"
    (subs / "evil.yaml").write_text(f"id: {yaml_str('id' + CONTROL)}\nstudent: {yaml_str(name)}\n"
                                    f"answers:\n  a: {yaml_str('1' + CONTROL)}\n  {yaml_str('k' + CONTROL)}: 1\n")
    for args in (("--key", course / "Q.yaml", subs), ("--key", course / "Q.yaml", subs / "evil.yaml")):
        r = cli("check", *args, "-F", "junit")
        root = ET.fromstring(r.stdout)                 # raises on a character XML 1.0 forbids
        suite = next(s for s in root.iter("testsuite") if s.get("name", "").startswith("Eve"))
        assert suite.get("name").startswith("Eve\\x00\\x01") and "]]></x>" in suite.get("name")
        case = next(c for c in suite.iter("testcase") if c.get("name").startswith("a:"))
        assert "\\x1b" in case.find("failure").get("message")
    broken = subs / "broken\x01.yaml"
    broken.write_text("answers: [\n")
    ET.fromstring(cli("check", "--key", course / "Q.yaml", subs, "-F", "junit").stdout)
    # one answer file of its own (no --key): its ids and texts
    f = course / "A.yaml"
    f.write_text(f"title: {yaml_str('T' + CONTROL)}\nspec: alexnet\nquestions:\n"
                 f"  - {{id: {yaml_str('q' + CONTROL)}, text: {yaml_str('x' + CONTROL)}, layer: conv1, shape: 1x1x1}}\n")
    root = ET.fromstring(cli("check", f, "-F", "junit").stdout)
    assert root.find("testsuite").get("name").startswith("T\\x00")


# ------------------------------------------------------------------------------ 7. markdown
def _tables(md: str):
    """Every table of a markdown text, as markdown-it (CommonMark + GitHub tables) parses it:
    a list of rows, each a list of cell texts; and the HTML it renders."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table")
    tables, rows, cells = [], None, None
    for tok in parser.parse(md):
        if tok.type == "table_open":
            rows = []
        elif tok.type == "tr_open":
            cells = []
        elif tok.type == "inline" and cells is not None:     # the cell's text, escapes resolved
            cells.append("".join(c.content for c in tok.children or [] if c.type in ("text", "code_inline")))
        elif tok.type == "tr_close":
            rows.append(cells)
            cells = None
        elif tok.type == "table_close":
            tables.append(rows)
    return tables, parser.render(md)


FORGERIES = ["Alice\n| Mallory | s1 | 13 | 13 | 100.0 | PASS |", "x | y | z", "back\\|slash",
             "<img src=x onerror=alert(1)>", "<!-- hide", "**bold** [link](http://evil) `code`",
             "</td></tr><tr><td>PASS"]


def test_markdown_rows_cannot_be_forged(course, cli):
    subs = course / "subs"
    for n, f in enumerate(FORGERIES):
        (subs / f"m{n}.yaml").write_text(f"id: {yaml_str('id' + str(n) + f)}\nstudent: {yaml_str(f)}\n"
                                         f"answers:\n  a: {yaml_str(f)}\n  {yaml_str(f)}: 1\n")
    out = cli("check", "--key", course / "Q.yaml", subs, "-F", "markdown").stdout
    tables, html = _tables(out)
    book, questions = tables
    assert len(book) == 1 + 1 + len(FORGERIES)        # the header, ok.yaml, one row per file
    assert {len(r) for r in book} == {len(book[0])}   # no row has a column more or less
    students = [r[book[0].index("Student")] for r in book[1:]]
    assert sorted(students) == sorted(["Ok"] + [f.replace("\n", "\\n") for f in FORGERIES]), students
    assert "<img" not in html and "<!--" not in html and "<strong>" not in html and "<a href" not in html
    assert len(questions) == 3 and {len(r) for r in questions} == {5}
    # notes are one quoted line each: a newline in a name starts no new line of markdown
    assert not any(line.startswith("| Mallory") for line in out.splitlines())
    # a student's own feedback file: the same escaping
    fb = course / "fb"
    cli("check", "--key", course / "Q.yaml", subs, "--feedback", fb)
    for f in fb.glob("*.md"):
        tables, html = _tables(f.read_text())
        assert {len(r) for r in tables[0]} == {4} and "<img" not in html, f


# ------------------------------------------------------------------------------ 8. the terminal
def test_the_terminal_never_gets_raw_control_characters(course):
    subs = course / "subs"
    evil = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[1A\rEve"
    (subs / "e.yaml").write_text(f"id: {yaml_str(evil)}\nstudent: {yaml_str(evil)}\nvariant: {yaml_str(evil)}\n"
                                 f"answers:\n  a: {yaml_str(evil)}\n  {yaml_str(evil)}: 1\n")
    (subs / "bad\x1b[2J.yaml").write_text("answers: [\n")
    for args in ((), ("--matrix",), ("--details",)):
        for env in ({"NO_COLOR": "1"}, {"FORCE_COLOR": "1", "COLUMNS": "100"}):
            r = subprocess.run([sys.executable, "-m", "cnncalc", "check", "--key", course / "Q.yaml", subs, *args],
                               capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
            text = r.stdout.replace("\x1b[", "") if "FORCE_COLOR" in env else r.stdout
            # rich's own colour codes are ESC [ … m; a student's ESC would be ESC ] or ESC [2J
            assert "\x07" not in r.stdout and "\x1b]" not in r.stdout and "\x1b[2J" not in r.stdout, args
            assert "\r" not in r.stdout + r.stderr and "\x1b" not in r.stderr, args
            assert "\\x1b]52;c;ZXZpbA==\\x07" in text.replace("\n", "") or "--matrix" in args or \
                "\\x1b]52" in text, args


# ------------------------------------------------------------------------------ design files
def test_a_submission_never_answers_with_the_sheets_files(tmp_path, cli):
    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, tmp_path / f)
    key = tmp_path / "QUESTIONS.yaml"
    ans = "sheet: cnn-homework-2\nid: s1001\nanswers:\n  design: {net}\n"
    design = lambda d: [(x["id"], x["status"]) for x in d["results"] if x["id"].startswith("design")]  # noqa: E731

    # kept in the sheet's folder: the instructor's reference solution is refused
    (tmp_path / "mine.yaml").write_text(ans.format(net="design_net.yaml"))
    d = json.loads(cli("check", "--key", key, tmp_path / "mine.yaml", "-F", "json").output)["submissions"][0]
    assert design(d) == [("design.1", "fail"), ("design.2", "fail"), ("design.3", "fail")]
    assert "question sheet's folder" in d["results"][-1]["note"]
    # in a folder of its own, next to the sheet's: the sheet's file is outside its folder
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "mine.yaml").write_text(ans.format(net="../design_net.yaml"))
    d = json.loads(cli("check", "--key", key, subs, "-F", "json").output)["submissions"][0]
    assert {s for _, s in design(d)} == {"fail"} and "outside" in d["results"][-1]["note"]
    # a copy of it in its own folder is its own answer (copying is for the copy flags to find)
    shutil.copy(tmp_path / "design_net.yaml", subs / "net.yaml")
    (subs / "mine.yaml").write_text(ans.format(net="net.yaml"))
    d = json.loads(cli("check", "--key", key, subs, "-F", "json").output)["submissions"][0]
    assert {s for _, s in design(d)} == {"pass"}
    # the combined format names the network with 'spec:': the same rule
    (tmp_path / "combined.yaml").write_text((HOMEWORK / "ANSWERS.yaml").read_text())
    ak = tmp_path / "AK.yaml"
    shutil.copy(HOMEWORK / "ANSWERS.yaml", ak)
    d = json.loads(cli("check", "--key", ak, tmp_path / "combined.yaml", "-F", "json").output)["submissions"][0]
    assert {s for i, s in design(d) if i.startswith("design.")} == {"fail"}
