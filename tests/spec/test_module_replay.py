"""Module instances with the same arguments are expanded once and replayed under their own
name prefix (cnncalc.spec.loader): the graph must be exactly the one a full expansion gives."""
import pytest

from cnncalc import limits
from cnncalc.errors import SpecError
from cnncalc.spec import loader as L
from cnncalc.spec.loader import load_spec_text

SPEC = """\
input: 8x8x4
vars: {k: 3}
defaults: {conv: {kernel: 1}}
modules:
  res:
    args: [w]
    layers:
      - add:
          - [{conv: $w, kernel: $k, pad: 1, name: a}, {conv: $w, name: b}]
          - []
        name: sum
      - {add: null, inputs: [sum, a], name: c, when: true}
      - {add: null, inputs: [c, b]}
  two:
    args: [w]
    layers:
      - {res: [$w], name: r1}
      - {res: [$w], name: r2}
layers:
  - {conv: 4, name: stem}
  - {res: [4], repeat: 3, name: "block$n"}
  - {conv: 8, name: widen}
  - {two: [8], name: t1}
  - {two: [8], name: t2}
  - {res: [8], name: last}
"""


def _full(monkeypatch, text):
    """The graph without replay (every instance expanded)."""
    monkeypatch.setattr(L._Builder, "_replay", lambda self, rec, prefix, src: None)
    return load_spec_text(text, file="<t>")


def _sig(g):
    return [(n.name, type(n.layer).__name__, n.layer.args if n.layer else None, n.layer.activation if n.layer
             else None, list(n.inputs), n.line, n.trace, n.is_output) for n in g]


def test_replayed_instances_equal_a_full_expansion(monkeypatch):
    g = load_spec_text(SPEC, file="<t>")
    names = [n.name for n in g]
    assert "block3/c" in names and "t2/r2/sum" in names and "last/add1" in names
    assert g["block2/a"].inputs == ["block1/add1"]       # the instance's own input
    assert g["block2/c"].inputs == ["block2/sum", "block2/a"]
    assert g["block2/a"].layer is not g["block1/a"].layer    # each node its own layer object
    g.infer()
    assert g["t2/r2/add1"].shape == (8, 8, 8)
    full = _full(monkeypatch, SPEC)
    assert _sig(g) == _sig(full)


def test_a_global_path_into_the_instance_itself_is_not_replayed(monkeypatch):
    # 'inputs: m1/a' written as a global path: in instance m2 it still means m1's layer
    text = ("input: 8x8x4\nmodules:\n  m:\n    args: [w]\n    layers:\n      - {conv: $w, kernel: 1, name: a}\n"
            "      - {add: null, inputs: [a, m1/a]}\n"
            "layers:\n  - {m: [4], repeat: 2, name: 'm$n'}\n")     # one line: the same context
    g = load_spec_text(text, file="<t>")
    assert g["m2/add1"].inputs == ["m2/a", "m1/a"]
    assert _sig(g) == _sig(_full(monkeypatch, text))


def test_the_layers_limit_holds_for_replayed_instances(monkeypatch):
    text = ("input: 8x8x4\nmodules:\n  m:\n    layers: [{conv: 4, kernel: 1}, {conv: 4, kernel: 1}]\n"
            "layers:\n  - {m: null, repeat: 8}\n")
    monkeypatch.setenv("CNNCALC_LIMIT_LAYERS", "10")
    limits.reload()
    try:
        with pytest.raises(SpecError, match="more than 10 layers") as e:   # 8 instances x 2 convs
            load_spec_text(text, file="<t>")
        assert e.value.line == 4       # the layer that crossed it, as a full expansion reports
    finally:
        monkeypatch.delenv("CNNCALC_LIMIT_LAYERS")
        limits.reload()


def test_a_name_used_twice_is_reported_as_a_full_expansion_reports_it(monkeypatch):
    # the second 'x' is replayed from the first one's recording: its first layer collides
    text = ("input: 8x8x4\nmodules:\n  m:\n    args: [w]\n    layers: [{conv: $w, kernel: 1, name: a}, {relu: , name: r}]\n"
            "layers:\n  - {m: [4], name: x}\n  - {m: [4], name: x}\n")
    with pytest.raises(SpecError) as replayed:
        load_spec_text(text, file="<t>")
    with pytest.raises(SpecError) as full:
        _full(monkeypatch, text)
    assert "'x/a' is used twice" in str(replayed.value)
    assert (str(replayed.value), replayed.value.line) == (str(full.value), full.value.line)
