"""The tokens family's rewrites (cnncalc/interop/onnx/rewrites/tokens.py): ViT's patch
embedding, class token, position embedding, per-token MLP and the mean of the tokens as ONNX
writes them (torch.onnx.export of timm's modules; cnncalc's own export --to onnx), each one
layer with the outputs of onnxruntime and the counts of the ops it replaces."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.onnx import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402
from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402

C, P, D = 3, 4, 6  # input channels, patch, embedding: an 8 x 8 input is 2 x 2 = 4 tokens of 6
N = 4


def _i(*v):
    return np.array(v, np.int64)


def _patches(kernel=P, stride=P):
    """x (1, 3, 8, 8) → Conv(kernel = stride = 4) → Reshape (1, 6, 4) → Transpose: tokens (1, 4, 6)."""
    nodes = [node("Conv", ["x", "pe.proj.weight", "pe.proj.bias"], ["c"], "/pe/proj/Conv",
                  kernel_shape=[kernel, kernel], strides=[stride, stride]),
             node("Reshape", ["c", "s_flat"], ["f"], "/pe/Reshape"),
             node("Transpose", ["f"], ["tok"], "/pe/Transpose", perm=[0, 2, 1])]
    n = ((8 - kernel) // stride + 1) ** 2
    return nodes, {"pe.proj.weight": w(D, C, kernel, kernel), "pe.proj.bias": w(D), "s_flat": _i(1, D, n)}


def _totals(m):
    return analyze_graph(load_spec_text(import_model(m, source="m.onnx").text)).totals


@covers("patch_embed")
def test_conv_flatten_transpose_is_one_patch_embed():
    nodes, inits = _patches()
    nodes[-1].output[0] = "y"
    m = model(nodes, inits, x=(1, C, 8, 8))
    assert lifted(m) == ["patch_embed"]
    tot = _totals(m)
    assert (tot["params"], tot["macs"]) == (D * C * P * P + D, N * D * C * P * P)  # 4 tokens · (4·4·3)·6


def test_overlapping_conv_stays_a_conv():
    nodes, inits = _patches(kernel=4, stride=2)  # (kernel ≠ stride: no patches)
    nodes[-1].output[0] = "y"
    assert lifted(model(nodes, inits, x=(1, C, 8, 8)))[0] == "conv"


@covers("cls_token", "pos_embed")
def test_class_token_and_position_embedding():
    nodes, inits = _patches()
    nodes += [node("Concat", ["vit.cls_token", "tok"], ["t1"], "/Concat", axis=1),
              node("Add", ["t1", "vit.pos_embed"], ["y"], "/Add")]
    inits.update({"vit.cls_token": w(1, 1, D), "vit.pos_embed": w(1, N + 1, D)})
    m = model(nodes, inits, x=(1, C, 8, 8))
    assert lifted(m) == ["patch_embed", "cls_token", "pos_embed"]
    assert _totals(m)["params"] == D * C * P * P + D + D + (N + 1) * D


def test_a_constant_not_the_tokens_shape_is_no_position_embedding():
    nodes, inits = _patches()
    nodes.append(node("Add", ["tok", "vit.pos_embed"], ["y"], "/Add"))
    inits["vit.pos_embed"] = w(1, 1, D)  # (one value per channel, broadcast over the tokens)
    assert lifted(model(nodes, inits, x=(1, C, 8, 8)))[-1] != "pos_embed"


def _mlp(act="gelu", bias=True, extra_reader=False):
    nodes, inits = _patches()
    hid = 10
    inits.update({"mlp.fc1.weight": w(D, hid), "mlp.fc2.weight": w(hid, D)})
    nodes.append(node("MatMul", ["tok", "mlp.fc1.weight"], ["h0" if bias else "h"], "/mlp/fc1/MatMul"))
    if bias:
        nodes.append(node("Add", ["h0", "mlp.fc1.bias"], ["h"], "/mlp/fc1/Add"))
        inits.update({"mlp.fc1.bias": w(hid), "mlp.fc2.bias": w(D)})
    if act == "gelu":  # torch.onnx.export's erf GELU
        nodes += [node("Div", ["h", "sqrt2"], ["g1"], "/mlp/act/Div"), node("Erf", ["g1"], ["g2"], "/mlp/act/Erf"),
                  node("Add", ["g2", "one"], ["g3"], "/mlp/act/Add"), node("Mul", ["h", "g3"], ["g4"], "/mlp/act/Mul"),
                  node("Mul", ["g4", "half"], ["a"], "/mlp/act/Mul_1")]
        inits.update({"sqrt2": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32),
                      "half": np.array(0.5, np.float32)})
    else:
        nodes.append(node("Relu", ["h"], ["a"], "/mlp/act/Relu"))
    nodes.append(node("MatMul", ["a", "mlp.fc2.weight"], ["o" if bias else "y"], "/mlp/fc2/MatMul"))
    if bias:
        nodes.append(node("Add", ["o", "mlp.fc2.bias"], ["y"], "/mlp/fc2/Add"))
    outputs = ("y",)
    if extra_reader:  # the hidden tokens are an output too: no mlp layer
        nodes.append(node("Identity", ["a"], ["hidden"], "/mlp/Identity"))
        outputs = ("y", "hidden")
    return model(nodes, inits, x=(1, C, 8, 8), outputs=outputs), hid


@covers("mlp")
@pytest.mark.parametrize("act,bias", [("gelu", True), ("relu", False)])
def test_linear_act_linear_on_tokens_is_one_mlp(act, bias):
    m, hid = _mlp(act, bias)
    assert lifted(m) == ["patch_embed", "mlp"]
    imp = import_model(m, source="m.onnx")
    assert (f"act: {act}" in imp.text) == (act != "gelu") and ("bias: false" in imp.text) == (not bias)
    tot = _totals(m)
    pe = D * C * P * P + D
    assert tot["params"] == pe + D * hid + hid * D + ((hid + D) if bias else 0)
    assert tot["macs"] == N * D * C * P * P + N * (D * hid + hid * D)


def test_mlp_whose_hidden_tokens_are_read_elsewhere_stays_apart():
    m, _ = _mlp(extra_reader=True)
    assert "mlp" not in lifted(m)


@covers("token_mean")
def test_reduce_mean_over_the_tokens_is_one_mean():
    nodes, inits = _patches()
    nodes.append(node("ReduceMean", ["tok"], ["y"], "/ReduceMean", axes=[1], keepdims=0))
    assert lifted(model(nodes, inits, x=(1, C, 8, 8))) == ["patch_embed", "mean"]


@covers("tokens", "to_image")
def test_image_to_tokens_and_back():
    """x (1, 3, 4, 4) → Reshape (1, 3, 16) → Transpose: 16 tokens of 3; → Transpose → Reshape
    (1, 3, 4, 4) → a 1x1 Conv: the image again, which the conv reads as N x C x H x W."""
    nodes = [node("Reshape", ["x", "s_flat"], ["f"], "/tok/Reshape"),
             node("Transpose", ["f"], ["tok"], "/tok/Transpose", perm=[0, 2, 1]),
             node("Transpose", ["tok"], ["back"], "/img/Transpose", perm=[0, 2, 1]),
             node("Reshape", ["back", "s_img"], ["img"], "/img/Reshape"),
             node("Conv", ["img", "pw.weight", "pw.bias"], ["y"], "/pw/Conv", kernel_shape=[1, 1])]
    inits = {"s_flat": _i(1, C, 16), "s_img": _i(1, C, 4, 4), "pw.weight": w(2, C, 1, 1), "pw.bias": w(2)}
    assert lifted(model(nodes, inits, x=(1, C, 4, 4))) == ["tokens", "to_image", "conv"]


def test_pointwise_conv_then_tokens_stays_two_layers():
    nodes, inits = _patches(kernel=1, stride=1)  # (patch 1: a spec writes a conv, then tokens)
    nodes[-1].output[0] = "y"
    assert lifted(model(nodes, inits, x=(1, C, 8, 8))) == ["conv", "tokens"]
