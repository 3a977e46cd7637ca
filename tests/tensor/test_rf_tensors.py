"""Receptive fields through the tensor vocabulary: exact while every spatial axis of the input
stays one axis (or a whole component of a merged one), global along an axis an op reads whole,
unknown — with the layer named — where positions are scrambled; never a wrong number. Golden
values: the same network written with the high-level layers (a second method), or hand
arithmetic (Araujo et al. 2019's recurrences)."""
from __future__ import annotations

import json

import pytest

from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.errors import CnnCalcError
from cnncalc.spec.loader import load_spec, load_spec_text

BLOCK_LOW = "examples/tensors/convnext_block.yaml"
BLOCK_HIGH = """
name: the same block with 1x1 convs (as the zoo's convnext_tiny)
input: 14x14x96
layers:
  - {conv: 96, kernel: 7, pad: 3, groups: 96, name: dwconv}
  - {layernorm: , eps: 1.0e-6, name: norm}
  - {conv: 384, kernel: 1, name: pwconv1, activation: gelu}
  - {conv: 96, kernel: 1, name: pwconv2}
  - {scale: 1.0e-6, name: layer_scale}
  - {add: , inputs: [layer_scale, input], name: residual}
"""


def rf(text_or_path):
    g = load_spec(text_or_path) if text_or_path.endswith(".yaml") else load_spec_text(text_or_path)
    return g, receptive_fields(g)


def fields(f):
    return (f.r, f.S, f.P, f.start, f.end, f.unknown)


def test_convnext_channels_last_block_keeps_the_exact_field_of_the_1x1_form():
    g, low = rf(BLOCK_LOW)
    _, high = rf(BLOCK_HIGH)
    for name in ("dwconv", "norm", "pwconv1", "pwconv2", "layer_scale", "residual"):
        assert fields(low[name]) == fields(high[name]), name
    assert (low["residual"].r, low["residual"].n_paths) == ((7, 7), 2)
    for name in ("to_last", "pwconv1_bias", "act", "to_first"):
        assert fields(low[name]) == fields(low["dwconv"]), name
    assert g["to_first"].shape == (14, 14, 96)  # an image again


def _spec(body, input_="8x8x4"):
    return f"name: t\ninput: {input_}\nlayers:\n  - {{conv: 4, kernel: 3, pad: 1, name: c}}\n" + "".join(
        f"  - {line}\n" for line in body)


def test_tokens_flatten_and_unflatten_stay_exact():
    g, r = rf(_spec(["{reshape: [4, 64], name: flat}", "{transpose: [1, 0], name: tokens}",
                     "{matmul: , const: {shape: [4, 4]}, name: lin}", "{transpose: [1, 0], name: t2}",
                     "{reshape: [4, 8, 8], name: img}", "{conv: 4, kernel: 3, pad: 1, name: c2}"]))
    assert g["tokens"].shape.kind == "tokens" and g["img"].shape == (8, 8, 4)
    for name in ("flat", "tokens", "lin", "t2", "img"):
        assert fields(r[name]) == fields(r["c"]), name
    # two 3x3 convs: r = 1 + 2 + 2 = 5, P = 1 + 1 = 2 (pixel i centred at i)
    assert (r["c2"].r, r["c2"].S, r["c2"].P) == ((5, 5), (1, 1), (2, 2))


def test_a_reshape_that_cuts_a_spatial_axis_makes_it_unknown_named():
    _, r = rf(_spec(["{reshape: [4, 8, 2, 4], name: cut}", "{reduce: mean, axes: [1], name: m}"]))
    assert r["cut"].unknown == "cut" and r["m"].unknown == "cut"
    assert r["cut"].to_dict()["r"] is None and r["cut"].to_dict()["unknown"] == "cut"
    with pytest.raises(CnnCalcError, match="unknown: cut scrambles"):
        unit_field(r, "m", (0, 0))


def test_an_op_over_a_spatial_axis_makes_that_axis_global():
    _, r = rf(_spec(["{softmax: , axis: 2, name: sw}", "{reduce: max, axes: [1], name: rh}"]))
    sw = r["sw"]  # softmax along W: every output sees the whole width, its own 3 rows
    assert (sw.r, sw.axes[0].is_global, sw.axes[1].is_global) == ((3, 8), False, True)
    rh = r["rh"]  # then a max over H: the whole height too
    assert rh.r == (8, 8) and rh.is_global and rh.unknown is None


def test_a_reduction_over_h_and_w_is_the_global_pool():
    _, low = rf(_spec(["{reduce: mean, axes: [1, 2], name: gap}"]))
    _, high = rf(_spec(["{global_avgpool: , name: gap}"]))
    assert fields(low["gap"]) == fields(high["gap"]) and low["gap"].is_global


def test_slices_pads_and_picks_along_a_spatial_axis_by_hand():
    _, r = rf(_spec(["{slice: , starts: [1], ends: [8], axes: [1], steps: [2], name: s}",
                     "{padding: [[2, 1]], axes: [2], name: p}", "{gather: 3, axis: 1, name: row}"]))
    # conv 3x3 pad 1: r 3, S 1, P 1; every 2nd row from 1: unit 0 is row 1 = [0, 2]: S 2, P 0
    assert (r["s"].r, r["s"].S, r["s"].P) == ((3, 3), (2, 1), (0, 1))
    # 2 columns of zeros before: unit 0 of W is in the padding, P = 1 + 2 = 3
    assert (r["p"].P, r["p"].S) == ((0, 3), (2, 1))
    # row 3 of the sliced rows is input row 1 + 2*3 = 7: [6, 8]; one unit left along H
    assert r["row"].axes[0].interval(0) == (6, 8) and r["row"].unknown is None


def test_qkt_is_unknown_and_every_layer_after_it():
    g, r = rf("examples/tensors/attention.yaml")
    assert [r[n].unknown for n in ("q", "k_t", "qk", "attn", "residual")] == [None, None, "qk", "qk", "qk"]
    assert (r["q"].r, r["q"].S) == ((1,), (1,))  # tokens of a token input: a 1-D field


def test_an_image_layer_reading_swapped_axes_is_unknown_but_a_global_tensor_is_fine():
    _, r = rf(_spec(["{transpose: [0, 2, 1], name: swap}", "{conv: 4, kernel: 3, pad: 1, name: c2}"]))
    assert r["swap"].unknown is None and r["c2"].unknown == "c2"
    _, r = rf(_spec(["{flatten: , name: f}", "{fc: 64, name: fc}", "{reshape: [4, 4, 4], name: back}",
                     "{conv: 4, kernel: 3, pad: 1, name: c2}"]))
    assert r["c2"].unknown is None and r["c2"].is_global and r["c2"].r == (8, 8)


def test_receptive_field_cli_shows_unknown_and_the_json_says_which_layer(cli):
    res = cli("receptive-field", "examples/tensors/attention.yaml")
    assert res.exit_code == 0
    line = next(x for x in res.output.splitlines() if x.startswith("attn "))
    assert "unknown since qk" in line and " ? " in line
    assert "note: unknown: qk scramble(s) the positions" in res.output
    obj = json.loads(cli("receptive-field", "examples/tensors/attention.yaml", "--format", "json").output)
    rows = {row["name"]: row for row in obj["layers"]}
    assert rows["qk"]["unknown"] == "qk" and rows["qk"]["r"] is None and rows["norm"]["kind"] == "tokens"
    res = cli("receptive-field", "examples/tensors/attention.yaml", "--layer", "attn", "--unit", "0")
    assert res.exit_code == 2 and "unknown" in res.output


@pytest.mark.parametrize("spec", ["tests/tensor/rf_ops.yaml", BLOCK_LOW, "tests/runtime/specs/tensor.yaml"])
def test_the_runtime_gradients_confirm_every_field(spec):
    """A second, independent method: the support of input gradients through the linearised copy
    (cnncalc verify). Unknown fields are not claimed, so not checked."""
    from cnncalc.runtime.verify import check_fields
    items = check_fields(load_spec(spec))
    assert items and all(i.ok for i in items), [(i.layer, i.check, i.claimed, i.measured) for i in items if not i.ok]


def test_rf_ops_by_hand():
    _, r = rf("tests/tensor/rf_ops.yaml")
    assert (r["sw"].r, r["sw"].S) == ((3, 8), (1, 0))  # conv 3x3 then the whole width
    assert r["rh"].is_global and r["rh"].r == (8, 8)


def test_a_slice_of_an_axis_of_a_trillion_is_read_from_its_range():
    """A pad of 10^12 on the last axis, then a slice: the slice's field is read from its range's
    start and step, never listed (fuzz seed 15525, a mutated efficientvit_b1: MemoryError, an
    internal error, listing range(10^12 + 8))."""
    from cnncalc.analysis.rf import receptive_fields

    g = load_spec_text("name: t\ninput: 8x8x2\nlayers:\n"
                       "  - {padding: [[0, 1000000000000]], axes: [-1], mode: constant, value: 0.0, name: p}\n"
                       "  - {slice: , starts: [2], ends: [6], axes: [-1], name: s}\n"
                       "  - {slice: , starts: [1], ends: [2], axes: [-1], name: one}\n")
    g.infer()
    assert tuple(g["p"].shape) == (8, 1000000000008, 2) and tuple(g["s"].shape) == (8, 4, 2)
    rep = receptive_fields(g)
    assert rep["s"].r == (1, 1) and rep["one"].r == (1, 1)  # (a slice reads each unit from one pixel)
