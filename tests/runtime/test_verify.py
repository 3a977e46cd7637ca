"""`cnncalc verify`: passes on real networks, and catches a deliberately wrong claim."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import main
from cnncalc.runtime.verify import verify
from cnncalc.spec.loader import load_spec_text

SPECS = Path(__file__).parent / "specs"

RESNET_INCEPTION = """
name: residual + inception
input: 16x16x3
rounding: floor
layers:
  - {conv: 8, kernel: 3, pad: 1, activation: relu, bn: true}
  - {add: [[{conv: 8, kernel: 3, pad: 1, activation: relu}, {conv: 8, kernel: 3, pad: 1}], []], activation: relu}
  - {maxpool: 3, stride: 2, pad: 1, rounding: floor}
  - {concat: [[{conv: 4, kernel: 1}], [{conv: 4, kernel: 1}, {conv: 6, kernel: 3, pad: 1}],
              [{conv: 2, kernel: 1}, {conv: 3, kernel: 5, pad: 2}], [{maxpool: 3, stride: 1, pad: 1}, {conv: 3, kernel: 1}]]}
  - {add: [[{conv: 16, kernel: 3, stride: 2, pad: 1}], [{conv: 16, kernel: 1, stride: 2}]]}
  - global_avgpool
  - flatten
  - {fc: 10}
"""


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_verify_logs_a_line_per_check_group_when_piped():
    r = run("verify", "lenet5")
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert [ln.split(":")[1].strip() for ln in lines] == ["params, state, shapes and memory", "receptive fields"]
    assert "verify:" not in r.stdout


def test_verify_lenet5_passes():
    r = run("verify", "lenet5", "--format", "json")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["ok"] and obj["summary"]["receptive field"]["agree"] == obj["summary"]["receptive field"]["checked"] > 0


def test_verify_residual_inception_passes(tmp_path):
    p = tmp_path / "ri.yaml"
    p.write_text(RESNET_INCEPTION)
    r = run("verify", str(p))
    assert r.exit_code == 0, r.output


def test_verify_every_layer_spec_passes():
    items, _ = verify(cnncalc.load(SPECS / "all2d.yaml"))
    assert all(i.ok for i in items), [i.to_dict() for i in items if not i.ok]


def test_verify_catches_wrong_param_count(monkeypatch):
    from cnncalc.layers.conv import Conv
    orig = Conv.param_shapes

    def one_too_many(self):  # the analyzer claims one extra bias for C3
        out = dict(orig(self))
        if self.name == "C3":
            out["extra"] = ((1,), "bias")
        return out

    monkeypatch.setattr(Conv, "param_shapes", one_too_many)
    import cnncalc.runtime.verify as V
    real_net = V.Net

    class HonestNet(real_net):  # the runtime allocates the true tensors
        def param_count(self, name=None):
            return sum(a.size for n, d in self.params.items() if name in (None, n)
                       for k, a in d.items() if k != "extra")

    monkeypatch.setattr(V, "Net", HonestNet)
    r = run("verify", "lenet5", "--no-fields")
    assert r.exit_code == 1
    assert "C3" in r.output and "DIFFERS" in r.output


def test_verify_catches_wrong_receptive_field(monkeypatch):
    import cnncalc.runtime.verify as V
    real = V.unit_field

    def off_by_one(rep, layer, unit):
        uf = real(rep, layer, unit)
        if layer == "C3":
            (a, b), w = uf.clipped
            uf = type(uf)(uf.layer, uf.unit, uf.unclipped, ((a, b + 1), w), uf.paths, uf.input_shape)
        return uf

    monkeypatch.setattr(V, "unit_field", off_by_one)
    r = run("verify", "lenet5", "--format", "json")
    assert r.exit_code == 1
    bad = json.loads(r.stdout)["checks"]
    assert bad and {c["layer"] for c in bad} == {"C3"}


def test_verify_bad_spec_exits_2():
    r = CliRunner().invoke(main, ["verify", "no-such-spec"])
    assert r.exit_code == 2


@pytest.mark.slow
def test_verify_vgg16_small_input():
    r = run("verify", "vgg16", "--input", "32x32x3", "--no-fields")
    assert r.exit_code == 0, r.output


def test_erf_writes_png_and_csv(tmp_path):
    png, csv = tmp_path / "m.png", tmp_path / "m.csv"
    r = run("erf", "lenet5", "--layer", "C3", "--out", str(png))
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("erf", "lenet5", "--layer", "C3", "--out", str(csv)).exit_code == 0
    rows = csv.read_text().splitlines()
    assert len(rows) == 32 and len(rows[0].split(",")) == 32
    assert "of the theoretical field" in r.output
    assert CliRunner().invoke(main, ["erf", "lenet5", "--layer", "nope"]).exit_code == 2


def test_gradcheck_cli_json():
    r = run("gradcheck", "lenet5", "--format", "json", "--entries", "5")
    assert r.exit_code == 0
    assert json.loads(r.output)["ok"]


@pytest.mark.parametrize("name", ["channels", "channels1d"])
def test_verify_channel_plumbing_passes(name):
    # option-A shortcut (subsample + zero channels), ShuffleNet v2 split/concat/shuffle units
    items, _ = verify(cnncalc.load(SPECS / f"{name}.yaml"))
    assert all(i.ok for i in items), [i.to_dict() for i in items if not i.ok]
    assert any(i.layer in ("shortcut", "pad") and i.check.startswith("field") for i in items)


def test_verify_passes_a_flat_vector_of_constants_only():
    """A layer of constants only whose result is a flat vector (Swin V2's qkv bias times its mask,
    (C,) with inputs: []) has no field to check: it sees no pixel (the field check read its
    first input and failed with an IndexError); the others' fields are checked."""
    g = load_spec_text("name: m\ninput: 6x6x4\nlayers:\n"
                       "  - {conv: 4, kernel: 3, pad: 1, name: c}\n"
                       "  - {global_avgpool: , name: gap}\n"
                       "  - {binary: mul, inputs: [], const: [{index: 0, shape: [4]}, {index: 1, shape: [4], learned: false}], name: b}\n"
                       "  - {binary: add, inputs: [gap, b], name: y}\n")
    items, _ = verify(g)
    assert all(i.ok for i in items), [i.to_dict() for i in items if not i.ok]
    assert any(i.layer == "gap" and i.check.startswith("field") for i in items)
    assert {i.check for i in items if i.layer == "b"} == {"activation bytes", "params", "shape", "state"}


def _naive_fields(graph, units):
    """The pre-batching method, as a second path: per unit a batch-1 float64 backward of the
    full linearised net (weight gradients included, no early stop), support box of the input
    gradient. 1-D units are ``(l,)`` on a ``(N, C, 1, L)`` tensor, 3-D ones ``(d, h, w)``."""
    import numpy as np
    from cnncalc.graph import INPUT
    from cnncalc.runtime.executor import Net
    from cnncalc.runtime.verify import _support_box, random_input
    net = Net(graph, dtype="float64", conv_algo="im2col", linear=True)
    net.forward(random_input(graph.input_shape, 1, np.random.default_rng(0)) ** 2 + 1.0, keep=True)
    vals, out = dict(net.outputs_seen), {}
    in_nd = len(graph.input_shape) - 1
    for node in graph.layers:
        for unit in units.get(node.name, ()):
            d = np.zeros_like(vals[node.name])
            x = vals[node.inputs[0]]
            if node.kind == "flatten" and x.ndim > 2:  # its units are its input's positions
                d = np.zeros_like(x)
                d[(0, slice(None), 0, *unit) if len(unit) == 1 else (0, slice(None), *unit)] = 1.0
                d = d.reshape(vals[node.name].shape)
            elif d.ndim == 2:
                d[0] = 1.0
            elif d.ndim == 4 and len(unit) == 1:
                d[0, :, 0, unit[0]] = 1.0
            else:
                d[(0, slice(None), *unit)] = 1.0
            g = net.backward({node.name: d}, keep_cache=True)
            if g is None:
                out[(node.name, unit)] = None
                continue
            box = _support_box(g[0][:, None, :] if in_nd == 1 else g[0])[0]
            out[(node.name, unit)] = box[1:] if in_nd == 1 else box
    return out


def _unit_of(item):
    return tuple(int(v) for v in item.check[len("field of unit ("):-1].split(",") if v)


def _assert_fields_equal_naive(g):
    from cnncalc.runtime.verify import check_fields
    items = check_fields(g, units="all", every_layer=True)
    assert all(i.ok for i in items), [i.to_dict() for i in items if not i.ok]
    units = {}
    for i in items:
        units.setdefault(i.layer, []).append(_unit_of(i))
    assert _naive_fields(g, units) == {(i.layer, _unit_of(i)): i.measured for i in items}
    return items


GOOGLENET_LIKE = """
name: GoogLeNet-like, reduced (stem, two inception modules, max-pool between, head)
input: 40x40x3
rounding: floor
defaults:
  conv: {activation: relu}
modules:
  inception:
    args: [a, b1, b2, c1, c2, p]
    layers:
      - concat:
          - [{conv: $a, kernel: 1}]
          - [{conv: $b1, kernel: 1}, {conv: $b2, kernel: 3, pad: 1}]
          - [{conv: $c1, kernel: 1}, {conv: $c2, kernel: 5, pad: 2}]
          - [{maxpool: 3, stride: 1, pad: 1}, {conv: $p, kernel: 1}]
        name: cat
layers:
  - {conv: 8, kernel: 7, stride: 2, pad: 3, name: conv1}
  - {maxpool: 3, stride: 2, rounding: ceil, name: pool1}
  - {lrn: 5, name: norm1}
  - {conv: 12, kernel: 3, pad: 1, name: conv2}
  - {maxpool: 3, stride: 2, rounding: ceil, name: pool2}
  - {inception: [4, 4, 6, 2, 3, 3], name: i3a}
  - {maxpool: 3, stride: 2, rounding: ceil, name: pool3}
  - {inception: [6, 4, 8, 2, 4, 4], name: i4a}
  - {global_avgpool: , name: gap}
  - {dropout: 0.4, name: drop}
  - {flatten: , name: flat}
  - {fc: 10, name: fc}
"""


def test_batched_field_check_equals_the_per_unit_backward(tmp_path):
    # one pass per layer with a unit per batch item must measure exactly what one pass per unit did
    p = tmp_path / "g.yaml"
    p.write_text(GOOGLENET_LIKE)
    items = _assert_fields_equal_naive(cnncalc.load(p).infer())
    layers = {i.layer for i in items}
    assert len(items) > 2 * len(layers)  # several units per layer batched



def _pass_steps(monkeypatch, g, **kw):
    """({pass: [every layer it differentiates]}, the field items) of ``check_fields(g, **kw)``,
    recorded through verify's own pass and data-gradient functions."""
    import cnncalc.runtime.verify as V

    steps, cur = {}, []
    real_dg, real_fm = V._data_grads, V._field_masks

    def counting(net, node, *a, **k):  # every layer a pass differentiates
        steps.setdefault(cur[-1], []).append(node.name)
        return real_dg(net, node, *a, **k)

    def per_pass(fnet, order, node, *a, **k):
        cur.append(node.name)
        return real_fm(fnet, order, node, *a, **k)

    monkeypatch.setattr(V, "_data_grads", counting)
    monkeypatch.setattr(V, "_field_masks", per_pass)
    return steps, V.check_fields(g, **kw)


def test_a_pass_ends_where_a_gradient_support_met_before_is_met_again(tmp_path, monkeypatch):
    # an inception's 3x3 branch and its pool branch reach the layer below the module with the
    # same support (a 3x3 block, every channel): the pool's pass takes the 3x3 pass's input
    # support there instead of differentiating down to the input; the fields stay the naive ones
    p = tmp_path / "g.yaml"
    p.write_text(GOOGLENET_LIKE)
    g = cnncalc.load(p).infer()
    steps, items = _pass_steps(monkeypatch, g)
    assert all(i.ok for i in items)
    assert len(steps["i4a/conv3"]) > 5                          # the 3x3 branch: into the module below
    assert steps["i4a/maxpool1"] == ["i4a/maxpool1"]           # the pool: ends at pool3 (met before)
    assert steps["i3a/maxpool1"] == ["i3a/maxpool1"]
    monkeypatch.undo()
    _assert_fields_equal_naive(g)


def test_memo_key_is_the_exact_support():
    from cnncalc.runtime.verify import _Memo
    g = np.zeros((3, 6, 6), np.float32)
    g[:, 1:4, 2:5] = 1.0
    full = _Memo.key(g, (1, 3, 2, 4))
    assert full == _Memo.key(g * 2.0, (1, 3, 2, 4))            # values do not matter, the support does
    h = g.copy()
    h[1, 2, 3] = 0.0                                            # a hole in one channel: another support
    assert _Memo.key(h, (1, 3, 2, 4)) not in (full, _Memo.key(g[:, ::-1], (2, 4, 2, 4)))
    assert _Memo.key(h, (1, 3, 2, 4)) == _Memo.key(h * 3.0, (1, 3, 2, 4))
    assert _Memo.key(g[:2], (1, 3, 2, 4)) != full                # the shape is part of the key


BOTTLENECK = """
name: bottleneck ResNet, reduced (stride-2 1x1 convs, a projection shortcut)
input: 32x32x3
rounding: floor
layers:
  - {conv: 8, kernel: 3, stride: 2, pad: 1, bn: true, activation: relu, name: stem}
  - {add: [[{conv: 4, kernel: 1, bn: true, activation: relu}, {conv: 4, kernel: 3, pad: 1, bn: true, activation: relu},
            {conv: 8, kernel: 1, bn: true}], []], activation: relu, name: b1}
  - {add: [[{conv: 8, kernel: 1, stride: 2, bn: true, activation: relu}, {conv: 8, kernel: 3, pad: 1, bn: true,
             activation: relu}, {conv: 16, kernel: 1, bn: true}], [{conv: 16, kernel: 1, stride: 2, bn: true}]],
     activation: relu, name: b2}
  - {global_avgpool: , name: gap}
  - {flatten: , name: flat}
  - {fc: 10, name: fc}
"""

RESIDUAL_3D = """
name: 3-D residual, reduced
input: 6x8x8x2
rounding: floor
layers:
  - {conv: 4, kernel: 3, pad: 1, activation: relu, name: c1}
  - {add: [[{conv: 4, kernel: 1, activation: relu}, {conv: 4, kernel: 3, pad: 1}], []], name: a1}
  - {maxpool: 2, name: p1}
  - {conv: 6, kernel: 1, name: c2}
  - {global_avgpool: , name: gap}
  - {fc: 3, name: fc}
"""


@pytest.mark.parametrize("text", [BOTTLENECK, RESIDUAL_3D, None], ids=["bottleneck-2d", "residual-3d", "channels-1d"])
def test_early_ending_passes_measure_what_full_passes_do(text, tmp_path):
    # a pass that ends on units measured before (1x1 convs, merges, BN, fc) takes the union of
    # their supports; it must equal the full float64 backward of every unit, in 1-D, 2-D and 3-D
    if text is None:
        g = cnncalc.load(SPECS / "channels1d.yaml").infer()
    else:
        p = tmp_path / "g.yaml"
        p.write_text(text)
        g = cnncalc.load(p).infer()
    _assert_fields_equal_naive(g)


def test_passes_of_1x1_convs_and_merges_end_early(tmp_path, monkeypatch):
    # the point of the early end: a stride-1 1x1 conv, an add and fc differentiate a layer or
    # two, not every ancestor; a 3x3 conv's pass and a strided 1x1 conv's corner reach the input
    p = tmp_path / "g.yaml"
    p.write_text(BOTTLENECK)
    g = cnncalc.load(p).infer()
    steps, items = _pass_steps(monkeypatch, g, units="all")
    assert all(i.ok for i in items)
    for layer in ("conv1", "conv3", "b1", "conv6", "b2", "fc"):  # itself, then only BN / flatten
        assert steps[layer][0] == layer and all(g[n].kind in ("batchnorm", "flatten") for n in steps[layer][1:]), steps
    assert steps["conv2"][-1] == "stem" and steps["conv4"][-1] == "stem"  # down to the input


def test_field_layers_skip_only_pointwise_single_input(tmp_path):
    from cnncalc.runtime.verify import field_layers
    p = tmp_path / "g.yaml"
    p.write_text(GOOGLENET_LIKE)
    g = cnncalc.load(p).infer()
    kept = {n.name for n in field_layers(g)}
    assert {"norm1", "drop"}.isdisjoint(kept)                     # pointwise: their input's field
    assert {"conv1", "pool1", "i3a/cat", "i3a/conv4", "pool3", "i4a/cat", "gap", "flat", "fc"} <= kept
    assert all(n.kind in ("concat", "add") or n.layer.rf_windows() is not None or n.kind == "flatten"
               or n.name in g.outputs for n in field_layers(g))
    assert {n.name for n in field_layers(g, every=True)} == {n.name for n in g.layers}


def test_verify_googlenet_like_passes_and_catches_a_wrong_merge_field(tmp_path, monkeypatch):
    p = tmp_path / "g.yaml"
    p.write_text(GOOGLENET_LIKE)
    assert run("verify", str(p)).exit_code == 0
    import cnncalc.runtime.verify as V
    real = V.unit_field
    cat = next(n.name for n in cnncalc.load(p).infer().layers if n.kind == "concat" and "i4a" in n.name)

    def shifted(rep, layer, unit):
        uf = real(rep, layer, unit)
        if layer == cat:
            (a, b), w = uf.clipped
            uf = type(uf)(uf.layer, uf.unit, uf.unclipped, ((a + 1, b), w), uf.paths, uf.input_shape)
        return uf

    monkeypatch.setattr(V, "unit_field", shifted)
    r = run("verify", str(p), "--format", "json")
    assert r.exit_code == 1
    assert {c["layer"] for c in json.loads(r.stdout)["checks"]} == {cat}


def test_band_check_flags_what_could_hide_or_fake_a_nonzero():
    import numpy as np
    from cnncalc.runtime.verify import _TooNarrow, _check_band

    def ok(values, dtype):
        try:
            _check_band(np.array(values, dtype), dtype)
            return True
        except _TooNarrow:
            return False

    for dt in ("float32", "float64"):
        assert ok([0.0, 1.0, 3.5], dt) and ok([0.0, 0.0], dt) and ok([2.0 ** -59, 1.0], dt)
        assert not ok([-1.0, 1.0], dt) and not ok([np.nan, 1.0], dt) and not ok([np.inf], dt)
        assert not ok([-0.0, 1.0], dt)  # a sign where none can arise: not trusted
    assert not ok([2.0 ** -61, 1.0], "float32") and ok([2.0 ** -61, 1.0], "float64")   # 2^-60 .. 2^60
    assert not ok([2.0 ** 61], "float32") and ok([2.0 ** 61], "float64")
    assert not ok([2.0 ** -501], "float64") and not ok([2.0 ** 501], "float64")


def test_a_pass_outside_the_float32_band_is_redone_in_float64(tmp_path, monkeypatch):
    # force every float32 pass out of its band: the float64 copy measures the same supports
    import cnncalc.runtime.verify as V
    p = tmp_path / "g.yaml"
    p.write_text(BOTTLENECK)
    g = cnncalc.load(p).infer()
    want = [(i.layer, i.check, i.measured, i.note) for i in V.check_fields(g, units="all")]
    built, real = [], V._FieldNet.__init__

    def spy(self, graph, dtype, *a):
        built.append(dtype)
        real(self, graph, dtype, *a)

    monkeypatch.setattr(V._FieldNet, "__init__", spy)
    monkeypatch.setattr(V, "_BAND", {**V._BAND, "float32": (2.0 ** 70, 2.0 ** 71)})
    got = [(i.layer, i.check, i.measured, i.note) for i in V.check_fields(g, units="all")]
    assert built == ["float32", "float64"] and got == want


# ----------------------------------------------------------------------------- token networks
@pytest.mark.parametrize("spec, size", [("examples/attention/vit_mnist.yaml", None), ("deit_tiny", "32x32x3")])
def test_verify_token_networks_pass(spec, size):
    """The totals compare layer outputs: the values attention and the MLP write inside them are
    not outputs, and the note says how many bytes of the analyzer's total they are."""
    root = Path(__file__).parents[2]
    args = ["verify", str(root / spec) if spec.endswith(".yaml") else spec, "--format", "json"]
    r = run(*args, *(["--input", size] if size else []))
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["ok"] and obj["summary"]["activation bytes"]["agree"] > 0
    # vit_mnist at batch 2, per block: attention 25,220 values inside (docs/attention.md's
    # --explain) and the MLP's hidden 65*64 before and after GELU; 4 bytes each
    if size is None:
        assert obj["inside_layers_bytes"] == 4 * 2 * 2 * (25_220 + 2 * 65 * 64)


@pytest.mark.parametrize("geom", [
    dict(k=(3, 3), s=(1, 1), p=((1, 1), (1, 1)), d=(1, 1), groups=1),
    dict(k=(7, 7), s=(2, 2), p=((3, 3), (3, 3)), d=(1, 1), groups=1),
    dict(k=(3, 2), s=(2, 3), p=((0, 2), (1, 0)), d=(2, 1), groups=2),   # asymmetric, dilated, grouped
    dict(k=(3, 3), s=(1, 1), p=((1, 1), (1, 1)), d=(1, 1), groups=8),   # depthwise
    dict(k=(1, 1), s=(2, 2), p=((0, 0), (0, 0)), d=(1, 1), groups=1),   # strided 1x1: leaves rows out
])
def test_windowed_conv_data_grad_equals_the_whole_map(geom):
    # the field passes differentiate a conv only on the windows where its output gradient is
    # non-zero; that must give the whole-map data gradient exactly, at borders and corners too
    import numpy as np

    from cnncalc.runtime.kernels.conv import conv2d_backward, conv2d_forward
    from cnncalc.runtime.verify import _conv_dx_windowed, _scan_grad
    rng = np.random.default_rng(3)
    x = rng.random((3, 8, 19, 17))
    w = rng.random((8, 8 // geom["groups"], *geom["k"]))
    y, cache = conv2d_forward(x, w, None, geom["s"], geom["p"], geom["d"], geom["groups"], algo="auto")
    OH, OW = y.shape[2:]
    ran = 0
    for spots in ([(0, 0), (OH - 1, OW - 1), (OH // 2, OW // 2)], [(0, OW - 1)], [(OH - 1, 0), (OH - 2, 1)]):
        g = np.zeros_like(y)
        for r, (h, c) in enumerate(spots):  # row r: a unit or two, on some channels
            g[r % 3, r % 8, h, c] = 1.0 + r
            g[(r + 1) % 3, 7, h, c] = 0.5
        want = conv2d_backward(g, cache, need_dw=False)[0]
        got = _conv_dx_windowed(cache, g, _scan_grad(g, "float64", True))
        if got is not None:
            ran += 1
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
            assert np.array_equal(got != 0, want != 0)
    assert ran >= 2  # small windows take the windowed path


@pytest.mark.parametrize("geom", [
    dict(k=(3, 3), s=(1, 1), p=((1, 1), (1, 1)), inc=True),     # GoogLeNet's branch pool
    dict(k=(3, 3), s=(2, 2), p=((0, 1), (0, 1)), inc=False),    # ceil-like clipping, divisors by cell
    dict(k=(2, 2), s=(2, 2), p=((0, 0), (0, 0)), inc=True),     # regular: the strided numpy path
    dict(k=(3, 2), s=(2, 1), p=((0, 0), (0, 0)), inc=True),     # regular, overlapping
])
def test_windowed_pool_data_grad_equals_the_whole_map(geom):
    # average pooling (the linear copy's max pooling) differentiated on a window must give
    # the whole map's data gradient, divisors at the borders included
    import numpy as np

    from cnncalc.runtime.kernels.pool import avgpool2d_backward_window, avgpool2d_forward, pool2d_backward
    rng = np.random.default_rng(5)
    x = rng.random((2, 3, 13, 11))
    y, cache = avgpool2d_forward(x, geom["k"], geom["s"], geom["p"], count_include_pad=geom["inc"])
    OH, OW = y.shape[2:]
    for (a, b), (c, d) in [((0, 1), (0, 0)), ((OH - 2, OH - 1), (OW - 3, OW - 1)), ((0, OH - 1), (0, OW - 1)),
                           ((OH // 2, OH // 2), (1, 2))]:
        g = np.zeros_like(y)
        g[:, :, a:b + 1, c:d + 1] = rng.random((2, 3, b - a + 1, d - c + 1)) + 0.5
        want = pool2d_backward(g, cache)
        dxv, (r0, c0) = avgpool2d_backward_window(g[:, :, a:b + 1, c:d + 1], cache, (a, b), (c, d))
        got = np.zeros_like(want)
        got[:, :, r0:r0 + dxv.shape[2], c0:c0 + dxv.shape[3]] = dxv
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    from cnncalc.runtime.kernels.pool import maxpool2d_forward
    assert avgpool2d_backward_window(g[:, :, :1, :1], maxpool2d_forward(x, 2, 2)[1], (0, 0), (0, 0)) is None
    with pytest.raises(ValueError):  # a gradient that is not the window's
        avgpool2d_backward_window(g, cache, (0, 0), (0, 0))


# A cross-covariance attention (XCA, EdgeNeXt): channels attend over channels, the tokens are
# contracted, so the attention matrix holds no position (one unit per axis, global) and the
# matmul with v broadcasts it over v's positions. Its support per unit used to index the
# one-unit source at every unit: IndexError in `verify` (an imported EdgeNeXt crashed with it).
XCA = """
name: xca
input: 4x4x6
layers:
  - {conv: 6, kernel: 3, pad: 1, name: c}
  - {reshape: [6, 16], name: v}
  - {transpose: , perm: [1, 0], name: vt}
  - {matmul: , inputs: [v, vt], name: qk}
  - {softmax: , axis: -1, name: a}
  - {matmul: , inputs: [a, v], name: av}
"""

# A gate (a map of one row, broadcast over the rows: its field is flagged, not widened) times a
# map: the linearised copy that checks the fields holds the gate constant, which left a sum of
# one operand (TypeError in `verify`).
GATED = """
name: gated
input: 6x6x2
layers:
  - {conv: 2, kernel: 3, pad: 1, name: c}
  - {reduce: max, axes: [1], keepdims: true, name: r}
  - {binary: mul, inputs: [c, r], name: m}
"""


@pytest.mark.parametrize("text", [XCA, GATED], ids=["xca", "gated-mul"])
def test_verify_broadcast_operands_pass(text, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    r = run("verify", str(p))
    assert r.exit_code == 0, r.output
    assert "receptive field" in r.output and "agree" in r.output


def test_support_of_a_broadcast_global_operand_is_the_whole_input():
    from cnncalc.analysis.rf import receptive_fields, unit_field
    from cnncalc.spec.loader import load_spec_text

    g = load_spec_text(XCA)
    g.infer()
    rep = receptive_fields(g)
    for u in range(16):  # every token of av sees every input pixel (through qk)
        assert unit_field(rep, "av", (u // 4, u % 4)).support == ((0, 3), (0, 3))
