"""cnncalc check: exit codes, formats, JUnit validity, --hide-expected, the example files."""
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc import analyze
from cnncalc.check import pytest_cases, run_check
from cnncalc.cli import main

HOMEWORK = Path(__file__).resolve().parents[2] / "examples" / "homework"
ANSWERS, WRONG = HOMEWORK / "ANSWERS.yaml", HOMEWORK / "WRONG.yaml"


def run(*args):
    return CliRunner().invoke(main, ["check", *map(str, args)])


def test_the_lecture_answers_pass():
    r = run(ANSWERS)
    assert r.exit_code == 0, r.output
    assert "FAIL" not in r.output and "(227 − 11)/4 + 1 = 55" in r.output


def test_the_wrong_answers_fail_every_one():
    r = run(WRONG, "--format", "json")
    assert r.exit_code == 1
    d = json.loads(r.output)
    assert d["passed"] == 0 and d["failed"] == d["total"] == 8
    by_id = {x["id"]: x for x in d["results"]}
    assert by_id["forgot-stride"]["expected"] == "55x55x96"
    assert by_id["unanswered"]["note"] == "not answered"
    assert by_id["thinks-it-fits"]["expected"] == "does not fit"


def test_json_of_the_examples():
    d = json.loads(run(ANSWERS, "-F", "json").output)
    by_id = {x["id"]: x for x in d["results"]}
    assert by_id["alexnet-conv1-params"]["expected"] == "34,848"          # 11*11*3*96
    assert by_id["alexnet-conv1-params-rounded"]["expected"].startswith("34,944")  # + 96 biases
    assert by_id["rf-7x7.rf"]["expected"] == "19"                        # 7 + (7 − 1)*2


def test_junit_is_well_formed_and_counts(tmp_path):
    out = tmp_path / "r.xml"
    r = run(WRONG, "--format", "junit", "--output", out)
    assert r.exit_code == 1
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "8" and suite.get("failures") == "8"
    cases = suite.findall("testcase")
    assert len(cases) == 8 and all(c.find("failure") is not None for c in cases)
    root = ET.fromstring(run(ANSWERS, "-F", "junit").output)
    assert root.find("testsuite").get("failures") == "0"


def test_junit_escapes_markup(tmp_path):
    f = tmp_path / "A.yaml"
    f.write_text('title: "<b>&\\"quotes\\"</b>"\nspec: alexnet\nquestions:\n'
                 '  - {id: "x<&>", text: "a <tag> & more", layer: conv1, shape: "<55>"}\n')
    r = run(f, "-F", "junit")
    assert r.exit_code == 1
    root = ET.fromstring(r.output)
    case = root.find("testsuite/testcase")
    assert case.get("name").startswith("x<&>: a <tag> & more")


LEAKS = ["55x55x96", "34,944", "34944", "138,357,544", "(227 − 11)/4 + 1", "15,237,608", "does not fit; use"]


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "csv", "markdown"])
def test_hide_expected_leaks_nothing(fmt):
    r = run(WRONG, "--hide-expected", "--format", fmt)
    assert r.exit_code == 1
    for secret in LEAKS:
        assert secret not in r.output, (fmt, secret)
    assert "forgot-stride" in r.output        # the question is still named
    assert "217x217x96" in r.output           # and the student's own answer is shown


def test_hide_expected_pytest_cases_do_not_leak():
    cases = {p.id: p.values[0] for p in pytest_cases(WRONG, hide_expected=True)}
    with pytest.raises(AssertionError) as e:
        cases["forgot-stride"].check()
    assert "55x55x96" not in str(e.value) and "217x217x96" in str(e.value)


def test_bad_file_exit_2_with_file_and_line(tmp_path):
    f = tmp_path / "A.yaml"
    f.write_text("spec: alexnet\nquestions:\n  - layer: conv9\n    shape: 1x1x1\n")
    r = run(f)
    assert r.exit_code == 2
    assert f"{f}:3" in r.output and "conv9" in r.output and "Traceback" not in r.output
    f.write_text("spec: no-such-net\nquestions:\n  - {layer: conv1, shape: 1x1x1}\n")
    assert run(f).exit_code == 2
    assert run(tmp_path / "missing.yaml").exit_code == 2


def test_unreadable_answer_is_a_fail_not_a_crash(tmp_path):
    f = tmp_path / "A.yaml"
    f.write_text("spec: alexnet\nquestions:\n  - {layer: conv1, shape: 55by55}\n")
    r = run(f, "-F", "json")
    assert r.exit_code == 1
    assert "write it like" in json.loads(r.output)["results"][0]["note"]


def test_rf_questions_need_the_rf_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cnncalc.analysis.rf", None)   # as if it were not installed
    r = run(ANSWERS)
    assert r.exit_code == 2 and "receptive fields need cnncalc.analysis.rf" in r.output


def test_design_requirements(tmp_path):
    f = tmp_path / "A.yaml"  # 'spec:' is confined to the answer file's folder: the spec goes next to it
    (tmp_path / "design_net.yaml").write_text((HOMEWORK / "design_net.yaml").read_text())
    f.write_text("spec: design_net.yaml\nrequire:\n  - params <= 694,122\n"
                 "  - params < 694,122\n  - rf >= 100\n  - output = 1x1x10\n")
    d = json.loads(run(f, "-F", "json").output)
    status = [x["status"] for x in d["results"]]
    # 694,122 params exactly (summarize); the output sees its whole 128-pixel input
    assert status == ["pass", "fail", "pass", "pass"]


def test_precision_as_written_end_to_end(tmp_path):
    f = tmp_path / "A.yaml"
    f.write_text("spec: alexnet\nquestions:\n  - {id: a, layer: conv1, bias: false, params: 35K}\n"
                 "  - {id: b, layer: conv1, bias: false, params: 36K}\n"
                 "  - {id: c, layer: conv1, bias: false, params: '34,848'}\n"
                 "  - {id: d, layer: conv1, bias: false, params: 34849}\n")
    d = json.loads(run(f, "-F", "json").output)
    assert [x["status"] for x in d["results"]] == ["pass", "fail", "pass", "fail"]


@pytest.mark.parametrize("case", pytest_cases(ANSWERS))
def test_answers_as_pytest_cases(case):
    case.check()


def test_pytest_cases_fail_with_the_reason():
    cases = {p.id: p.values[0] for p in pytest_cases(WRONG)}
    with pytest.raises(AssertionError, match=r"expected 55x55x96 \[\(227 − 11\)/4 \+ 1 = 55\]"):
        cases["forgot-stride"].check()


def test_python_api_analyze():
    r = analyze("alexnet")
    assert r["conv1"].shape == (55, 55, 96)             # (227 − 11)/4 + 1 = 55
    assert r["conv1"].params == 11 * 11 * 3 * 96 + 96
    assert run_check(ANSWERS).failed == 0
