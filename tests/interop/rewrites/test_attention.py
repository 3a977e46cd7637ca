"""The attention family's rewrites (cnncalc/interop/onnx/rewrites/attention.py): timm's Attention
block as torch.onnx.export writes it, fused (SDPA: the scale split as √s on q and on kᵀ) and
unfused (q·s, then q @ kᵀ), lifted to one attention layer with the same outputs (onnxruntime)
and the same counts as the low-level ops it replaces."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.onnx import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402
from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402

T, C, H = 5, 8, 2
D = C // H


def _i(*v):
    return np.array(v, np.int64)


def _block(fused=True, scale=D ** -0.5, proj_bias=True, extra_reader=False):
    """x (1, C, T) → tokens (1, T, C) → timm's Attention → y (1, T, C)."""
    s = np.float32(scale ** 0.5) if fused else np.float32(scale)
    nodes = [node("Transpose", ["x"], ["tok"], "/tok/Transpose", perm=[0, 2, 1]),
             node("MatMul", ["tok", "attn.qkv.weight"], ["qkv"], "/attn/qkv/MatMul"),
             node("Add", ["attn.qkv.bias", "qkv"], ["qkvb"], "/attn/qkv/Add"),
             node("Reshape", ["qkvb", "s_heads"], ["r"], "/attn/Reshape"),
             node("Transpose", ["r"], ["p"], "/attn/Transpose", perm=[2, 0, 3, 1, 4]),
             node("Split", ["p", "ones"], ["q5", "k5", "v5"], "/attn/Split", axis=0),
             node("Squeeze", ["q5", "zero"], ["q"], "/attn/Squeeze"),
             node("Squeeze", ["k5", "zero"], ["k"], "/attn/Squeeze_1"),
             node("Squeeze", ["v5", "zero"], ["v"], "/attn/Squeeze_2")]
    if fused:  # what torch writes for scaled_dot_product_attention
        nodes += [node("Shape", ["q"], ["qshape"], "/attn/Shape"),
                  node("Mul", ["q", "s"], ["qs"], "/attn/Mul"),
                  node("Transpose", ["k"], ["kt"], "/attn/Transpose_1", perm=[0, 1, 3, 2]),
                  node("Mul", ["kt", "s"], ["ks"], "/attn/Mul_1"),
                  node("MatMul", ["qs", "ks"], ["sc"], "/attn/MatMul")]
    else:
        nodes += [node("Mul", ["q", "s"], ["qs"], "/attn/Mul"),
                  node("Transpose", ["k"], ["kt"], "/attn/Transpose_1", perm=[0, 1, 3, 2]),
                  node("MatMul", ["qs", "kt"], ["sc"], "/attn/MatMul")]
    nodes += [node("Softmax", ["sc"], ["a"], "/attn/Softmax", axis=-1),
              node("MatMul", ["a", "v"], ["o"], "/attn/MatMul_1"),
              node("Transpose", ["o"], ["ot"], "/attn/Transpose_2", perm=[0, 2, 1, 3]),
              node("Reshape", ["ot", "s_back"], ["om"], "/attn/Reshape_1"),
              node("MatMul", ["om", "attn.proj.weight"], ["pm" if proj_bias else "y"], "/attn/proj/MatMul")]
    if proj_bias:
        nodes.append(node("Add", ["attn.proj.bias", "pm"], ["y"], "/attn/proj/Add"))
    outputs = ("y",)
    if extra_reader:  # the attention map is also an output: the block cannot be one layer
        nodes.append(node("Identity", ["a"], ["amap"], "/attn/Identity"))
        outputs = ("y", "amap")
    inits = {"attn.qkv.weight": w(C, 3 * C), "attn.qkv.bias": w(3 * C), "s_heads": _i(1, T, 3, H, D),
             "ones": _i(1, 1, 1), "zero": _i(0), "s": s, "s_back": _i(1, T, C),
             "attn.proj.weight": w(C, C), "attn.proj.bias": w(C)}
    return model(nodes, inits, x=(1, C, T), outputs=outputs)


MACS = T * C * 3 * C + 2 * H * T * T * D + T * C * C
PARAMS = C * 3 * C + 3 * C + C * C + C


def _totals(m):
    g = load_spec_text(import_model(m, source="m.onnx").text)
    return analyze_graph(g).totals


@covers("attention", "attention_proj_bias")
@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "unfused"])
def test_timm_attention_is_one_attention_layer(fused):
    m = _block(fused)
    assert lifted(m) == ["transpose", "attention"]
    tot = _totals(m)
    assert (tot["params"], tot["macs"]) == (PARAMS, MACS)


@covers("attention")
def test_without_the_output_bias_the_layer_says_so():
    m = _block(proj_bias=False)
    assert lifted(m) == ["transpose", "attention"]
    assert "proj_bias: false" in import_model(m, source="m.onnx").text
    assert _totals(m)["params"] == PARAMS - C


@covers("attention")
@pytest.mark.parametrize("why", ["scale", "reader"])
def test_a_block_that_is_not_exactly_attention_stays_low_level_with_the_same_counts(why):
    """A scale other than 1/√d (cnncalc's attention scales by 1/√d), or an attention map read
    outside the block: no lift; the low-level ops count the same MACs."""
    m = _block(fused=False, scale=0.3) if why == "scale" else _block(extra_reader=True)
    kinds = lifted(m)
    # (qkv and proj: Linear layers on tokens, the token_fc rewrite; QKᵀ and AV: matmuls)
    assert "attention" not in kinds and kinds.count("matmul") == 2 and kinds.count("fc") == 2 and "softmax" in kinds
    assert _totals(m)["macs"] == MACS
