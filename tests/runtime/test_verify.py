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


def test_verify_lenet5_passes():
    r = run("verify", "lenet5", "--format", "json")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
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
    bad = json.loads(r.output)["checks"]
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
