"""Spec language of issue 10: `when: false` skips an item unvalidated, `repeat: 0`, the
--rounding override, the unconsumed-output warning, and the runtime's missing kernels."""
import json

import pytest

import cnncalc
from cnncalc.errors import SpecError
from cnncalc.spec.loader import load_spec_text
from tests.conftest import run_module


def _g(text):
    return load_spec_text(text, file="<t>")


def test_when_false_skips_without_validating():
    g = _g("input: 8x8x3\nvars: {extra: false}\nlayers:\n  - {conv: 4, kernel: 3, name: c}\n"
           "  - {nonsense_type: 3, when: $extra}\n"
           "  - {conv: 4, kernel: 99, repeat: -1, when: false}\n"
           "  - {layers: [{bogus: 1}], when: '${extra and True}'}\n")
    assert [n.name for n in g.layers] == ["c"]


def test_when_with_the_repeat_counter_is_decided_per_repetition():
    g = _g("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, repeat: 4, when: '${n % 2 == 0}', name: 'c$n'}\n")
    assert [n.name for n in g.layers] == ["c2", "c4"]


def test_when_true_still_validates():
    with pytest.raises(SpecError, match="unknown layer type"):
        _g("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1}\n  - {nonsense: 3, when: true}\n")


def test_repeat_zero_means_none_and_negative_is_refused():
    g = _g("input: 8x8x3\nvars: {k: 0}\nlayers:\n  - {conv: 4, kernel: 1, name: a}\n"
           "  - {conv: 4, kernel: 1, repeat: $k}\n  - {layers: [{conv: 2, kernel: 1}], repeat: 0}\n")
    assert [n.name for n in g.layers] == ["a"]
    with pytest.raises(SpecError, match="≥ 0"):
        _g("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, repeat: -1}\n")


def test_rounding_option_overrides_the_spec(tmp_path):
    # VGG-16 at 225x225 stops at pool1 (225/2 does not fit) under the spec's strict rule
    res = run_module("summarize", "vgg16", "--input", "225x225x3", "--format", "json")
    assert res.returncode == 2 and "pool1" in res.stderr
    res = run_module("summarize", "vgg16", "--input", "225x225x3", "--rounding", "floor", "--format", "json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    pool1 = next(x for x in d["layers"] if x["name"] == "pool1")
    assert pool1["shape"] == [112, 112, 64]  # floor((225 − 2)/2 + 1) = 112
    res = run_module("summarize", "vgg16", "--input", "225x225x3", "--rounding", "ceil", "--format", "json")
    assert next(x for x in json.loads(res.stdout)["layers"] if x["name"] == "pool1")["shape"] == [113, 113, 64]
    p = tmp_path / "f.yaml"
    p.write_text("input: 7x7x1\nrounding: floor\nlayers:\n  - {maxpool: 2}\n")
    assert run_module("summarize", p).returncode == 0
    res = run_module("summarize", p, "--rounding", "strict")
    assert res.returncode == 2 and "does not fit" in res.stderr
    for cmd in ("receptive-field", "verify", "gradcheck", "erf"):
        assert "--rounding" in run_module(cmd, "--help").stdout, cmd


def test_unconsumed_output_warns_on_stderr_not_in_json(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, name: a}\n"
                 "  - {conv: 4, kernel: 1, name: dangling}\n"
                 "  - {conv: 4, kernel: 1, inputs: a, name: head}\n")
    res = run_module("summarize", p, "--format", "json")
    assert res.returncode == 0
    json.loads(res.stdout)  # stdout is pure JSON
    assert "d.yaml:4" in res.stderr and "'dangling'" in res.stderr and "warning" in res.stderr
    assert "'head'" not in res.stderr  # the last layer is the output
    p.write_text(p.read_text().replace("name: dangling}", "name: dangling, output: true}"))
    assert run_module("summarize", p, "--format", "json").stderr == ""


def test_runtime_without_a_kernel_exits_2_with_a_clear_message(tmp_path):
    # the issue-10 types have kernels now (tests/runtime); a 3-D locally connected layer has none
    p = tmp_path / "k.yaml"
    p.write_text("input: 4x6x6x1\nlayers:\n  - {local: 2, kernel: 3}\n  - flatten\n  - {fc: 3}\n")
    for args in (("verify", p), ("gradcheck", p)):
        res = run_module(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "k.yaml:3: local1: the runtime has no kernel for 3-D layer type 'local' yet" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    res = run_module("train", "--spec", p, "--epochs", "1")  # train stops earlier: image data only
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
