"""Weight standardisation (issue 23): timm's ScaledStdConv2d (NFNet: gain, gamma, eps 1e-5),
StdConv2d (BiT: no gain, eps 1e-8; here depthwise) and ScaledStdConv2dSame (dm_nfnet: TF "same"
padding; here grouped) import exactly by both paths (parameters = sum(p.numel()), MACs = the
dispatcher's count, outputs = the module / onnxruntime), and the spec exports to ONNX and to
PyTorch computing the same outputs, the exported module holding timm's weights."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.torch

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.check import check_import  # noqa: E402
from cnncalc.interop.onnx_export import export_onnx  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.interop.torch_export import torch_source, torch_state_dict  # noqa: E402
from cnncalc.interop.torch_import import torch_to_onnx  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402
from tests.interop.zoocheck import both_paths, prepare  # noqa: E402


class StdNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from timm.layers import ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d

        self.a = ScaledStdConv2d(3, 8, 3, gamma=1.7, eps=1e-5)
        self.b = StdConv2d(8, 8, 3, groups=8, eps=1e-8)
        self.c = ScaledStdConv2dSame(8, 6, 3, stride=2, groups=2)
        self.fc = torch.nn.Linear(6, 5)

    def forward(self, x):
        y = self.c(self.b(torch.relu(self.a(x))))
        return self.fc(y.mean((2, 3)))


def _model():
    torch.manual_seed(0)
    return prepare(StdNet(), 12)  # (the gains, all 1 at the start, made random)


def test_timm_standardised_convs_import_exactly_by_both_paths():
    r = both_paths(StdNet(), "stdnet", 12)
    # 3*3*3*8 + 8 + 8 gains; 3*3*1*8 (+ no bias, no gain); 3*3*4*6 + 6 + 6 gains; 6*5 + 5
    assert r["params"] == 232 + 72 + 228 + 35
    for path in ("torch", "onnx"):
        assert r[path]["status"] == "exact", r[path]


def test_the_spec_exports_to_onnx_and_pytorch_with_the_same_outputs_and_timms_weights():
    model = _model()
    imp = import_model(torch_to_onnx(model, (12, 12, 3)), source="stdnet", input_shape=(12, 12, 3), name="stdnet")
    imp.reference = model
    g = load_spec_text(imp.text)
    g.infer()
    assert "standardize: {eps: 1.0e-05, gain: true}" in imp.text  # (gain * scale folded by the exporter)
    assert "standardize: {eps: 1.0e-08, gain: false}" in imp.text
    assert check_import(g, imp).ok
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 3, 12, 12)).astype(np.float32))
    with torch.no_grad():
        want = model(x).numpy()
    params = {n.name: imp.params.get(n.name, {}) for n in g.layers}
    # ONNX: onnxruntime on cnncalc's export
    sess = ort.InferenceSession(export_onnx(g, params, {}).SerializeToString(), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1].numpy()})[0] for i in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    # PyTorch: the exported module, loaded with the imported weights under timm's own keys
    ns = {}
    exec(compile(torch_source(g), "net.py", "exec"), ns)
    net = ns["Net"]().eval()
    sd = torch_state_dict(g, params, {}, original_names=True)
    net.load_state_dict(sd)
    own = model.state_dict()
    for k in ("a.weight", "a.bias", "b.weight", "c.weight", "c.bias", "fc.weight"):
        assert torch.equal(sd[k], own[k]), k
    # the folded file holds gain * scale (timm's gain (F, 1, 1, 1) times gamma / sqrt(fan-in))
    torch.testing.assert_close(sd["a.gain"], (model.a.gain * model.a.scale).view(-1))
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_cnncalcs_onnx_export_imports_back_to_the_same_spec():
    spec = """input: 10x10x3
layers:
  - {conv: 4, kernel: 3, pad: 1, standardize: {eps: 1.0e-05, gain: true, scale: 0.25}, activation: relu, name: a}
  - {dwconv: 3, standardize: {eps: 1.0e-08, scale: 0.5}, name: b}
  - {conv: 6, kernel: 1, groups: 2, bias: false, standardize: {gain: true}, name: c}
"""
    g = load_spec_text(spec)
    g.infer()
    rng = np.random.default_rng(0)
    params = {n.name: {k: rng.standard_normal(s).astype(np.float32) for k, (s, _) in n.layer.param_shapes().items()}
              for n in g.layers}
    imp = import_model(export_onnx(g, params, {}), source="m.onnx")
    for line in ("{conv: 4, kernel: 3, pad: 1, standardize: {eps: 1.0e-05, gain: true, scale: 0.25}, activation: relu",
                 "{dwconv: 3, standardize: {eps: 1.0e-08, gain: false, scale: 0.5}",
                 "standardize: {eps: 1.0e-06, gain: true}"):
        assert line in imp.text, imp.text
    back = load_spec_text(imp.text)
    back.infer()
    assert analyze_graph(back).totals["params"] == analyze_graph(g).totals["params"] == 4 * 27 + 4 + 4 + 4 * 9 + 4 + 6 * 2 + 6  # (gains: 4, 6)
    for n in g.layers:
        for k, a in params[n.name].items():
            np.testing.assert_array_equal(imp.params[n.name][k], a)
    res = check_import(back, imp)  # the spec on the runtime against onnxruntime on the exported file
    assert res.ran and res.ok, res.line()


def test_a_written_spec_exports_a_module_that_loads_timms_state_dict():
    """`standardize: {gain: true, scale: fan_in, gamma: 1.7}` is ScaledStdConv2d(gamma=1.7): the
    exported PyTorch module loads timm's own state_dict (its gain of shape (F, 1, 1, 1) too) and
    computes timm's outputs."""
    from timm.layers import ScaledStdConv2d, StdConv2d

    g = load_spec_text("input: 12x12x3\nlayers:\n"
                       "  - {conv: 8, kernel: 3, pad: 1, standardize: {eps: 1.0e-5, gain: true, scale: fan_in, "
                       "gamma: 1.7}, name: a}\n"
                       "  - {conv: 4, kernel: 3, pad: 1, groups: 2, bias: false, standardize: {eps: 1.0e-8}, name: b}\n")
    g.infer()
    torch.manual_seed(1)
    ref = torch.nn.Sequential()
    ref.add_module("a", ScaledStdConv2d(3, 8, 3, gamma=1.7, eps=1e-5))
    ref.add_module("b", StdConv2d(8, 4, 3, groups=2, eps=1e-8))
    ref = prepare(ref.eval(), 12)
    ns = {}
    exec(compile(torch_source(g), "net.py", "exec"), ns)
    net = ns["Net"]().eval()
    net.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-5)
