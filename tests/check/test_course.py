"""A course as an instructor runs it (issue 28): a roster, variants assigned from the student id
and the sheet's seed, copies flagged, the LMS and Gradescope formats, the CI workflow, feedback
files, the fairness fixes.

Expected values come from hand formulas — out = (W + 2P − K)/S + 1, params = K·K·C·F + F,
MACs = out²·F·K·K·C — or from VGG-16's layer table added up by hand below; never from
cnncalc's own code.
"""
import csv
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_module

HOMEWORK = ROOT / "examples" / "homework"
QUESTIONS = HOMEWORK / "QUESTIONS.yaml"

# VGG-16 (224x224x3), every layer's output by hand: 13 convs, 5 pools, 3 fc
VGG_ACTIVATIONS = (2 * 224 * 224 * 64 + 112 * 112 * 64 + 2 * 112 * 112 * 128 + 56 * 56 * 128 + 3 * 56 * 56 * 256
                   + 28 * 28 * 256 + 3 * 28 * 28 * 512 + 14 * 14 * 512 + 3 * 14 * 14 * 512 + 7 * 7 * 512
                   + 4096 + 4096 + 1000)
VGG_INPUT = 224 * 224 * 3

SHEET = """\
sheet: hw-seeded
seed: {seed}
questions:
  - id: c
    text: "K={{kernel}} S={{stride}} P={{pad}} F={{conv}} on {{input}}"
    layer:
      input: {{choose: [28x28x3, 32x32x3, 31x31x1]}}
      conv: {{choose: [4, 6]}}
      kernel: {{choose: [3, 5]}}
      stride: {{range: [1, 3]}}
      pad: {{range: [0, 2]}}
    shape:
    params:
"""


def hand(text: str) -> tuple[str, int]:
    """The shape and parameters of the conv a quiz text 'K=.. S=.. P=.. F=.. on HxWxC' describes."""
    k, s, p, f, h, w, c = map(int, re.fullmatch(r"K=(\d+) S=(\d+) P=(\d+) F=(\d+) on (\d+)x(\d+)x(\d+)",
                                                 text).groups())
    assert (h + 2 * p - k) % s == 0
    out = (h + 2 * p - k) // s + 1
    return f"{out}x{out}x{f}", k * k * c * f + f


def quiz_text(cli, sheet, variant) -> str:
    d = json.loads(cli("quiz", sheet, "--variant", variant, "-F", "json").output)
    return d["items"][0]["text"]


def sub(path: Path, sid=None, name=None, variant=None, **answers) -> Path:
    lines = [f"id: {sid}"] if sid else []
    lines += [f"student: {name}"] if name else []
    lines += [f"variant: {variant}"] if variant else []
    lines.append("answers:")
    lines += [f"  {k.replace('__', '.')}: {v}" for k, v in answers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def seeded(tmp_path):
    q = tmp_path / "Q.yaml"
    q.write_text(SHEET.format(seed="k3y"))
    (tmp_path / "subs").mkdir()
    return q


def book(cli, *args) -> dict:
    r = cli("check", *args, "-F", "json")
    assert r.exit_code in (0, 1, 2), r.output
    return json.loads(r.stdout)


# ------------------------------------------------------------------------------ variants
def test_the_seed_decides_the_draw_and_is_stable(tmp_path, cli):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(SHEET.format(seed="k3y"))
    b.write_text(SHEET.format(seed="other"))
    texts_a = [quiz_text(cli, a, f"s{n}") for n in range(20)]
    texts_b = [quiz_text(cli, b, f"s{n}") for n in range(20)]
    assert texts_a != texts_b                     # another seed, other numbers
    for t in texts_a:
        hand(t)                                   # only draws that fit
    outs = {run_module("quiz", a, "--variant", "s3", "-F", "json", env={"PYTHONHASHSEED": h}).stdout
            for h in ("1", "2")}
    assert len(outs) == 1                         # the same in every process


def test_a_variant_the_student_chose_is_graded_as_assigned_and_flagged(seeded, cli):
    # two ids whose draws differ; the student s1 copies s2's right answers and writes s2's variant
    ids = [f"s{n}" for n in range(40)]
    draws = {i: hand(quiz_text(cli, seeded, i)) for i in ids}
    s1, s2 = next((x, y) for x in ids for y in ids if draws[x][0] != draws[y][0] and draws[x][1] != draws[y][1])
    f = sub(seeded.parent / "subs" / "mine.yaml", s1, "Mal", s2, c__shape=draws[s2][0], c__params=draws[s2][1])
    d = book(cli, "--key", seeded, f)["submissions"][0]
    assert d["variant"] == s1 and d["declared_variant"] == s2
    assert [x["status"] for x in d["results"]] == ["fail", "fail"]
    assert any(fl["kind"] == "variant" and s2 in fl["text"] for fl in d["flags"])
    # her own variant's answers pass, the 'variant:' line still flagged
    sub(f, s1, "Mal", s2, c__shape=draws[s1][0], c__params=draws[s1][1])
    d = book(cli, "--key", seeded, f)["submissions"][0]
    assert d["status"] == "pass" and [fl["kind"] for fl in d["flags"]] == ["variant"]
    # older files carry only 'variant:' (their id): graded with it, nothing flagged
    sub(f, None, "Mal", s1, c__shape=draws[s1][0], c__params=draws[s1][1])
    d = book(cli, "--key", seeded, f)["submissions"][0]
    assert d["status"] == "pass" and d["flags"] == [] and d["id"] == s1


def test_the_roster_assigns_variants(seeded, cli):
    roster = seeded.parent / "roster.csv"
    roster.write_text("Student ID,Full Name,Variant\ns1,Ann,B\ns2,Ben,\n")
    b_shape, b_params = hand(quiz_text(cli, seeded, "B"))
    f = sub(seeded.parent / "subs" / "ann.yaml", "s1", "Ann", None, c__shape=b_shape, c__params=b_params)
    d = book(cli, "--key", seeded, f, "--roster", roster)
    ann = d["submissions"][0]
    assert ann["variant"] == "B" and ann["status"] == "pass" and ann["flags"] == []
    assert d["absent"] == [{"id": "s2", "student": "Ben", "variant": "s2"}]


# ------------------------------------------------------------------------------ roster
def test_roster_forms_and_errors(tmp_path):
    from cnncalc.check.roster import parse_roster
    from cnncalc.errors import SpecError

    r = parse_roster("ID,Name\ns1,Ann\n\ns2,Ben\n")
    assert [(s.id, s.name, s.variant, s.line) for s in r.students] == [("s1", "Ann", None, 2), ("s2", "Ben", None, 4)]
    # a Canvas gradebook export: read by SIS User ID, its "Points Possible" row skipped
    canvas = ('Student,ID,SIS User ID,SIS Login ID,Section,HW1 (123)\n'
              '    Points Possible,,,,,10\n"Lovelace, Ada",901,s1001,ada,CS101,8\n')
    r = parse_roster(canvas)
    assert [(s.id, s.name) for s in r.students] == [("s1001", "Lovelace, Ada")]
    for text, line, what in (("name\nAnn\n", 1, "no student id column"),
                             ("id,name\ns1,Ann\ns1,Ann again\n", 3, "twice"),
                             ("id,name\n,Ann\n", 2, "no student id"),
                             ("", 1, "empty")):
        with pytest.raises(SpecError) as e:
            parse_roster(text, "r.csv")
        assert e.value.line == line and what in e.value.message, (text, e.value)


def test_missing_students_get_zero_and_strangers_are_flagged(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("sheet: hw\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: , points: 2}\n")
    (tmp_path / "roster.csv").write_text("id,name\ns1,Ann\ns2,Ben\ns3,Cy\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    sub(subs / "ann.yaml", "s1", "Ann", a="55x55x96")                # (227 − 11)/4 + 1 = 55
    sub(subs / "zed.yaml", "s9", "Zed", a="55x55x96")
    sub(subs / "ben.yaml", None, "ben", a="54x54x96")                # matched by name
    args = ("--key", q, subs, "--roster", tmp_path / "roster.csv")
    d = book(cli, *args)
    by = {g["id"]: g for g in d["submissions"]}
    assert by["s1"]["status"] == "pass" and by["s2"]["status"] == "fail"
    assert [fl["kind"] for fl in by["s9"]["flags"]] == ["id"]
    assert d["absent"] == [{"id": "s3", "student": "Cy", "variant": None}]
    assert d["summary"]["missing"] == 1 and d["summary"]["submissions"] == 3
    rows = list(csv.DictReader(io.StringIO(cli("check", *args, "-F", "lms").output)))
    assert [(r["Student"], r["SIS User ID"], r["Homework"] if "Homework" in r else r["hw"]) for r in rows] == \
        [("Ann", "s1", "2"), ("Ben", "s2", "0"), ("Cy", "s3", "0"), ("Zed", "s9", "2")]
    matrix = list(csv.DictReader(io.StringIO(cli("check", *args, "-F", "csv").output)))
    cy = next(r for r in matrix if r["id"] == "s3")
    assert cy["status"] == "missing" and cy["score"] == "0" and cy["a"] == "missing"
    table = cli("check", *args).output
    assert "MISSING" in table and "no submission (0 points in the exports): Cy (s3)" in table


def test_a_canvas_roster_is_echoed_in_the_lms_export(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("sheet: hw\ntitle: Homework 2\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: }\n")
    (tmp_path / "canvas.csv").write_text('Student,ID,SIS User ID,SIS Login ID,Section\n'
                                         '    Points Possible,,,,\n"Lovelace, Ada",901,s1001,ada,CS101\n')
    f = sub(tmp_path / "a.yaml", "s1001", "Ada", a="55x55x96")
    out = cli("check", "--key", q, f, "--roster", tmp_path / "canvas.csv", "-F", "lms").output
    assert list(csv.reader(io.StringIO(out))) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Homework 2"],
        ["Lovelace, Ada", "901", "s1001", "ada", "CS101", "1"]]


# ------------------------------------------------------------------------------ copies
def test_identical_answer_sets_with_a_wrong_answer_are_flagged_as_copies(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("sheet: hw\nspec: alexnet\nquestions:\n"
                 "  - {id: a, layer: conv1, shape: }\n  - {id: b, layer: pool1, shape: }\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    # 55x55x96 right, 26x26x96 wrong (POOL1: (55 − 3)/2 + 1 = 27)
    sub(subs / "1.yaml", "s1", "Ann", a="55x55x96", b="26x26x96")
    sub(subs / "2.yaml", "s2", "Ben", a="55x55x96", b=" 26x26x96 ")      # the same, spaced
    sub(subs / "3.yaml", "s3", "Cy", a="55x55x96", b="27x27x96")        # all right: no evidence
    sub(subs / "4.yaml", "s4", "Di", a="55x55x96", b="27x27x96")
    sub(subs / "5.yaml", "s1", "Eve", a="55x55x96", b="25x25x96")       # Ann's id again
    d = book(cli, "--key", q, subs)
    kinds = {g["student"]: sorted(fl["kind"] for fl in g["flags"]) for g in d["submissions"]}
    assert kinds == {"Ann": ["copy", "dup"], "Ben": ["copy"], "Cy": [], "Di": [], "Eve": ["dup"]}
    assert [[x["student"] for x in grp] for grp in d["copies"]] == [["Ann", "Ben"]]
    ann = next(g for g in d["submissions"] if g["student"] == "Ann")
    assert any("Ben (2.yaml)" in fl["text"] for fl in ann["flags"])


def test_question_statistics_by_hand(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("sheet: hw\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: }\n"
                 "  - {id: b, layer: conv1, weights_per_filter: }\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    answers = [("55x55x96", "363"), ("217x217x96", "121"), ("217x217x96", ""), ("54x54x96", "363")]
    for n, (a, b) in enumerate(answers):
        sub(subs / f"{n}.yaml", f"s{n}", None, a=a, b=b)
    qs = {x["id"]: x for x in book(cli, "--key", q, subs)["questions"]}
    # a: 1 of 4 right (55 = (227 − 11)/4 + 1); 217x217x96 twice; b: 2 of 4 (11*11*3 = 363), one blank
    assert (qs["a"]["right"], qs["a"]["percent_right"], qs["a"]["common_wrong"]) == \
        (1, "25", {"answer": "217x217x96", "count": 2})
    assert (qs["b"]["right"], qs["b"]["common_wrong"]) == (2, {"answer": "121", "count": 1})
    table = cli("check", "--key", q, subs, env={"NO_COLOR": "1"}).output
    assert re.search(r"^1 +a +25% +217x217x96 \(×2\)$", table, re.M), table
    assert re.search(r"^2 +b +50% +1 +121 \(×1\)$", table, re.M), table


# ------------------------------------------------------------------------------ Gradescope
def _gradescope(tmp_path, answers: str, users=None):
    ag = tmp_path / "autograder"
    (ag / "source").mkdir(parents=True)
    (ag / "submission").mkdir()
    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, ag / "source" / f)
    (ag / "submission" / "answers.yaml").write_text(answers)
    meta = {"id": 1, "users": users or [{"email": "bob@example.edu", "id": 7, "name": "Bob Stone", "sid": "s1002"}]}
    (ag / "submission_metadata.json").write_text(json.dumps(meta))
    return ag


def test_gradescope_results_json(tmp_path, cli):
    ag = _gradescope(tmp_path, (HOMEWORK / "submissions" / "wrong.yaml").read_text())
    (ag / "results").mkdir()
    out = ag / "results" / "results.json"
    r = cli("check", "--key", ag / "source" / "QUESTIONS.yaml", ag / "submission", "--gradescope",
            "--hide-expected", "-o", out)
    assert r.exit_code == 1, r.output
    res = json.loads(out.read_text())
    assert res["score"] == 3.5 and sum(t["max_score"] for t in res["tests"]) == 13
    assert {t["status"] for t in res["tests"]} == {"passed", "failed"}
    assert all(t["visibility"] == "visible" and "expected" not in t["output"] for t in res["tests"])
    conv1 = next(t for t in res["tests"] if t["name"] == "alexnet-conv1.shape")
    assert conv1["number"] == "1a" and conv1["score"] == 0 and "217x217x96" in conv1["output"]
    # without --hide-expected the failed tests say what was expected: (227 − 11)/4 + 1 = 55
    cli("check", "--key", ag / "source" / "QUESTIONS.yaml", ag / "submission", "--gradescope", "-o", out)
    conv1 = next(t for t in json.loads(out.read_text())["tests"] if t["name"] == "alexnet-conv1.shape")
    assert "expected: 55x55x96" in conv1["output"]


def test_gradescope_identity_wins_and_bad_files_still_get_results(tmp_path, cli):
    text = (HOMEWORK / "submissions" / "right.yaml").read_text()           # Ada's file (id s1001)...
    ag = _gradescope(tmp_path, text)                                          # ...handed in by Bob (s1002)
    out = tmp_path / "r.json"
    key = ag / "source" / "QUESTIONS.yaml"
    cli("check", "--key", key, ag / "submission", "--gradescope", "-o", out)
    res = json.loads(out.read_text())
    assert "variant s1002" in res["output"] and "graded as theirs" in res["output"]
    assert res["score"] < 13                          # Ada's my-conv answers are not Bob's
    (ag / "submission" / "answers.yaml").write_text("answers: [\n")
    r = cli("check", "--key", key, ag / "submission", "--gradescope", "-o", out)
    res = json.loads(out.read_text())
    assert r.exit_code == 2 and res["score"] == 0 and res["tests"] == [] and "answers.yaml:" in res["output"]
    (ag / "submission" / "answers.yaml").write_text(text)
    (ag / "submission" / "more.yaml").write_text(text)
    r = cli("check", "--key", key, ag / "submission", "--gradescope", "-o", out)
    assert r.exit_code == 2 and "upload one answer file" in json.loads(out.read_text())["output"]


def test_an_item_visibility_reaches_gradescope(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("sheet: hw\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: , visibility: after_due_date}\n")
    f = sub(tmp_path / "a.yaml", "s1", None, a="55x55x96")
    res = json.loads(cli("check", "--key", q, f, "--gradescope").output)
    assert res["tests"][0]["visibility"] == "after_due_date" and res["score"] == 1.0
    q.write_text("sheet: hw\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: , visibility: soon}\n")
    r = cli("check", "--key", q, f, "--gradescope")
    assert r.exit_code == 2 and f"{q}:4" in r.output


def _shim(tmp_path) -> dict:
    """PATH with a `cnncalc` that runs this worktree's code (the one on PATH is another copy)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "cnncalc").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cnncalc "$@"\n')
    (bin_ / "cnncalc").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    return env


@pytest.mark.slow
def test_the_run_autograder_example(tmp_path):
    ag = _gradescope(tmp_path, (HOMEWORK / "submissions" / "wrong.yaml").read_text())
    env = dict(_shim(tmp_path), AUTOGRADER=str(ag))
    r = subprocess.run(["bash", HOMEWORK / "gradescope" / "run_autograder"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((ag / "results" / "results.json").read_text())
    assert res["score"] == 3.5 and len(res["tests"]) == 14
    assert "expected" not in json.dumps(res["tests"])            # --hide-expected
    assert os.stat(HOMEWORK / "gradescope" / "run_autograder").st_mode & stat.S_IXUSR


# ------------------------------------------------------------------------------ CI
@pytest.mark.slow
def test_the_ci_workflow_stays_green_and_posts_the_grade(tmp_path):
    """The workflow's grading step, run with bash in a copy of examples/homework."""
    import yaml

    wf = yaml.safe_load((HOMEWORK / "ci-workflow.yml").read_text())
    steps = wf["jobs"]["grade"]["steps"]
    assert "pip install ./.cnncalc" in " ".join(s.get("run", "") for s in steps)
    grade = next(s for s in steps if s.get("name") == "Grade the submissions")
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    course = tmp_path / "course"
    shutil.copytree(HOMEWORK, course)
    env = dict(_shim(tmp_path), GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    r = subprocess.run(["bash", "-e", "-c", grade["run"]], cwd=course, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr                             # wrong answers: still green
    for f in upload["with"]["path"].split():
        assert (course / f).is_file(), f
    root = ET.parse(course / "homework-report.xml").getroot()
    assert len(root.findall("testsuite")) == 5                     # 4 submissions, Dan (absent)
    assert (course / "gradebook.csv").read_text() == (HOMEWORK / "gradebook.csv").read_text()
    assert (course / "gradebook-lms.csv").read_text() == (HOMEWORK / "gradebook-lms.csv").read_text()
    assert (tmp_path / "summary.md").read_text() == (HOMEWORK / "gradebook.md").read_text()
    # a file that cannot be used: a warning annotation, still green
    (course / "submissions" / "broken.yaml").write_text("answers: [\n")
    r = subprocess.run(["bash", "-e", "-c", grade["run"]], cwd=course, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and "::warning::" in r.stdout, (r.stdout, r.stderr)


# ------------------------------------------------------------------------------ feedback
def test_feedback_files_release_the_arithmetic_only_when_asked(tmp_path, cli):
    fb = tmp_path / "fb"
    args = ("check", "--key", QUESTIONS, HOMEWORK / "submissions", "--roster", HOMEWORK / "roster.csv")
    r = cli(*args, "--hide-expected", "--feedback", fb)
    assert r.exit_code == 1
    names = sorted(p.name for p in fb.iterdir())
    assert names == [".cnncalc-feedback", "s1001.md", "s1002.md", "s1003.md", "s1004.md"]   # not Dan (absent)
    bob = (fb / "s1002.md").read_text()
    # his wrong CONV1 shape: (227 − 11)/4 + 1 = 55, and the arithmetic of it
    assert "### 1a. AlexNet CONV1" in bob and "expected: 55x55x96" in bob and "(227 − 11)/4 + 1 = 55" in bob
    assert "### 2." not in bob                       # a question he got right: no answer given away
    assert "identical answers" not in bob            # the copy suspicion is the instructor's
    assert "## The questions you missed" not in (fb / "s1001.md").read_text()
    assert "55x55x96" not in r.output.replace("217x217x96", "")          # --hide-expected still holds
    assert cli(*args, "--feedback", fb).exit_code == 1                    # its own folder: rewritten
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.md").write_text("mine")
    r = cli(*args, "--feedback", other)
    assert r.exit_code == 2 and "holds other files" in r.output and (other / "notes.md").read_text() == "mine"


def test_feedback_file_names_are_safe(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("sheet: hw\nspec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: }\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "x.yaml").write_text('id: "../../evil"\nanswers:\n  a: 1x1x1\n')
    (subs / "y.yaml").write_text('id: "../../EVIL"\nanswers:\n  a: 1x1x1\n')
    cli("check", "--key", q, subs, "--feedback", tmp_path / "fb")
    # each id a file of its own in the folder ("../../evil" and "../../EVIL" are one name on
    # a case-insensitive disk), nothing anywhere else
    assert sorted(p.name for p in (tmp_path / "fb").iterdir()) == [".cnncalc-feedback", "______EVIL-2.md",
                                                                  "______evil.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Q.yaml", "fb", "subs"]


# ------------------------------------------------------------------------------ handouts
def test_templates_and_quizzes_for_a_whole_roster(tmp_path, cli):
    out = tmp_path / "handouts"
    r = cli("check", "--key", QUESTIONS, "--template", "--roster", HOMEWORK / "roster.csv", "-o", out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [f"s100{n}.yaml" for n in range(1, 6)]
    text = (out / "s1004.yaml").read_text()
    assert "\nid: s1004\n" in text and "\nstudent: Mallory Knox\n" in text and "\nvariant:" not in text
    d = book(cli, "--key", QUESTIONS, out, "--roster", HOMEWORK / "roster.csv")
    assert all(g["flags"] == [] and len(g["missing"]) == 14 for g in d["submissions"]) and d["absent"] == []
    r = cli("check", "--key", QUESTIONS, "--template", "--roster", HOMEWORK / "roster.csv", "-o", out)
    assert r.exit_code == 2 and "not overwriting" in r.output
    r = cli("quiz", QUESTIONS, "--roster", HOMEWORK / "roster.csv", "-F", "markdown", "-o", tmp_path / "q")
    assert r.exit_code == 0
    assert (tmp_path / "q" / "s1001.md").read_text() == cli("quiz", QUESTIONS, "--variant", "s1001", "-F",
                                                             "markdown").output


# ------------------------------------------------------------------------------ fairness
def test_labels_say_what_is_graded(cli):
    from cnncalc.check.answers import parse_answers

    af = parse_answers("spec: vgg16\nquestions:\n  - {id: m, memory: }\n  - {id: l, layer: conv1_1, memory: }\n"
                       "  - {id: p, params: , bias: false}\n")
    assert [q.label for q in af.questions] == ["the network: input + activations (elements)",
                                               "conv1_1: the layer's output activations (elements)",
                                               "the network: parameters without biases (weights only)"]
    summary = cli("summarize", "vgg16", env={"NO_COLOR": "1"}).output
    assert "input + activations" in summary                   # summarize's own words
    quiz = cli("quiz", QUESTIONS, "--variant", "s1001").output
    assert "vgg16.memory  input + activations (elements)" in quiz
    assert "Also accepted: a network's memory is its input + activations; the activations alone also pass." in quiz


@pytest.mark.parametrize("answer,ok", [
    ("15,237,608", True), ("15.2M", True),          # input + activations (hand sum above)
    ("15,087,080", True), ("15.1M", True),          # the activations alone
    ("15,237,607", False), ("24M", False)])
def test_network_memory_accepts_both_conventions(tmp_path, cli, answer, ok):
    assert VGG_INPUT + VGG_ACTIVATIONS == 15_237_608
    f = tmp_path / "A.yaml"
    f.write_text(f"spec: vgg16\nquestions:\n  - {{id: m, memory: '{answer}'}}\n")
    r = cli("check", f, "-F", "json")
    assert (r.exit_code == 0) is ok, r.output


@pytest.mark.parametrize("answer,ok", [
    ("60,950,432 B", True), ("61 MB", True),         # (input + activations) * 4 B = 60,950,432 B
    ("58 MB", True), ("58 MiB", True),               # 60,950,432 / 2^20 = 58.13: MB read as MiB
    ("60 MB", True),                                 # the activations alone: 60,348,320 B
    ("59 MB", False), ("61 MiB", False)])
def test_bytes_accept_mb_as_either_power(tmp_path, cli, answer, ok):
    assert (VGG_INPUT + VGG_ACTIVATIONS) * 4 == 60_950_432
    f = tmp_path / "A.yaml"
    f.write_text(f"spec: vgg16\nquestions:\n  - {{id: m, memory_bytes: '{answer}'}}\n")
    r = cli("check", f, "-F", "json")
    assert (r.exit_code == 0) is ok, r.output


def test_the_solution_key_works_among_the_submissions(tmp_path, cli):
    """The key written by --template --solutions carries the design network inline: in
    submissions/ (where no submission may name the sheet's design_net.yaml) it scores 13/13."""
    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, tmp_path / f)
    (tmp_path / "submissions").mkdir()
    key = tmp_path / "submissions" / "key.yaml"
    assert cli("check", "--key", tmp_path / "QUESTIONS.yaml", "--template", "--solutions", "--variant", "s1001",
               "-o", key).exit_code == 0
    assert "design_net.yaml" not in key.read_text().split("answers:")[1]
    d = book(cli, "--key", tmp_path / "QUESTIONS.yaml", tmp_path / "submissions")["submissions"][0]
    assert (d["score"], d["points"], d["status"]) == ("13", "13", "pass")
