"""The receptive-field pass's shortcuts (issue 27 item 4) give the fields the plain pass gives.

``rf.SHORTCUTS`` switches off: period-1 paths mapped in closed form, the set of every path
carried lazily (``Q1Paths``), fields shared between equal axes and through pointwise layers,
and the numbers / explanations of a shared field computed once. With and without them, every
zoo spec's ``to_dict()`` and explanations must be equal, and so must the paths of units.
The loader's sharing of equal validated args (which lets inference, counting and explanations
be made once per repeated layer) is checked against fresh args the same way."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnncalc.analysis import rf as rfmod
from cnncalc.analysis.report import analyze_graph
from cnncalc.errors import SpecError
from cnncalc.shapes import spatial
from cnncalc.spec.loader import load_spec, load_spec_text
from conftest import zoo_params


def _both(graph_of):
    """(with shortcuts, without) of the receptive fields of a freshly loaded graph."""
    fast = rfmod.receptive_fields(graph_of())
    rfmod.SHORTCUTS = False
    try:
        slow = rfmod.receptive_fields(graph_of())
    finally:
        rfmod.SHORTCUTS = True
    return fast, slow


def _same(fast, slow):
    assert fast.to_dict() == slow.to_dict()
    for name, lf in slow.layers.items():
        assert fast.layers[name].explain == lf.explain, name
        for a, b in zip(fast.layers[name].axes, lf.axes):
            # every distinct path (while counted), whatever form it is kept in
            assert (a.full is None) == (b.full is None)
            if b.full is not None:
                assert frozenset(a.full) == frozenset(b.full)
                assert len(a.full) == len(b.full)


@pytest.mark.parametrize("name", zoo_params())  # the zoo sample fast, the rest slow
def test_shortcuts_give_the_same_fields_on_every_zoo_spec(name):
    g = load_spec(name)
    g.infer()
    if not spatial(g.input_shape):
        pytest.skip("no spatial input")
    fast, slow = _both(lambda: load_spec(name))
    _same(fast, slow)


def test_the_lazy_path_set_is_used_and_reads_as_a_frozenset():
    fast, slow = _both(lambda: load_spec("cifar_resnet110"))
    lazy = [a for lf in fast.layers.values() for a in lf.axes if isinstance(a.full, rfmod.Q1Paths)]
    assert len(lazy) > 100  # the shortcut is really taken on a deep residual net
    # deep in the first stage there are many paths, all of period 1
    layer = "stage1/block15/add" if "stage1/block15/add" in fast.layers else next(
        n for n, lf in fast.layers.items() if (lf.axes[0].count or 0) > 10)
    a, b = fast[layer].axes[0], slow[layer].axes[0]
    assert a.count == b.count > 10
    assert set(a.full) == set(b.full) and a.full == b.full and b.full == frozenset(a.full)
    assert all(p in a.full for p in b.full)
    # pointwise layers and square maps share one field
    assert fast[layer].axes[0] is fast[layer].axes[1]


def test_unit_queries_agree():
    for name, layer, unit in (("cifar_resnet56", "stage2/block4/add", (3, 5)), ("resnet18", "layer3/block2/add", (1, 2))):
        fast, slow = _both(lambda: load_spec(name))
        if layer not in slow.layers:
            layer = [n for n in slow.layers if n.endswith("/add")][-3]
            unit = (0, 1)
        assert rfmod.unit_field(fast, layer, unit) == rfmod.unit_field(slow, layer, unit)


# random multi-branch stacks with strides, transposed convs and upsampling between them (as
# test_rf's pruning test), in 2-D so that both axes and their sharing are exercised
_same_conv = st.builds(lambda k, d, lo: {"conv": 1, "kernel": k, "dilation": d,
                                         "pad": min(lo, d * (k - 1) // 2) if (d * (k - 1)) % 2 == 0 else
                                         [[0, d * (k - 1)], [d * (k - 1), 0]]},
                       st.integers(1, 4), st.integers(1, 2), st.integers(0, 4))
_between = st.sampled_from([None, {"conv": 1, "kernel": 3, "stride": 2, "pad": 1},
                            {"conv": 1, "kernel": [3, 1], "stride": [2, 1], "pad": [1, 0]},
                            {"deconv": 1, "kernel": 3, "stride": 2, "pad": 1, "output_pad": 1},
                            {"upsample": 2}, {"maxpool": 2, "stride": 2}, {"relu": None}])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(st.tuples(st.lists(st.lists(_same_conv, min_size=0, max_size=2), min_size=1, max_size=3),
                          _between), min_size=1, max_size=5))
def test_shortcuts_give_the_same_fields_on_random_nets(blocks):
    items = []
    for b, (branches, between) in enumerate(blocks):
        if len(branches) > 1:
            items.append({"add": [[{**x, "name": f"b{b}_{i}_{j}"} for j, x in enumerate(br)]
                                  for i, br in enumerate(branches)], "name": f"add{b}"})
        else:
            items += [{**x, "name": f"b{b}_{j}"} for j, x in enumerate(branches[0])]
        if between:
            items.append({**between, "name": f"t{b}"})
    doc = json.dumps({"name": "multi", "input": "24x24x1", "rounding": "floor", "layers": items})
    try:
        load_spec_text(doc).infer()
    except SpecError:
        assume(False)
    fast, slow = _both(lambda: load_spec_text(doc))
    _same(fast, slow)


# ----------------------------------------------------------------------------- shared args
def test_repeated_layers_share_args_and_count_the_same():
    text = ("name: chain\ninput: 16x16x3\nlayers:\n  - {conv: 8, kernel: 3, pad: 1}\n"
            "  - {conv: 8, kernel: 3, pad: 1, activation: relu, repeat: 5}\n  - {conv: 8, kernel: 3, pad: 1}\n"
            "  - {conv: 8, kernel: 3, pad: 1, bias: false}\n  - {maxpool: 2}\n  - {conv: 8, kernel: 3, pad: 1}\n")
    g = load_spec_text(text)
    convs = [n.layer for n in g.layers if n.kind == "conv"]
    assert convs[1].args is convs[2].args is convs[5].args  # equal args: one object
    assert convs[0].args is convs[1].args  # (activation is not in args)
    assert convs[8].args is not convs[6].args  # bias: false
    shared = analyze_graph(g, explain=True)
    # the same spec with every layer's args its own object
    g2 = load_spec_text(text)
    for n in g2.layers:
        n.layer.args = dict(n.layer.args)
    fresh = analyze_graph(g2, explain=True)
    assert shared == fresh
    assert [r.explain for r in shared.layers] == [r.explain for r in fresh.layers]
