"""Importing transformers (issue 24 point 4), each pattern on a small hand-built ONNX graph laid
out as torch.onnx.export writes timm's and torchvision's models: imported, run on the runtime
with the graph's weights and compared with onnxruntime (cnncalc.interop.check), and counted
against hand arithmetic (parameters = the learned initializers; MACs = conv, matmul)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")
h = onnx.helper
F32 = onnx.TensorProto.FLOAT

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop import InteropError  # noqa: E402
from cnncalc.interop.check import check_import  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

R = np.random.default_rng(24)
D, P, HEADS = 8, 4, 2  # channels, patches (2 x 2), heads
T = P + 1  # tokens with the class token


def _f(*shape):
    return R.standard_normal(shape).astype(np.float32)


def _i(*v):
    return np.array(v, np.int64)


def _model(nodes, inits, out_shape, in_shape=(1, 3, 8, 8)):
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", F32, list(in_shape))],
                     [h.make_tensor_value_info("y", F32, list(out_shape))],
                     [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    return m


def _imported(m):
    imp = import_model(m, source="m.onnx")
    g = load_spec_text(imp.text)
    g.infer()
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line()
    return g, analyze_graph(g).totals


PATCHES = {"pe.weight": _f(D, 3, 4, 4), "pe.bias": _f(D)}
PATCH_MACS = P * D * 3 * 16


def _patches():
    """x (1, 3, 8, 8) → conv k = s = 4 → (1, D, 2, 2) → tokens (1, P, D), as timm's PatchEmbed."""
    return [h.make_node("Conv", ["x", "pe.weight", "pe.bias"], ["pe"], name="/pe/Conv", kernel_shape=[4, 4],
                        strides=[4, 4]),
            h.make_node("Reshape", ["pe", "s_tok"], ["pe_f"], name="/pe/Reshape"),
            h.make_node("Transpose", ["pe_f"], ["tok"], name="/pe/Transpose", perm=[0, 2, 1])], {"s_tok": _i(1, D, P)}


def _cls_pos():
    """timm's ViT: cat(cls_token.expand(B, -1, -1), x) + pos_embed."""
    nodes, inits = _patches()
    nodes += [h.make_node("Expand", ["cls_token", "s_cls"], ["cls"], name="/Expand"),
              h.make_node("Concat", ["cls", "tok"], ["cat"], name="/Concat", axis=1),
              h.make_node("Add", ["cat", "pos_embed"], ["t0"], name="/Add")]
    inits.update(PATCHES, cls_token=_f(1, 1, D), s_cls=_i(1, 1, 1), pos_embed=_f(1, T, D))
    return nodes, inits


def test_class_token_and_position_embedding_are_parameters():
    nodes, inits = _cls_pos()
    nodes += [h.make_node("LayerNormalization", ["t0", "ln.weight", "ln.bias"], ["y"], name="/ln/LN", axis=-1)]
    inits.update({"ln.weight": _f(D), "ln.bias": _f(D)})
    g, tot = _imported(_model(nodes, inits, (1, T, D)))
    assert tot["params"] == D * 48 + D + D + T * D + 2 * D
    assert tot["macs"] == PATCH_MACS


def test_attention_as_timm_exports_it_counts_every_product():
    """qkv Linear → Reshape (B, N, 3, h, d) → Transpose (2, 0, 3, 1, 4) (the batch at axis 1) →
    Split + Squeeze (unbind) → q·scale @ (k·scale)ᵀ → Softmax → @ v → Transpose → Reshape → proj:
    MACs = N·D·3D (qkv) + 2·h·N·N·d (QKᵀ, AV) + N·D·D (proj)."""
    nodes, inits = _cls_pos()
    d = D // HEADS
    nodes += [
        h.make_node("MatMul", ["t0", "qkv.weight"], ["qkv"], name="/attn/qkv/MatMul"),
        h.make_node("Add", ["qkv", "qkv.bias"], ["qkvb"], name="/attn/qkv/Add"),
        h.make_node("Reshape", ["qkvb", "s_heads"], ["r"], name="/attn/Reshape"),
        h.make_node("Transpose", ["r"], ["p"], name="/attn/Transpose", perm=[2, 0, 3, 1, 4]),
        h.make_node("Split", ["p", "ones"], ["q5", "k5", "v5"], name="/attn/Split", axis=0),
        h.make_node("Squeeze", ["q5", "zero"], ["q"], name="/attn/Squeeze"),
        h.make_node("Squeeze", ["k5", "zero"], ["k"], name="/attn/Squeeze_1"),
        h.make_node("Squeeze", ["v5", "zero"], ["v"], name="/attn/Squeeze_2"),
        h.make_node("Transpose", ["k"], ["kt"], name="/attn/Transpose_1", perm=[0, 1, 3, 2]),
        h.make_node("Mul", ["q", "scale"], ["qs"], name="/attn/Mul"),
        h.make_node("Mul", ["kt", "scale"], ["ks"], name="/attn/Mul_1"),
        h.make_node("MatMul", ["qs", "ks"], ["s"], name="/attn/MatMul"),
        h.make_node("Softmax", ["s"], ["a"], name="/attn/Softmax", axis=-1),
        h.make_node("MatMul", ["a", "v"], ["o"], name="/attn/MatMul_1"),
        h.make_node("Transpose", ["o"], ["ot"], name="/attn/Transpose_2", perm=[0, 2, 1, 3]),
        h.make_node("Reshape", ["ot", "s_back"], ["om"], name="/attn/Reshape_1"),
        h.make_node("MatMul", ["om", "proj.weight"], ["y"], name="/attn/proj/MatMul")]
    inits.update({"qkv.weight": _f(D, 3 * D), "qkv.bias": _f(3 * D), "s_heads": _i(1, T, 3, HEADS, d),
                  "ones": _i(1, 1, 1), "zero": _i(0), "scale": np.float32(d ** -0.25),
                  "s_back": _i(1, T, D), "proj.weight": _f(D, D)})
    g, tot = _imported(_model(nodes, inits, (1, T, D)))
    assert tot["macs"] == PATCH_MACS + T * D * 3 * D + 2 * HEADS * T * T * d + T * D * D
    assert tot["params"] == D * 48 + D + D + T * D + 3 * D * D + 3 * D + D * D
    assert [n.kind for n in g.layers][-1] == "attention"  # (the whole block: lifted)


def test_a_sequence_first_projection_keeps_the_rows_apart():
    """torchvision's MultiheadAttention projects L x N x E (the batch at axis 1, the rows of
    the product): an exact matmul, N·E·E' MACs."""
    nodes, inits = _patches()
    nodes += [h.make_node("Transpose", ["tok"], ["lne"], name="/attn/Transpose", perm=[1, 0, 2]),
              h.make_node("MatMul", ["lne", "in_proj.weight"], ["pr"], name="/attn/MatMul"),
              h.make_node("Transpose", ["pr"], ["y"], name="/attn/Transpose_1", perm=[1, 0, 2])]
    inits.update(PATCHES, **{"in_proj.weight": _f(D, 3 * D)})
    g, tot = _imported(_model(nodes, inits, (1, P, 3 * D)))
    assert tot["macs"] == PATCH_MACS + P * D * 3 * D


def test_tokens_back_to_a_map_feed_a_conv():
    """CoaT's convolutional position encoding: the class token sliced off, the image tokens
    transposed and reshaped to C x H x W, a depthwise conv."""
    nodes, inits = _cls_pos()
    nodes += [h.make_node("Slice", ["t0", "st1", "en", "ax1"], ["img"], name="/cpe/Slice"),
              h.make_node("Transpose", ["img"], ["imgt"], name="/cpe/Transpose", perm=[0, 2, 1]),
              h.make_node("Reshape", ["imgt", "s_map"], ["map"], name="/cpe/Reshape"),
              h.make_node("Conv", ["map", "cpe.weight", "cpe.bias"], ["y"], name="/cpe/proj/Conv",
                          kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=D)]
    inits.update(st1=_i(1), en=_i(T), ax1=_i(1), s_map=_i(1, D, 2, 2), **{"cpe.weight": _f(D, 1, 3, 3),
                                                                         "cpe.bias": _f(D)})
    g, tot = _imported(_model(nodes, inits, (1, D, 2, 2)))
    assert tot["macs"] == PATCH_MACS + P * D * 9
    assert tot["params"] == D * 48 + D + D + T * D + D * 9 + D


def test_batch_norm_over_tokens_folded_with_the_batch():
    """LeViT's BatchNorm1d over x.flatten(0, 1): (B·N, C) normalised per channel, γ and β the
    parameters (the statistics buffers)."""
    nodes, inits = _patches()
    nodes += [h.make_node("Reshape", ["tok", "s_flat"], ["fl"], name="/bn/Reshape"),
              h.make_node("BatchNormalization", ["fl", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                          ["bn"], name="/bn/BatchNormalization", epsilon=1e-5),
              h.make_node("Reshape", ["bn", "s_tok3"], ["y"], name="/bn/Reshape_1")]
    inits.update(PATCHES, s_flat=_i(P, D), s_tok3=_i(1, P, D), **{
        "bn.weight": _f(D), "bn.bias": _f(D), "bn.running_mean": _f(D),
        "bn.running_var": (0.5 + R.random(D)).astype(np.float32)})
    g, tot = _imported(_model(nodes, inits, (1, P, D)))
    assert tot["params"] == D * 48 + D + 2 * D
    assert tot["macs"] == PATCH_MACS


def test_a_class_token_broadcast_over_more_than_the_batch_is_refused():
    """Expand(param (1, 1, D), (1, 3, D)) makes three tokens of one parameter: no spec form
    counts it right, so it is not folded into a parameter of 3·D values."""
    nodes, inits = _patches()
    nodes += [h.make_node("Expand", ["cls_token", "s3"], ["cls"], name="/Expand"),
              h.make_node("Concat", ["cls", "tok"], ["y"], name="/Concat", axis=1)]
    inits.update(PATCHES, cls_token=_f(1, 1, D), s3=_i(1, 3, D))
    with pytest.raises(InteropError, match="Expand"):
        import_model(_model(nodes, inits, (1, P + 3, D)), source="m.onnx")


def test_a_conv_of_a_constant_is_refused_not_folded():
    """A learned 1x1 conv of an initializer of 16 values (a parameter by the importer's rule):
    folded, its parameters and MACs would vanish; the layer of constants only that takes
    EdgeNeXt's grid (computed in the graph, a buffer: tests/interop/rewrites/test_constant.py)
    takes no input that is itself a parameter: refused."""
    nodes, inits = _patches()
    nodes = nodes[:1] + [h.make_node("Conv", ["fourier", "proj.weight"], ["pos"], name="/pos/Conv"),
                         h.make_node("Add", ["pe", "pos"], ["y"], name="/Add")]
    inits.update(PATCHES, fourier=_f(1, 4, 2, 2), **{"proj.weight": _f(D, 4, 1, 1)})
    with pytest.raises(InteropError, match="constants only"):
        import_model(_model(nodes, inits, (1, D, 2, 2)), source="m.onnx")


def test_a_cast_to_float_of_a_shape_folds_to_a_float():
    """The exported SDPA scales by 1/√(head dim) computed from q's shape: Sqrt(Cast(20, float)) is
    4.47, not the 4 of an integer square root (MobileViT's heads of 20 and 24 channels)."""
    nodes = [h.make_node("Shape", ["x"], ["s"], name="/Shape"),
             h.make_node("Slice", ["s", "m1", "big", "z"], ["d"], name="/Slice"),
             h.make_node("Cast", ["d"], ["df"], name="/Cast", to=onnx.TensorProto.FLOAT),
             h.make_node("Sqrt", ["df"], ["r"], name="/Sqrt"),
             h.make_node("Div", ["one", "r"], ["sc"], name="/Div"),
             h.make_node("Mul", ["x", "sc"], ["y"], name="/Mul")]
    inits = {"m1": _i(-1), "big": _i(2 ** 62), "z": _i(0), "one": np.float32(1.0)}
    m = _model(nodes, inits, (1, 3, 20), in_shape=(1, 3, 20))
    _imported(m)
    assert "value: [0.2236" in import_model(m, source="m.onnx").text
