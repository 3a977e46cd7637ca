"""End to end: a hand-built ONNX graph of a channels-last ConvNeXt block followed by a
multi-head self-attention over its tokens (timm's form: qkv Linear, Reshape to heads,
permute(2, 0, 3, 1, 4), unbind, QKᵀ, softmax over the keys, AV, merge, projection) is lowered
node by node; the spec is analysed (MACs and parameters by hand arithmetic), executed (equal
to onnxruntime) and exported to ONNX and to PyTorch (equal again). The receptive field stays
exact through the channels-last block and becomes unknown at QKᵀ, named."""
from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnxgraph import helper, model, run_both  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.analysis.rf import receptive_fields  # noqa: E402
from cnncalc.interop.onnx_export import export_onnx  # noqa: E402

C, H, W, HEADS, D, HID = 16, 7, 7, 2, 8, 64
N = H * W
R = np.random.default_rng(11)


def w(*shape, scale=0.3):
    return (R.standard_normal(shape) * scale).astype(np.float32)


def i64(*v):
    return np.array(v, np.int64)


def n(op, ins, out, **attrs):
    return helper.make_node(op, ins, [out], name=out, **attrs)


def graph():
    inits = {
        "dw.weight": w(C, 1, 7, 7), "dw.bias": w(C), "ln.weight": 1 + w(C), "ln.bias": w(C),
        "fc1.weight": w(C, HID), "fc1.bias": w(HID), "fc2.weight": w(HID, C), "fc2.bias": w(C),
        "gamma": w(C), "sqrt2": np.float32(math.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5),
        "to_tokens": i64(1, C, N), "ln2.weight": 1 + w(C), "ln2.bias": w(C), "qkv.weight": w(C, 3 * C),
        "qkv.bias": w(3 * C), "heads": i64(1, N, 3, HEADS, D), "scale": np.float32(D ** -0.5),
        "merge": i64(1, N, C), "proj.weight": w(C, C), "proj.bias": w(C), "head.weight": w(10, C),
        "head.bias": w(10), "i0": np.array(0, np.int64), "i1": np.array(1, np.int64), "i2": np.array(2, np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "dw.weight", "dw.bias"], ["dw"], name="dw", group=C, pads=[3, 3, 3, 3],
                         kernel_shape=[7, 7]),
        # the channels-last ConvNeXt block (torchvision CNBlock / timm ConvNeXtBlock, ls γ)
        n("Transpose", ["dw"], "to_last", perm=[0, 2, 3, 1]),
        n("LayerNormalization", ["to_last", "ln.weight", "ln.bias"], "ln", axis=-1, epsilon=1e-6),
        n("MatMul", ["ln", "fc1.weight"], "fc1"), n("Add", ["fc1", "fc1.bias"], "fc1b"),
        n("Div", ["fc1b", "sqrt2"], "g_div"), n("Erf", ["g_div"], "g_erf"), n("Add", ["g_erf", "one"], "g_add"),
        n("Mul", ["fc1b", "g_add"], "g_mul"), n("Mul", ["g_mul", "half"], "gelu"),
        n("MatMul", ["gelu", "fc2.weight"], "fc2"), n("Add", ["fc2", "fc2.bias"], "fc2b"),
        n("Mul", ["fc2b", "gamma"], "ls"), n("Transpose", ["ls"], "back", perm=[0, 3, 1, 2]),
        n("Add", ["back", "x"], "block"),
        # tokens and one multi-head self-attention (timm Attention)
        n("Reshape", ["block", "to_tokens"], "flat"), n("Transpose", ["flat"], "tokens", perm=[0, 2, 1]),
        n("LayerNormalization", ["tokens", "ln2.weight", "ln2.bias"], "ln2", axis=-1),
        n("MatMul", ["ln2", "qkv.weight"], "qkv_mm"), n("Add", ["qkv_mm", "qkv.bias"], "qkv"),
        n("Reshape", ["qkv", "heads"], "qkv_heads"), n("Transpose", ["qkv_heads"], "qkv_p", perm=[2, 0, 3, 1, 4]),
        n("Gather", ["qkv_p", "i0"], "q", axis=0), n("Gather", ["qkv_p", "i1"], "k", axis=0),
        n("Gather", ["qkv_p", "i2"], "v", axis=0), n("Transpose", ["k"], "kt", perm=[0, 1, 3, 2]),
        n("MatMul", ["q", "kt"], "qk"), n("Mul", ["qk", "scale"], "scaled"), n("Softmax", ["scaled"], "attn", axis=-1),
        n("MatMul", ["attn", "v"], "av"), n("Transpose", ["av"], "av_t", perm=[0, 2, 1, 3]),
        n("Reshape", ["av_t", "merge"], "merged"), n("MatMul", ["merged", "proj.weight"], "proj_mm"),
        n("Add", ["proj_mm", "proj.bias"], "proj"), n("Add", ["proj", "tokens"], "res"),
        n("ReduceMean", ["res"], "pool", axes=[1], keepdims=0),
        n("Gemm", ["pool", "head.weight", "head.bias"], "y", transB=1),
    ]
    m = model(nodes, (1, C, H, W), ["y"], inits=list(inits.items()))
    learned = {k for k in inits if k.endswith((".weight", ".bias")) or k == "gamma"}
    lifted = {"dw": ({"conv": C, "kernel": 7, "pad": 3, "groups": C},
                     {"weight": inits["dw.weight"], "bias": inits["dw.bias"]})}
    return m, learned, lifted


@pytest.fixture(scope="module")
def lowered():
    m, learned, lifted = graph()
    x = R.standard_normal((3, C, H, W)).astype(np.float32)
    g, net, ours, theirs = run_both(m, x, f"{H}x{W}x{C}", learned=learned, lifted=lifted)
    return m, g, net, x, ours


def test_counts_by_hand_arithmetic(lowered):
    _, g, *_ = lowered
    rep = analyze_graph(g)
    macs = {
        "dw": H * W * C * 7 * 7,
        "fc1": H * W * HID * C, "fc2": H * W * C * HID,       # channels-last Linears: out values * K
        "qkv_mm": N * 3 * C * C, "qk": HEADS * N * N * D, "av": HEADS * N * D * N, "proj_mm": N * C * C,
        "y.matmul": 10 * C,
    }
    assert {r.name: r.macs for r in rep.layers if r.macs} == macs
    assert rep.totals["macs"] == sum(macs.values()) == 265_936
    params = (C * 49 + C) + 2 * C + (C * HID + HID) + (HID * C + C) + C + 2 * C + (C * 3 * C + 3 * C) \
        + (C * C + C) + (10 * C + 10)
    assert rep.totals["params"] == params == 4_266
    # the block's image comes back from channels-last; tokens are tokens
    assert g["block"].shape == (H, W, C) and g["tokens"].shape.kind == "tokens"
    assert rep["attn"].ops == {"activation": HEADS * N * N} and rep["scaled"].ops == {"mul": HEADS * N * N}


def test_receptive_field_exact_through_the_block_unknown_at_qkt(lowered):
    _, g, *_ = lowered
    rf = receptive_fields(g)
    for name in ("dw", "to_last", "ln", "fc1", "gelu", "fc2b", "ls", "back", "block", "tokens", "qkv", "q"):
        f = rf[name]
        assert (f.r, f.S, f.P, f.unknown) == ((7, 7), (1, 1), (3, 3), None), name
    assert rf["qk"].unknown == "qk" and rf["y"].unknown == "qk"


def test_export_onnx_and_torch_compute_the_same(lowered):
    torch = pytest.importorskip("torch")
    from cnncalc.interop.torch_export import torch_source, torch_state_dict
    _, g, net, x, ours = lowered
    params, state = net.weights
    params = {k: {t: np.asarray(a, np.float32) for t, a in v.items()} for k, v in net.params.items()}
    state = {k: {t: np.asarray(a, np.float32) for t, a in v.items()} for k, v in net.state.items()}
    exported = export_onnx(g, params, state)
    onnx.checker.check_model(exported, full_check=True)
    sess = ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x})  # the whole batch at once: the export has a batch axis
    np.testing.assert_allclose(y, ours[0], rtol=1e-4, atol=1e-4 * np.abs(ours[0]).max())
    ns = {}
    exec(compile(torch_source(g), "net.py", "exec"), ns)
    module = ns["Net"]()
    module.load_state_dict(torch_state_dict(g, params, state))
    assert sum(p.numel() for p in module.parameters()) == analyze_graph(g).totals["params"]
    with torch.no_grad():
        yt = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(yt, ours[0], rtol=1e-4, atol=1e-4 * np.abs(ours[0]).max())
