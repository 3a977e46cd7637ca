"""`cnncalc verify`: passes on real networks, and catches a deliberately wrong claim."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import main
from cnncalc.runtime.verify import verify

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


def _naive_fields(graph, units):
    """The pre-batching method, as a second path: per unit a batch-1 backward of the full
    linearised net (weight gradients included), support box of the input gradient."""
    import numpy as np
    from cnncalc.graph import INPUT
    from cnncalc.runtime.executor import Net
    from cnncalc.runtime.verify import _support_box, random_input
    net = Net(graph, dtype="float64", conv_algo="im2col", linear=True)
    net.forward(random_input(graph.input_shape, 1, np.random.default_rng(0)) ** 2 + 1.0, keep=True)
    vals, out = dict(net.outputs_seen), {}
    for node in graph.layers:
        for unit in units.get(node.name, ()):
            d = np.zeros_like(vals[node.name])
            if d.ndim == 2:
                d[0] = 1.0
            else:
                d[0, :, unit[0], unit[1]] = 1.0
            g = net.backward({node.name: d}, keep_cache=True)
            out[(node.name, unit)] = _support_box(g[0])[0] if g is not None else None
    return out


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
    from cnncalc.runtime.verify import check_fields
    p = tmp_path / "g.yaml"
    p.write_text(GOOGLENET_LIKE)
    g = cnncalc.load(p).infer()
    items = check_fields(g, units="all", every_layer=True)
    assert all(i.ok for i in items), [i.to_dict() for i in items if not i.ok]
    units = {}
    for i in items:
        u = tuple(int(v) for v in i.check[len("field of unit ("):-1].split(",") if v)
        units.setdefault(i.layer, []).append(u)
    naive = _naive_fields(g, units)
    fast = {(i.layer, tuple(int(v) for v in i.check[len("field of unit ("):-1].split(",") if v)): i.measured
            for i in items}
    assert fast == naive
    assert sum(len(u) for u in units.values()) > 2 * len(units)  # several units per layer batched


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
