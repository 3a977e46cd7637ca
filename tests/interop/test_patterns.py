"""Import patterns of real CNNs (issue 23 point 3), each on a small hand-built ONNX graph:
imported, then run on the runtime with the graph's weights and compared with onnxruntime
(cnncalc.interop.check, what `import --weights` runs), and the layer types it became."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")
h = onnx.helper
F32 = onnx.TensorProto.FLOAT

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.check import check_import  # noqa: E402
from cnncalc.interop.onnx_import import folded_batchnorms, import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

R = np.random.default_rng(5)
C = 4


def _model(nodes, inits, out_shape=(1, C, 6, 6), producer=""):
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", F32, [1, 3, 6, 6])],
                     [h.make_tensor_value_info("y", F32, list(out_shape))],
                     [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], producer_name=producer)
    m.ir_version = 8
    return m


def _imported(m):
    imp = import_model(m, source="m.onnx")
    g = load_spec_text(imp.text)
    g.infer()
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line()
    return imp, g


def _conv(out="a"):
    return h.make_node("Conv", ["x", "c.weight", "c.bias"], [out], name="/c/Conv", pads=[1, 1, 1, 1])


INITS = {"c.weight": R.standard_normal((C, 3, 3, 3)).astype(np.float32), "c.bias": R.standard_normal(C).astype(np.float32)}


def test_one_input_concat_and_x_plus_zero_are_the_tensor():
    m = _model([_conv(), h.make_node("Concat", ["a"], ["b"], axis=1),
                h.make_node("Add", ["b", "zero"], ["y"])], {**INITS, "zero": np.float32(0.0)})
    imp, g = _imported(m)
    assert [n.kind for n in g.layers] == ["conv"]


def test_a_zero_initialised_learned_bias_is_kept():
    """ConvNeXt-V2's GRN bias starts at zero: a parameter, not an x + 0 to drop."""
    m = _model([_conv(), h.make_node("Add", ["a", "grn.bias"], ["y"])],
               {**INITS, "grn.bias": np.zeros((1, C, 1, 1), np.float32)})
    imp, g = _imported(m)
    assert analyze_graph(g).totals["params"] == C * 27 + C + C


def test_per_channel_gain_and_a_scalar_gain():
    """layer scale γ of shape (1, C, 1, 1) is a `scale` layer (C parameters); NFNet's scalar skip
    gain (a learned scalar) a low-level multiply with one parameter."""
    inits = {**INITS, "ls.gamma": R.standard_normal((1, C, 1, 1)).astype(np.float32),
             "blk.skipinit_gain": np.array(0.7, np.float32)}
    m = _model([_conv(), h.make_node("Mul", ["a", "ls.gamma"], ["b"]),
                h.make_node("Mul", ["b", "blk.skipinit_gain"], ["y"])], inits)
    imp, g = _imported(m)
    assert [n.kind for n in g.layers] == ["conv", "scale", "binary"]
    assert analyze_graph(g).totals["params"] == C * 27 + C + C + 1


def test_a_gain_of_shape_c_on_an_image_multiplies_the_width_not_the_channels():
    """ONNX broadcasts (C,) against N x C x H x W along W: not a per-channel scale."""
    inits = {**INITS, "g.weight": R.standard_normal(6).astype(np.float32)}
    C6 = {**inits, "c.weight": R.standard_normal((6, 3, 3, 3)).astype(np.float32),
          "c.bias": R.standard_normal(6).astype(np.float32)}
    m = _model([_conv(), h.make_node("Mul", ["a", "g.weight"], ["y"])], C6, out_shape=(1, 6, 6, 6))
    imp, g = _imported(m)
    assert g.layers[-1].kind == "binary"


def test_constant_only_subgraphs_are_folded():
    """Weight standardisation (ReduceMean over the weight, Sub, Div by Sqrt of the variance, as
    NFNet's ScaledStdConv2d) and TF 'same' arithmetic (Ceil, Mod, Max) fold into constants."""
    w = R.standard_normal((C, 3, 3, 3)).astype(np.float32)
    nodes = [h.make_node("ReduceMean", ["w"], ["mu"], axes=[1, 2, 3], keepdims=1),
             h.make_node("Sub", ["w", "mu"], ["wc"]), h.make_node("Mul", ["wc", "wc"], ["sq"]),
             h.make_node("ReduceMean", ["sq"], ["var"], axes=[1, 2, 3], keepdims=1),
             h.make_node("Add", ["var", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]),
             h.make_node("Div", ["wc", "sd"], ["ws"]),
             h.make_node("Ceil", ["six_halves"], ["three"]), h.make_node("Mod", ["three", "two"], ["one"], fmod=1),
             h.make_node("Max", ["one", "zero"], ["p"]), h.make_node("Cast", ["p"], ["pi"], to=onnx.TensorProto.INT64),
             h.make_node("Concat", ["z4", "pi", "pi", "z2", "pi", "pi"], ["pads"], axis=0),
             h.make_node("Pad", ["x", "pads"], ["xp"]),
             h.make_node("Conv", ["xp", "ws"], ["y"], name="/c/Conv")]
    inits = {"w": w, "eps": np.float32(1e-5), "six_halves": np.float32(2.5), "two": np.float32(2.0),
             "zero": np.float32(0.0), "z4": np.zeros(2, np.int64), "z2": np.zeros(2, np.int64)}
    nodes[11:12] = [h.make_node("Reshape", ["pi", "shape1"], ["pi1"]),
                    h.make_node("Concat", ["z4", "pi1", "pi1", "z2", "pi1", "pi1"], ["pads"], axis=0)]
    inits["shape1"] = np.array([1], np.int64)
    m = _model(nodes, inits)
    imp, g = _imported(m)
    assert [n.kind for n in g.layers] == ["conv"] and g.layers[0].layer.args["pad"] == 1


def test_tf_same_padding_with_an_odd_total_is_uneven():
    """timm's Conv2dSame (tf_efficientnet): pad = max((ceil(n/s) - 1)·s + k - n, 0), split as
    Cast(pad / 2 → int64) before and the rest after. On a 6x6 map with k = 3, s = 2 the total is 1:
    0 before, 1 after. Cast to an integer truncates: a fold that kept 0.5 on each side imported
    a symmetric pad (a different output size: the worst kind of import, accepted and wrong)."""
    I64 = onnx.TensorProto.INT64
    nodes = [h.make_node("Div", ["total", "two"], ["half"]), h.make_node("Cast", ["half"], ["lo"], to=I64),
             h.make_node("Cast", ["lo"], ["lo_f"], to=F32), h.make_node("Sub", ["total", "lo_f"], ["hi_f"]),
             h.make_node("Cast", ["hi_f"], ["hi"], to=I64),
             h.make_node("Concat", ["z2", "lo", "lo", "z2", "hi", "hi"], ["pads"], axis=0),
             h.make_node("Pad", ["x", "pads"], ["xp"]),
             h.make_node("Conv", ["xp", "c.weight", "c.bias"], ["y"], name="/c/Conv", strides=[2, 2])]
    inits = {**INITS, "total": np.array([1.0], np.float32), "two": np.float32(2.0), "z2": np.zeros(2, np.int64)}
    m = _model(nodes, inits, out_shape=(1, C, 3, 3))
    imp, g = _imported(m)
    assert [n.kind for n in g.layers] == ["conv"] and g.layers[0].layer.args["pad"] == [[0, 1], [0, 1]]
    assert tuple(g[g.outputs[0]].shape) == (3, 3, C)


def test_branches_stacked_and_summed_on_a_1x1_map_are_an_image_again():
    """SKNet's branch attention at the last stage of a small input (timm skresnet18 at 32 px):
    Unsqueeze + Concat + ReduceSum over the branches of a 1x1 map. The unsqueeze moved the roles
    of the size-1 axes, and the conv after it was refused ("not laid out as N x C x H x W")."""
    inits = {"w6": R.standard_normal((C, 3, 6, 6)).astype(np.float32), "w1": R.standard_normal((C, C, 1, 1)).astype(np.float32),
             "one": np.array([1], np.int64)}
    nodes = [h.make_node("Conv", ["x", "w6"], ["a"], name="/a/Conv"), h.make_node("Relu", ["a"], ["b"]),
             h.make_node("Unsqueeze", ["a", "one"], ["ua"]), h.make_node("Unsqueeze", ["b", "one"], ["ub"]),
             h.make_node("Concat", ["ua", "ub"], ["st"], axis=1),
             h.make_node("ReduceSum", ["st", "one"], ["s"], keepdims=0),
             h.make_node("Conv", ["s", "w1"], ["y"], name="/fc/Conv")]
    m = _model(nodes, inits, out_shape=(1, C, 1, 1))
    imp, g = _imported(m)
    assert g.layers[-1].kind == "conv"
    assert analyze_graph(g).totals["macs"] == C * 3 * 36 + C * C


def test_channels_last_convnext_block_is_exact():
    """timm / torchvision ConvNeXt: Transpose → LayerNorm(-1) → MatMul+Add → GELU → MatMul+Add →
    Mul γ → Transpose back, + the residual."""
    hid = 8
    inits = {**INITS, "ln.weight": 1 + R.standard_normal(C).astype(np.float32), "ln.bias": R.standard_normal(C).astype(np.float32),
             "fc1.weight": R.standard_normal((C, hid)).astype(np.float32), "fc1.bias": R.standard_normal(hid).astype(np.float32),
             "fc2.weight": R.standard_normal((hid, C)).astype(np.float32), "fc2.bias": R.standard_normal(C).astype(np.float32),
             "gamma": R.standard_normal(C).astype(np.float32)}
    nodes = [_conv(), h.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 3, 1]),
             h.make_node("LayerNormalization", ["t", "ln.weight", "ln.bias"], ["ln"], axis=-1, epsilon=1e-6),
             h.make_node("MatMul", ["ln", "fc1.weight"], ["f1"]), h.make_node("Add", ["f1", "fc1.bias"], ["f1b"]),
             h.make_node("Gelu", ["f1b"], ["ge"], domain=""),
             h.make_node("MatMul", ["ge", "fc2.weight"], ["f2"]), h.make_node("Add", ["f2", "fc2.bias"], ["f2b"]),
             h.make_node("Mul", ["f2b", "gamma"], ["ls"]), h.make_node("Transpose", ["ls"], ["back"], perm=[0, 3, 1, 2]),
             h.make_node("Add", ["back", "a"], ["y"])]
    m = _model(nodes, inits)
    m.opset_import[0].version = 20  # (Gelu is an ONNX op from opset 20)
    imp, g = _imported(m)
    rep = analyze_graph(g)
    assert rep.totals["params"] == C * 27 + C + 2 * C + C * hid + hid + hid * C + C + C
    assert rep.totals["macs"] == 36 * C * 27 + 36 * (C * hid + hid * C)  # conv + the two Linears per position
    assert "opaque" not in {n.kind for n in g.layers}


def test_folded_batchnorm_is_said():
    """A PyTorch eval-mode export fuses BN into the conv and renames its tensors onnx::Conv_N."""
    m = _model([h.make_node("Conv", ["x", "onnx::Conv_7", "onnx::Conv_8"], ["y"], pads=[1, 1, 1, 1])],
               {"onnx::Conv_7": INITS["c.weight"], "onnx::Conv_8": INITS["c.bias"]}, producer="pytorch")
    assert folded_batchnorms(m) == 1
    imp = import_model(m, source="m.onnx")
    assert "# note: torch.onnx.export (eval mode) folded batch norm into 1 conv(s)" in imp.text
    assert "`cnncalc import --torch` keeps BN" in imp.note
    assert "batch norm folded into 1 conv(s) by the exporter" in load_spec_text(imp.text).source
    assert folded_batchnorms(_model([_conv("y")], INITS, producer="pytorch")) == 0


def test_a_mask_built_from_the_input_size_by_range_and_expand_is_folded():
    """torchvision's Swin builds its shifted-window mask from sizes read off the activation
    (Shape → Gather → Range, ConstantOfShape, Expand): ONNX shape inference gives up on such
    sizes, and the importer folded growing ops only when their shape was known (the whole of
    torchvision's swin_t was refused). Their size follows from the constant inputs: folded."""
    I64 = onnx.TensorProto.INT64
    nodes = [_conv(), h.make_node("Shape", ["a"], ["s"]), h.make_node("Gather", ["s", "two"], ["n"], axis=0),
             h.make_node("Range", ["zero", "n", "one"], ["r"]), h.make_node("Cast", ["r"], ["rf"], to=F32),
             h.make_node("Unsqueeze", ["n", "ax0"], ["n1"]), h.make_node("Concat", ["n1", "n1"], ["nn"], axis=0),
             h.make_node("ConstantOfShape", ["nn"], ["ones"], value=h.make_tensor("v", F32, [1], [1.0])),
             h.make_node("Expand", ["rf", "nn"], ["grid"]), h.make_node("Mul", ["grid", "ones"], ["mask"]),
             h.make_node("Add", ["a", "mask"], ["y"])]
    inits = {**INITS, "two": np.array(2, np.int64), "zero": np.array(0, np.int64), "one": np.array(1, np.int64),
             "ax0": np.array([0], np.int64)}
    imp, g = _imported(_model(nodes, inits))
    assert [n.kind for n in g.layers] == ["conv", "binary"]
    assert imp.text.count("learned: false") == 1, imp.text


def test_einsum_products_of_two_activations_are_matmuls():
    """MaxViT's attention writes q·kᵀ and ·v as Einsum (bhid,bhjd->bhij; bhij,bhjd->bhid): a
    batched product of two activations, imported as transposes and a matmul with the matmul's
    MACs (here with the output in another order too: bhij,bhjd->bhdi)."""
    nodes = [_conv(), h.make_node("Reshape", ["a", "s4"], ["t"]),
             h.make_node("Einsum", ["t", "t"], ["s"], equation="bhid,bhjd->bhij"),
             h.make_node("Einsum", ["s", "t"], ["y"], equation="bhij,bhjd->bhdi")]
    imp, g = _imported(_model(nodes, {**INITS, "s4": np.array([1, 2, 18, 4], np.int64)}, out_shape=(1, 2, 4, 18)))
    assert [n.kind for n in g.layers].count("matmul") == 2
    assert analyze_graph(g).totals["macs"] == C * 27 * 36 + 2 * (2 * 18 * 18 * 4)
