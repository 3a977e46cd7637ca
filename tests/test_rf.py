"""Receptive fields: golden values by hand (the Distill recurrences written out below), the
Distill article's VGG-16 table, and a brute-force second method (which input pixels does each
output unit depend on, tracked as Python sets) under hypothesis."""
from __future__ import annotations

import itertools
import json
from fractions import Fraction

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.cli import main
from cnncalc.errors import SpecError
from cnncalc.graph import INPUT
from cnncalc.layers.base import GLOBAL
from cnncalc.shapes import spatial
from cnncalc.spec.loader import load_spec_text


def run(*args):
    res = CliRunner().invoke(main, ["receptive-field", *args])
    return res


def spec(text: str):
    return load_spec_text(text, file="<test>")


# ----------------------------------------------------------------------------- VGG-16
# Recurrences r_l = r_{l-1} + (k-1)·S_{l-1}, S_l = S_{l-1}·s, P_l = P_{l-1} + p·S_{l-1},
# conv 3x3/s1/p1 and pool 2x2/s2/p0, worked by hand:
VGG16 = [
    ("conv1_1", 3, 1, 1),     # 1 + 2·1,  P 0 + 1·1
    ("conv1_2", 5, 1, 2),     # 3 + 2·1,  P 1 + 1
    ("pool1", 6, 2, 2),       # 5 + 1·1,  S 1·2
    ("conv2_1", 10, 2, 4),    # 6 + 2·2,  P 2 + 1·2
    ("conv2_2", 14, 2, 6),
    ("pool2", 16, 4, 6),      # 14 + 1·2
    ("conv3_1", 24, 4, 10),   # 16 + 2·4, P 6 + 4
    ("conv3_2", 32, 4, 14),
    ("conv3_3", 40, 4, 18),
    ("pool3", 44, 8, 18),     # 40 + 1·4
    ("conv4_1", 60, 8, 26),   # 44 + 2·8
    ("conv4_2", 76, 8, 34),
    ("conv4_3", 92, 8, 42),
    ("pool4", 100, 16, 42),   # 92 + 8
    ("conv5_1", 132, 16, 58),  # 100 + 2·16
    ("conv5_2", 164, 16, 74),
    ("conv5_3", 196, 16, 90),
    ("pool5", 212, 32, 90),   # Distill 2019, "Computing Receptive Fields of CNNs", table: VGG-16 pool5 r=212, S=32, P=90
]


def test_vgg16_every_layer():
    rep = receptive_fields("vgg16")
    for name, r, S, P in VGG16:
        f = rep[name]
        assert (f.r, f.S, f.P) == ((r, r), (S, S), (P, P)), name
        assert f.start == (-P, -P) and f.end == (r - 1 - P,) * 2
    assert rep.aligned and rep.misaligned == []


def test_vgg16_fc_is_global():
    f = receptive_fields("vgg16")["fc6"]
    assert f.is_global and f.r == (224, 224) and f.S == (0, 0) and f.P == (None, None)
    # the hull of pool5's 7 units: unit 0 starts at −90, unit 6 ends at 6·32 − 90 + 211 = 313
    assert f.r_unclipped == (404, 404)
    uf = unit_field(receptive_fields("vgg16"), "fc8", (0, 0))
    assert uf.clipped == ((0, 223), (0, 223)) and uf.unclipped == ((-90, 313), (-90, 313))


def test_vgg16_unit_query_by_hand():
    # conv5_3: S = 16, P = 90, r = 196 → unit u sees [16u − 90, 16u − 90 + 195]
    uf = unit_field("vgg16", "conv5_3", (3, 4))
    assert uf.unclipped == ((48 - 90, 48 - 90 + 195), (64 - 90, 64 - 90 + 195))
    assert uf.unclipped == ((-42, 153), (-26, 169))
    assert uf.clipped == ((0, 153), (0, 169))
    res = run("vgg16", "--layer", "conv5_3", "--unit", "3,4", "--format", "json")
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    assert obj["unclipped"] == [[-42, 153], [-26, 169]] and obj["clipped"] == [[0, 153], [0, 169]]


def test_vgg16_explain_and_json():
    res = run("vgg16", "--explain")
    assert res.exit_code == 0, res.output
    assert "r = 196 + (2 − 1)*16 = 212, S = 16*2 = 32, P = 90 + 0*16 = 90" in res.output
    obj = json.loads(run("vgg16", "-F", "json").output)
    pool5 = next(x for x in obj["layers"] if x["name"] == "pool5")
    assert (pool5["r"], pool5["S"], pool5["P"], pool5["start"], pool5["shape"]) == (212, 32, 90, -90, [7, 7, 512])
    assert obj["aligned"] is True and obj["input"] == [224, 224, 3]
    for fmt in ("csv", "markdown", "table"):
        assert run("vgg16", "-F", fmt).exit_code == 0


# ----------------------------------------------------------------------------- AlexNet (lecture)
ALEXNET = [  # conv1 11/s4/p0, pool 3/s2, conv2 5/p2, conv3-5 3/p1
    ("conv1", 11, 4, 0),      # 1 + 10·1
    ("pool1", 19, 8, 0),      # 11 + 2·4
    ("conv2", 51, 8, 16),     # 19 + 4·8, P 0 + 2·8
    ("pool2", 67, 16, 16),    # 51 + 2·8
    ("conv3", 99, 16, 32),    # 67 + 2·16
    ("conv4", 131, 16, 48),
    ("conv5", 163, 16, 64),
    ("pool5", 195, 32, 64),   # 163 + 2·16
]


def test_alexnet():
    rep = receptive_fields("alexnet")
    for name, r, S, P in ALEXNET:
        assert (rep[name].r[0], rep[name].S[0], rep[name].P[0]) == (r, S, P), name


# ----------------------------------------------------------------------------- lecture questions
def _last(res):
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    return obj["layers"][-1]


@pytest.mark.parametrize("chain, r, S", [
    ("3x3*3", 7, 1),               # 1 + 2 + 2 + 2: three stacked 3x3 convs see 7x7, like one 7x7
    ("conv3,conv3,conv3", 7, 1),
    ("7x7", 7, 1),                 # one 7x7 layer
    ("7x7,7x7", 13, 1),            # 7 + 6·1
    ("7x7s2,7x7s1", 19, 2),        # 7 + 6·2
    ("11s4,pool3s2", 19, 8),       # AlexNet's conv1 + pool1: 11 + 2·4
    ("3x3d2*2", 9, 1),             # dilated: 1 + 4 + 4
    ("pool2,pool2", 4, 4),         # pool stride defaults to the kernel: 2 + 1·2
    # spaces separate items (issue 29: "3x3 3x3 3x3" was read as 3x33x33x3)
    ("3x3 3x3 3x3", 7, 1),
    ("conv 3x3, conv 3x3", 5, 1),  # a bare kind joins the next word
    ("7x7 s2, 7x7", 19, 2),        # a suffix joins the word before
    # the tool's own Type-column notation and the slash stride: 7 + 6·2 as 7x7s2,7x7s1
    ("7x7/2 7x7", 19, 2),
    ("conv7x7/s2-64 conv7x7-64", 19, 2),
    ("conv7x7/s2-64 maxpool3x3/s2", 11, 4),   # ResNet's stem: 7 + 2·2 = 11, S = 2·2
    ("convdw3x3/s2-32*2", 7, 4),   # 3 + 2·2
])
def test_chain(chain, r, S):
    row = _last(run("--chain", chain, "-F", "json"))
    assert (row["r"], row["S"]) == (r, S)


def test_chain_without_padding_uses_the_smallest_input():
    res = run("--chain", "7x7s2,7x7s1")
    assert res.exit_code == 0 and "input 19x19x1" in res.output
    assert run("--chain", "3x3", "--input", "10x10x1").exit_code == 0


def test_chain_grammar_is_in_the_help():
    out = run("--help").output
    assert "[KIND]K[xK2][sS | /S | /sS][pP][dD][-F][*N]" in out
    assert "see below" not in out            # the old help promised a grammar it never showed
    for example in ("\"3x3 3x3 3x3\"", "\"7x7/2 7x7\"", "conv7x7/s2-64"):
        assert example in out


def test_bad_chain_item_names_it_and_points_at_the_help():
    res = run("--chain", "3x3 7q7")
    assert res.exit_code == 2
    assert "'7q7'" in res.output and "--help" in res.output


def test_bad_input_exit_2():
    assert run().exit_code == 2
    assert run("--chain", "3q").exit_code == 2
    assert run("vgg16", "--unit", "1,1").exit_code == 2
    assert run("vgg16", "--layer", "nope").exit_code == 2
    assert run("vgg16", "--layer", "pool5", "--unit", "7,0").exit_code == 2


# ----------------------------------------------------------------------------- branches
MISALIGNED = """
name: misaligned toy
input: 8x8x1
layers:
  - concat:
      - [{conv: 1, kernel: 3, stride: 2, pad: same, name: tf_same}]    # pad (0, 1): unit 0 sees [0, 2]
      - [{conv: 1, kernel: 3, stride: 2, pad: 1, rounding: floor, name: torch_pad1}]  # sees [-1, 1]
    name: merge
"""


def test_misaligned_merges_of_one_reason_share_a_note():
    # Xception's 1x1 stride-2 shortcuts: 11 adds misaligned the same way (centres 3 and 7) were
    # 22 notes (one per merge and axis); now one note names them, each row keeps its numbers
    res = run("xception")
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if "misaligned along" in line]
    assert notes == ["note: 11 merges are misaligned along H and W (centres of unit 0 differ: 3, 7): block2/add, "
                     "block3/add, middle1/add, ..., exit_block/add; each one's union field r is not larger than "
                     "its largest single path's r"]
    obj = json.loads(run("xception", "-F", "json").output)
    assert len(obj["misaligned"]) == 11 and obj["misaligned"][-1] == "exit_block/add"  # JSON lists every merge
    rows = {r["name"]: r for r in obj["layers"]}
    assert [rows[m]["r"] for m in ("block2/add", "middle8/add")] == [43, 859]
    assert all("centres of unit 0 differ: 3, 7" in rows[m]["misaligned"] for m in obj["misaligned"])


def test_misaligned_union_is_larger_than_any_path():
    rep = receptive_fields(spec(MISALIGNED))
    m = rep["merge"]
    # by hand: TF 'same' on 8 with k3 s2 → out 4, total pad (4−1)·2 + 3 − 8 = 1 → (0, 1): [0, 2];
    # pad 1 → [−1, 1]. Same S = 2, centres 1 and 0. Union [−1, 2]: r = 4 > 3 = max-path r.
    assert rep["tf_same"].start == (0, 0) and rep["torch_pad1"].start == (-1, -1)
    assert m.r == (4, 4) and m.max_path_r == (3, 3) and m.min_path_r == (3, 3)
    assert m.S == (2, 2) and m.start == (-1, -1)
    assert not m.aligned and not rep.aligned and rep.misaligned == ["merge"]
    uf = unit_field(rep, "merge", (1, 1))
    assert uf.unclipped == ((1, 4), (1, 4)) and uf.paths[0] == ((1, 3), (2, 4))


def test_misaligned_cli_says_so(tmp_path):
    p = tmp_path / "toy.yaml"
    p.write_text(MISALIGNED)
    res = run(str(p))
    assert res.exit_code == 0, res.output
    assert "MISALIGNED" in res.output
    # both axes in one note (the toy is square)
    assert "merge is misaligned along H and W (centres of unit 0 differ: 0, 1): its union field r = 4 is " \
           "LARGER than the largest single path's r = 3" in res.output
    obj = json.loads(run(str(p), "-F", "json").output)
    assert obj["aligned"] is False and obj["misaligned"] == ["merge"]
    merge = obj["layers"][-1]
    assert merge["r"] == 4 and merge["max_path_r"] == 3 and "centres" in merge["misaligned"]


def test_misaligned_strides():
    # 8 → conv k1 s2 → 4 (S 2) and conv k5 s1 → 4 (S 1): equal shapes, different effective strides
    g = spec("""
name: two strides
input: 8x1
rounding: floor
layers:
  - add: [[{conv: 1, kernel: 1, stride: 2, name: a}], [{conv: 1, kernel: 5, name: b}]]
    name: m
""")
    rep = receptive_fields(g)
    m = rep["m"]
    assert m.S == (None,) and not m.aligned
    # unit 3: path a sees [6, 6], path b sees [3, 7] → union [3, 7]
    assert unit_field(rep, "m", 3).unclipped == ((3, 7),)
    assert m.axes[0].r_range == (5, 5)  # units 0..3: [0,4], [1,5], [2,6], [3,7]


# ----------------------------------------------------------------------------- ResNet stride placement
def _stage(first_stride_on: str) -> str:
    s1, s3 = (2, 1) if first_stride_on == "1x1" else (1, 2)
    return f"""
name: resnet stage, stride on the {first_stride_on}
input: 16x16x64
rounding: floor
defaults:
  conv: {{stride: 1, pad: 0}}
layers:
  - add:
      - - {{conv: 64, kernel: 1, stride: {s1}, name: a1}}
        - {{conv: 64, kernel: 3, stride: {s3}, pad: 1, name: a2}}
        - {{conv: 256, kernel: 1, name: a3}}
      - - {{conv: 256, kernel: 1, stride: 2, name: proj}}
    name: block1
  - add:
      - - {{conv: 64, kernel: 1, name: b1}}
        - {{conv: 64, kernel: 3, pad: 1, name: b2}}
        - {{conv: 256, kernel: 1, name: b3}}
      - []
    name: block2
"""


def test_resnet_stride_placement_changes_the_field():
    paper = receptive_fields(spec(_stage("1x1")))   # He et al. 2016: stride 2 on the first 1x1
    tv = receptive_fields(spec(_stage("3x3")))      # torchvision ("ResNet v1.5"): stride 2 on the 3x3
    # paper: 1x1/s2 → r 1, S 2; then 3x3 at S 2: 1 + 2·2 = 5
    # tv:    1x1 → r 1, S 1; then 3x3/s2 at S 1: 1 + 2·1 = 3, S 2
    assert paper["block1"].r == (5, 5) and tv["block1"].r == (3, 3)
    # block2's 3x3 adds 2·2 = 4 on both: 9 vs 7; the identity path keeps block1's field
    assert paper["block2"].r == (9, 9) and tv["block2"].r == (7, 7)
    assert paper["block2"].min_path_r == (1, 1) and paper["block2"].max_path_r == (9, 9)
    assert paper.aligned and tv.aligned  # the projection (1x1/s2, pad 0) is centred in both
    assert paper["block2"].S == tv["block2"].S == (2, 2)


# ----------------------------------------------------------------------------- transposed conv
def test_deconv_phases_by_hand():
    # deconv k3 s2 p1 on L: output o reads input i when o + 1 = 2i + j, j ∈ {0, 1, 2}
    # o = 0: j = 1, i = 0 → [0, 0];  o = 1: (j, i) = (0, 1), (2, 0) → [0, 1]
    g = spec("""
name: up
input: 8x1
layers:
  - {deconv: 1, kernel: 3, stride: 2, pad: 1, name: up}
""")
    rep = receptive_fields(g)
    up = rep["up"]
    assert up.S == (Fraction(1, 2),) and up.r_min == (1,) and up.r_max == (2,)
    assert [unit_field(rep, "up", u).unclipped[0] for u in range(4)] == [(0, 0), (0, 1), (1, 1), (1, 2)]
    row = json.loads(run("--chain", "deconv3s2p1", "--input", "8x1", "-F", "json").output)["layers"][-1]
    assert row["S"] == 0.5 and row["S_exact"] == "1/2" and (row["r_min"], row["r_max"]) == (1, 2)


def test_deconv_with_kernel_smaller_than_stride_leaves_blind_units():
    g = spec("name: up\ninput: 4x1\nlayers:\n  - {deconv: 1, kernel: 1, stride: 2, name: up}\n")
    rep = receptive_fields(g)
    assert rep["up"].r_min == (0,) and rep["up"].r_max == (1,)
    assert unit_field(rep, "up", 1).unclipped == (None,)


# ----------------------------------------------------------------------------- per axis
def test_non_square_asymmetric_json():
    g = spec("""
name: axes
input: 20x20x1
layers:
  - {conv: 1, kernel: [3, 5], stride: [1, 2], pad: [[2, 0], [0, 1]], rounding: floor, name: c}
""")
    rep = receptive_fields(g)
    c = rep["c"]
    assert c.r == (3, 5) and c.S == (1, 2) and c.P == (2, 0)
    d = c.to_dict()
    assert d["r"] == [3, 5] and d["S"] == [1, 2] and d["P"] == [2, 0]


# ----------------------------------------------------------------------------- brute force
def brute_force(graph, reads=None, kinds=()):
    """For every node: unit → (the set of input pixels it depends on, whether any window on the
    way reached into padding). Padding is zeros: no dependency. A second method, independent
    of the analytic passes: it only applies each layer's sliding rule to real units.

    ``reads(layer, axis, o, n_in, n_out)`` is the own rule of the layer types in ``kinds``: (the
    input indices unit coordinate ``o`` reads on ``axis``, whether it reads padding)."""
    in_sp = spatial(graph.input_shape)
    nd = len(in_sp)
    deps = {INPUT: {u: ({u}, False) for u in _units(in_sp)}}
    for node in graph.layers:
        layer = node.layer
        win = layer.rf_windows()
        sp = spatial(node.shape)
        src = [deps[s] for s in node.inputs]
        if layer.kind in kinds:
            in_shape = spatial(graph[node.inputs[0]].shape)
            out = {}
            for u in _units(sp):
                per_axis = [reads(layer, ax, o, n, m) for ax, (o, n, m) in enumerate(zip(u, in_shape, sp))]
                acc, pad = set(), any(p for _, p in per_axis)
                for v in itertools.product(*(r for r, _ in per_axis)):
                    acc |= src[0][v][0]
                    pad = pad or src[0][v][1]
                out[u] = (acc, pad)
            deps[node.name] = out
        elif win is None:
            if len(sp) == nd and len(src) > 1:
                deps[node.name] = {u: (set().union(*(s[u][0] for s in src)), any(s[u][1] for s in src))
                                   for u in _units(sp)}
            else:
                deps[node.name] = src[0]
        elif win == GLOBAL:
            deps[node.name] = {(0,) * nd: (set().union(*(v[0] for v in src[0].values())),
                                           any(v[1] for v in src[0].values()))}
        else:
            in_shape = spatial(graph[node.inputs[0]].shape)
            deconv = layer.kind == "deconv"
            out = {}
            for u in _units(sp):
                acc, pad = set(), False
                taps = [_taps(o, w, deconv) for o, w in zip(u, win)]
                for v in itertools.product(*taps):
                    if all(0 <= i < n for i, n in zip(v, in_shape)):
                        acc |= src[0][v][0]
                        pad = pad or src[0][v][1]
                    else:
                        pad = True
                out[u] = (acc, pad)
            deps[node.name] = out
    return deps


def _taps(o, w, deconv):
    """The input indices unit o reads along one axis (possibly outside the input)."""
    if deconv:  # output o = i·s + j·d − pad_lo
        return [(o + w.pad_lo - j * w.dilation) // w.stride for j in range(w.kernel)
                if (o + w.pad_lo - j * w.dilation) % w.stride == 0]
    return [o * w.stride - w.pad_lo + j * w.dilation for j in range(w.kernel)]


def _units(sp):
    return list(itertools.product(*(range(n) for n in sp)))


def _hull(pix, ax):
    xs = [p[ax] for p in pix]
    return (min(xs), max(xs)) if xs else None


def check_against_brute_force(graph):
    rep = receptive_fields(graph)
    deps = brute_force(graph)
    n_in = spatial(graph.input_shape)
    for name, units in deps.items():
        lf = rep[name]
        clean = []
        for u, (pix, pad) in units.items():
            uf = unit_field(rep, name, u)
            for ax in range(len(n_in)):
                # exact: the hull of the real dependencies
                assert _hull(pix, ax) == uf.support[ax], (name, u, ax)
                # sound: every dependency lies inside the clipped geometric field
                if pix:
                    lo, hi = uf.clipped[ax]
                    assert lo <= _hull(pix, ax)[0] and _hull(pix, ax)[1] <= hi, (name, u, ax)
            if not pad and pix:
                # no window touched padding: the geometric field is exactly what it depends on
                clean.append(u)
                for ax in range(len(n_in)):
                    assert _hull(pix, ax) == uf.unclipped[ax], (name, u, ax)
        # r, S and P from the brute force: neighbouring clean units of a layer with q = 1
        for ax, a in enumerate(lf.axes):
            if a.S is None or any(p.q != 1 for p in a.paths) or lf.is_global:
                continue
            for u in clean:
                nxt = u[:ax] + (u[ax] + 1,) + u[ax + 1:]
                if nxt in clean:
                    lo_u, hi_u = _hull(units[u][0], ax)
                    lo_n, _ = _hull(units[nxt][0], ax)
                    assert lo_n - lo_u == a.S, (name, ax)
                    assert u[ax] * a.S - lo_u == a.P, (name, ax)
                    assert hi_u - lo_u + 1 == a.r, (name, ax)
    return rep


_layer = st.one_of(
    st.builds(lambda k, s, lo, hi, d: {"conv": 1, "kernel": k, "stride": s, "pad": [[lo, hi]],
                                       "dilation": d},
              st.integers(1, 5), st.integers(1, 3), st.integers(0, 3), st.integers(0, 3), st.integers(1, 3)),
    st.builds(lambda k, s, p: {"maxpool": k, "stride": s, "pad": p},
              st.integers(1, 4), st.integers(1, 3), st.integers(0, 1)),
    st.builds(lambda k, s: {"avgpool": k, "stride": s}, st.integers(1, 3), st.integers(1, 3)),
)
_deconv = st.builds(lambda k, s, p, d: {"deconv": 1, "kernel": k, "stride": s, "pad": p, "dilation": d},
                    st.integers(1, 4), st.integers(1, 3), st.integers(0, 1), st.integers(1, 2))


def _chain_graph(length, layers):
    items = [{**layer, "name": f"l{i}"} for i, layer in enumerate(layers)]
    doc = {"name": "random chain", "input": f"{length}x1", "rounding": "floor", "layers": items}
    try:
        return load_spec_text(json.dumps(doc), file="<hypothesis>").infer()
    except SpecError:
        assume(False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.integers(16, 60), st.lists(_layer, min_size=1, max_size=4))
def test_random_chains_match_brute_force(length, layers):
    check_against_brute_force(_chain_graph(length, layers))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.integers(8, 30), st.lists(st.one_of(_layer, _deconv), min_size=1, max_size=4))
def test_random_chains_with_transposed_convs_match_brute_force(length, layers):
    g = _chain_graph(length, layers)
    rep = check_against_brute_force(g)
    # the reported r range covers every interior unit's brute-force field size
    deps = brute_force(g)
    last = g.layers[-1].name
    a = rep[last].axes[0]
    for (u,), (pix, pad) in deps[last].items():
        if pix and not pad:
            assert a.r_min <= max(pix)[0] - min(pix)[0] + 1 <= a.r_max


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.integers(12, 40), st.lists(_layer, min_size=1, max_size=3), st.lists(_layer, min_size=0, max_size=3))
def test_random_branches_match_brute_force(length, left, right):
    # two branches merged by add need equal lengths: skip the draws where they differ
    doc = {"name": "branches", "input": f"{length}x1", "rounding": "floor",
           "layers": [{"add": [[{**x, "name": f"a{i}"} for i, x in enumerate(left)],
                               [{**x, "name": f"b{i}"} for i, x in enumerate(right)]], "name": "m"}]}
    try:
        g = load_spec_text(json.dumps(doc), file="<hypothesis>").infer()
    except SpecError:
        assume(False)
    check_against_brute_force(g)


def test_2d_dilated_asymmetric_with_branch_matches_brute_force():
    g = spec("""
name: 2d
input: 14x12x1
rounding: floor
layers:
  - {conv: 2, kernel: [3, 2], stride: [2, 1], pad: [[1, 0], [0, 1]], dilation: [1, 2], name: c1}
  - concat:
      - [{maxpool: 3, stride: 1, pad: 1, name: p}]
      - [{conv: 2, kernel: 3, pad: [[2, 0], [0, 2]], name: shifted}]
    name: cat
  - {conv: 1, kernel: 1, name: head}
  - {global_avgpool: , name: gap}
""")
    rep = check_against_brute_force(g)
    assert not rep.aligned and rep["gap"].is_global


def test_resnet50_zoo_paper_vs_torchvision():
    from cnncalc.spec.loader import zoo_names
    if not {"resnet50", "resnet50_tv"} <= set(zoo_names()):
        pytest.skip("the ResNet-50 zoo specs are not in this tree")
    paper, tv = receptive_fields("resnet50"), receptive_fields("resnet50_tv")
    # by hand: conv1 7/s2 → r 7, S 2; maxpool 3/s2 → 7 + 2·2 = 11, S 4; conv2_x: 3 blocks · 2·4 → 35.
    # paper (stride on the 1x1; every 3x3 runs at the stage's new S):
    #   conv3_x 35 + 4·(2·8) = 99; conv4_x 99 + 6·(2·16) = 291; conv5_x 291 + 3·(2·32) = 483
    # torchvision (stride on the 3x3; the first 3x3 of a stage runs at the old S):
    #   conv3_x 35 + 2·4 + 3·16 = 91; conv4_x 91 + 2·8 + 5·32 = 267; conv5_x 267 + 2·16 + 2·64 = 427
    for rep, want in ((paper, (35, 99, 291, 483)), (tv, (35, 91, 267, 427))):
        got = tuple(rep[f"conv{s}_x/block{b}/add"].r[0] for s, b in ((2, 3), (3, 4), (4, 6), (5, 3)))
        assert got == want
        assert rep["conv5_x/block3/add"].S == (32, 32) and rep.aligned
        assert rep["conv5_x/block3/add"].min_path_r == (11, 11)  # all identity shortcuts from pool1


# ----------------------------------------------------------------------------- pruning is exact
@pytest.mark.parametrize("name", ["resnet50", "googlenet", "efficientnet_b0", "shufflenet_v2", "xception"])
def test_pruned_paths_give_the_same_numbers_as_every_path(name, monkeypatch):
    """Each node carries only the paths holding an extreme; every reported number must equal
    the one computed from all distinct paths (pruning switched off)."""
    from cnncalc.analysis import rf as rfmod

    pruned = rfmod.receptive_fields(name).to_dict()
    monkeypatch.setattr(rfmod, "_prune", frozenset)
    monkeypatch.setattr(rfmod, "MAX_PATHS", 10 ** 9)
    every = rfmod.receptive_fields(name).to_dict()
    assert pruned == every
    assert any(lay["paths"] > 8 for lay in every["layers"])  # pruning had something to drop


def test_deep_nets_keep_few_paths_and_say_when_the_count_is_over_the_cap():
    from cnncalc.analysis import rf as rfmod

    rep = rfmod.receptive_fields("cifar_resnet1202")
    kept = max(len(a.paths) for lf in rep.layers.values() for a in lf.axes)
    assert kept <= 16  # the work per layer stays constant with depth
    last = rep.to_dict()["layers"][-1]
    assert last["paths"] is None and last["paths_more_than"] == rfmod.MAX_PATHS
    assert rep.to_dict()["layers"][5]["paths"] == 1


# same-size layers (lo + hi pad = the kernel's extent − 1), so any of them can be added together
_same = st.builds(lambda k, d, lo: {"conv": 1, "kernel": k, "dilation": d,
                                    "pad": [[min(lo, d * (k - 1)), d * (k - 1) - min(lo, d * (k - 1))]]},
                  st.integers(1, 5), st.integers(1, 3), st.integers(0, 8))
_between = st.sampled_from([None, {"conv": 1, "kernel": 3, "stride": 2, "pad": 1},
                            {"deconv": 1, "kernel": 3, "stride": 2, "pad": 1, "output_pad": 1},
                            {"deconv": 1, "kernel": 2, "stride": 3},
                            {"upsample": 2}, {"maxpool": 2, "stride": 2}])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(st.tuples(st.lists(st.lists(_same, min_size=0, max_size=2), min_size=2, max_size=4), _between),
                min_size=2, max_size=5))
def test_pruning_is_exact_on_random_multi_branch_nets(blocks):
    """Each node keeps only the paths holding an extreme: on random stacks of 2–4-way `add`
    blocks (with strides, transposed convs and upsampling between them, so fields have
    phases), every reported number equals the one computed from every distinct path."""
    from cnncalc.analysis import rf as rfmod

    items = []
    for b, (branches, between) in enumerate(blocks):
        items.append({"add": [[{**x, "name": f"b{b}_{i}_{j}"} for j, x in enumerate(br)]
                              for i, br in enumerate(branches)], "name": f"add{b}"})
        if between:
            items.append({**between, "name": f"t{b}"})
    doc = {"name": "multi", "input": "40x1", "rounding": "floor", "layers": items}
    try:
        g = load_spec_text(json.dumps(doc), file="<hypothesis>")
        pruned = rfmod.receptive_fields(g).to_dict()
    except SpecError:
        assume(False)
    orig_prune, orig_max = rfmod._prune, rfmod.MAX_PATHS
    rfmod._prune, rfmod.MAX_PATHS = frozenset, 10 ** 9
    try:
        every = rfmod.receptive_fields(load_spec_text(json.dumps(doc), file="<hypothesis>")).to_dict()
    finally:
        rfmod._prune, rfmod.MAX_PATHS = orig_prune, orig_max
    per_path = ("max_path_r", "min_path_r", "aligned", "misaligned", "per_path_approximate", "paths",
                "paths_more_than")
    for a, b in zip(pruned["layers"], every["layers"]):
        if a.pop("per_path_approximate", False):  # over 256 paths with phases: said so
            a, b = ({k: v for k, v in x.items() if k not in per_path} for x in (a, b))
        if a.pop("paths_more_than", None):  # over the cap: no count, centres as a range
            assert a.pop("paths") is None and b.pop("paths") > rfmod.MAX_PATHS
            if "misaligned" in a and "centres" in a["misaligned"]:
                lo_hi = a.pop("misaligned").split(": ")[-1].split(" to ")
                centres = b.pop("misaligned").split(": ")[-1].split(", ")
                assert lo_hi == [centres[0], centres[-1]]
        assert a == b
