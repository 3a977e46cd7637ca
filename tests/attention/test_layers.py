"""Token layers (cnncalc/layers/attention.py): shapes, parameters, MACs, other ops and memory by
hand arithmetic; the PyTorch twin counts the same networks independently (tests/attention/test_torch_twin.py)."""
from __future__ import annotations

import pytest

from cnncalc.analysis.report import analyze_graph
from cnncalc.errors import SpecError
from cnncalc.spec.loader import load_spec_text


def report(text):
    return analyze_graph(load_spec_text(text), explain=True)


def spec(inp, *layers):
    return "name: t\ninput: " + inp + "\nlayers:\n" + "".join(f"  - {x}\n" for x in layers)


def test_vit_base_block_by_hand():
    # ViT-B/16 at 224: 196 patches + 1 class token, d 768, 12 heads of 64, MLP 3072
    r = report(spec("224x224x3", "{patch_embed: 768, patch: 16, name: embed}", "{cls_token: , name: cls}",
                    "{pos_embed: , name: pos}", "{layernorm: , name: ln}", "{attention: 12, name: attn}",
                    "{mlp: 3072, name: mlp}"))
    e, a, m = r["embed"], r["attn"], r["mlp"]
    assert list(e.shape) == [196, 768] and e.params == 16 * 16 * 3 * 768 + 768
    assert e.macs == 196 * 16 * 16 * 3 * 768
    assert r["cls"].params == 768 and list(r["cls"].shape) == [197, 768]
    assert r["pos"].params == 197 * 768 and r["pos"].ops == {"add": 197 * 768}
    n, c, h, d = 197, 768, 12, 64
    assert a.params == c * 3 * c + 3 * c + c * c + c == 2_362_368
    proj = 3 * n * c * c + n * c * c
    qk_av = 2 * h * n * n * d
    assert a.macs == proj + qk_av
    assert a.mac_parts == {"attention projections": proj, "attention QKᵀ+AV": qk_av}
    assert a.ops == {"bias": n * 3 * c + n * c, "mul": n * c, "activation": h * n * n}
    # q, k, v + scores and probabilities (heads x N x N each) + the heads' output
    assert a.internal == 3 * n * c + 2 * h * n * n + n * c
    assert a.weight_grad_macs == proj and a.input_grad_macs == proj + 2 * qk_av
    assert m.params == c * 3072 + 3072 + 3072 * c + c and m.macs == n * 2 * c * 3072
    assert m.ops == {"bias": n * (3072 + c), "activation": n * 3072}
    text = "\n".join(a.explain)
    assert f"QKᵀ 12*197*197*64 + AV 12*197*197*64" in text and "softmax 12*197*197 = 465,708 activation" in text


def test_window_attention_swin_by_hand():
    # Swin-T stage 1: 56x56 tokens of 96, 3 heads, window 7, shift 3
    r = report(spec("224x224x3", "{patch_embed: 96, patch: 4}", "{attention: 3, window: 7, shift: 3, name: w}",
                    "{patch_merging: , name: merge}"))
    w = r["w"]
    n, c, h, d, k = 56 * 56, 96, 3, 32, 49
    assert w.params == c * 3 * c + 3 * c + c * c + c + 13 * 13 * h
    assert w.macs == 4 * n * c * c + 2 * h * n * k * d
    # the relative position bias and the shifted window's mask: one add per score each
    assert w.ops["add"] == 2 * h * n * k and w.ops["activation"] == h * n * k
    m = r["merge"]
    assert list(m.shape) == [28 * 28, 192]
    assert m.params == 4 * c * 2 + 4 * c * 2 * c and m.macs == 28 * 28 * 4 * c * 2 * c


def test_by_type_splits_attention():
    from cnncalc.cli.summarize import by_type
    r = analyze_graph(load_spec_text(spec("32x32x3", "{patch_embed: 64, patch: 8}", "{attention: 4, name: a}",
                                          "{mlp: 128}", "{mean: }", "{fc: 10}")))
    groups = {g["type"]: g for g in by_type(r)}
    n = 16
    assert groups["attention QKᵀ+AV"]["macs"] == 2 * 4 * n * n * 16
    assert groups["attention projections"]["macs"] == 4 * n * 64 * 64
    assert groups["attention projections"]["params"] == r["a"].params
    assert groups["mlp"]["macs"] == n * 2 * 64 * 128
    assert sum(g["macs"] for g in groups.values()) == r.totals["macs"]


def test_attention_memory_in_totals():
    r = analyze_graph(load_spec_text(spec("16x64 tokens", "{attention: 4, name: a}")))
    a = r["a"]
    assert a.internal == 16 * 3 * 64 + 2 * 4 * 16 * 16 + 16 * 64
    assert r.totals["activations"] == 16 * 64 + a.internal
    assert r.to_dict()["layers"][0]["internal_activations"] == a.internal


def test_tokens_to_image_round_trip():
    r = report(spec("8x8x16", "{tokens: , name: t}", "{linear: 32, name: lin}", "{to_image: , name: img}"))
    assert list(r["t"].shape) == [64, 16] and r["t"].view
    assert r["lin"].macs == 64 * 16 * 32 and r["lin"].params == 16 * 32 + 32
    assert tuple(r["img"].shape) == (8, 8, 32)


def test_mean_and_cls_token_count():
    r = report(spec("10x32 tokens", "{cls_token: 2, name: c}", "{mean: , name: m}"))
    assert r["c"].params == 64 and list(r["c"].shape) == [12, 32]
    assert list(r["m"].shape) == [32] and r["m"].ops == {"pool": 11 * 32}


def test_attention_in_sequences_that_are_windows_has_their_bias_table():
    """MaxViT: 4 windows of 4x4 tokens as (4, 16, 8) sequences, 2 heads, a (2·4 − 1)² x 2 table."""
    r = report(spec("(4, 16, 8)", "{attention: 2, bias_window: 4, name: a}"))
    a = r["a"]
    assert a.params == 8 * 24 + 24 + 8 * 8 + 8 + 7 * 7 * 2
    assert a.macs == 4 * 16 * 8 * 24 + 2 * 4 * 2 * 16 * 16 * 4 + 4 * 16 * 8 * 8
    assert a.ops["add"] == 4 * 2 * 16 * 16  # (the bias: one add per score)


@pytest.mark.parametrize("layers, msg", [
    (["{attention: 4, bias_window: 3}"], "sequences of 3x3 = 9 tokens, not 10"),
    (["{attention: 5}"], "5 heads do not divide the 64 channels"),
    (["{attention: 4, window: 3}"], "grid"),
    (["{attention: 4, shift: 1}"], "needs a 'window'"),
    (["{cls_token: }", "{to_image: }"], "11 tokens are not a square grid"),
])
def test_errors(layers, msg):
    with pytest.raises(SpecError, match=msg):
        analyze_graph(load_spec_text(spec("10x64 tokens", *layers)))


def test_image_layers_refuse_tokens_with_a_hint():
    with pytest.raises(SpecError, match="reads token sequences"):
        analyze_graph(load_spec_text(spec("8x8x3", "{attention: 1}")))
    with pytest.raises(SpecError, match="does not split into 16x16 patches"):
        analyze_graph(load_spec_text(spec("30x30x3", "{patch_embed: 8, patch: 16}")))


def test_window_grid_and_shift_errors():
    with pytest.raises(SpecError, match="does not split into 7x7 windows"):
        analyze_graph(load_spec_text(spec("32x32x3", "{patch_embed: 8, patch: 4}", "{attention: 2, window: 7}")))
    with pytest.raises(SpecError, match="smaller than the window"):
        analyze_graph(load_spec_text(spec("28x28x3", "{patch_embed: 8, patch: 4}",
                                          "{attention: 2, window: 7, shift: 7}")))


def test_qv_bias_counts_by_hand():
    """qkv_bias: qv (BEiT, Swin V2): learned q and v biases, the k bias a fixed zero — 2 bias values
    per channel of q and v instead of the qkv bias's 3; MACs and the rest unchanged."""
    layers = ("{patch_embed: 96, patch: 4}", "{attention: 3, window: 4, shift: 2, name: w}")
    full, qv = (report(spec("32x32x3", layers[0], layers[1].replace("name", f"qkv_bias: {b}, name")))["w"]
                for b in ("true", "qv"))
    n, c, h = 8 * 8, 96, 3
    assert full.params == c * 3 * c + 3 * c + c * c + c + 7 * 7 * h == 37_395
    assert qv.params == c * 3 * c + 2 * c + c * c + c + 7 * 7 * h == 37_299
    assert qv.macs == full.macs == 4 * n * c * c + 2 * h * n * 16 * 32
    assert qv.ops["bias"] == n * 2 * c + n * c and full.ops["bias"] == n * 3 * c + n * c
    assert qv.internal == full.internal
    assert "params: qkv 96*288 + q bias 96 + v bias 96 + proj 96*96 + 96 + relative position bias " \
           "(2*4 − 1)^2*3 = 37,299" in "\n".join(qv.explain)
    # head_dim ≠ value_dim: q is h·dk, v h·dv
    a = report(spec("4x6 tokens", "{attention: 2, head_dim: 3, value_dim: 5, qkv_bias: qv, name: a}"))["a"]
    assert a.params == 6 * 2 * (3 + 3 + 5) + 2 * 3 + 2 * 5 + 2 * 5 * 6 + 6 == 214


def test_qv_bias_parameter_shapes():
    from cnncalc.layers import REGISTRY
    from cnncalc.shapes import Tensor
    from cnncalc.layers.tensor import chan

    lay = REGISTRY["attention"]("a", {"heads": 2, "head_dim": 3, "value_dim": 5, "qkv_bias": "qv"})
    lay.infer([Tensor((4, 6), (None, chan(6)), 0)], "exact")
    assert {k: s for k, (s, _) in lay.param_shapes().items()} == {
        "qkv_weight": (22, 6), "q_bias": (6,), "v_bias": (10,), "proj_weight": (6, 10), "proj_bias": (6,)}


@pytest.mark.parametrize("value", ["kv", "yes", 1, "QV x"])
def test_qkv_bias_refuses_other_values_with_the_line(value):
    text = spec("4x8 tokens", "{attention: 2, name: a}", f"{{attention: 2, qkv_bias: {value!r}, name: b}}")
    with pytest.raises(SpecError, match=r"'qkv_bias' must be one of true, false, qv") as e:
        analyze_graph(load_spec_text(text))
    assert e.value.line == 5


def test_cls_bias_counts_by_hand():
    """BEiT: a class token and 4x4 patches (17 tokens of 8 channels), 2 heads, qkv_bias: qv; the table
    (2·4 − 1)² + 3 rows x 2 heads; the bias adds one add per score (2·17·17), as Swin's does."""
    r = report(spec("17x8 tokens", "{attention: 2, bias_window: 4, cls_bias: true, qkv_bias: qv, name: a}"))
    a = r["a"]
    assert a.params == 8 * 24 + 8 + 8 + 8 * 8 + 8 + (7 * 7 + 3) * 2 == 384
    assert a.macs == 3 * 17 * 8 * 8 + 2 * 2 * 17 * 17 * 4 + 17 * 8 * 8 == 8_976
    assert a.ops["add"] == 2 * 17 * 17
    text = "\n".join(a.explain)
    assert "relative position bias ((2*4 − 1)^2 + 3 class-token rows)*2 = 384" in text
    assert "relative position bias 2*17*17 = 578 add" in text
    from cnncalc.layers import REGISTRY
    from cnncalc.layers.tensor import chan
    from cnncalc.shapes import Tensor

    lay = REGISTRY["attention"]("a", {"heads": 2, "bias_window": 4, "cls_bias": True})
    lay.infer([Tensor((17, 8), (None, chan(8)), 0)], "exact")
    assert lay.param_shapes()["rel_pos_table"][0] == (52, 2)


@pytest.mark.parametrize("inp, layer, msg, hint", [
    ("16x8 tokens", "{attention: 2, bias_window: 4, cls_bias: true}",
     r"a class token and 4x4 patches = 17 tokens, not 16", "drop 'cls_bias'"),
    ("10x8 tokens", "{attention: 2, bias_window: 4, cls_bias: true}", r"= 17 tokens, not 10", "'bias_window: 3'"),
    ("17x8 tokens", "{attention: 2, bias_window: 4}", r"4x4 = 16 tokens, not 17", "'cls_bias: true'"),
    ("17x8 tokens", "{attention: 2, cls_bias: true}", r"'cls_bias' needs 'bias_window: P'", "1 \\+ P²"),
    ("17x8 tokens", "{attention: 2, bias_window: 4, cls_bias: true, rel_pos_bias: false}", r"has none",
     "drop 'cls_bias'"),
])
def test_cls_bias_errors_say_what_to_change(inp, layer, msg, hint):
    text = spec(inp, "{layernorm: , name: n}", layer)
    with pytest.raises(SpecError, match=msg) as e:
        analyze_graph(load_spec_text(text))
    assert e.value.line == 5 and e.value.hint and __import__("re").search(hint, e.value.hint)
