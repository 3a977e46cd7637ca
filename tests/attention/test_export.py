"""export --to onnx / torch of the token layers, tested on outputs: the same weights and input give
the runtime's output in onnxruntime and in the exported PyTorch module."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnncalc.interop.onnx_export import export_onnx
from cnncalc.runtime.executor import Net, random_input
from cnncalc.spec.loader import load_spec, load_spec_text

from .test_runtime import TINY_SWIN, TINY_VIT

TOKENS = Path(__file__).parents[1] / "runtime" / "specs" / "tokens.yaml"
MOBILEVIT = """
name: a MobileViT block, small
input: 8x8x4
layers:
  - concat:
      - []
      - - {conv: 4, kernel: 3, pad: same, name: local}
        - {conv: 8, kernel: 1, name: to_d}
        - {reshape: [8, 4, 2, 4, 2], name: split}
        - {transpose: [2, 4, 1, 3, 0], name: unfold}
        - {reshape: [4, 16, 8], name: patches}
        - {layernorm: , name: ln}
        - {attention: 2, name: attn}
        - {mlp: 16, act: silu, name: mlp}
        - {reshape: [2, 2, 4, 4, 8], name: unpatch}
        - {transpose: [4, 2, 0, 3, 1], name: fold}
        - {reshape: [8, 8, 8], name: merge}
        - {conv: 4, kernel: 1, name: proj}
    name: cat
  - {conv: 4, kernel: 3, pad: same, name: fuse}
"""

MAXVIT = """
name: attention in 2x2 windows of 4x4 tokens, each with its bias table (MaxViT's block attention), small
input: 8x8x4
layers:
  - {conv: 8, kernel: 1, name: to_d}
  - {reshape: [8, 2, 4, 2, 4], name: split}
  - {transpose: [1, 3, 2, 4, 0], name: part}
  - {reshape: [4, 16, 8], name: windows}
  - {attention: 2, bias_window: 4, name: attn}
  - {reshape: [2, 2, 4, 4, 8], name: back}
  - {transpose: [4, 0, 2, 1, 3], name: unpart}
  - {reshape: [8, 8, 8], name: merge}
"""

BEIT = """
name: a class token and 4x4 patches, BEiT's relative position bias (its 3 class-token rows), small
input: 8x8x3
layers:
  - {patch_embed: 8, patch: 2, name: embed}
  - {cls_token: , name: cls}
  - {attention: 2, bias_window: 4, cls_bias: true, qkv_bias: qv, name: attn}
  - {layernorm: , name: norm}
"""

QV_APART = """
name: qv biases with value_dim ≠ head_dim (q, k, v cut apart in the export)
input: 4x4x6
layers:
  - {tokens: , name: tok}
  - {attention: 2, head_dim: 3, value_dim: 5, qkv_bias: qv, name: attn}
"""


def _qv(text):
    """A spec's attention layers with ``qkv_bias: qv`` (BEiT's and Swin V2's biases)."""
    return load_spec_text(text.replace("{attention: 2,", "{attention: 2, qkv_bias: qv,"))


CASES = {"tokens": lambda: load_spec(TOKENS), "vit": lambda: load_spec_text(TINY_VIT),
         "swin": lambda: load_spec_text(TINY_SWIN), "mobilevit": lambda: load_spec_text(MOBILEVIT),
         "maxvit": lambda: load_spec_text(MAXVIT), "vit_qv": lambda: _qv(TINY_VIT), "swin_qv": lambda: _qv(TINY_SWIN),
         "qv_apart": lambda: load_spec_text(QV_APART), "beit": lambda: load_spec_text(BEIT)}


def _run(name):
    g = CASES[name]()
    g.infer()
    net = Net(g, dtype="float32", seed=3)
    for p in net.params.values():  # (zero-initialised tables and biases would hide a wrong index)
        for k, a in p.items():
            a += np.random.default_rng(len(k)).standard_normal(a.shape).astype(a.dtype) * 0.1
    x = random_input(g.input_shape, 2, np.random.default_rng(0), "float32")
    return g, net, x, net.forward(x)[g.outputs[0]]


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_export_equals_the_runtime(name):
    ort = pytest.importorskip("onnxruntime")
    g, net, x, ref = _run(name)
    model = export_onnx(g, net.params, net.state)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x})
    assert np.abs(y.reshape(ref.shape) - ref).max() <= 1e-5 * max(float(np.abs(ref).max()), 1.0)


@pytest.mark.parametrize("name", list(CASES))
def test_torch_export_equals_the_runtime(name):
    torch = pytest.importorskip("torch")
    from cnncalc.interop.torch_export import torch_source, torch_state_dict
    g, net, x, ref = _run(name)
    ns = {}
    exec(compile(torch_source(g), f"{name}_net.py", "exec"), ns)
    m = ns["Net"]().eval()
    m.load_state_dict(torch_state_dict(g, net.params, net.state))  # (strict: every key, none left over)
    assert sum(p.numel() for p in m.parameters()) == net.param_count()
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    assert np.abs(y.reshape(ref.shape) - ref).max() <= 1e-5 * max(float(np.abs(ref).max()), 1.0)


# the cases whose export imports back into the spec's layers (not "tokens": its attention with
# value_dim ≠ head_dim exports q, k, v cut apart, which stays low-level ops)
BACK = ["vit", "swin", "mobilevit", "maxvit", "vit_qv", "swin_qv", "beit"]


@pytest.mark.parametrize("name", BACK)
@pytest.mark.parametrize("path", ["onnx", "torch"])
def test_export_imports_back_into_the_token_layers(name, path):
    """The exported model imports back into the spec's layers (the residual adds as binary adds;
    through torch, the layers up to the head), and the imported spec with the imported weights
    computes the runtime's output."""
    pytest.importorskip("onnxruntime")
    from cnncalc.interop.onnx import import_model

    g, net, x, ref = _run(name)
    if path == "onnx":
        model = export_onnx(g, net.params, net.state)
    else:
        pytest.importorskip("torch")
        from cnncalc.interop.torch_export import torch_source, torch_state_dict
        from cnncalc.interop.torch_import import torch_to_onnx
        ns = {}
        exec(compile(torch_source(g), f"{name}_net.py", "exec"), ns)
        m = ns["Net"]().eval()
        m.load_state_dict(torch_state_dict(g, net.params, net.state))
        model = torch_to_onnx(m, g.input_shape)
    imp = import_model(model, source=f"{name}.onnx")
    g2 = load_spec_text(imp.text)
    g2.infer()
    want = ["binary" if n.kind == "add" else n.kind for n in g.layers]
    got = [n.kind for n in g2.layers]
    if path == "torch" and name in ("vit", "vit_qv"):  # (the class token's x[:, 0]: a gather and a flatten)
        want, got = want[:-2], got[:len(want) - 2]
    assert got == want, imp.text
    net2 = Net(g2, dtype="float32", seed=0)
    assert net2.param_count() == net.param_count()  # (qv: the fixed-zero k bias came back as no parameter)
    assert [n.layer.args["qkv_bias"] for n in g2.layers if n.kind == "attention"] == \
        [n.layer.args["qkv_bias"] for n in g.layers if n.kind == "attention"]
    for layer, tensors in net2.params.items():
        for t, a in tensors.items():
            a[...] = np.asarray(imp.params[layer][t]).reshape(a.shape)
    y = net2.forward(x)[g2.outputs[0]]
    assert np.abs(y.reshape(ref.shape) - ref).max() <= 1e-5 * max(float(np.abs(ref).max()), 1.0)
