"""Receptive fields through upsample, crop, padding, adaptive pooling and in 3-D, against the
brute force of tests/test_rf.py (a second method: sets of input pixels, each layer's sampling
rule written out again here from PyTorch's documentation, not from the layer classes), and
the upsample / adaptive-pool dependency rules against PyTorch's own autograd (skipped
without torch)."""
from __future__ import annotations

import json
from fractions import Fraction
import math
from math import ceil, floor

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.errors import SpecError
from cnncalc.shapes import spatial
from cnncalc.spec.loader import load_spec_text
from tests import test_rf as base


def _reads(layer, ax, o, n_in, n_out):
    """(input indices output unit o depends on, whether the rule reached outside the input)
    — PyTorch's formulas, independent of cnncalc.layers.resample."""
    k = layer.kind
    if k == "upsample":
        if layer.args["mode"] == "nearest":
            return [o * n_in // n_out], False
        if layer.args["align_corners"]:
            src = Fraction(o * (n_in - 1), n_out - 1) if n_out > 1 else Fraction(0)
            clamped = False
        else:
            raw = Fraction(2 * o + 1, 2) * n_in / n_out - Fraction(1, 2)
            src = max(raw, Fraction(0))
            clamped = raw < 0
        i0 = floor(src)
        lam = src - i0
        if lam == 0:
            return [i0], clamped
        if i0 + 1 > n_in - 1:
            return [i0], True
        return [i0, i0 + 1], clamped
    if k in ("adaptive_avgpool", "adaptive_maxpool"):
        return list(range(floor(Fraction(o * n_in, n_out)), ceil(Fraction((o + 1) * n_in, n_out)))), False
    if k == "crop":
        return [o + layer.crops[ax][0]], False
    if k == "padding":
        i = o - layer.pads[ax][0]
        return ([i], False) if 0 <= i < n_in else ([], True)
    raise AssertionError(k)


def brute_force(graph):
    """tests/test_rf.brute_force, with the resampling layers' rules from _reads."""
    return base.brute_force(graph, _reads, ("upsample", "crop", "padding", "adaptive_avgpool",
                                            "adaptive_maxpool"))


def check(graph):
    rep = receptive_fields(graph)
    deps = brute_force(graph)
    n_in = spatial(graph.input_shape)
    for name, units in deps.items():
        for u, (pix, pad) in units.items():
            uf = unit_field(rep, name, u)
            if not pix:  # per-axis hulls: empty on at least one axis (no dependency at all)
                assert None in uf.support, (name, u)
                continue
            for ax in range(len(n_in)):
                assert base._hull(pix, ax) == uf.support[ax], (name, u, ax)
                if pix:
                    lo, hi = uf.clipped[ax]
                    assert lo <= base._hull(pix, ax)[0] and base._hull(pix, ax)[1] <= hi, (name, u, ax)
                if not pad and pix:
                    assert base._hull(pix, ax) == uf.unclipped[ax], (name, u, ax)
    return rep


def _graph(doc):
    try:
        return load_spec_text(json.dumps(doc), file="<hypothesis>").infer()
    except SpecError:
        assume(False)


_up = st.one_of(
    st.builds(lambda f: {"upsample": f}, st.integers(2, 3)),
    st.builds(lambda f, ac: {"upsample": f, "mode": "bilinear", "align_corners": ac},
              st.integers(2, 3), st.booleans()),
    st.builds(lambda n: {"upsample": {"size": n}}, st.integers(5, 40)),
    st.builds(lambda n, ac: {"upsample": {"size": n, "mode": "bilinear", "align_corners": ac}},
              st.integers(5, 40), st.booleans()),
)
_resample = st.one_of(
    _up,
    st.builds(lambda lo, hi: {"crop": [[lo, hi]]}, st.integers(0, 3), st.integers(0, 3)),
    st.builds(lambda lo, hi: {"padding": [[lo, hi]]}, st.integers(0, 3), st.integers(0, 3)),
    st.builds(lambda n, mx: {"adaptive_maxpool" if mx else "adaptive_avgpool": n},
              st.integers(1, 9), st.booleans()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.integers(6, 30), st.lists(st.one_of(base._layer, _resample), min_size=1, max_size=4))
def test_random_chains_with_resampling_match_brute_force(length, layers):
    items = [{**x, "name": f"l{i}"} for i, x in enumerate(layers)]
    check(_graph({"name": "chain", "input": f"{length}x1", "rounding": "floor", "layers": items}))


@pytest.mark.slow  # 13 CPU-seconds of brute force; the 2-D and 1-D random chains stay fast
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(st.one_of(base._layer, _resample, base._deconv), min_size=1, max_size=3),
       st.tuples(st.integers(3, 6), st.integers(3, 6), st.integers(3, 6)))
def test_random_3d_chains_match_brute_force(layers, size):
    def three(v):  # the 1-D draws' per-axis lists, once per axis
        return v * 3 if isinstance(v, list) and len(v) == 1 else v
    items = [{**{k: three(v) for k, v in x.items()}, "name": f"l{i}"} for i, x in enumerate(layers)]
    doc = {"name": "3d", "input": "x".join(map(str, size)) + "x1", "rounding": "floor", "layers": items}
    g = _graph(doc)
    # the brute force keeps a set of input pixels per unit: an upsample to 40 then a stride-3
    # deconv is 120^3 units of up to 216 pixels (a CI run grew past 19 GB on such a draw)
    assume(max(math.prod(spatial(n.shape)) for n in g.layers) <= 4096)
    rep = check(g)
    assert len(rep[items[-1]["name"]].axes) == 3


def test_unet_crop_to_a_named_layer_and_exact_fraction():
    g = load_spec_text("""
name: unet-piece
input: 20x20x1
layers:
  - {conv: 2, kernel: 3, name: skip}          # 18x18, r 3
  - {maxpool: 2, name: down}                  # 9x9, S 2
  - {conv: 2, kernel: 3, name: deep}          # 7x7, r 8, S 2
  - {upsample: 2, name: up}                   # 14x14, S 1
  - {crop: {to: up}, inputs: skip, name: cropped}   # 18 -> 14: 2 before, 2 after
  - {concat: null, inputs: [up, cropped], name: cat}
""", file="<t>").infer()
    rep = check(g)
    assert g["cropped"].shape == (14, 14, 2) and g["cropped"].layer.crops == ((2, 2), (2, 2))
    # up: S = 2·1/2 = 1 exactly, a Fraction; unit 0 reads deep's unit 0 → [0, 7]
    assert rep["up"].S == (1, 1) and rep["up"].first if hasattr(rep["up"], "first") else True
    assert rep["up"].r == (8, 8)
    d = rep["deep"].to_dict()
    assert d["S"] == 2
    g2 = load_spec_text("name: u\ninput: 8x8x1\nlayers:\n  - {upsample: 2, name: up}\n", file="<t>").infer()
    lf = receptive_fields(g2)["up"]
    assert lf.S == (Fraction(1, 2), Fraction(1, 2))
    assert lf.to_dict()["S_exact"] == "1/2"


@pytest.mark.parametrize("case", [
    dict(mode="nearest", n_in=5, n_out=13, ac=False),
    dict(mode="bilinear", n_in=5, n_out=13, ac=False),
    dict(mode="bilinear", n_in=5, n_out=13, ac=True),
    dict(mode="bilinear", n_in=7, n_out=14, ac=False),
    dict(mode="adaptive_avg", n_in=13, n_out=5, ac=False),
    dict(mode="adaptive_max", n_in=10, n_out=4, ac=False),
])
def test_dependency_rules_agree_with_pytorch_autograd(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n_in, n_out, ac = case["n_in"], case["n_out"], case["ac"]
    if case["mode"].startswith("adaptive"):
        kind = "adaptive_avgpool" if case["mode"] == "adaptive_avg" else "adaptive_maxpool"
        item = {kind: n_out, "name": "l"}
    else:
        item = {"upsample": {"size": n_out, "mode": case["mode"], "align_corners": ac}, "name": "l"}
    g = load_spec_text(json.dumps({"name": "t", "input": f"{n_in}x1", "layers": [item]}), file="<t>").infer()
    rep = receptive_fields(g)
    for o in range(n_out):
        x = torch.rand(1, 1, n_in, dtype=torch.float64, requires_grad=True) + 0.5
        x.retain_grad()
        if case["mode"] == "adaptive_avg":
            y = F.adaptive_avg_pool1d(x, n_out)
        elif case["mode"] == "adaptive_max":
            y = F.adaptive_avg_pool1d(x, n_out)  # the window, not the argmax, is the dependency
        elif case["mode"] == "nearest":
            y = F.interpolate(x, size=n_out, mode="nearest")
        else:
            y = F.interpolate(x, size=n_out, mode="linear", align_corners=ac)
        y[0, 0, o].backward()
        nz = [i for i in range(n_in) if x.grad[0, 0, i] != 0]
        assert (min(nz), max(nz)) == unit_field(rep, "l", (o,)).support[0], o
