"""ONNX → low-level spec items (cnncalc/interop/onnx_lower.py), op by op: a small graph built
with onnx.helper is lowered node by node, the spec runs on the runtime and must equal
onnxruntime on several shapes and attributes; counts are checked against hand arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnxgraph import helper, lower_model, model, run_both  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.onnx_lower import Operand, Unlowered, lower  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

R = np.random.default_rng(0)
IMG = ((1, 4, 5, 6), "5x6x4")          # N, C, H, W
TOK = ((1, 7, 8), "7x8 tokens")         # N, tokens, C
TEN = ((1, 3, 4, 5), "(3, 4, 5)")       # N, a, b, c


def node(op, ins, outs="y", name=None, **attrs):
    outs = [outs] if isinstance(outs, str) else outs
    return helper.make_node(op, ins, outs, name=name or outs[0], **attrs)


def f32(*shape, pos=False):
    a = R.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if pos else a


def check(nodes, xs, inits=(), learned=(), outs=("y",), opset=17, pos=False, batch=2):
    """Lower and run on (x shape, spec input) and compare with onnxruntime."""
    shape, spec_input = xs
    m = model(nodes, shape, list(outs), inits=inits, opset=opset)
    x = f32(batch, *shape[1:], pos=pos)
    return run_both(m, x, spec_input, learned=learned)


# ----------------------------------------------------------------------------- matmul, gemm
def test_matmul_activation_times_learned_constant_counts_params_and_macs():
    w = f32(8, 12)
    g, *_ = check([node("MatMul", ["x", "w"])], TOK, inits=[("w", w)], learned={"w"})
    rep = analyze_graph(g)
    row = rep["y"]
    assert (row.weights, row.macs) == (8 * 12, 7 * 12 * 8)  # out values 7*12, contracted 8
    assert g["y"].layer.param_shapes() == {"const1": ((8, 12), "weight")}


def test_matmul_constant_times_activation_and_buffer_constant():
    a = f32(5, 7)  # (5, 7) @ tokens (7, 8): a token-mixing matmul (MLP-Mixer)
    g, *_ = check([node("MatMul", ["a", "x"])], TOK, inits=[("a", a)])
    rep = analyze_graph(g)
    assert (rep["y"].params, rep["y"].nontrainable, rep["y"].macs) == (0, 35, 5 * 8 * 7)


def test_matmul_of_two_activations_qkt():
    nodes = [node("Transpose", ["x"], "xt", perm=[0, 2, 1]), node("MatMul", ["x", "xt"])]
    g, *_ = check(nodes, TOK)
    assert analyze_graph(g)["y"].macs == 7 * 7 * 8


def test_matmul_batched_heads():
    nodes = [node("Reshape", ["x", "s"], "h"), node("Transpose", ["h"], "q", perm=[0, 2, 1, 3]),
             node("Transpose", ["h"], "k", perm=[0, 2, 3, 1]), node("MatMul", ["q", "k"])]
    g, *_ = check(nodes, TOK, inits=[("s", np.array([1, 7, 2, 4], np.int64))])
    assert analyze_graph(g)["y"].macs == 2 * 7 * 7 * 4


@pytest.mark.parametrize("alpha,beta,trans_b", [(1.0, 1.0, 1), (0.5, 2.0, 0), (1.0, 1.0, 0)])
def test_gemm(alpha, beta, trans_b):
    w = f32(6, 10) if trans_b else f32(10, 6)
    c = f32(6)
    g, *_ = check([node("Gemm", ["x", "w", "c"], alpha=alpha, beta=beta, transB=trans_b)], ((1, 10), "10"),
                  inits=[("w", w), ("c", c)], learned={"w", "c"})
    rep = analyze_graph(g)
    assert rep.totals["params"] == 66 and rep.totals["macs"] == 60
    assert rep.totals["ops"]["bias"] == 6


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("target,xs", [([0, 0, -1], IMG), ([1, -1], IMG), ([0, 8, 7], TOK), ([1, 2, 2, 5, 3], TEN)])
def test_reshape(target, xs):
    check([node("Reshape", ["x", "s"])], xs, inits=[("s", np.array(target, np.int64))])


def test_reshape_folding_the_batch_and_back():
    """MobileViT's unfolding: Reshape(B*C*H, W) folds the batch into axis 0; the reshape back
    to (B, C, H, W) gives an image again."""
    nodes = [node("Reshape", ["x", "s1"], "f"), node("Mul", ["f", "k"], "m"), node("Reshape", ["m", "s2"])]
    g, *_ = check(nodes, IMG, inits=[("s1", np.array([20, 6], np.int64)), ("k", f32(6)),
                                     ("s2", np.array([1, 4, 5, 6], np.int64))])
    assert g["y"].shape == (5, 6, 4)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_flatten(axis):
    check([node("Flatten", ["x"], axis=axis)], TEN)


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 3, 2]])
def test_transpose(perm):
    check([node("Transpose", ["x"], perm=perm)], IMG)


def test_squeeze_unsqueeze_opset13_and_11():
    nodes = [node("Unsqueeze", ["x", "a"], "u"), node("Squeeze", ["u", "a"])]
    check(nodes, TOK, inits=[("a", np.array([2], np.int64))])
    nodes = [node("Unsqueeze", ["x"], "u", axes=[-1]), node("Squeeze", ["u"], axes=[3])]
    check(nodes, TOK, opset=11)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [4], [2], [1]), ([-3], [2 ** 63 - 1], [3], [1]), ([0, 1], [4, 6], [1, 3], [2, 2]),
    ([4], [-2 ** 63], [2], [-1]), ([-1], [0], [-1], [-2]), ([2], [1000], [1], [3])])
def test_slice(starts, ends, axes, steps):
    ins = [("st", np.array(starts, np.int64)), ("en", np.array(ends, np.int64)),
           ("ax", np.array(axes, np.int64)), ("sp", np.array(steps, np.int64))]
    check([node("Slice", ["x", "st", "en", "ax", "sp"])], IMG, inits=ins)
    spec = yaml.safe_load(lower_model(model([node("Slice", ["x", "st", "en", "ax", "sp"])], IMG[0], ["y"],
                                            inits=ins), IMG[0], IMG[1])[0])
    item = spec["layers"][0]  # INT64_MAX and friends are written as the axis' end
    sizes = [(4, 5, 6)[a] for a in item["axes"]]
    assert all(-n - 1 <= e <= n for e, n in zip(item["ends"], sizes))


def test_split_equal_unequal_and_opset18():
    nodes = [node("Split", ["x", "s"], ["a", "b", "c"], axis=1)]
    g, *_ = check(nodes, IMG, inits=[("s", np.array([1, 2, 1], np.int64))], outs=("a", "b", "c"))
    assert [n.shape for n in g.layers] == [(5, 6, 1), (5, 6, 2), (5, 6, 1)]
    check([node("Split", ["x"], ["a", "b"], axis=-1)], TOK, outs=("a", "b"))
    check([node("Split", ["x"], ["a", "b", "c"], axis=3, num_outputs=3)], IMG, outs=("a", "b", "c"), opset=18)


def test_concat_activations_and_a_class_token():
    nodes = [node("Sin", ["x"], "s"), node("Concat", ["x", "s"], axis=1)]
    g, *_ = check(nodes, IMG)
    assert g["y"].shape == (5, 6, 8)
    cls = f32(1, 1, 8)
    g, *_ = check([node("Concat", ["c", "x"], axis=1)], TOK, inits=[("c", cls)], learned={"c"})
    rep = analyze_graph(g)
    assert list(rep["y"].shape) == [8, 8] and rep["y"].shape.kind == "tokens" and rep["y"].weights == 8


@pytest.mark.parametrize("idx,axis", [(0, 1), ([0, 2, -1], 2), ([[1, 0], [2, 2]], 1), (-1, -1)])
def test_gather(idx, axis):
    check([node("Gather", ["x", "i"], axis=axis)], TOK, inits=[("i", np.array(idx, np.int64))])


def test_expand_tile():
    nodes = [node("ReduceMean", ["x"], "m", axes=[2, 3]), node("Expand", ["m", "s"])]
    g, *_ = check(nodes, IMG, inits=[("s", np.array([1, 4, 5, 6], np.int64))])
    assert analyze_graph(g)["y"].view
    check([node("Tile", ["x", "r"])], TOK, inits=[("r", np.array([1, 2, 3], np.int64))])


# ----------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"])
def test_binary_with_constants_of_every_broadcast_shape(op):
    pos = op == "Pow"
    for c in (np.float32(1.7), f32(1, 4, 1, 1, pos=True), f32(6, pos=True), f32(5, 6, pos=True)):
        check([node(op, ["x", "c"])], IMG, inits=[("c", np.asarray(c))], pos=pos)
    check([node(op, ["c", "x"])], IMG, inits=[("c", f32(4, 1, 1, pos=True))], pos=pos)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_between_activations_broadcast(op):
    nodes = [node("ReduceMean", ["x"], "m", axes=[1]), node(op, ["x", "m"])]  # (1, C, H, W) with (1, 1, H, W)
    g, *_ = check(nodes, IMG)
    klass = {"Add": "add", "Sub": "add", "Mul": "mul", "Div": "mul"}.get(op, "activation")
    assert analyze_graph(g)["y"].ops == {klass: 4 * 5 * 6}


def test_variadic_max_and_learned_bias_counts_as_bias():
    check([node("Sin", ["x"], "s"), node("Max", ["x", "s", "c", "d"])], IMG,
          inits=[("c", np.float32(0.1)), ("d", np.float32(-0.2))])
    g, *_ = check([node("Add", ["x", "b"])], TOK, inits=[("b", f32(8))], learned={"b"})
    rep = analyze_graph(g)
    assert (rep["y"].biases, rep["y"].ops) == (8, {"bias": 56})


@pytest.mark.parametrize("op", ["Sqrt", "Exp", "Log", "Erf", "Neg", "Abs", "Reciprocal", "Sin", "Cos",
                                "Floor", "Ceil", "Round", "Sign"])
def test_unary(op):
    g, *_ = check([node(op, ["x"])], TEN, pos=op in ("Sqrt", "Log"))
    assert analyze_graph(g)["y"].ops == {"activation": 60}


@pytest.mark.parametrize("op,attrs,opset", [
    ("Tanh", {}, 17), ("Sigmoid", {}, 17), ("Relu", {}, 17), ("LeakyRelu", {"alpha": 0.2}, 17),
    ("Elu", {"alpha": 0.5}, 17), ("Selu", {}, 17), ("Softplus", {}, 17), ("HardSigmoid", {"alpha": 1 / 6}, 17),
    ("HardSwish", {}, 17), ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20), ("Mish", {}, 18)])
def test_activations_on_tokens(op, attrs, opset):
    check([node(op, ["x"], **attrs)], TOK, opset=opset)


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (-1.0, 0.5), (None, 0.2)])
def test_clip(lo, hi):
    ins, inits = ["x"], []
    for k, v in (("lo", lo), ("hi", hi)):
        ins.append(k if v is not None else "")
        if v is not None:
            inits.append((k, np.float32(v)))
    check([node("Clip", ins)], IMG, inits=inits)


def test_prelu_channel_and_shared():
    g, *_ = check([node("PRelu", ["x", "s"])], IMG, inits=[("s", f32(4, 1, 1))], learned={"s"})
    assert analyze_graph(g).totals["params"] == 4
    check([node("PRelu", ["x", "s"])], IMG, inits=[("s", f32(1))], learned={"s"})


# ----------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"])
@pytest.mark.parametrize("axes,keep", [([1], 1), ([2, 3], 0), ([-1], 1)])
def test_reduce(op, axes, keep):
    if op == "ReduceSum":  # (opset 13+: its axes are an input)
        g, *_ = check([node(op, ["x", "a"], keepdims=keep)], IMG, inits=[("a", np.array(axes, np.int64))])
    else:
        g, *_ = check([node(op, ["x"], axes=axes, keepdims=keep)], IMG)
    n = int(np.prod([(1, 4, 5, 6)[a] for a in axes]))
    out = 4 * 5 * 6 // n
    ops = analyze_graph(g)["y"].ops
    assert ops["pool"] == (n - 1) * out  # n − 1 combines per output
    if op == "ReduceMean" and axes == [2, 3]:  # a global average pool: the same count
        assert ops == {"pool": 4 * (30 - 1)}


def test_reduce_axes_input_opset18_and_sum13():
    check([node("ReduceSum", ["x", "a"], keepdims=0)], TOK, inits=[("a", np.array([1], np.int64))], opset=13)
    check([node("ReduceMax", ["x", "a"])], TOK, inits=[("a", np.array([-1], np.int64))], opset=18)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_softmax(op, axis):
    g, *_ = check([node(op, ["x"], axis=axis)], IMG)
    assert analyze_graph(g)["y"].ops == {"activation": 120}


def test_softmax_opset11_last_axis():
    check([node("Softmax", ["x"], axis=2)], TOK, opset=11)


@pytest.mark.parametrize("mode,pads,value", [
    ("constant", [0, 0, 1, 2, 0, 0, 3, 0], 0.0), ("constant", [0, 1, 0, 0, 0, 2, 0, 1], 1.5),
    ("reflect", [0, 0, 2, 1, 0, 0, 1, 2], None), ("edge", [0, 2, 1, 0, 0, 0, 3, 1], None)])
def test_pad(mode, pads, value):
    ins, inits = ["x", "p"], [("p", np.array(pads, np.int64))]
    if value is not None:
        ins.append("v")
        inits.append(("v", np.float32(value)))
    g, *_ = check([node("Pad", ins, mode=mode)], IMG, inits=inits)
    assert analyze_graph(g)["y"].ops == {}


def test_layernormalization_over_channels_of_tokens_and_over_a_whole_image():
    g, *_ = check([node("LayerNormalization", ["x", "g", "b"], axis=-1, epsilon=1e-6)], TOK,
                  inits=[("g", f32(8)), ("b", f32(8))], learned={"g", "b"})
    assert analyze_graph(g).totals["params"] == 16
    check([node("LayerNormalization", ["x", "g", "b"], axis=1)], IMG, inits=[("g", f32(4, 5, 6)),
                                                                            ("b", f32(4, 5, 6))])


def test_constant_identity_cast_dropout_where():
    c = helper.make_tensor("v", onnx.TensorProto.FLOAT, [], [0.25])
    nodes = [node("Constant", [], "k", value=c), node("Mul", ["x", "k"], "m"), node("Identity", ["m"], "i"),
             node("Cast", ["i"], "c", to=onnx.TensorProto.FLOAT), node("Dropout", ["c"])]
    m = model(nodes, IMG[0], ["y"])
    spec = yaml.safe_load(lower_model(m, IMG[0], IMG[1])[0])
    assert spec["layers"][0]["const"] == {"index": 1, "value": 0.25}  # a number written in the spec
    check(nodes, IMG)
    mask = R.random((7, 7)) > 0.4
    g, *_ = check([node("Where", ["m", "x", "f"])], ((1, 7, 7), "7x7 tokens"),
                  inits=[("m", mask), ("f", np.float32(-1e4))])
    rep = analyze_graph(g)
    assert (rep["y"].nontrainable, rep["y"].ops) == (49, {"activation": 49})


def test_a_reshape_with_the_batch_inside_keeps_it_or_folds_it():
    """At the import batch (1) the batch axis inside a tensor (torchvision's L x N x E) stays an
    axis of its own when the values before it keep their count, else it is folded (batch None):
    one sample's values either way."""
    kept = lower("Reshape", {}, [Operand((7, 1, 24), name="input", batch=1), Operand((4,), np.array([7, 1, 3, 8]))],
                 name="n")
    assert kept.items[0].as_spec()["shape"] == [7, 3, 8] and kept.outputs == [("n", 1)]
    folded = lower("Reshape", {}, [Operand((7, 1, 8), name="input", batch=1), Operand((3,), np.array([7, 2, 4]))],
                   name="n")
    assert folded.items[0].as_spec()["shape"] == [7, 2, 4] and folded.outputs == [("n", None)]


def test_a_value_of_constants_only_broadcasts_against_the_activations_without_a_batch_axis():
    """A value of constants only (``fixed``: Swin V2's position bias, computed by layers with
    inputs: []) has no batch axis: Unsqueeze(0) puts a leading 1 in front of it (the batch axis
    at the import, its sample unchanged), and it meets windows' logits whose batch is folded
    into axis 0 (batch None) as a constant would — the per-sample shapes broadcast as ONNX's do.
    An activation of that layout is refused, and so is a fixed value that would meet the batch."""
    up = lower("Unsqueeze", {}, [Operand((3, 4, 4), name="bias", batch=None, fixed=True),
                                 Operand((1,), np.array([0]))], name="n")
    assert up.items[0].kind == "identity" and up.outputs == [("n", 0)]
    with pytest.raises(Unlowered, match="before the folded batch"):
        lower("Unsqueeze", {}, [Operand((3, 4, 4), name="x", batch=None), Operand((1,), np.array([0]))], name="n")
    logits = Operand((4, 3, 4, 4), name="logits", batch=None)
    add = lower("Add", {}, [logits, Operand((1, 3, 4, 4), name="bias", batch=0, fixed=True)], name="n")
    assert add.items[0].as_spec()["inputs"] == ["logits", "bias"] and add.outputs == [("n", None)]
    scale = lower("Mul", {}, [Operand((1, 3, 4, 4), name="x"), Operand((3, 1, 1), name="s", batch=None, fixed=True)],
                  name="n")
    assert scale.outputs == [("n", 0)]
    with pytest.raises(Unlowered, match="different ranks"):
        lower("Add", {}, [logits, Operand((1, 3, 4, 4), name="bias", batch=0)], name="n")
    with pytest.raises(Unlowered, match="against the batch axis"):
        lower("Add", {}, [Operand((1, 3, 4, 4), name="x"), Operand((2, 3, 4, 4), name="b", batch=None, fixed=True)],
              name="n")


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("op,attrs,ins,why", [
    ("MatMul", {}, [Operand((1, 7, 8), name="input"), Operand((1, 8), name="input")], "different ranks"),
    ("ReduceMean", {}, [Operand((1, 7, 8), name="input")], "reduces the batch axis"),
    ("Softmax", {"axis": 0}, [Operand((1, 7, 8), name="input")], "batch axis"),
    ("TopK", {}, [Operand((1, 7, 8), name="input")], "no low-level form"),
    ("Einsum", {"equation": "bij,bjk->bik"}, [Operand((1, 7, 8), name="input"), Operand((8, 4), np.ones((8, 4)))],
     "two activations"),
    ("Einsum", {"equation": "bij,bij->bi"}, [Operand((1, 7, 8), name="input"), Operand((1, 7, 8), name="input")],
     "not a batched matrix product"),
    ("Add", {}, [Operand((3,), np.ones(3)), Operand((3,), np.ones(3))], "every input is a constant"),
    ("Where", {}, [Operand((1, 7, 8), name="input"), Operand((1, 7, 8), name="input"),
                   Operand((1, 7, 8), name="input")], "condition is computed"),
    ("Expand", {}, [Operand((1, 7, 8), name="input"), Operand((3,), np.array([4, 7, 8]))], "over the batch"),
    ("Cast", {"to": 7}, [Operand((1, 7, 8), name="input")], "non-float"),
    ("Add", {}, [Operand((1, 7, 8), name="input"), Operand((1, 8), name="input")], "different ranks"),
])
def test_refusals_say_why(op, attrs, ins, why):
    with pytest.raises(Unlowered, match=why) as e:
        lower(op, attrs, ins, name="n")
    assert e.value.op == op


def test_interface_example_in_the_docstring():
    w = np.ones((96, 384), np.float32)
    low = lower("MatMul", {}, [Operand((1, 196, 96), name="ln"), Operand((96, 384), value=w, learned=True)],
                name="fc1")
    assert low.items[0].as_spec() == {"matmul": None, "const": {"index": 1, "shape": [96, 384], "learned": True},
                                      "name": "fc1", "inputs": ["ln"]}
    assert low.items[0].params["const1"] is not None and low.outputs == [("fc1", 0)]


def test_a_spec_of_lowered_items_loads_with_its_kinds():
    """Tokens (N, C) transposed to (C, N) are a 1-D image (L x C, PyTorch's C, L): a Conv1d
    reads them (Conformer's convolution module)."""
    m = model([node("Transpose", ["x"], "t", perm=[0, 2, 1]), node("Reshape", ["t", "s"], "r")], (1, 7, 8), ["r"],
              inits=[("s", np.array([1, 56], np.int64))])
    text, *_ = lower_model(m, (1, 7, 8), "7x8 tokens")
    g = load_spec_text(text)
    g.infer()
    assert g["t"].shape == (7, 8) and g["r"].shape == (56,)


# ----------------------------------------------------------------------------- random cases
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(-6, 6), st.integers(-7, 7), st.sampled_from([1, 2, -1, -2])),
                min_size=1, max_size=3, unique_by=lambda t: t[0]))
def test_slice_any_starts_ends_steps(spec):
    """Every ONNX Slice (negative, out of range, backwards) equals onnxruntime's."""
    shape = (1, 3, 4, 5)
    starts, ends, axes, steps = ([s[i] for s in spec] for i in (1, 2, 0, 3))
    for a, s0, e, stp in zip(axes, starts, ends, steps):  # skip empty results (ONNX allows them, specs do not)
        n = shape[a]
        if not len(range(*slice(s0, e, stp).indices(n))):
            return
    ins = [("st", np.array(starts, np.int64)), ("en", np.array(ends, np.int64)),
           ("ax", np.array(axes, np.int64)), ("sp", np.array(steps, np.int64))]
    check([node("Slice", ["x", "st", "en", "ax", "sp"])], TEN, inits=ins)


@_SETTINGS
@given(st.permutations([1, 2, 3]), st.sampled_from([[1, 60], [1, 12, 5], [1, 3, 2, 2, 5], [1, 5, 12]]))
def test_transpose_then_reshape(perm, target):
    check([node("Transpose", ["x"], "t", perm=[0, *perm]), node("Reshape", ["t", "s"])], TEN,
          inits=[("s", np.array(target, np.int64))])


@_SETTINGS
@given(st.lists(st.sampled_from([1, None]), min_size=0, max_size=3), st.sampled_from(["Add", "Mul", "Sub", "Div"]))
def test_binary_any_broadcastable_constant(ones, op):
    dims = (3, 4, 5)[3 - len(ones):]
    shape = tuple(1 if o == 1 else d for o, d in zip(ones, dims))
    check([node(op, ["x", "c"])], TEN, inits=[("c", np.asarray(f32(*shape, pos=True)))])
