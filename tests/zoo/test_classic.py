"""The classic networks of the zoo against their published tables and hand arithmetic.

Every golden number is either written out as arithmetic from the paper's layer description
or is the printed value of a cited table (the shipped CSVs in cnncalc/zoo/tables).
"""
from __future__ import annotations

import pytest

import cnncalc
from cnncalc.compare import KNOWN, MATCH, compare_table, load_table
from cnncalc.spec.loader import load_spec_text, zoo_names

CLASSIC = ["lenet5-paper", "alexnet2012", "zfnet", "vgg11", "vgg11-lrn", "vgg13", "vgg16-c", "vgg19",
           "vgg11-bn", "vgg13-bn", "vgg16-bn", "vgg19-bn", "nin", "googlenet", "googlenet-aux",
           "inception-naive", "inception-reduced", "alphago-policy", "kim-cnn"]


def conv(k, c, f, bias=True):
    return k * k * c * f + (f if bias else 0)


def fc(i, o, bias=True):
    return i * o + (o if bias else 0)


@pytest.mark.parametrize("name", CLASSIC)
def test_every_classic_spec_loads_cites_and_summarizes(name):
    assert name in zoo_names()
    r = cnncalc.analyze(name)
    assert r.source and len(r.source) > 40, f"{name} must cite its source"
    assert r.totals["params"] > 0 and r.totals["macs"] > 0


def _statuses(table_id):
    res = compare_table(load_table(table_id))
    return res, {(r.row.layer, r.row.quantity): r.status for r in res.results}


# ------------------------------------------------------------------------------ VGG
def test_vgg_table2_parameter_counts():
    """Simonyan & Zisserman 2015, Table 2: A, A-LRN 133; B 133; C 134; D 138; E 144 (millions)."""
    def vgg(stages, one_by_one=False):
        total, c = 0, 3
        for f, n in stages:
            for j in range(n):
                k = 1 if (one_by_one and j == n - 1 and f >= 256) else 3
                total += conv(k, c, f)
                c = f
        return total + fc(7 * 7 * 512, 4096) + fc(4096, 4096) + fc(4096, 1000)
    A = vgg([(64, 1), (128, 1), (256, 2), (512, 2), (512, 2)])
    B = vgg([(64, 2), (128, 2), (256, 2), (512, 2), (512, 2)])
    C = vgg([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], one_by_one=True)
    D = vgg([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)])
    E = vgg([(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)])
    for spec, want in [("vgg11", A), ("vgg11-lrn", A), ("vgg13", B), ("vgg16-c", C), ("vgg16", D), ("vgg19", E)]:
        assert cnncalc.analyze(spec).totals["params"] == want, spec
    assert [round(x / 1e6) for x in (A, A, B, C, D, E)] == [133, 133, 133, 134, 138, 144]
    res, st = _statuses("vgg-table2")
    assert res.ok and set(st.values()) == {MATCH}


def test_vgg_bn_adds_two_trainable_and_two_running_values_per_channel():
    channels = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512  # the 13 convs of configuration D
    plain, bn = cnncalc.analyze("vgg16"), cnncalc.analyze("vgg16-bn")
    assert bn.totals["params"] - plain.totals["params"] == 2 * channels == 8448
    assert bn.totals["nontrainable"] == 2 * channels
    assert bn.totals["params"] == 138_365_992  # torchvision vgg16_bn's parameter count


def test_three_3x3_convs_have_fewer_params_than_one_7x7():
    """CS231n "Why use smaller filters?": 3·(3²C²) vs 7²C² (no biases), here C = 64, both
    reaching a 7x7 receptive field on a 56x56x64 input."""
    C = 64
    three = load_spec_text(f"input: 56x56x{C}\nlayers:\n  - {{conv: {C}, kernel: 3, pad: 1, bias: false, repeat: 3}}\n")
    one = load_spec_text(f"input: 56x56x{C}\nlayers:\n  - {{conv: {C}, kernel: 7, pad: 3, bias: false}}\n")
    p3, p7 = cnncalc.analyze(three).totals["params"], cnncalc.analyze(one).totals["params"]
    assert p3 == 3 * (3 ** 2 * C ** 2) == 110_592
    assert p7 == 7 ** 2 * C ** 2 == 200_704
    assert p3 < p7 and cnncalc.analyze(three).totals["macs"] == 56 * 56 * p3


# ------------------------------------------------------------------------------ AlexNet
def test_alexnet_conv1_35k_and_2012_total():
    """CS231n AlexNet slide: CONV1 (11*11*3)*96 = 35K; Krizhevsky et al. 2012: ~60M parameters."""
    assert cnncalc.analyze("alexnet")["conv1"].weights == 11 * 11 * 3 * 96 == 34_848
    r = cnncalc.analyze("alexnet2012")
    want = (conv(11, 3, 96) + conv(5, 48, 256) + conv(3, 256, 384) + conv(3, 192, 384) + conv(3, 192, 256)
            + fc(6 * 6 * 256, 4096) + fc(4096, 4096) + fc(4096, 1000))
    assert r.totals["params"] == want == 60_965_224
    assert r["conv2"].shape == (27, 27, 256) and r["pool5"].shape == (6, 6, 256)
    res, st = _statuses("alexnet2012-paper")
    assert st[("conv1", "params")] == MATCH
    # "60 million" is 61M to the digits written; the paper's 253,440 conv1 neurons are 290,400.
    assert st[("TOTAL", "params")] == KNOWN and st[("conv1", "activations")] == KNOWN
    assert res.ok
    assert _statuses("alexnet-cs231n")[0].ok


# ------------------------------------------------------------------------------ GoogLeNet
def test_googlenet_table1_rows():
    """Szegedy et al. 2015, Table 1. Params: weights only, K = 1024; ops: multiply-adds, M = 10^6."""
    r = cnncalc.analyze("googlenet")
    w3a = conv(1, 192, 64, False) + conv(1, 192, 96, False) + conv(3, 96, 128, False) \
        + conv(1, 192, 16, False) + conv(5, 16, 32, False) + conv(1, 192, 32, False)
    assert w3a == 163_328 and w3a / 1024 == 159.5  # printed "159K"
    assert sum(x.weights for x in r.layers if x.name.startswith("inception_3a/")) == w3a
    assert sum(x.macs for x in r.layers if x.name.startswith("inception_3a/")) == 28 * 28 * w3a  # "128M"
    res, st = _statuses("googlenet-table1")
    assert res.ok
    assert all(s == MATCH for (layer, q), s in st.items() if q == "shape"), "every output size matches"
    flagged = {k for k, s in st.items() if s == KNOWN}
    assert flagged == {
        ("conv1", "weights"), ("conv1", "macs"),
        ("inception_3b", "weights"), ("inception_4a", "weights"), ("inception_4a", "macs"),
        ("inception_4b", "weights"), ("inception_4c", "weights"), ("inception_4d", "weights"),
        ("inception_4e", "weights"), ("inception_5a", "weights"), ("inception_5a", "macs"),
        ("inception_5b", "weights"), ("TOTAL", "macs")}
    # inception (4c): printed 463K, but its filter counts give 497.5K, and its own ops (100M) agree
    w4c = conv(1, 512, 128, False) * 2 + conv(3, 128, 256, False) + conv(1, 512, 24, False) \
        + conv(5, 24, 64, False) + conv(1, 512, 64, False)
    assert w4c == 509_440 and round(14 * 14 * w4c / 1e6) == 100


def test_googlenet_aux_heads():
    """Section 5: 5x5/3 avg pool, 1x1 conv 128, fc 1024, fc 1000 on inception (4a) and (4d)."""
    base, aux = cnncalc.analyze("googlenet"), cnncalc.analyze("googlenet-aux")
    head = lambda c: conv(1, c, 128) + fc(4 * 4 * 128, 1024) + fc(1024, 1000)  # noqa: E731
    assert aux.totals["params"] - base.totals["params"] == head(512) + head(528)
    assert aux["loss1/ave_pool"].shape == (4, 4, 512)


# ------------------------------------------------------------------------------ Inception slides
def test_inception_modules_cs231n():
    """CS231n GoogLeNet slides: naive 28x28x672 and 854M ops; reduced version rows, total 358M."""
    naive = cnncalc.analyze("inception-naive")
    assert naive["output"].shape == (28, 28, 672)
    assert naive.totals["macs"] == 28 * 28 * (128 * 256 + 192 * 9 * 256 + 96 * 25 * 256) == 854_196_224
    red = cnncalc.analyze("inception-reduced")
    rows = [28 * 28 * 64 * 256, 28 * 28 * 64 * 256, 28 * 28 * 128 * 256, 28 * 28 * 192 * 9 * 64,
            28 * 28 * 96 * 25 * 64, 28 * 28 * 64 * 256]
    assert red.totals["macs"] == sum(rows) == 271_351_808
    assert sum(rows) + rows[3] == 358_055_936  # the slide's 358M counts the 3x3 row twice
    res, st = _statuses("inception-cs231n")
    assert res.ok and [k for k, s in st.items() if s == KNOWN] == [("TOTAL", "macs")]


# ------------------------------------------------------------------------------ LeNet-5
def test_lenet5_paper_counts():
    """LeCun et al. 1998, section II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164."""
    r = cnncalc.analyze("lenet5-paper")
    assert r["C1"].params == conv(5, 1, 6) == 156
    assert r["S2"].params == 6 + 6 and r["S4"].params == 16 + 16
    connections = 6 * 3 + 6 * 4 + 3 * 4 + 1 * 6  # Table 1
    assert r["C3"].params == connections * 25 + 16 == 1516
    assert r["C5"].params == conv(5, 16, 120) == 48_120
    assert r["F6"].params == fc(120, 84) == 10_164
    assert r["C3"].macs + 10 * 10 * 16 == 151_600  # "151,600 connections"
    res, st = _statuses("lenet5-paper")
    assert res.ok and set(st.values()) == {MATCH}


# ------------------------------------------------------------------------------ AlphaGo, Kim
def test_alphago_policy_network():
    """Silver et al. 2016, Methods: 5x5 conv k, 11 3x3 convs k, 1x1 conv 1 with a bias per point."""
    k = 192
    r = cnncalc.analyze("alphago-policy")
    assert r["conv13"].biases == 19 * 19 and r["conv13"].weights == k
    assert r.totals["params"] == conv(5, 48, k) + 11 * conv(3, k, k) + k + 361 == 3_882_793
    assert sum(1 for x in r.layers if x.type == "conv") == 13
    assert r["policy"].shape == (361,)


def test_kim_sentence_cnn():
    """Kim 2014: widths 3, 4, 5 with 100 maps each on n x k word vectors, max over time, fc 2."""
    r = cnncalc.analyze("kim-cnn")
    n, k = 56, 300
    assert [r[f"conv_w{h}"].shape for h in (3, 4, 5)] == [(n - 2, 100), (n - 3, 100), (n - 4, 100)]
    assert r["concat"].shape == (1, 300)
    assert r.totals["params"] == sum(h * k * 100 + 100 for h in (3, 4, 5)) + fc(300, 2) == 360_902


def test_zfnet_figure3_sizes():
    res, st = _statuses("zfnet-fig3")
    assert res.ok and set(st.values()) == {MATCH}
    assert cnncalc.analyze("zfnet")["conv1"].params == conv(7, 3, 96)
