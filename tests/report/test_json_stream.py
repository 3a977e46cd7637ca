"""`--format json` of the analysis reports (issue 27 item 4): piped, the exact bytes of
``json.dumps(obj, ensure_ascii=False)`` written by the C encoder in batches of rows; on a
terminal, the indented bytes as before."""
from __future__ import annotations

import io
import json

import pytest

from cnncalc.analysis.report import analyze_graph
from cnncalc.report.render import emit_json
from cnncalc.spec.loader import load_spec


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("name", ["lenet5", "googlenet", "cifar_resnet110"])
def test_piped_is_compact_and_the_same_object(name):
    rep = analyze_graph(load_spec(name), explain=True)
    obj = rep.to_dict()
    out = io.StringIO()
    emit_json(rep.to_dict(lazy=True), out, rows="layers")
    assert out.getvalue() == json.dumps(obj, ensure_ascii=False) + "\n"
    assert out.getvalue().count("\n") == 1 and json.loads(out.getvalue()) == obj


def test_a_terminal_gets_the_indented_bytes():
    rep = analyze_graph(load_spec("lenet5"))
    obj = rep.to_dict()
    out = Tty()
    emit_json(rep.to_dict(lazy=True), out, rows="layers")  # a generator of rows, made a list
    assert out.getvalue() == json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    plain = Tty()
    emit_json({"a": [1, 2]}, plain)
    assert plain.getvalue() == json.dumps({"a": [1, 2]}, indent=2) + "\n"


@pytest.mark.parametrize("obj", [
    {"layers": []},
    {"layers": [{"x": 1}]},
    {"name": "n", "layers": [{"x": i, "s": "é\u2028<\"'"} for i in range(600)]},
    {"layers": [{"x": 1}] * 256, "tail": {"t": [1, None, True]}},
    {"a": 1, "layers": ({"i": i} for i in range(513)), "b": 2.5},
])
def test_batches_join_into_the_compact_bytes(obj):
    want = dict(obj)
    if not isinstance(want["layers"], list):
        want["layers"] = [{"i": i} for i in range(513)]
    out = io.StringIO()
    emit_json(obj, out, rows="layers")
    assert out.getvalue() == json.dumps(want, ensure_ascii=False) + "\n"


def test_the_cli_pipes_compact_json(cli):
    r = cli("summarize", "lenet5", "--format", "json", "--explain")
    assert r.exit_code == 0
    assert r.output.count("\n") == 1
    rows = json.loads(r.output)["layers"]
    assert rows and all(row["explain"] for row in rows)
    r = cli("receptive-field", "lenet5", "--format", "json")
    assert r.exit_code == 0 and r.output.count("\n") == 1 and json.loads(r.output)["layers"]
