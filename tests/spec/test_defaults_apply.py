"""`defaults:` and `bn:` mean what they say on every item (issue 23, point 1).

The importer writes `defaults: {add: {activation: relu}}` for every ResNet; the loader used to
ignore defaults on add/concat/mul, and `bn: true` on merges, blocks and module instances, so the
ReLU after each residual add was lost. These tests look at the network's *outputs* (runtime)
as well as its counts: equal parameter/MAC counts hid the missing ReLU for a whole round.
"""
import numpy as np
import pytest

from cnncalc import analyze
from cnncalc.spec.loader import load_spec_text

RES = """
input: 6x6x4
{defaults}
layers:
  - {{conv: 4, kernel: 3, pad: 1}}
  - add{act}:
      - [{{conv: 4, kernel: 3, pad: 1}}]
      - []
  - {{conv: 3, kernel: 1}}
"""


def _ops(g, name):
    return {r.name: r for r in analyze(g).layers}[name].ops


def test_add_defaults_apply_in_counts():
    g = load_spec_text(RES.format(defaults="defaults: {add: {activation: relu}}", act=""))
    # a ReLU over the 6x6x4 sum: 144 activation ops (hand arithmetic), besides the 144 adds
    assert _ops(g, "add1") == {"add": 6 * 6 * 4, "activation": 6 * 6 * 4}


@pytest.mark.parametrize("kind, body", [
    ("concat", "[[{conv: 2, kernel: 1}], []]"),
    ("mul", "[[{conv: 4, kernel: 1}], []]"),
])
def test_concat_and_mul_defaults_apply(kind, body):
    g = load_spec_text(f"input: 5x5x4\ndefaults: {{{kind}: {{activation: sigmoid}}}}\n"
                       f"layers:\n  - {kind}: {body}\n")
    layer = g.nodes[f"{kind}1"].layer
    assert layer.activation == "sigmoid"


def test_item_overrides_merge_defaults():
    g = load_spec_text("input: 5x5x4\ndefaults: {add: {activation: relu}}\n"
                       "layers:\n  - {add: [[{conv: 4, kernel: 1}], []], activation: tanh}\n")
    assert g.nodes["add1"].layer.activation == "tanh"


def test_add_defaults_apply_in_outputs():
    """The runtime output of the defaults form equals the explicit form, and differs from the
    form without the ReLU (so this test would have caught the lost ReLU)."""
    pytest.importorskip("numba")
    from cnncalc.runtime.executor import Net

    with_defaults = load_spec_text(RES.format(defaults="defaults: {add: {activation: relu}}", act=""))
    explicit = load_spec_text("""
input: 6x6x4
layers:
  - {conv: 4, kernel: 3, pad: 1}
  - add:
      - [{conv: 4, kernel: 3, pad: 1}]
      - []
    activation: relu
  - {conv: 3, kernel: 1}
""")
    without = load_spec_text(RES.format(defaults="", act=""))
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6))
    outs = []
    for g in (with_defaults, explicit, without):
        net = Net(g, dtype="float64", seed=3)
        outs.append(next(iter(net.forward(x).values())))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.abs(outs[0] - outs[2]).max() > 1e-3


def test_bn_on_merge_block_and_module_adds_a_batchnorm():
    g = load_spec_text("""
input: 8x8x16
modules:
  blk:
    args: [c]
    layers: [{conv: $c, kernel: 1}]
layers:
  - add:
      - [{conv: 16, kernel: 3, pad: 1}]
      - []
    bn: true
    activation: relu
  - {layers: [{conv: 4, kernel: 1}], bn: true}
  - {blk: [8], bn: true}
""")
    kinds = [(n, node.layer.kind, node.inputs) for n, node in g.nodes.items() if node.layer]
    assert ("add1_bn", "batchnorm", ["add1"]) in kinds
    assert ("conv2_bn", "batchnorm", ["conv2"]) in kinds
    assert ("blk1/conv1_bn", "batchnorm", ["blk1/conv1"]) in kinds
    # the merge's activation moves after its batch norm, as a layer's does
    assert g.nodes["add1"].layer.activation is None
    assert g.nodes["add1_bn"].layer.activation == "relu"


def test_bn_defaults_on_a_merge():
    g = load_spec_text("input: 5x5x4\ndefaults: {add: {bn: true, activation: relu}}\n"
                       "layers:\n  - {add: [[{conv: 4, kernel: 1}], []]}\n")
    assert g.nodes["add1_bn"].layer.activation == "relu"
    assert g.nodes["add1"].layer.activation is None


def test_bad_bn_on_a_block_is_refused_with_its_line():
    from cnncalc.errors import SpecError

    with pytest.raises(SpecError) as e:
        load_spec_text("input: 5x5x4\nlayers:\n  - {conv: 4, kernel: 1}\n"
                       "  - {layers: [{conv: 4, kernel: 1}], bn: maybe}\n")
    assert "'bn' must be true or false" in str(e.value)
    assert e.value.line == 4
