"""ONNX bridges: spec → ONNX → spec round trip over the zoo, numerics against onnxruntime and
the numba runtime, import of foreign graphs, and the bad inputs (exit 2)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from conftest import run_module, zoo_params  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.analysis.rf import receptive_fields  # noqa: E402
from cnncalc.interop import onnx_safe_name  # noqa: E402
from cnncalc.interop.onnx_export import export_onnx, unsupported_layers  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec, load_spec_text, zoo_names  # noqa: E402

# What the exporter cannot write (and so the round trip skips), with the reason.
NOT_EXPORTABLE = {
    "alphago-policy": "conv13 has an untied (per-position) bias; ONNX Conv has one bias per filter",
    "lenet5-paper": "C3's connection table (LeCun 1998, Table I) is not a grouped convolution",
}
BIG = {"cifar_resnet1202", "cifar_resnet110", "densenet201", "densenet169", "densenet121", "resnet152", "resnet152_tv",
       "resnet101", "resnet101_tv"}


def _slow(n):
    """Deep graphs, or > 40M parameters (the weights' bytes dominate the export: C3D's 80M
    took the test process from 0.7 to 2.2 GB)."""
    return n in BIG or n.startswith(("vgg", "alexnet", "zfnet", "c3d", "wide_resnet"))


def _zoo_params():
    """The zoo sample fast (tests/conftest.py), the other specs and the big ones slow."""
    return zoo_params(slow=[n for n in zoo_names() if _slow(n)])


def test_unsupported_list_is_exactly_the_documented_one():
    found = {n for n in zoo_names() if unsupported_layers(load_spec(n))}
    assert found == set(NOT_EXPORTABLE)


@pytest.mark.parametrize("name", _zoo_params())
def test_zoo_round_trip(name):
    if name in NOT_EXPORTABLE:
        pytest.skip(NOT_EXPORTABLE[name])
    g = load_spec(name)
    g.infer()
    model = export_onnx(g, seed=None)  # zero weights: the structure is what is compared here
    onnx.checker.check_model(model)
    imp = import_model(model, source=f"{name}.onnx")
    g2 = load_spec_text(imp.text, file=f"{name}-imported.yaml")
    r1, r2 = analyze_graph(g), analyze_graph(g2)
    assert [onnx_safe_name(x.name) for x in r1.layers] == [x.name for x in r2.layers]
    for a, b in zip(r1.layers, r2.layers):
        assert (a.shape, a.weights, a.biases, a.nontrainable, a.macs) == \
               (b.shape, b.weights, b.biases, b.nontrainable, b.macs), a.name
    rf1, rf2 = receptive_fields(g), receptive_fields(g2)
    for n, f in rf1.layers.items():
        h = rf2.layers[onnx_safe_name(n)]
        assert (f.r, f.S, f.P) == (h.r, h.S, h.P), n


def test_weights_come_back_unchanged():
    from cnncalc.interop.onnx_export import random_weights
    g = load_spec("cifar_resnet20")
    g.infer()
    p, s = random_weights(g, seed=5)
    imp = import_model(export_onnx(g, p, s), source="r20.onnx")
    for layer, tensors in p.items():
        for t, a in tensors.items():
            np.testing.assert_array_equal(imp.params[onnx_safe_name(layer)][t], a)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_tiny", "swin_t"])
def test_token_specs_come_back_with_their_weights(name):
    """Random weights through export → import: every tensor the same (Swin's bias table rebuilt
    from the (heads, 49, 49) bias the export folds it into), the imported spec on the runtime
    gives the original's output bit for bit, and onnxruntime agrees (check_import)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("numba")
    from cnncalc.interop.check import check_import
    from cnncalc.runtime.executor import Net, random_input

    g = load_spec(name)
    g.infer()
    net = Net(g, dtype="float32", seed=3)
    imp = import_model(export_onnx(g, net.params, net.state), source=f"{name}.onnx")
    for layer, tensors in net.params.items():
        for t, a in tensors.items():
            np.testing.assert_array_equal(np.asarray(imp.params[onnx_safe_name(layer)][t]).reshape(a.shape), a)
    g2 = load_spec_text(imp.text)
    g2.infer()
    net2 = Net(g2, dtype="float32", seed=0)
    for layer, tensors in net2.params.items():
        for t, a in tensors.items():
            a[...] = np.asarray(imp.params[layer][t]).reshape(a.shape)
    x = random_input(g.input_shape, 1, np.random.default_rng(0), "float32")
    np.testing.assert_array_equal(net2.forward(x)[g2.outputs[0]], net.forward(x)[g.outputs[0]])
    res = check_import(g2, imp, batch=1)
    assert res.ran and res.ok, res.line()


NUMERIC = [("lenet5", None), ("vgg16", (32, 32, 3)), ("resnet50", (64, 64, 3)),
           ("mobilenet_v2", (64, 64, 3))]


def _runtime_and_inputs(name, shape):
    from cnncalc.runtime.executor import Net, random_input

    g = load_spec(name)
    g.infer(shape)
    net = Net(g, dtype="float32", seed=3)
    x = random_input(g.input_shape, 2, np.random.default_rng(0), "float32")
    return g, net, x


@pytest.mark.slow
@pytest.mark.parametrize("name,shape", NUMERIC)
def test_numerics_onnxruntime_torch_runtime(name, shape):
    """The same weights and input: onnxruntime, the exported torch module and cnncalc's runtime."""
    ort = pytest.importorskip("onnxruntime")
    g, net, x = _runtime_and_inputs(name, shape)
    ref = net.forward(x)[g.outputs[0]]
    model = export_onnx(g, net.params, net.state)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x})
    scale = float(np.abs(ref).max())  # random-weight ResNet-50 logits reach ~1e3: compare relative to it
    assert np.abs(y.reshape(ref.shape) - ref).max() <= 1e-4 * max(scale, 1.0)
    try:
        import torch
    except ImportError:
        return
    from cnncalc.interop.torch_export import torch_source, torch_state_dict
    ns = {}
    exec(compile(torch_source(g), f"{name}_net.py", "exec"), ns)
    m = ns["Net"]().eval()
    m.load_state_dict(torch_state_dict(g, net.params, net.state))
    with torch.no_grad():
        yt = m(torch.from_numpy(x)).numpy()
    assert np.abs(yt.reshape(ref.shape) - ref).max() <= 1e-4 * max(scale, 1.0)
    assert np.abs(yt.reshape(y.shape) - y).max() <= 1e-4 * max(scale, 1.0)


def _tiny_model(op="Celu", dims=(1, 3, 8, 8)):  # Celu: no cnncalc layer type
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "c.weight")
    nodes = [h.make_node("Conv", ["x", "c.weight"], ["a"], name="/c/Conv", pads=[1, 1, 1, 1]),
             h.make_node(op, ["a"], ["y"], name="/act/" + op)]
    g = h.make_graph(nodes, "tiny", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(dims))],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [dims[0], 4, *dims[2:]])], [w])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def test_unmapped_op_lists_nodes_and_exits_2(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_tiny_model(), str(p))
    res = run_module("import", p)
    assert res.returncode == 2, res.stderr
    assert "1 ONNX node(s) cannot be imported exactly" in res.stderr
    assert "node '/act/Celu' (Celu): no cnncalc layer type for this op" in res.stderr
    assert f"hint: cnncalc import {p} --opaque keeps them" in res.stderr and "Traceback" not in res.stderr


def test_opaque_keeps_the_op_with_its_inferred_shape(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_tiny_model(), str(p))
    res = run_module("import", p, "--opaque", "-o", tmp_path / "m.yaml")
    assert res.returncode == 0, res.stderr
    assert "opaque" in res.stderr
    res = run_module("summarize", tmp_path / "m.yaml", "--format", "json")
    import json
    layers = json.loads(res.stdout)["layers"]
    assert [(x["type"], x["shape"], x["params"], x["macs"]) for x in layers] == [
        ("conv", [8, 8, 4], 3 * 3 * 3 * 4, 8 * 8 * 4 * 27),  # (3*3*3)*4, no bias; 64 positions * 4 filters * 27
        ("opaque", [8, 8, 4], 0, 0)]
    assert json.loads(res.stdout)["totals"]["macs_unknown"] == ["act"]
    assert "OPAQUE Celu" in layers[1]["description"]
    res = run_module("summarize", tmp_path / "m.yaml")
    assert "WARNING: 1 opaque layer(s) (act)" in res.stdout


def test_dynamic_spatial_size_needs_input(tmp_path):
    p = tmp_path / "m.onnx"
    m = _tiny_model("Relu", dims=("N", 3, "H", "W"))
    onnx.save(m, str(p))
    res = run_module("summarize", p)
    assert res.returncode == 2 and "dynamic sizes" in res.stderr and "--input" in res.stderr
    res = run_module("summarize", p, "--input", "16x16x3", "--format", "json")
    assert res.returncode == 0, res.stderr
    import json
    assert json.loads(res.stdout)["layers"][-1]["shape"] == [16, 16, 4]


@pytest.mark.parametrize("data", [b"", b"not a protobuf at all \xff\xfe", "truncated"])
def test_corrupt_or_truncated_onnx_exits_2(tmp_path, data):
    p = tmp_path / "bad.onnx"
    if data == "truncated":
        g = load_spec("lenet5")
        data = export_onnx(g).SerializeToString()[:700]
    p.write_bytes(data)
    res = run_module("summarize", p)
    assert res.returncode == 2, res.stderr
    assert "bad.onnx" in res.stderr and "Traceback" not in res.stderr


def test_shape_subgraph_is_folded_into_flatten():
    """x.view(x.size(0), -1): Shape → Gather → Unsqueeze → Concat → Reshape becomes one flatten."""
    h = onnx.helper
    i64 = lambda name, v: onnx.numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    w = onnx.numpy_helper.from_array(np.ones((5, 2 * 4 * 4), np.float32), "fc.weight")
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             h.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             h.make_node("Reshape", ["x", "target"], ["flat"], name="/view"),
             h.make_node("Gemm", ["flat", "fc.weight"], ["y"], name="/fc/Gemm", transB=1)]
    g = h.make_graph(nodes, "fold", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2, 4, 4])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 5])],
                     [w, i64("zero", 0), i64("ax0", [0]), i64("minus1", [-1])])
    imp = import_model(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), source="fold.onnx")
    g2 = load_spec_text(imp.text)
    assert [(n.kind, n.name) for n in g2.layers] == [("flatten", "view"), ("fc", "fc")]
    assert analyze_graph(g2).layers[-1].params == 32 * 5  # no bias


def test_yaml_spec_analysis_does_not_import_onnx():
    code = ("import sys; from cnncalc.cli import main\n"
            "main(['summarize', 'resnet18', '--format', 'json'], standalone_mode=False)\n"
            "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'torch', 'numba')))")
    import os
    import subprocess
    import sys

    from conftest import ROOT
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert res.stdout.strip().splitlines()[-1] == "MODULES []"


def test_export_cli_writes_a_checked_model_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "l.onnx"
    res = run_module("export", "lenet5", "--to", "onnx", "-o", out)
    assert res.returncode == 0, res.stderr
    m = onnx.load(str(out))
    onnx.checker.check_model(m)
    assert m.opset_import[0].version == 17
    assert [n.name for n in m.graph.node if "/" not in n.name] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    res = run_module("export", "lenet5", "--to", "onnx", "-o", out)
    assert res.returncode == 2 and "--force" in res.stderr
