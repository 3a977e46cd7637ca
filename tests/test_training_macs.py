"""Training MACs = forward + input-gradient + weight-gradient MACs, per layer and in total.

Hand arithmetic: every forward MAC pairs one input value with one weight; backward repeats each
product once for dX and once for dW. The first trainable layer needs no dX (nothing upstream
learns), so it costs 2x its forward MACs, every later MAC layer 3x. Cross-checked against the
multiply-adds PyTorch's autograd really runs (FlopCounterMode sees convolution_backward with its
output mask, and the mm/addmm of fc layers and their gradients)."""
import json

import pytest

import cnncalc


def test_conv_first_and_second_layer(spec_file):
    # conv 32x32x3 -> 10 filters 5x5 pad 2: 32*32*10 * (5*5*3) = 768,000 forward MACs
    # as the first layer: + 768,000 (dW) = 1,536,000; the second conv sees 32x32x10:
    # 32*32*10 * (5*5*10) = 2,560,000, times 3 = 7,680,000
    p = spec_file("input: 32x32x3\nlayers:\n  - {conv: 10, kernel: 5, pad: 2, name: a}\n"
                  "  - {conv: 10, kernel: 5, pad: 2, name: b}\n")
    r = cnncalc.analyze(str(p))
    a, b = r["a"], r["b"]
    assert (a.macs, a.input_grad_macs, a.weight_grad_macs, a.training_macs) == (768_000, 0, 768_000, 1_536_000)
    assert (b.macs, b.input_grad_macs, b.weight_grad_macs, b.training_macs) == (
        2_560_000, 2_560_000, 2_560_000, 7_680_000)
    assert r.totals["training_macs"] == 1_536_000 + 7_680_000
    assert r.totals["training_flops"] == 2 * (1_536_000 + 7_680_000)


def test_fc_after_a_pool_of_the_input_needs_no_input_gradient(spec_file):
    # maxpool has no parameters: the fc after it is still "first": 16*16*1 / 4 = 64 inputs,
    # 64*10 = 640 forward MACs, + 640 dW = 1,280; batch 8 multiplies all by 8
    p = spec_file("input: 16x16x1\nlayers:\n  - {maxpool: 2, name: p}\n  - {flatten: , name: f}\n"
                  "  - {fc: 10, name: out}\n")
    r = cnncalc.analyze(str(p), batch=8)
    assert r["out"].macs == 8 * 640
    assert r["out"].input_grad_macs == 0
    assert r.totals["training_macs"] == 8 * 1280


def test_depthwise_by_hand(spec_file):
    # depthwise 3x3 on 16x16x32 (pad 1) after a 1x1 conv 8 -> 32: dw forward 16*16*32 * 9 = 73,728
    # (one 3x3 window of one channel per output), x3 = 221,184; the 1x1 first: 16*16*32*8 = 65,536, x2
    p = spec_file("input: 16x16x8\nlayers:\n  - {conv: 32, kernel: 1, name: pw}\n"
                  "  - {dwconv: 3, pad: 1, name: dw}\n")
    r = cnncalc.analyze(str(p))
    assert r["dw"].macs == 73_728 and r["dw"].training_macs == 221_184
    assert r.totals["training_macs"] == 2 * 65_536 + 221_184


def test_lenet5_by_hand():
    # C1 28*28*6*(5*5*1) = 117,600 (first: x2 = 235,200); C3 10*10*16*(5*5*6) = 240,000 (x3);
    # C5 1*1*120*(5*5*16) = 48,000 (x3); F6 120*84 = 10,080 (x3); output 84*10 = 840 (x3)
    r = cnncalc.analyze("lenet5")
    assert r.totals["macs"] == 117_600 + 240_000 + 48_000 + 10_080 + 840 == 416_520
    assert r.totals["training_macs"] == 235_200 + 3 * (240_000 + 48_000 + 10_080 + 840) == 1_131_960
    assert r.totals["input_grad_macs"] == 416_520 - 117_600
    d = r.to_dict()
    assert [x["training_macs"] for x in d["layers"] if x["macs"]] == [235_200, 720_000, 144_000, 30_240, 2_520]
    for key in ("macs", "flops", "params"):  # old keys stay
        assert key in d["totals"]


def test_summarize_shows_the_line(cli):
    out = cli("summarize", "lenet5", env={"NO_COLOR": "1"}).output
    assert "training MACs per step  1,131,960" in out
    obj = json.loads(cli("summarize", "lenet5", "--format", "json").output)
    assert obj["totals"]["training_macs"] == 1_131_960
    assert obj["layers"][0]["input_grad_macs"] == 0 and obj["layers"][0]["weight_grad_macs"] == 117_600


@pytest.mark.torch
# chains without groups: torch 2.13's FlopCounterMode over-counts the backward of grouped convs
# ("the transposed shapes lose the group division", fixed in pytorch/pytorch#183405)
@pytest.mark.parametrize("name", ["lenet5", "alexnet", "zfnet"])
def test_matches_pytorch_autograd(name):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    r = cnncalc.analyze(name, batch=2)
    g = cnncalc.load(name).infer()
    mods, shapes = torch.nn.ModuleDict(), {}
    order = []
    for node in g.layers:  # a hand-built twin: only the MAC layers matter, the rest is shape glue
        L = node.layer
        if L.kind in ("conv", "dwconv"):
            win = L.rf_windows()
            m = torch.nn.Conv2d(L.in_channels, L.filters, tuple(L.kernel), tuple(L.stride),
                                dilation=tuple(wi.dilation for wi in win), groups=L.groups,
                                bias=bool(L.args["bias"]))
            order.append((node.name, "conv", m, [(wi.pad_lo, wi.pad_hi) for wi in win]))
        elif L.kind == "fc":
            order.append((node.name, "fc", torch.nn.Linear(L.in_features, L.units, bias=bool(L.args["bias"])), None))
        else:
            order.append((node.name, "resize", None, L.out_shape))
        shapes[node.name] = L.out_shape
    for n, kind, m, _ in order:
        if m is not None:
            mods[n.replace("/", "_")] = m
    h, w, c = g.input_shape
    x = torch.randn(2, c, h, w)
    with FlopCounterMode(display=False) as fc:
        y = x
        for n, kind, m, extra in order:
            if kind == "conv":
                (pt, pb), (pl, pr) = extra
                y = m(torch.nn.functional.pad(y, (pl, pr, pt, pb)))
            elif kind == "fc":
                y = m(y.reshape(2, -1))
            else:  # pooling etc.: only the shape matters for MACs
                shape = extra
                if len(shape) == 3:
                    y = torch.nn.functional.adaptive_avg_pool2d(y, shape[:2])
                    if y.shape[1] != shape[2]:
                        y = y[:, : shape[2]]
                else:
                    y = y.reshape(2, -1)[:, : shape[0]]
        y.sum().backward()
    assert fc.get_total_flops() == 2 * r.totals["training_macs"]
