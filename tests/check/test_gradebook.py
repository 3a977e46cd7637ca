"""cnncalc check --key: the sheet is the authority, many submissions, a gradebook, variants.

Expected values here come from hand formulas — out = (W + 2P − K)/S + 1, params = K·K·C·F + F,
MACs = out²·F·K·K·C, a window fits iff (W − K) % S == 0 — never from cnncalc's own code.
"""
import json
import random
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import run_module

HOMEWORK = Path(__file__).resolve().parents[2] / "examples" / "homework"
QUESTIONS = HOMEWORK / "QUESTIONS.yaml"
SUBS = HOMEWORK / "submissions"
FORMATS = ["table", "json", "junit", "csv", "markdown"]

SHEET = """\
sheet: t200
title: generated
spec: alexnet
questions:
  - id: conv1
    layer: conv1
    shape:
    params:
    points: 2
  - id: c
    text: "K={kernel} S={stride} P={pad} F={conv} on {input}"
    layer:
      input: {choose: [28x28x3, 32x32x3, 31x31x1]}
      conv: {choose: [4, 6]}
      kernel: {choose: [3, 5]}
      stride: {range: [1, 3]}
      pad: {range: [0, 2]}
    shape:
    params:
    macs:
    points: 3
  - id: f
    text: "W={input} K={kernel} S={stride}"
    layer: {input: {choose: [7x7x1, 9x9x1]}, conv: 1, kernel: 3, stride: {range: [1, 3]}}
    fits:
"""


def draw(sheet, vid):
    """The numbers drawn for a student, read back from the text of their quiz."""
    from cnncalc.check.quiz import quiz_dict

    items = {it["id"]: it["text"] for it in quiz_dict(sheet.variant(vid))["items"]}
    k, s, p, f, h, w, c = map(int, re.fullmatch(r"K=(\d+) S=(\d+) P=(\d+) F=(\d+) on (\d+)x(\d+)x(\d+)",
                                                 items["c"]).groups())
    fw, fk, fs = map(int, re.fullmatch(r"W=(\d+)x\d+x1 K=(\d+) S=(\d+)", items["f"]).groups())
    return dict(k=k, s=s, p=p, f=f, h=h, w=w, c=c), dict(w=fw, k=fk, s=fs)


def hand(c):
    """Output size, parameters and MACs of the conv, by the formulas of the lecture."""
    assert (c["h"] + 2 * c["p"] - c["k"]) % c["s"] == 0, c            # it fits
    out = (c["h"] + 2 * c["p"] - c["k"]) // c["s"] + 1
    params = c["k"] * c["k"] * c["c"] * c["f"] + c["f"]
    macs = out * out * c["f"] * c["k"] * c["k"] * c["c"]
    return out, params, macs


@pytest.fixture
def sheet_file(tmp_path):
    p = tmp_path / "Q.yaml"
    p.write_text(SHEET)
    return p


def test_200_submissions_in_one_call(sheet_file, tmp_path, cli):
    from cnncalc.check.sheet import Sheet

    sheet = Sheet(sheet_file)
    rng = random.Random(15)
    subs = tmp_path / "subs"
    subs.mkdir()
    want = {}
    for n in range(200):
        vid = f"s{n:04d}"
        c, f = draw(sheet, vid)
        out, params, macs = hand(c)
        truth = {"conv1.shape": "55x55x96",             # (227 − 11)/4 + 1 = 55
                 "conv1.params": 11 * 11 * 3 * 96 + 96,  # 34,944
                 "c.shape": f"{out}x{out}x{c['f']}", "c.params": params, "c.macs": macs,
                 "f": "yes" if (f["w"] - f["k"]) % f["s"] == 0 else "no"}
        wrong = {"conv1.shape": "54x54x96", "conv1.params": 34848, "c.shape": f"{out + 1}x{out + 1}x{c['f']}",
                 "c.params": params - c["f"], "c.macs": macs + 1, "f": "no" if truth["f"] == "yes" else "yes"}
        pts = {"conv1.shape": 1, "conv1.params": 1, "c.shape": 1, "c.params": 1, "c.macs": 1, "f": 1}
        lines, status, score = [f"variant: {vid}", f"student: student {n}", "answers:"], {}, 0
        for qid in truth:
            r = rng.random()
            if n == 0 or r < 0.7:
                v = truth[qid]
                if isinstance(v, int) and rng.random() < 0.5:
                    v = f"'{v:,}'"
                lines.append(f"  {qid}: {v}")
                status[qid] = "pass"
                score += pts[qid]
            elif r < 0.9:
                lines.append(f"  {qid}: {wrong[qid]}")
                status[qid] = "fail"
            else:
                status[qid] = "missing"
        (subs / f"{vid}.yaml").write_text("\n".join(lines) + "\n")
        want[vid] = (status, score)

    r = cli("check", "--key", sheet_file, subs, "--format", "json")
    assert r.exit_code == 1, r.output
    book = json.loads(r.output)
    assert len(book["submissions"]) == 200
    for s in book["submissions"]:
        status, score = want[s["variant"]]
        assert {x["id"]: x["status"] for x in s["results"]} == status, s["file"]
        assert s["score"] == str(score) and s["points"] == "6"
        assert s["status"] == ("pass" if score == 6 else "fail")
    assert book["summary"]["passed"] == sum(sc == 6 for _, sc in want.values()) >= 1


def test_variants_are_deterministic_valid_and_differ(sheet_file):
    from cnncalc.check.sheet import Sheet

    a, b = Sheet(sheet_file), Sheet(sheet_file)
    draws = set()
    for n in range(60):
        vid = f"id-{n}"
        assert draw(a, vid) == draw(b, vid)            # the same id, the same numbers
        c, f = draw(a, vid)
        hand(c)                                        # only combinations that fit are drawn
        draws.add(json.dumps(c, sort_keys=True))
    assert len(draws) >= 20                            # different ids draw different numbers


def test_variants_do_not_depend_on_the_process(sheet_file):
    """A stable hash: another interpreter (another PYTHONHASHSEED) draws the same numbers."""
    outs = {run_module("quiz", sheet_file, "--variant", "s42", "--format", "json",
                       env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and "K=" in outs.pop()


@pytest.mark.parametrize("vid", ["s1001", "s1002", "zz-9"])
def test_a_variant_solution_key_passes_its_own_check(tmp_path, vid, cli):
    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, tmp_path / f)
    key = tmp_path / "key.yaml"
    r = cli("check", "--key", tmp_path / "QUESTIONS.yaml", "--template", "--solutions", "--variant", vid, "-o", key)
    assert r.exit_code == 0, r.output
    r = cli("check", "--key", tmp_path / "QUESTIONS.yaml", key, "-F", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)["submissions"][0]
    assert d["status"] == "pass" and d["failed"] == 0 and d["passed"] == 14 and d["variant"] == vid


def test_solutions_show_the_arithmetic(cli):
    r = cli("check", "--key", QUESTIONS, "--solutions", "--variant", "s1001", "-F", "json")
    assert r.exit_code == 0
    sol = {s["id"]: s for s in json.loads(r.output)["solutions"]}
    assert sol["alexnet-conv1.shape"]["expected"] == "55x55x96"
    assert sol["alexnet-conv1.shape"]["arithmetic"] == "(227 − 11)/4 + 1 = 55"
    assert sol["alexnet-conv1-params"]["expected"] == "34,848"           # 11*11*3*96, no biases
    # s1001 draws (with the sheet's seed) 10 5x5 filters, stride 1, pad 0 on 32x32x3:
    # (32 − 5)/1 + 1 = 28
    assert sol["my-conv.shape"]["expected"] == "28x28x10"
    assert sol["my-conv.macs"]["expected"] == f"{28 * 28 * 10 * 5 * 5 * 3:,}"


def _all_wrong(tmp_path) -> Path:
    sub = tmp_path / "allwrong.yaml"
    sub.write_text("sheet: cnn-homework-2\nvariant: s1002\nanswers:\n"
                   "  alexnet-conv1.shape: 1x1x1\n  alexnet-conv1.weights_per_filter: 2\n"
                   "  alexnet-conv1-params: 3\n  alexnet-pool1: 4x4x4\n  stride-3: yes\n"
                   "  vgg16.params: 5\n  vgg16.memory: 6\n  rf-7x7: 7\n"
                   "  my-conv: {shape: 2x2x2, params: 8, macs: 9}\n  design: lenet5\n")
    return sub


@pytest.mark.parametrize("fmt", FORMATS)
def test_hide_expected_leaks_no_expected_value(tmp_path, fmt, cli):
    """Every expected value and arithmetic of the variants graded, searched in every format."""
    sub = _all_wrong(tmp_path)
    secrets = set()
    for vid in ("s1002", "s1003"):
        d = json.loads(cli("check", "--key", QUESTIONS, "--solutions", "--variant", vid, "-F", "json").output)
        for s in d["solutions"]:
            if s["id"].startswith("design"):
                continue        # the reference network's figures; the student's own are below
            secrets |= {s["expected"], s["arithmetic"], str(s["answer"])}
    full = json.loads(cli("check", "--key", QUESTIONS, sub, SUBS / "tampered.yaml", "-F", "json").output)
    for g in full["submissions"]:
        for x in g["results"]:
            secrets |= {x["expected"], x["arithmetic"]}
    given = "".join(cli("quiz", QUESTIONS, "--variant", v).output for v in ("s1002", "s1003"))
    # what the question texts themselves say (POOL1 "on 55x55x96") is no leak of cnncalc's
    secrets = {s for s in secrets if len(s) >= 3 and s not in given}
    secrets |= {s.replace(",", "") for s in secrets if re.fullmatch(r"[\d,]+", s)}
    single = cli("check", "--key", QUESTIONS, sub, "--hide-expected", "-F", fmt).output
    for s in secrets:          # every answer in allwrong.yaml is wrong: no expected value is its own
        assert s not in single, (fmt, s)
    own = (SUBS / "tampered.yaml").read_text()     # Eve's right answers are hers to see
    secrets = {s for s in secrets if s not in own}
    args = ["check", "--key", QUESTIONS, sub, SUBS / "tampered.yaml", "--hide-expected", "-F", fmt]
    for extra in ([], ["--details"]):
        out = cli(*args, *extra).output
        assert "allwrong" in out                             # the submission is named
        if fmt in ("json", "junit") or (extra and fmt != "csv"):
            assert "1x1x1" in out                            # and its own answers shown
        for s in secrets:
            assert s not in out, (fmt, extra, s)


def test_tampered_definitions_are_flagged_and_cannot_pass(cli):
    r = cli("check", "--key", QUESTIONS, SUBS / "tampered.yaml", "-F", "json")
    assert r.exit_code == 1
    d = json.loads(r.output)["submissions"][0]
    st = {x["id"]: x["status"] for x in d["results"]}
    changed = {(c["id"], c["field"]) for c in d["changed"]}
    # changed stride: she answers "fits: yes" for stride 2; the sheet's stride 3 does not fit
    assert ("stride-3", "layer") in changed and st["stride-3"] == "fail"
    assert "stride: 3" in next(c["sheet"] for c in d["changed"] if c["id"] == "stride-3")
    # an added inline spec named vgg16: her 8x8x1 network's params (3*3*1 + 1 = 10) fail
    assert ("vgg16.params", "spec") in changed and st["vgg16.params"] == "fail"
    # a changed spec (stride 2 dropped): r = 7 + 6 = 13 instead of 7 + 6*2 = 19
    assert ("rf-7x7", "spec") in changed and st["rf-7x7"] == "fail"
    # the questions she did not touch are graded normally and flagged nowhere
    assert st["alexnet-conv1.shape"] == "pass" and not any(c[0].startswith("alexnet") for c in changed)
    table = cli("check", "--key", QUESTIONS, SUBS / "tampered.yaml").output
    assert "stride-3: layer changed from" in table and "graded with the sheet's" in table


def test_the_combined_format_untampered_is_not_flagged(tmp_path, cli):
    """The lecture's own ANSWERS.yaml graded against itself as a sheet: nothing changed."""
    for f in ("ANSWERS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, tmp_path / f)
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(HOMEWORK / "ANSWERS.yaml", sub / "answers.yaml")
    shutil.copy(HOMEWORK / "design_net.yaml", sub / "design_net.yaml")
    r = cli("check", "--key", tmp_path / "ANSWERS.yaml", sub / "answers.yaml", "-F", "json")
    d = json.loads(r.output)["submissions"][0]
    assert d["changed"] == [] and d["unknown"] == [] and d["missing"] == []
    assert r.exit_code == 0 and d["status"] == "pass", r.output


def test_minimal_format_forms_unknown_and_missing(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("spec: alexnet\nquestions:\n"
                 "  - {id: a, layer: conv1, shape: , params: , weights_per_filter: , points: 3}\n"
                 "  - {id: b, layer: pool1, shape: }\n")
    s = tmp_path / "s.yaml"
    s.write_text("answers:\n  a:\n    output: 55x55x96\n    params: 36K\n  b: [27, 27, 96]\n  zz: 1\n")
    r = cli("check", "--key", q, s, "-F", "json")
    assert r.exit_code == 1
    d = json.loads(r.output)["submissions"][0]
    st = {x["id"]: x["status"] for x in d["results"]}
    # 'output' is an alias of shape; 36K fails 34,944 (11*11*3*96 + 96) at the precision written
    assert st == {"a.shape": "pass", "a.params": "fail", "a.weights_per_filter": "missing", "b": "pass"}
    assert d["score"] == "2" and d["points"] == "4"                # 3 points shared by 3 answers
    assert d["unknown"] == [{"id": "zz", "line": 6}] and d["missing"] == ["a.weights_per_filter"]
    assert cli("check", "--key", q, s, "--pass-mark", "50").exit_code == 0


def test_analysis_once_per_distinct_question(monkeypatch, tmp_path, cli):
    import cnncalc.check.grade as grade

    calls = []
    real = grade.analyze_graph
    monkeypatch.setattr(grade, "analyze_graph", lambda g, **kw: calls.append(g.name) or real(g, **kw))
    counts = []
    for n in (1, 30):
        d = tmp_path / f"d{n}"
        d.mkdir()
        for i in range(n):
            shutil.copy(SUBS / "wrong.yaml", d / f"w{i}.yaml")
        calls.clear()
        assert cli("check", "--key", QUESTIONS, d, "-F", "csv").exit_code == 1
        counts.append(len(calls))
    assert counts[0] == counts[1], counts


def test_junit_one_suite_per_submission(cli):
    r = cli("check", "--key", QUESTIONS, SUBS, "-F", "junit")
    assert r.exit_code == 1
    root = ET.fromstring(r.output)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["Mallory Knox", "Ada Lovelace", "Eve Moneypenny", "Bob Stone"]
    # Eve: the 4 answers to the questions she changed; Bob: 1a 1b 4 5b 6 (missing) 7a 7b 8a-c;
    # Mallory, Bob's answers graded with her own variant: Bob's and 7c (his right MACs are not hers)
    assert [s.get("failures") for s in suites] == ["11", "0", "4", "10"]
    assert all(len(s.findall("testcase")) == 14 for s in suites)
    eve = suites[2]
    assert any("stride-3: layer changed" in (c.findtext("system-out") or "") for c in eve.findall("testcase"))


def test_the_example_gradebook_is_what_the_examples_produce(cli, monkeypatch):
    """As the CI workflow runs it, in the course folder (examples/homework)."""
    monkeypatch.chdir(HOMEWORK)
    for fmt, name in (("markdown", "gradebook.md"), ("csv", "gradebook.csv"), ("lms", "gradebook-lms.csv")):
        r = cli("check", "--key", "QUESTIONS.yaml", "submissions/", "--roster", "roster.csv", "--hide-expected",
                "-F", fmt)
        assert r.exit_code == 1
        assert r.output == (HOMEWORK / name).read_text(), name


def test_template_lists_every_question_and_is_a_valid_blank_submission(tmp_path, cli):
    t = tmp_path / "answers.yaml"
    r = cli("check", "--key", QUESTIONS, "--template", "--variant", "s7", "-o", t)
    assert r.exit_code == 0, r.output
    text = t.read_text()
    assert "# 1. AlexNet CONV1 (96 11x11 filters, stride 4) on 227x227x3 (2 points)" in text
    assert "variant: s7" in text and "my-conv.macs:" in text
    d = json.loads(cli("check", "--key", QUESTIONS, t, "-F", "json").output)["submissions"][0]
    assert d["passed"] == 0 and len(d["missing"]) == 14 and d["changed"] == []
    r = cli("check", "--key", QUESTIONS, "--template", "--variant", "s7", "-o", t)
    assert r.exit_code == 2 and "not overwriting" in r.output          # a student's file is kept


def test_quiz_renders_a_students_questions(cli):
    r = cli("quiz", QUESTIONS, "--variant", "s1001", "--format", "markdown")
    assert r.exit_code == 0
    assert "**10 5x5 filters, stride 1, pad 0, on 32x32x3** (3 points)" in r.output
    assert "`my-conv.macs`: multiply-accumulates" in r.output
    same = cli("check", "--key", QUESTIONS, "--variant", "s1001", "-F", "markdown")
    assert same.output == r.output
    r = cli("quiz", QUESTIONS)
    assert r.exit_code == 2 and "variants" in r.output and "--variant" in r.output


# ------------------------------------------------------------------------------ bad input
def _exit2(r, where):
    assert r.exit_code == 2, r.output
    assert where in r.output and "Traceback" not in r.output, r.output


def test_a_sheet_that_does_not_parse(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("spec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: \n")
    _exit2(cli("check", "--key", q, SUBS / "right.yaml"), f"{q}:")
    q.write_text("spec: alexnet\nquestions:\n  - id: a\n    layer: conv9\n    shape:\n")
    _exit2(cli("check", "--key", q, SUBS / "right.yaml"), f"{q}:4")
    q.write_text("spec: alexnet\nquestions:\n  - id: a\n    layer: {input: 7x7x1, conv: 1, kernel: 3,"
                 " stride: {range: [3, 1]}}\n    shape:\n")
    _exit2(cli("check", "--key", q, SUBS / "right.yaml"), f"{q}:4")
    q.write_text("spec: alexnet\nquestions:\n  - id: a\n    layer: {input: 8x8x1, conv: 1, kernel: 3,"
                 " stride: {choose: [2, 4]}}\n    shape:\n")       # (8 − 3)/2, (8 − 3)/4: never fits
    _exit2(cli("check", "--key", q, SUBS / "right.yaml"), f"{q}:4")


def test_a_submission_for_another_sheet(tmp_path, cli):
    s = tmp_path / "s.yaml"
    s.write_text("# for homework 1\nsheet: cnn-homework-1\nvariant: s1\nanswers:\n  a: 1\n")
    r = cli("check", "--key", QUESTIONS, s, SUBS / "right.yaml", "-F", "json")
    _exit2(r, f"{s}:2")
    book = json.loads(r.stdout)                         # the others are still graded
    assert [g["status"] for g in book["submissions"]] == ["error", "pass"]
    s.write_text("variant: s1\nanswers:\n  conv-1: 1\n  conv-2: 2\n")
    _exit2(cli("check", "--key", QUESTIONS, s), f"{s}:3")
    assert "another sheet" in cli("check", "--key", QUESTIONS, s).output


def test_a_missing_variant_id(tmp_path, cli):
    s = tmp_path / "s.yaml"
    s.write_text("sheet: cnn-homework-2\nanswers:\n  alexnet-pool1: 27x27x96\n")
    r = cli("check", "--key", QUESTIONS, s)
    _exit2(r, f"{s}:2")
    assert "variant" in r.output


def test_key_options_need_a_key(cli):
    _exit2(cli("check", "--template"), "--key")
    _exit2(cli("check", SUBS / "right.yaml", SUBS / "wrong.yaml"), "--key")


def test_a_directory_with_a_students_network_file(tmp_path, cli):
    """A spec next to the answers (the design answer by path) is not taken for a submission."""
    d = tmp_path / "ada"
    d.mkdir()
    (d / "my_net.yaml").write_text("input: 128x128x3\nlayers:\n  - {global_avgpool: }\n  - {conv: 10, kernel: 1}\n")
    (d / "answers.yaml").write_text("sheet: cnn-homework-2\nvariant: s1\nanswers:\n  design: my_net.yaml\n")
    r = cli("check", "--key", QUESTIONS, d, "-F", "json")
    book = json.loads(r.output)
    assert [Path(g["file"]).name for g in book["submissions"]] == ["answers.yaml"]
    st = {x["id"]: x["status"] for x in book["submissions"][0]["results"]}
    # global pooling then 10 1x1 filters: 3*10 + 10 = 40 params, 1x1x10 out
    assert st["design.1"] == st["design.3"] == "pass" and st["alexnet-pool1"] == "missing"


def test_a_variant_id_is_read_as_written(tmp_path, cli):
    """YAML reads 007 as the number 7; the student's id is 007, and so is the draw."""
    key = tmp_path / "key.yaml"
    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, tmp_path / f)
    assert cli("check", "--key", tmp_path / "QUESTIONS.yaml", "--template", "--solutions", "--variant", "007",
               "-o", key).exit_code == 0
    key.write_text(key.read_text().replace('variant: "007"', "variant: 007"))
    d = json.loads(cli("check", "--key", tmp_path / "QUESTIONS.yaml", key, "-F", "json").output)["submissions"][0]
    assert d["variant"] == "007" and d["status"] == "pass"


def test_a_copy_of_the_sheet_with_points_is_a_combined_submission(tmp_path, cli):
    q = tmp_path / "Q.yaml"
    q.write_text("spec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: , points: 2}\n")
    s = tmp_path / "s.yaml"
    s.write_text("spec: alexnet\nquestions:\n  - {id: a, layer: conv1, shape: 55x55x96, points: 20}\n")
    d = json.loads(cli("check", "--key", q, s, "-F", "json").output)["submissions"][0]
    assert d["status"] == "pass" and d["points"] == "2" and d["changed"] == []
