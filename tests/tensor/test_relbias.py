"""relbias: a learned table read by query-key offsets (LeViT's and EfficientViT's attention biases,
Swin's relative position bias). The index by hand, the counts by hand, the runtime's forward and
backward against PyTorch and centred differences, the exports against the runtime, bad specs."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cnncalc.analysis.report import analyze_graph
from cnncalc.errors import SpecError
from cnncalc.runtime.executor import Net, random_input
from cnncalc.runtime.gradcheck import rel_error
from cnncalc.runtime.kernels.tensor import relbias_index
from cnncalc.spec.loader import load_spec_text


def build(input_shape, layer):
    return load_spec_text(f"name: one\ninput: {input_shape}\nlayers:\n  - {layer}\n").infer()


# ----------------------------------------------------------------------------- the index, by hand
def test_abs_index_of_a_strided_query_grid_by_hand():
    """Keys on 4 x 4, queries at every 2nd position (0, 0), (0, 2), (2, 0), (2, 2): index =
    |Δy|·4 + |Δx| (LeViT's AttentionDownsample)."""
    idx = relbias_index((4, 4), (2, 2), "abs")
    assert idx.shape == (4, 16)
    assert idx[0].tolist() == list(range(16))  # the query at (0, 0): the key's own position
    # the query (2, 2) (row 3) and the key (0, 3) (column 3): |2 − 0|·4 + |2 − 3| = 9
    assert idx[3, 3] == 9
    # the query (0, 2) (row 1) and the key (3, 1) (column 13): 3·4 + 1 = 13
    assert idx[1, 13] == 13
    assert idx.max() == 15 and idx.min() == 0


def test_signed_index_is_swins():
    """A 2 x 2 window: offsets −1..1 per axis, (Δy + 1)·3 + (Δx + 1), 9 entries."""
    idx = relbias_index((2, 2), (1, 1), "signed")
    assert idx.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]


def test_index_equals_timms_levit_and_efficientvit():
    """A second method: timm's own index buffers (LeViT's Attention, AttentionDownsample with
    stride 2, EfficientViT-M's CascadedGroupAttention, Swin's WindowAttention)."""
    torch = pytest.importorskip("torch")
    levit = pytest.importorskip("timm.models.levit")
    evit = pytest.importorskip("timm.models.efficientvit_msra")
    del torch
    a = levit.Attention(16, 4, 2, resolution=5)
    assert (a.attention_bias_idxs.numpy() == relbias_index((5, 5), (1, 1), "abs")).all()
    d = levit.AttentionDownsample(16, 32, 4, 2, resolution=7, stride=2)
    assert (d.attention_bias_idxs.numpy() == relbias_index((7, 7), (2, 2), "abs")).all()
    c = evit.CascadedGroupAttention(16, 4, 2, resolution=4, kernels=(3, 3))
    assert (c.attention_bias_idxs.numpy() == relbias_index((4, 4), (1, 1), "abs")).all()
    swin = pytest.importorskip("timm.models.swin_transformer")
    for window in ((3, 3), (2, 4)):  # Swin's relative_position_index: signed offsets in a window
        s = swin.WindowAttention(16, 2, window_size=window)
        assert (s.relative_position_index.numpy() == relbias_index(window, (1, 1), "signed")).all()


# ----------------------------------------------------------------------------- counts
def test_counts_by_hand():
    """4 heads, keys on 8 x 8, queries every 2nd: the table 4 x 64 = 256 parameters (not the 4 x
    16 x 64 = 4,096 values it is read at), one bias op per logit, no MACs."""
    g = build("(4, 16, 64)", "{relbias: [8, 8], heads: 4, stride: 2, name: rb}")
    t = analyze_graph(g).totals
    assert t["params"] == 4 * 8 * 8
    assert t["macs"] == 0
    assert g["rb"].layer.ops() == {"bias": 4 * 16 * 64}
    g = build("(9, 9)", "{relbias: [3, 3], offsets: signed}")  # one head: (Nq, Nk); 5 x 5 offsets
    assert analyze_graph(g).totals["params"] == 25


@pytest.mark.parametrize("shape, layer, why", [
    ("(4, 16, 64)", "{relbias: [8, 8], heads: 4}", "ending in (4, 64, 64)"),  # stride 1: 64 queries
    ("(4, 16, 64)", "{relbias: [8, 8], heads: 2, stride: 2}", "ending in (2, 16, 64)"),
    ("(4, 16, 64)", "{relbias: , heads: 4}", "needs 'grid'"),
    ("(4, 16, 64)", "{relbias: [8, 8], heads: 4, stride: [2, 2, 2]}", "one whole number"),
    ("(4, 16, 64)", "{relbias: [8, 8], heads: 4, stride: 2, offsets: cyclic}", "unknown offsets"),
    ("8x8x16", "{relbias: [8, 8], heads: 16}", "reads a tensor"),
])
def test_bad_specs_are_clear_errors(shape, layer, why):
    with pytest.raises(SpecError, match=re.escape(why)):
        build(shape, layer)


def test_bad_spec_through_the_cli_exits_2(cli, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\ninput: (4, 16, 64)\nlayers:\n  - {relbias: [8, 8], heads: 4}\n")
    r = cli("summarize", str(p))
    assert r.exit_code == 2 and "relbias" in r.output and "Traceback" not in r.output


# ----------------------------------------------------------------------------- runtime
@pytest.mark.parametrize("shape, layer", [
    ("(2, 3, 4, 16)", "{relbias: [4, 4], heads: 3, stride: 2, name: rb}"),   # (windows, heads, Nq, Nk)
    ("(9, 9)", "{relbias: [3, 3], offsets: signed, name: rb}"),              # one head
    ("(2, 4, 12)", "{relbias: [3, 4], heads: 2, stride: [2, 3], name: rb}"),  # a 3 x 4 grid, strides 2, 3
])
def test_runtime_forward_backward_against_torch_and_differences(shape, layer):
    torch = pytest.importorskip("torch")
    g = build(shape, layer)
    L = g["rb"].layer
    net = Net(g, dtype="float64")
    rng = np.random.default_rng(4)
    table = net.params["rb"]["table"]
    table[...] = rng.standard_normal(table.shape)
    x = rng.standard_normal((2, *torch_shape(g.input_shape)))
    y, cache = net.run_node("rb", [x], train=True)
    dy = rng.standard_normal(y.shape)
    (dx,), dps = net.backward_node("rb", dy, cache)
    # PyTorch: the gather and its gradient by autograd (index by the hand rule of the tests above)
    idx = torch.from_numpy(relbias_index(L.grid, L.stride, L.args["offsets"]))
    xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(table.copy(), requires_grad=True)
    b = tt[:, idx]
    yt = xt + (b if L.table[0] > 1 else b[0])
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dps["table"], tt.grad.numpy(), rtol=1e-10, atol=1e-12)
    # centred differences of Σ dy ⊙ y over the table (the scatter of the gradient)
    flat = table.reshape(-1)
    num = []
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + 1e-6
        fp = float(np.sum(dy * net.run_node("rb", [x], train=True)[0]))
        flat[i] = old - 1e-6
        fm = float(np.sum(dy * net.run_node("rb", [x], train=True)[0]))
        flat[i] = old
        num.append((fp - fm) / 2e-6)
    assert rel_error(np.array(num), dps["table"].reshape(-1)) < 1e-7


def torch_shape(shape):
    return tuple(shape)


SPEC = """name: levit-like attention with a subsampled query grid
input: (8, 64, 16)
layers:
  - {slice: , starts: [0], ends: [4], axes: [0], name: kk}
  - {matmul: , const: {shape: [16, 16]}, name: q}
  - {slice: , starts: [0], ends: [16], axes: [1], name: qs}
  - {transpose: [0, 2, 1], inputs: [kk], name: kt}
  - {matmul: , inputs: [qs, kt], name: logits}
  - {relbias: [8, 8], heads: 4, stride: 2, name: rb}
  - {softmax: , axis: -1, name: attn}
  - {matmul: , inputs: [attn, kk], name: av}
"""


def test_exports_compute_what_the_runtime_computes():
    """export --to onnx (Gather of the table by the index + Add) on onnxruntime and --to torch
    (a RelBias module with the index as a buffer) against the runtime, random table; the
    PyTorch module's parameters are the table's, not the gathered values."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from cnncalc.interop.onnx_export import export_onnx
    from cnncalc.interop.torch_export import torch_source, torch_state_dict

    g = load_spec_text(SPEC).infer()
    assert tuple(g["logits"].shape) == (4, 16, 64)
    net = Net(g, dtype="float32", seed=3)
    rng = np.random.default_rng(2)
    for d in net.params.values():
        for a in d.values():
            a[...] = rng.standard_normal(a.shape)
    x = random_input(g.input_shape, 3, rng, "float32")
    ref = net.forward(x)[g.outputs[0]]
    model = export_onnx(g, net.params, net.state)
    onnx.checker.check_model(model, full_check=True)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    ns = {}
    exec(compile(torch_source(g), "net.py", "exec"), ns)
    module = ns["Net"]()
    module.load_state_dict(torch_state_dict(g, net.params, net.state))
    assert sum(p.numel() for p in module.parameters()) == analyze_graph(g).totals["params"] == 16 * 16 + 4 * 64
    with torch.no_grad():
        yt = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(yt, ref, rtol=1e-4, atol=1e-5)
