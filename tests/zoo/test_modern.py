"""The modern networks of the zoo against their published tables.

Every golden number below is cited: the paper and table it comes from, or torchvision's
parameter count (exact integers from ``sum(p.numel() for p in model.parameters())``, an
independent implementation). Published rounded values are matched at the precision they were
printed with (``parse_quantity("3.8e9").matches(exact)``: 3.8e9 ± 0.05e9).
"""
import pytest

import cnncalc
from cnncalc.numbers import parse_quantity


def totals(name):
    return cnncalc.analyze(name).totals


def published(text, exact):
    return parse_quantity(text).matches(exact)


# ------------------------------------------------------------------ ResNet (He et al. 2016)
# torchvision.models.resnetXX(): sum of parameters (BN γ/β included, running stats not).
TORCHVISION_RESNET = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "resnet152": 60_192_808}


@pytest.mark.parametrize("name,params", TORCHVISION_RESNET.items())
def test_resnet_params_match_torchvision_exactly(name, params):
    assert totals(name)["params"] == params
    if name in ("resnet50", "resnet101", "resnet152"):
        # the stride placement moves MACs, never parameters
        assert totals(name + "_tv")["params"] == params


# He et al. 2016, Table 1, row "FLOPs": 1.8, 3.6, 3.8, 7.6, 11.3 x10^9 (multiply-adds).
@pytest.mark.parametrize("name,flops", [("resnet18", "1.8e9"), ("resnet101", "7.6e9"),
                                        ("resnet152", "11.3e9")])
def test_resnet_table1_flops_row(name, flops):
    assert published(flops, totals(name)["macs"])


def test_resnet34_table1_flops_needs_option_a():
    # Table 1 says 3.6e9 for the 34-layer net. With option B projections (torchvision) the exact
    # count is 3,663,761,408 = 3.66e9, which rounds to 3.7; the three 1x1 projections cost
    # 3 * (28*28*64*128) = 19,267,584 MACs. With option A (zero-padded shortcuts, the paper's
    # own ImageNet comparison, Table 2) it is 3,644,493,824 = 3.6e9.
    b, a = totals("resnet34")["macs"], totals("resnet34_a")["macs"]
    assert b == 3_663_761_408 and not published("3.6e9", b)
    assert b - a == 3 * (28 * 28 * 64 * 128)
    assert published("3.6e9", a)
    assert totals("resnet34_a")["params"] == 21_797_672 - (64 * 128 + 128 * 256 + 256 * 512) - 2 * (128 + 256 + 512)


def test_resnet50_table1_flops_is_3_86_not_3_8():
    # Discrepancy: Table 1 prints 3.8e9 for ResNet-50; the paper's own architecture (stride on
    # the first 1x1, option B) has 3,857,973,248 multiply-adds = 3.86e9, which rounds to 3.9.
    # Truncation would give 3.8 — but then 101/152 (7.570e9, 11.282e9) would print 7.5/11.2,
    # not the published 7.6/11.3. torchvision's v1.5 is further away still (4.09e9).
    m = totals("resnet50")["macs"]
    assert m == 3_857_973_248
    assert not published("3.8e9", m) and published("3.9e9", m)
    assert totals("resnet50_tv")["macs"] == 4_089_184_256


def test_resnet50_stride_placement_moves_macs_by_hand():
    # v1.5 runs the 3x3 of each downsampling block at the larger input size. For a stage with
    # mid width w going from 2h x 2h to h x h: the 1x1 conv1 costs 4x more... computed per stage:
    # v1:   conv1 at h*h  (cin*w)        + conv2 at h*h (9*w*w)
    # v1.5: conv1 at 2h*2h (cin*w)       + conv2 at h*h (9*w*w)   (conv2 strided)
    # so the difference is 3*h*h*cin*w for each of conv3_x, conv4_x, conv5_x.
    diff = sum(3 * h * h * cin * w for h, cin, w in [(28, 256, 128), (14, 512, 256), (7, 1024, 512)])
    assert totals("resnet50_tv")["macs"] - totals("resnet50")["macs"] == diff


def test_resnet50_layer_names_and_shapes():
    r = cnncalc.analyze("resnet50")
    assert r["conv1"].shape == (112, 112, 64)
    assert r["pool1"].shape == (56, 56, 64)
    assert r["conv2_x/block3/add"].shape == (56, 56, 256)
    assert r["conv3_x/block1/conv1"].shape == (28, 28, 128)      # the paper: stride on the 1x1
    assert cnncalc.analyze("resnet50_tv")["conv3_x/block1/conv1"].shape == (56, 56, 128)
    assert r["conv5_x/block3/add"].shape == (7, 7, 2048)
    assert "conv2_x/block2/downsample" not in r


def test_resnet152_spec_is_short():
    from importlib import resources
    text = (resources.files("cnncalc") / "zoo" / "resnet152.yaml").read_text()
    assert len(text.splitlines()) <= 40


# ------------------------------------------------------------ CIFAR ResNets (Sec. 4.2, Table 6)
@pytest.mark.parametrize("depth,pub", [(20, "0.27M"), (32, "0.46M"), (44, "0.66M"), (56, "0.85M"),
                                       (110, "1.7M"), (1202, "19.4M")])
def test_cifar_resnet_params_table6(depth, pub):
    p = totals(f"cifar_resnet{depth}")["params"]
    assert published(pub, p)
    # by hand: n blocks per stage of two 3x3 convs + BN, option A shortcuts have no parameters
    n = (depth - 2) // 6
    conv = lambda cin, cout: 9 * cin * cout + 2 * cout  # noqa: E731  (conv without bias + BN)
    hand = conv(3, 16)
    for w, cin in [(16, 16), (32, 16), (64, 32)]:
        hand += conv(cin, w) + conv(w, w) + (n - 1) * 2 * conv(w, w)
    hand += 64 * 10 + 10
    assert p == hand


def test_cifar_resnet_option_a_shortcut_is_free():
    r = cnncalc.analyze("cifar_resnet20")
    sc = r["stage2/block1/shortcut"]
    assert sc.shape == (16, 16, 32) and sc.params == 0 and sc.macs == 0
    assert r["stage3/block3/add"].shape == (8, 8, 64)


# --------------------------------------------------- wide / grouped / dense variants of ResNet
# torchvision parameter counts: wide_resnet50_2, resnext50_32x4d, densenet121, densenet169.
@pytest.mark.parametrize("name,params", [("wide_resnet50_2", 68_883_240), ("resnext50_32x4d", 25_028_904),
                                         ("densenet121", 7_978_856), ("densenet169", 14_149_480)])
def test_torchvision_params_exact(name, params):
    assert totals(name)["params"] == params


def test_resnext_table1():
    # Xie et al. 2017, Table 1: ResNet-50 25.5e6 params / 4.1e9 FLOPs; ResNeXt-50 (32x4d)
    # 25.0e6 / 4.2e9. ResNeXt's ResNet-50 is fb.resnet.torch's, with the stride on the 3x3:
    # our resnet50_tv (4,089,184,256), not the original paper's resnet50 (3.86e9).
    assert published("25.0e6", totals("resnext50_32x4d")["params"])
    assert published("4.2e9", totals("resnext50_32x4d")["macs"])
    # Discrepancy: ResNet-50 has 25,557,032 parameters = 25.56e6, which rounds to 25.6e6, not
    # the printed 25.5e6 (truncated; BN included or not: 25,503,912 weights+biases without BN
    # γ/β would round to 25.5e6 — so the table most likely left the 53,120 BN parameters out).
    p = totals("resnet50_tv")["params"]
    assert not published("25.5e6", p) and published("25.6e6", p)
    bn = sum(l.params for l in cnncalc.analyze("resnet50_tv").layers if l.type == "batchnorm")
    assert bn == 53_120 and published("25.5e6", p - bn)
    assert published("4.1e9", totals("resnet50_tv")["macs"])
    assert not published("4.1e9", totals("resnet50")["macs"])


def test_resnext_grouped_conv_by_hand():
    r = cnncalc.analyze("resnext50_32x4d")
    c = r["conv2_x/block1/conv2"]
    assert c.params == 128 * (128 // 32) * 9  # 32 groups of 4 channels in, 4 out
    assert c.macs == 56 * 56 * 128 * (128 // 32) * 9


def test_densenet121_shapes_follow_table1():
    # Huang et al. 2017, Table 1: output sizes 56, 28, 14, 7; channels 64 + 6*32 = 256 → 128,
    # 128 + 12*32 = 512 → 256, 256 + 24*32 = 1024 → 512, 512 + 16*32 = 1024
    r = cnncalc.analyze("densenet121")
    assert r["denseblock1/denselayer6/concat"].shape == (56, 56, 256)
    assert r["transition1/pool"].shape == (28, 28, 128)
    assert r["denseblock3/denselayer24/concat"].shape == (14, 14, 1024)
    assert r["denseblock4/denselayer16/concat"].shape == (7, 7, 1024)
    assert r["denseblock1/denselayer1/conv1"].params == 64 * 128  # 1x1 to 4k = 128, no bias


# ---------------------------------------------------------------- MobileNet v1 (Howard 2017)
# Table 1: the input size of every row of the body (Type / Stride, Input Size).
MOBILENET_V1_TABLE1 = [
    ("conv1", (224, 224, 3))] + [
    (f"conv_ds_{i}/{part}", size) for i, (dw_in, pw_in) in enumerate([
        ((112, 112, 32), (112, 112, 32)), ((112, 112, 64), (56, 56, 64)),
        ((56, 56, 128), (56, 56, 128)), ((56, 56, 128), (28, 28, 128)),
        ((28, 28, 256), (28, 28, 256)), ((28, 28, 256), (14, 14, 256)),
        *[((14, 14, 512), (14, 14, 512))] * 5,
        ((14, 14, 512), (7, 7, 512)), ((7, 7, 1024), (7, 7, 1024))], start=1)
    for part, size in (("dw", dw_in), ("pw", pw_in))] + [
    ("avg_pool", (7, 7, 1024)), ("fc", (1, 1, 1024))]


@pytest.mark.parametrize("spec", ["mobilenet_v1", "mobilenet_v1_nobn"])
def test_mobilenet_v1_table1_input_sizes(spec):
    r = cnncalc.analyze(spec)
    shapes = {"input": r.input_shape, **{l.name: l.shape for l in r.layers}}
    for name, size in MOBILENET_V1_TABLE1:
        src = r[name].inputs[0]
        assert shapes[src] == size, name


def test_mobilenet_v1_totals():
    # Table 1/8: 1.0 MobileNet-224 has 569M mult-adds and 4.2M parameters
    t = totals("mobilenet_v1")
    assert t["macs"] == 568_740_352 and published("569M", t["macs"])
    assert published("4.2M", t["params"])
    assert published("4.2M", totals("mobilenet_v1_nobn")["weights"])


def _by_type(spec, no_bias):
    from cnncalc.cli.summarize import by_type
    return {g["type"]: g for g in by_type(cnncalc.analyze(spec, bias=not no_bias))}


def test_mobilenet_v1_table2_resource_per_layer_type():
    # Table 2: Conv 1x1 94.86% / 74.59%, Conv DW 3x3 3.06% / 1.06%, Conv 3x3 1.19% / 0.02%,
    # Fully Connected 0.18% / 24.33% (mult-adds / parameters).
    # The parameter column counts weights only: no BN, no biases (not even the fc's).
    t = _by_type("mobilenet_v1_nobn", no_bias=False)
    assert totals("mobilenet_v1_nobn")["params"] == totals("mobilenet_v1_nobn")["weights"] == 4_209_088
    for key, macs, params in [("conv 1x1", "94.86%", "74.59%"), ("conv dw 3x3", "3.06%", "1.06%"),
                              ("conv 3x3", None, "0.02%"), ("fc", "0.18%", "24.33%")]:
        if macs:
            assert published(macs, t[key]["macs_percent"]), key
        assert published(params, t[key]["params_percent"]), key
    # Discrepancy: Conv 3x3 is 10,838,016 of 568,740,352 mult-adds = 1.91%, printed 1.19%
    # (digits swapped: the printed column sums to 99.29%, with 1.91 it sums to 100.01%).
    assert t["conv 3x3"]["macs"] == 112 * 112 * 32 * 27 == 10_838_016
    assert t["conv 3x3"]["macs_percent"] == 1.91 and not published("1.19%", 1.91)
    # With BN (the trained network) the parameter column no longer matches: 74.19% for 1x1
    w = _by_type("mobilenet_v1", no_bias=False)
    assert w["conv 1x1"]["params_percent"] == 74.19 and w["batchnorm"]["params"] == 21_888
    # mult-add percentages do not depend on BN
    assert w["conv 1x1"]["macs_percent"] == 94.86


def test_mobilenet_v1_depthwise_by_hand():
    r = cnncalc.analyze("mobilenet_v1")
    dw = r["conv_ds_2/dw"]   # 3x3 dw, stride 2, on 112x112x64 ('same': output 56x56)
    assert dw.shape == (56, 56, 64) and dw.params == 9 * 64 and dw.macs == 56 * 56 * 64 * 9


# ------------------------------------------------------------- MobileNet v2 (Sandler 2018)
def test_mobilenet_v2_torchvision_and_paper():
    t = totals("mobilenet_v2")
    assert t["params"] == 3_504_872                 # torchvision mobilenet_v2
    # Table 3/4: "300M" multiply-adds. Exact: 300,774,272 = 300.77M, which rounds to 301M: the
    # paper's 300M is rounded to two significant figures (0.30G), not to the 1M its digits show.
    assert t["macs"] == 300_774_272
    assert not published("300M", t["macs"]) and published("301M", t["macs"])
    assert published("0.30e9", t["macs"])


def test_mobilenet_v2_published_3_4M_params_is_truncated():
    # Discrepancy: Table 3/4 print 3.4M parameters. Exact: 3,504,872 with BN γ/β (torchvision);
    # 3,470,760 without BN. Both round to 3.5M; only truncation of the BN-free count gives 3.4.
    r = cnncalc.analyze("mobilenet_v2")
    p = r.totals["params"]
    bn = sum(l.params for l in r.layers if l.type == "batchnorm")
    assert p - bn == 3_470_760
    assert not published("3.4M", p) and not published("3.4M", p - bn)
    assert published("3.5M", p) and published("3.5M", p - bn)


def test_mobilenet_v2_table2_rows_drive_the_spec():
    # Table 2: each row (t, c, n, s) → n blocks; output sizes 112, 112, 56, 28, 14, 14, 7, 7
    r = cnncalc.analyze("mobilenet_v2")
    rows = [(1, 16, 1, 112), (6, 24, 2, 56), (6, 32, 3, 28), (6, 64, 4, 14), (6, 96, 3, 14),
            (6, 160, 3, 7), (6, 320, 1, 7)]
    for k, (t, c, n, size) in enumerate(rows, 1):
        blocks = {l.name.split("/")[1] for l in r.layers if l.name.startswith(f"bottleneck_{k}/")}
        assert blocks == {f"block{j}" for j in range(1, n + 1)}
        assert r.layers[[l.name.startswith(f"bottleneck_{k}/") for l in r.layers].index(True)].shape[0] in (size, size * 2)
        last = [l for l in r.layers if l.name.startswith(f"bottleneck_{k}/")][-1]
        assert last.shape == (size, size, c)
    # expansion: block 1 of row 2 expands 16 → 6*16 = 96 channels
    assert r["bottleneck_2/block1/expand"].shape == (112, 112, 96)
    assert "bottleneck_1/block1/expand" not in r  # t = 1: no expansion layer
    assert r["bottleneck_3/block2/add"].shape == (28, 28, 32)


# ------------------------------------------------------------------ the shipped tables (CSV)
MY_TABLES = ["resnet-table1", "torchvision-params", "resnet-cifar-table6", "resnext-table1",
             "mobilenet_v1-table1", "mobilenet_v1-table2", "mobilenet_v2"]


@pytest.mark.parametrize("table", MY_TABLES)
def test_shipped_table_compares_cleanly(table):
    from cnncalc.compare import KNOWN, MATCH, compare_table
    res = compare_table(table)
    assert {r.status for r in res.results} <= {MATCH, KNOWN}, [
        (r.row.layer, r.row.quantity, r.row.published, r.status) for r in res.results]

MY_TABLES += ["squeezenet-table1", "xception-table3", "shufflenet_v2-table5"]


@pytest.mark.parametrize("table", MY_TABLES[-3:])
def test_shipped_table_compares_cleanly_more(table):
    test_shipped_table_compares_cleanly(table)


# ----------------------------------------------------------- ShuffleNet v2, SqueezeNet, Xception
def test_shufflenet_v2_torchvision_and_table5():
    t = totals("shufflenet_v2")
    assert t["params"] == 2_278_604                      # torchvision shufflenet_v2_x1_0
    assert published("2.3M", t["params"])                # Table 5, # of weights
    # Discrepancy: Table 5 prints 146M FLOPs (= multiply-adds); the architecture has 144.9M
    assert t["macs"] == 144_907_992 and not published("146M", t["macs"])


def test_shufflenet_v2_unit_by_hand():
    r = cnncalc.analyze("shufflenet_v2")
    # basic unit of stage3 (232 channels): the split keeps 116 untouched, the branch is
    # 1x1 116→116, dw 3x3 on 116, 1x1 116→116, each + BN (2*116)
    names = [l.name for l in r.layers if l.name.startswith("stage3/unit2/")]
    p = sum(r[n].params for n in names)
    assert p == (116 * 116 + 2 * 116) + (9 * 116 + 2 * 116) + (116 * 116 + 2 * 116)
    assert r["stage3/unit2/x1"].shape == (14, 14, 116) and r["stage3/unit2/x1"].view
    assert r["stage3/unit2/shuffle"].shape == (14, 14, 232) and r["stage3/unit2/shuffle"].macs == 0


def test_squeezenet_torchvision_and_table1():
    assert totals("squeezenet1_0")["params"] == 1_248_424   # Table 1 total = torchvision
    assert totals("squeezenet1_1")["params"] == 1_235_496   # torchvision squeezenet1_1
    # Table 1 prints a 224x224 input and a 111x111x96 conv1 output: (224 − 7)/2 + 1 = 109.5
    # → 109 in PyTorch; (227 − 7)/2 + 1 = 111 is what the table's numbers use.
    assert cnncalc.analyze("squeezenet1_0")["conv1"].shape == (109, 109, 96)
    assert cnncalc.analyze("squeezenet1_0", input="227x227x3")["conv1"].shape == (111, 111, 96)


def test_squeezenet_1_1_is_2_4x_cheaper_claim():
    # v1.1 README: "2.4x less computation". At 224: 818,924,576 / 349,151,936 = 2.35 (→ 2.3);
    # at 227 (Caffe): 832,667,936 / 387,747,520 = 2.15. Neither prints as 2.4: flagged.
    from fractions import Fraction
    r224 = Fraction(totals("squeezenet1_0")["macs"], totals("squeezenet1_1")["macs"])
    assert not published("2.4", r224) and published("2.3", r224)


def test_xception_table3_exact():
    t = totals("xception")
    assert t["params"] == 22_855_952                         # Chollet 2017, Table 3
    assert t["params_with_state"] == 22_910_480              # Keras model.summary() total
    r = cnncalc.analyze("xception")
    assert r["block3/add"].shape == (19, 19, 728) and r["exit_block/add"].shape == (10, 10, 1024)
    # a SeparableConv 728→728: 3*3*728 depthwise + 728*728 pointwise + BN 2*728
    sep = sum(r[f"middle1/sep_1/sepconv1/{k}"].params for k in ("dw", "pw", "pw_bn"))
    assert sep == 9 * 728 + 728 * 728 + 2 * 728


# ---------------------------------------------------------- every shipped spec of this file
MY_SPECS = (["resnet18", "resnet34", "resnet34_a"]
            + [f"resnet{d}{s}" for d in (50, 101, 152) for s in ("", "_tv")]
            + [f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
            + ["wide_resnet50_2", "resnext50_32x4d", "densenet121", "densenet169",
               "mobilenet_v1", "mobilenet_v1_nobn", "mobilenet_v2", "shufflenet_v2",
               "squeezenet1_0", "squeezenet1_1", "xception"])


@pytest.mark.parametrize("spec", MY_SPECS)
def test_spec_loads_summarizes_and_cites(spec):
    import json

    from click.testing import CliRunner

    from cnncalc.cli import main
    res = CliRunner().invoke(main, ["summarize", spec, "--format", "json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    assert obj["totals"]["params"] > 0 and obj["totals"]["macs"] > 0
    assert obj["source"] and ("Table" in obj["source"] or "torchvision" in obj["source"])
    assert len(obj["layers"]) == len({l["name"] for l in obj["layers"]})


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(spec=st.sampled_from([s for s in MY_SPECS if s not in ("cifar_resnet1202",)]),
       batch=st.integers(1, 8))
def test_counts_scale_with_batch_and_params_do_not(spec, batch):
    one, many = cnncalc.analyze(spec), cnncalc.analyze(spec, batch=batch)
    assert many.totals["params"] == one.totals["params"]
    assert many.totals["macs"] == batch * one.totals["macs"]
    assert many.totals["macs"] == sum(l.macs for l in many.layers)
