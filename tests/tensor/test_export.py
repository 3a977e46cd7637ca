"""export --to onnx and --to torch of the tensor vocabulary: round trips on outputs, with
weights (learned constants, buffers and written values), against the runtime."""
from __future__ import annotations

import numpy as np
import pytest

import cnncalc
from cnncalc.analysis.report import analyze_graph
from cnncalc.runtime.executor import Net, random_input

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from cnncalc.interop.onnx_export import export_onnx  # noqa: E402
from cnncalc.interop.torch_export import torch_source, torch_state_dict  # noqa: E402

SPECS = ["tests/runtime/specs/tensor.yaml", "tests/runtime/specs/constant_source.yaml", "tests/runtime/specs/shared.yaml", "examples/tensors/convnext_block.yaml", "examples/tensors/attention.yaml"]


def _torch_layout(x, shape):
    return x[:, :, 0, :] if shape.__class__ is tuple and len(shape) == 2 else x


@pytest.mark.parametrize("spec", SPECS)
def test_onnx_and_torch_exports_compute_what_the_runtime_computes(spec):
    g = cnncalc.load(spec).infer()
    net = Net(g, dtype="float32", seed=3)
    rng = np.random.default_rng(2)
    for tensors in (net.params, net.state):
        for name, d in tensors.items():
            for k, a in d.items():  # masks 0/1, everything else away from 0
                a[...] = (rng.random(a.shape) > 0.3) if g[name].kind == "where" else \
                    rng.uniform(0.5, 1.5, a.shape) * rng.choice([-1, 1], a.shape)
    x = random_input(g.input_shape, 3, rng, "float32")
    ref = net.forward(x)[g.outputs[0]]
    ref = _torch_layout(ref, g[g.outputs[0]].shape)
    xt = _torch_layout(x, g.input_shape)
    model = export_onnx(g, net.params, net.state)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": xt})
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * scale)
    ns = {}
    exec(compile(torch_source(g), "net.py", "exec"), ns)
    module = ns["Net"]()
    sd = torch_state_dict(g, net.params, net.state)
    module.load_state_dict(sd)  # strict: every key, nothing missing
    assert sum(p.numel() for p in module.parameters()) == analyze_graph(g).totals["params"]
    assert sum(b.numel() for k, b in module.state_dict().items() if k not in dict(module.named_parameters())) \
        == analyze_graph(g).totals["nontrainable"]
    with torch.no_grad():
        yt = module.eval()(torch.from_numpy(np.ascontiguousarray(xt))).numpy()
    np.testing.assert_allclose(yt, ref, rtol=1e-4, atol=1e-5 * scale)


def test_export_cli_writes_a_tensor_spec(cli, tmp_path):
    out = tmp_path / "att.onnx"
    res = cli("export", "examples/tensors/attention.yaml", "--to", "onnx", "-o", out)
    assert res.exit_code == 0, res.output
    m = onnx.load(out)
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 196, 64]  # tokens: batch first, then N, C
    res = cli("export", "examples/tensors/attention.yaml", "--to", "torch", "-o", tmp_path / "att.py")
    assert res.exit_code == 0, res.output
    src = (tmp_path / "att.py").read_text()
    assert "class Constants(nn.Module)" in src and "torch.matmul(" in src
