"""summarize --convention: what torchinfo, fvcore, ptflops and thop count, rebuilt from cnncalc's
counts.

Golden values: hand arithmetic on a small spec (each term written out below), and the tools'
own results, computed in the test when the tools are installed (never typed in): a probe
network with one module of each kind the rules cover, and torchvision's ResNet-18 against the
zoo spec (slow).
"""
from __future__ import annotations

import json
import warnings

import pytest

import cnncalc
from cnncalc.analysis.conventions import CONVENTIONS, count

SMALL = """
name: small
input: 8x8x3
layers:
  - {conv: 4, kernel: 3, pad: 1, bn: true, activation: relu, name: conv}
  - {maxpool: 2, name: pool}
  - {global_avgpool: , name: gap}
  - {flatten: , name: flat}
  - {fc: 5, name: fc}
"""


def _counts(spec, batch=1):
    g = cnncalc.load(spec)
    r = cnncalc.analyze(g, batch=batch)
    return {c: count(g, r, c) for c in CONVENTIONS}


def test_small_network_by_hand(spec_file):
    # per sample: conv 3x3x3→4 on 8x8 (pad 1): 64 positions x 27 x 4 = 6,912 MACs, 108 weights,
    # 4 biases; BN on 256 values (8 params), ReLU on 256; maxpool 2 → 4x4x4 (reads 256); global
    # avg pool reads 64, writes 4; fc 4→5: 20 MACs, 5 biases
    macs = 64 * 27 * 4 + 4 * 5
    want = {
        "cnncalc": macs,
        "torchinfo": (108 + 4) * 64 + 8 + (20 + 5),              # (w + b) x positions; params x N
        "fvcore": macs + 2 * 256 + 64,                           # BN 2/elem; adaptive avg pool input
        "ptflops": macs + 256 + 2 * 256 + 2 * 256 + 2 * 256 + 2 * 64 + 5,  # bias, BN, ReLU x2, pools x2, fc bias
        "thop": macs + 4 * 256 + (64 + 4),                       # BN 4/elem; avg pool adds + divides
    }
    p = spec_file(SMALL)
    got = _counts(str(p))
    assert {c: got[c].total for c in CONVENTIONS} == want
    # batch 2 doubles every count but ptflops' (it traces one sample)
    got2 = _counts(str(p), batch=2)
    assert {c: got2[c].total for c in CONVENTIONS} == {c: v * (1 if c == "ptflops" else 2) for c, v in want.items()}
    assert all(cc.params == 108 + 4 + 8 + 25 for cc in got.values())
    # per layer: the parts sum to the total, the layers too
    for cc in got.values():
        assert sum(cc.layers.values()) == cc.total == sum(cc.parts.values())


def test_cli_column_all_and_json(cli, spec_file):
    p = spec_file(SMALL)
    out = cli("summarize", p, "--convention", "thop").output
    assert "thop MACs" in out and "batch norm: 4/element" in out and "thop.profile" in out
    out = cli("summarize", p, "--convention", "all").output
    for c in CONVENTIONS:
        assert c in out
    obj = json.loads(cli("summarize", p, "--convention", "all", "--format", "json").output)
    totals = {c["convention"]: c["total"] for c in obj["conventions"]}
    assert totals["fvcore"] == 64 * 27 * 4 + 20 + 512 + 64
    bn = next(r for r in obj["layers"] if r["name"] == "conv_bn")
    assert bn["convention"]["torchinfo"] == 8 and bn["convention"]["thop"] == 4 * 256
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(cli("summarize", p, "--convention", "ptflops", "--format", "csv").output)))
    assert int(rows[-1]["convention"]) == totals["ptflops"]  # the total row
    res = cli("summarize", p, "--convention", "thop", "--depth", "1")
    assert res.exit_code == 2


def _tool_counts(model, x):
    """What the installed counters print for ``model`` on input ``x`` (those installed)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import torchinfo
            out["torchinfo"] = torchinfo.summary(model, input_data=x, verbose=0).total_mult_adds
        except ImportError:
            pass
        try:
            from fvcore.nn import FlopCountAnalysis
            f = FlopCountAnalysis(model, x)
            f.unsupported_ops_warnings(False)
            f.uncalled_modules_warnings(False)
            out["fvcore"] = f.total()
        except ImportError:
            pass
        try:
            from ptflops import get_model_complexity_info
            out["ptflops"] = get_model_complexity_info(model, tuple(x.shape[1:]), as_strings=False,
                                                       print_per_layer_stat=False, verbose=False)[0]
        except ImportError:
            pass
        try:
            import thop
            out["thop"] = thop.profile(model, inputs=(x,), verbose=False)[0]
        except ImportError:
            pass
    if not out:
        pytest.skip("none of torchinfo, fvcore, ptflops, thop is installed")
    return out


@pytest.mark.slow  # (importing four counters takes longer than the counting)
@pytest.mark.torch
def test_rules_match_the_tools_on_a_probe_network():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from torch import nn

    class Probe(nn.Module):  # one module of each kind the rules cover
        def __init__(self):
            super().__init__()
            self.c1, self.bn1, self.r1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True)
            self.p1 = nn.MaxPool2d(2)
            self.c2, self.bn2, self.r2 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6()
            self.c3, self.r3 = nn.Conv2d(8, 16, 1), nn.LeakyReLU(0.1)
            self.p2 = nn.AvgPool2d(3, stride=2, padding=1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.c4, self.gn, self.a4 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.GroupNorm(4, 16), nn.GELU()
            self.c5, self.a5 = nn.Conv2d(16, 16, 3, padding=1), nn.SiLU()
            self.gap, self.fc, self.sm = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10), nn.Softmax(dim=1)

        def forward(self, x):
            x = self.p1(self.r1(self.bn1(self.c1(x))))
            x = self.r2(self.bn2(self.c2(x)))
            x = self.up(self.p2(self.r3(self.c3(x))))
            y = self.c5(self.a4(self.gn(self.c4(x))))
            y += x
            return self.sm(self.fc(torch.flatten(self.gap(self.a5(y)), 1)))

    model = Probe().eval()
    x = torch.randn(2, 3, 32, 32)
    s = cnncalc.summary(model, input_size=tuple(x.shape))
    tools = _tool_counts(model, x)
    ours = {c: count(s.graph, s.report, c) for c in tools}
    assert {c: ours[c].total for c in tools} == {c: int(v) for c, v in tools.items()}
    assert not any(cc.not_modelled for cc in ours.values())


@pytest.mark.slow
@pytest.mark.torch
def test_resnet18_zoo_spec_counts_as_the_tools_count_torchvision():
    """The table of docs/counting.md: the zoo's resnet18 spec, counted by each convention,
    against each tool run on torchvision's resnet18 (the same network)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18().eval()
    x = torch.zeros(1, 3, 224, 224)
    tools = _tool_counts(model, x)
    ours = _counts("resnet18")
    assert {c: ours[c].total for c in tools} == {c: int(v) for c, v in tools.items()}
    assert ours["cnncalc"].params == sum(p.numel() for p in model.parameters())
