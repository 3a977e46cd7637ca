"""The layer types of issue 10: activations, mul, scale, layer/group/instance norm, upsample,
crop, padding, adaptive pooling, 3-D inputs. Hand arithmetic in the comments; parameter
counts and output shapes also against torch.nn (skipped without torch); every bad argument
exits 2 with file:line and the layer."""
import json

import pytest

import cnncalc
from cnncalc.errors import SpecError
from cnncalc.spec.loader import load_spec_text
from tests.conftest import run_module


def _an(body, inp="8x8x16", extra=""):
    return cnncalc.analyze(load_spec_text(f"input: {inp}\n{extra}layers:\n{body}"))


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("kind", ["silu", "swish", "hardswish", "hardsigmoid", "gelu", "mish", "elu",
                                  "selu", "softplus"])
def test_activation_layers_and_fused(kind):
    r = _an(f"  - {{{kind}: , name: a}}\n  - {{conv: 4, kernel: 1, activation: {kind}, name: c}}\n")
    # 8*8*16 = 1,024 activation ops, no params; the fused one adds 8*8*4 = 256
    assert r["a"].params == 0 and r["a"].ops == {"activation": 1024}
    assert r["c"].ops["activation"] == 256
    assert r["a"].type == ("silu" if kind == "swish" else kind)


def test_gelu_approximate_and_elu_alpha_arguments():
    r = _an("  - {gelu: {approximate: tanh}, name: g}\n  - {elu: 0.5, name: e}\n  - {softplus: {beta: 2}, name: s}\n")
    assert r["g"].shape == (8, 8, 16)
    with pytest.raises(SpecError, match="none .*or tanh"):
        _an("  - {gelu: {approximate: fast}}\n")


def test_prelu_per_channel_shared_and_fused():
    r = _an("  - {prelu: , name: p}\n  - {prelu: shared, name: q}\n"
            "  - {conv: 8, kernel: 3, pad: 1, bias: false, bn: true, activation: prelu, name: c}\n"
            "  - {conv: 4, kernel: 1, activation: prelu, name: d}\n")
    assert r["p"].params == 16 and r["q"].params == 1  # nn.PReLU(16) / nn.PReLU()
    # a learned activation becomes its own layer after the conv (and after its BN)
    names = [row.name for row in r.layers]
    assert names[2:] == ["c", "c_bn", "c_bn_prelu", "d", "d_prelu"]
    assert r["c_bn_prelu"].params == 8 and r["d_prelu"].params == 4
    assert r["c"].ops.get("activation", 0) == 0


# ----------------------------------------------------------------------------- mul, scale
def test_mul_squeeze_excitation_gate():
    # SE on 8x8x16, reduction 4: GAP → 1x1x16 → conv 4 (16*4 + 4 = 68) → conv 16 (4*16 + 16 = 80)
    r = _an("  - mul:\n      - [global_avgpool, {conv: 4, kernel: 1, activation: relu},"
            " {conv: 16, kernel: 1, activation: sigmoid}]\n      - []\n    name: se\n")
    assert r["se"].shape == (8, 8, 16)
    assert r.totals["params"] == 68 + 80
    assert r["se"].ops == {"mul": 8 * 8 * 16} and r["se"].macs == 0
    assert r.totals["macs"] == 16 * 4 + 4 * 16  # the 1x1 convs on 1x1 maps only
    assert r.totals["ops"]["mul"] == 1024


def test_mul_flat_vector_broadcasts_over_channels():
    r = _an("  - {global_avgpool: , name: g}\n  - {flatten: , name: f}\n"
            "  - {mul: null, inputs: [input, f], name: m}\n")
    assert r["m"].shape == (8, 8, 16)


def test_scale_layer_scale():
    r = _an("  - {scale: 1.0e-6, name: s}\n")
    assert r["s"].params == 16 and r["s"].macs == 0 and r["s"].ops == {"mul": 1024}


# ----------------------------------------------------------------------------- norms
def test_layernorm_groupnorm_instancenorm_counts():
    r = _an("  - {layernorm: , name: ln}\n  - {layernorm: all, name: lna}\n  - {groupnorm: 4, name: gn}\n"
            "  - {instancenorm: , name: inn}\n  - {instancenorm: {affine: false}, name: in0}\n")
    assert r["ln"].params == 2 * 16                   # γ, β over C
    assert r["lna"].params == 2 * 8 * 8 * 16          # nn.LayerNorm([16, 8, 8])
    assert r["gn"].params == 2 * 16 and r["inn"].params == 2 * 16 and r["in0"].params == 0
    assert all(r[n].nontrainable == 0 for n in ("ln", "lna", "gn", "inn"))
    # norm ops: 5 per value with the affine (Σx, Σx², normalise, γ, β), 3 without
    assert r["gn"].ops == {"norm": 5 * 1024} and r["in0"].ops == {"norm": 3 * 1024}


# ----------------------------------------------------------------------------- resampling
def test_upsample_crop_padding_adaptive_shapes():
    r = _an("  - {upsample: 2, name: u}\n  - {upsample: {size: 20x20, mode: bilinear}, name: b}\n"
            "  - {padding: [[1, 2], [0, 0]], mode: reflect, name: p}\n  - {crop: [[2, 1], 3], name: c}\n"
            "  - {adaptive_avgpool: [5, 3], name: a}\n")
    assert r["u"].shape == (16, 16, 16) and r["u"].ops == {}
    assert r["b"].shape == (20, 20, 16) and r["b"].ops == {"interp": 20 * 20 * 16 * 4}
    assert r["p"].shape == (23, 20, 16)
    assert r["c"].shape == (20, 14, 16)  # 23 − 2 − 1, 20 − 3 − 3
    assert r["a"].shape == (5, 3, 16)
    # windows 20 → 5: all 4 wide; 14 → 3: [0,5) [4,10) [9,14) = 5, 6, 5 wide
    # pool ops = (Σ 4·5)(5 + 6 + 5) − 5·3 = 20·16 − 15 = 305 per channel
    assert r["a"].ops == {"pool": 305 * 16}


def test_adaptive_pool_windows_pytorch_rule():
    # 7 → 3: start ⌊i·7/3⌋ = 0, 2, 4; end ⌈(i+1)·7/3⌉ = 3, 5, 7 → widths 3, 3, 3
    g = load_spec_text("input: 7x1\nlayers:\n  - {adaptive_maxpool: 3, name: a}\n").infer()
    assert g["a"].layer.windows_per_axis == [[3, 3, 3]]
    g = load_spec_text("input: 10x1\nlayers:\n  - {adaptive_maxpool: 4, name: a}\n").infer()
    # 10 → 4: [0,3) [2,5) [5,8) [7,10)
    assert g["a"].layer.windows_per_axis == [[3, 3, 3, 3]]


def test_crop_to_a_named_layer_is_a_centre_crop():
    r = _an("  - {conv: 4, kernel: 3, name: small}\n  - {crop: {to: small}, inputs: input, name: c}\n",
            inp="9x8x2")
    # 9x8 → the 7x6 of 'small': 1 before, 1 after on both axes
    assert r["c"].shape == (7, 6, 2) and r["c"].inputs == ["input", "small"]
    assert r["c"].view  # a slice, as in PyTorch: no new memory


# ----------------------------------------------------------------------------- 3-D
def test_three_dimensional_conv_pool_bn_deconv_upsample():
    # C3D's first layers: 16x112x112x3, conv 3x3x3-64 pad 1: (27*3 + 1)*64 = 5,248 params,
    # MACs 16*112*112*64 * 81 = 1,040,449,536
    r = _an("  - {conv: 64, kernel: 3, pad: 1, name: conv1a}\n  - {batchnorm: , name: bn}\n"
            "  - {maxpool: [1, 2, 2], name: pool1}\n  - {deconv: 8, kernel: 2, stride: 2, name: up}\n"
            "  - {upsample: [1, 2, 2], name: u}\n  - {global_avgpool: , name: gap}\n",
            inp="16x112x112x3")
    assert r["conv1a"].params == 5248 and r["conv1a"].macs == 16 * 112 * 112 * 64 * 81
    assert r["pool1"].shape == (16, 56, 56, 64)
    assert r["up"].shape == (32, 112, 112, 8) and r["up"].params == 64 * 8 * 8 + 8
    assert r["u"].shape == (32, 224, 224, 8) and r["gap"].shape == (1, 1, 1, 8)


@pytest.mark.torch
def test_params_and_shapes_against_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    cases = [
        ("{prelu: }", nn.PReLU(6), "5x7x6"),
        ("{prelu: shared}", nn.PReLU(), "5x7x6"),
        ("{layernorm: all}", nn.LayerNorm([6, 5, 7]), "5x7x6"),
        ("{groupnorm: 3}", nn.GroupNorm(3, 6), "5x7x6"),
        ("{instancenorm: {affine: false}}", nn.InstanceNorm2d(6), "5x7x6"),
        ("{instancenorm: }", nn.InstanceNorm3d(6, affine=True), "4x5x7x6"),
        ("{groupnorm: 2}", nn.GroupNorm(2, 6), "9x6"),
        ("{upsample: 3}", nn.Upsample(scale_factor=3), "4x5x7x6"),
        ("{upsample: {size: 11x13, mode: bilinear, align_corners: true}}",
         nn.Upsample(size=(11, 13), mode="bilinear", align_corners=True), "5x7x6"),
        ("{adaptive_avgpool: [3, 4]}", nn.AdaptiveAvgPool2d((3, 4)), "5x7x6"),
        ("{adaptive_maxpool: 2}", nn.AdaptiveMaxPool3d(2), "4x5x7x6"),
        ("{padding: [[1, 2], [3, 0]], mode: reflect}", nn.ReflectionPad2d((3, 0, 1, 2)), "5x7x6"),
        ("{padding: 2}", nn.ZeroPad2d(2), "5x7x6"),
        ("{conv: 4, kernel: [3, 3, 3], stride: 2, pad: 1}", nn.Conv3d(6, 4, 3, 2, 1), "4x5x7x6"),
        ("{deconv: 4, kernel: 3, stride: 2, pad: 1, output_padding: 1}",
         nn.ConvTranspose3d(6, 4, 3, 2, 1, output_padding=1), "4x5x7x6"),
        ("{maxpool: 2, stride: 1}", nn.MaxPool3d(2, 1), "4x5x7x6"),
        ("{avgpool: 2}", nn.AvgPool3d(2), "4x6x8x6"),
    ]
    for item, mod, inp in cases:
        r = _an(f"  - {item}\n", inp=inp, extra="rounding: floor\n")
        dims = [int(d) for d in inp.split("x")]
        x = torch.rand(1, dims[-1], *dims[:-1])
        y = mod(x)
        want = (*y.shape[2:], y.shape[1])
        assert r.layers[-1].shape == want, item
        assert r.totals["params"] == sum(p.numel() for p in mod.parameters()), item


# ----------------------------------------------------------------------------- bad input
BAD = [
    ("  - {groupnorm: 5}\n", "8x8x16", "groups = 5 does not divide the 16 channels"),
    ("  - {conv: 4, kernel: 1, name: g}\n  - {mul: null, inputs: [input, g], name: m}\n", "8x8x16",
     "mul branches do not broadcast"),
    ("  - {crop: 4}\n", "8x8x16", "leaves nothing"),
    ("  - {upsample: 2, name: u}\n  - {crop: {to: u}, inputs: input, name: c}\n", "8x8x16",
     "cannot crop 8x8x16 to the larger"),
    ("  - {conv: 4, kernel: [3, 3, 3]}\n", "8x8x16", "has 3 values but the input has 2 spatial axes"),
    ("  - {upsample: {factor: 2, size: 4x4}}\n", "8x8x16", "exactly one of 'factor' and 'size'"),
    ("  - {padding: 8, mode: reflect}\n", "8x8x16", "reflect padding of 8"),
    ("  - {adaptive_avgpool: 9}\n", "8x8x16", "larger than the input"),
    ("  - {prelu: {slopes: two}}\n", "8x8x16", "channel .*or shared"),
    ("  - {layernorm: rows}\n", "8x8x16", "must be channels"),
    ("  - {upsample: 2, mode: nearest, align_corners: true}\n", "8x8x16", "align_corners applies"),
]


@pytest.mark.parametrize("body,inp,msg", BAD)
def test_bad_arguments_exit_2_with_file_line_and_layer(spec_file, body, inp, msg):
    import re
    p = spec_file(f"input: {inp}\nlayers:\n{body}")
    res = run_module("summarize", p)
    assert res.returncode == 2, res.stderr
    assert re.search(msg, res.stderr), res.stderr
    n = body.count("\n")
    assert f"net.yaml:{2 + n}" in res.stderr  # the line of the offending (last) item
    assert "Traceback" not in res.stderr


def test_axes_typo_fixed():
    with pytest.raises(SpecError) as e:
        _an("  - {conv: 4, kernel: [3, 3]}\n", inp="8x4")
    assert "1 spatial axis" in str(e.value) and "axises" not in str(e.value)
    with pytest.raises(SpecError) as e:
        _an("  - {conv: 4, kernel: [3, 3, 3]}\n")
    assert "2 spatial axes" in str(e.value)


def test_json_of_new_ops():
    r = _an("  - {upsample: {factor: 2, mode: bilinear}}\n  - {scale: }\n")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["totals"]["ops"]["interp"] == 16 * 16 * 16 * 4 and d["totals"]["ops"]["mul"] == 16 * 16 * 16


def test_prelu_from_defaults_on_merges_and_through_the_api():
    g = load_spec_text("input: 8x8x4\ndefaults:\n  batchnorm: {activation: prelu}\nlayers:\n"
                       "  - {add: [[{conv: 4, kernel: 1, bn: true}], []], activation: prelu, name: a}\n"
                       "  - {batchnorm: , name: b}\n")
    r = cnncalc.analyze(g)
    assert [(x.name, x.params) for x in r.layers] == [
        ("conv1", 20), ("conv1_bn", 8), ("conv1_bn_prelu", 4), ("a", 0), ("a_prelu", 4), ("b", 8), ("b_prelu", 4)]
    from cnncalc.layers import REGISTRY
    with pytest.raises(SpecError, match="learned slopes"):
        REGISTRY["conv"]("c", {"filters": 4, "kernel": 1, "activation": "prelu"})
