"""`cnncalc check --rounding` (issue 10): the override applies to every network the answer file or
the sheet names — zoo names, inline specs, one-layer questions — and, with --key, to the draws."""
import json

from click.testing import CliRunner

from cnncalc.cli import main

# VGG-16 at 225x225: pool1 (2x2/2) sees 225x225x64: (225 − 2)/2 + 1 = 112.5 does not fit;
# floor → 112, ceil → 113. A 3x3/3 conv on 7x7: (7 − 3)/3 + 1 = 2.33: floor → 2, ceil → 3.
ANSWERS = """\
title: rounding
questions:
  - id: vgg-pool1
    spec: vgg16
    input: 225x225x3
    layer: pool1
    shape: 112x112x64
  - id: one-layer
    layer: {input: 7x7x1, conv: 1, kernel: 3, stride: 3}
    shape: 2x2x1
  - id: inline
    spec: {input: 7x7x1, layers: [{maxpool: 3, stride: 3, name: p}]}
    layer: p
    shape: 2x2x1
"""


def run(*args):
    return CliRunner().invoke(main, ["check", *map(str, args)])


def _results(r):
    return {x["id"]: x for x in json.loads(r.stdout)["results"]}


def test_check_rounding_overrides_every_named_network(tmp_path):
    p = tmp_path / "ANSWERS.yaml"
    p.write_text(ANSWERS)
    strict = run(p, "-F", "json")
    assert strict.exit_code == 1
    assert {k: v["expected"] for k, v in _results(strict).items()} == {
        "vgg-pool1": "does not fit", "one-layer": "does not fit", "inline": "does not fit"}
    floor = run(p, "-F", "json", "--rounding", "floor")
    assert floor.exit_code == 0, floor.output
    assert all(v["status"] == "pass" for v in _results(floor).values())
    ceil = run(p, "-F", "json", "--rounding", "ceil")
    assert ceil.exit_code == 1
    assert {k: v["expected"] for k, v in _results(ceil).items()} == {
        "vgg-pool1": "113x113x64", "one-layer": "3x3x1", "inline": "3x3x1"}
    assert run(p, "--rounding", "strict").exit_code == 1


def test_a_layers_own_rounding_still_wins(tmp_path):
    p = tmp_path / "ANSWERS.yaml"
    p.write_text("questions:\n  - id: own\n    spec: {input: 7x7x1, layers: [{maxpool: 3, stride: 3, "
                 "rounding: ceil, name: p}]}\n    layer: p\n    shape: 3x3x1\n")
    assert run(p, "--rounding", "floor").exit_code == 0


SHEET = """\
sheet: r
questions:
  - id: q
    layer: {input: 7x7x1, conv: 1, kernel: 3, stride: 3}
    shape:
"""


def test_check_key_rounding_and_its_help(tmp_path):
    (tmp_path / "Q.yaml").write_text(SHEET)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ada.yaml").write_text("sheet: r\nstudent: ada\nanswers:\n  q: 2x2x1\n")
    assert run("--key", tmp_path / "Q.yaml", tmp_path / "sub").exit_code == 1
    r = run("--key", tmp_path / "Q.yaml", tmp_path / "sub", "--rounding", "floor")
    assert r.exit_code == 0, r.output
    sol = run("--key", tmp_path / "Q.yaml", "--solutions", "--rounding", "ceil", "-F", "json")
    assert sol.exit_code == 0 and "3x3x1" in sol.output
    help_text = " ".join(run("--help").output.split())
    assert "--rounding [floor|ceil|strict]" in help_text and "design questions" in help_text
