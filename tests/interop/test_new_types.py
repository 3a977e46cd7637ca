"""The bridges for the layer types of issue 10 (silu … adaptive pools, 3-D inputs): a spec that
uses every one, spec → ONNX → spec with identical per-layer figures; onnxruntime against the
exported PyTorch module on the same weights; and the exported module run through
torch.onnx.export and `import --torch` (PyTorch's own ONNX patterns) with the same totals."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from conftest import run_module  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.analysis.rf import receptive_fields  # noqa: E402
from cnncalc.interop.onnx_export import OPSET, export_onnx, random_weights  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

SPEC_2D = """
name: newtypes2d
input: 12x12x3
layers:
  - {conv: 8, kernel: 3, pad: 1, name: c1, activation: silu}
  - {batchnorm: , name: bn1, activation: hardswish}
  - {gelu: , approximate: tanh, name: g1}
  - {conv: 8, kernel: 3, pad: 1, name: c2, activation: gelu}
  - {mish: , name: m1}
  - {elu: 0.5, name: e1}
  - {selu: , name: s1}
  - {softplus: 2.0, name: sp1}
  - {prelu: , name: pr1}
  - {prelu: shared, name: pr2}
  - {hardsigmoid: , name: hs1}
  - {layernorm: , eps: 1.0e-6, name: ln1}
  - {groupnorm: 4, name: gn1}
  - {instancenorm: , name: in1}
  - {scale: 0.5, name: ls1}
  - {global_avgpool: , name: gap}
  - {conv: 8, kernel: 1, name: gate, activation: sigmoid}
  - {mul: , inputs: [ls1, gate], name: se}
  - {adaptive_avgpool: 6, name: aap}           # before the pads: PyTorch's exporter needs a static size
  - {padding: 1, mode: reflect, name: rp}
  - {padding: [[0, 1], [1, 0]], name: zp}
  - {padding: 2, mode: replicate, name: ep}
  - {upsample: 2, name: up_n}
  - {upsample: 2, mode: bilinear, align_corners: true, name: up_b}
  - {crop: [[1, 1], [2, 2]], name: cr}
  - {layernorm: all, name: ln_all}
  - {upsample: , size: 100x97, mode: bilinear, name: up_s}
  - {adaptive_maxpool: 1, name: amp}
  - {flatten: , name: flat}
  - {fc: 5, name: fc}
"""

SPEC_3D = """
name: newtypes3d
input: 4x8x8x2
layers:
  - {conv: 4, kernel: 3, pad: 1, name: c1}
  - {batchnorm: , name: bn1, activation: relu}
  - {maxpool: 2, name: p1}
  - {upsample: 2, mode: trilinear, name: up}
  - {deconv: 3, kernel: 2, stride: 2, name: d1}
  - {avgpool: 2, name: p2}
  - {instancenorm: , affine: false, name: in1}
  - {groupnorm: 3, name: gn1}
  - {adaptive_avgpool: 1, name: aap}
  - {flatten: , name: flat}
  - {fc: 3, name: fc}
"""

SPECS = {"2d": SPEC_2D, "3d": SPEC_3D}


def _graph(key):
    g = load_spec_text(SPECS[key], file=f"newtypes{key}.yaml")
    g.infer()
    return g


@pytest.mark.parametrize("key", SPECS)
def test_round_trip_every_new_type(key):
    g = _graph(key)
    model = export_onnx(g, seed=1)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET == 17
    imp = import_model(model, source=f"{key}.onnx")
    g2 = load_spec_text(imp.text, file=f"{key}-imported.yaml")
    r1, r2 = analyze_graph(g), analyze_graph(g2)
    assert [x.name for x in r1.layers] == [x.name for x in r2.layers]
    for a, b in zip(r1.layers, r2.layers):
        assert (a.shape, a.weights, a.biases, a.nontrainable, a.macs) == \
               (b.shape, b.weights, b.biases, b.nontrainable, b.macs), a.name
    kinds = {n.name: (n.layer.kind, n.layer.activation) for n in g2.layers}
    if key == "2d":  # the decomposed activations come back as what they compute
        assert kinds["c1"] == ("conv", "silu") and kinds["c2"] == ("conv", "gelu")
        assert kinds["g1"] == ("gelu", None) and g2["g1"].layer.args["approximate"] == "tanh"
        assert kinds["m1"][0] == "mish" and g2["sp1"].layer.args["beta"] == 2.0
        assert g2["e1"].layer.args["alpha"] == 0.5 and g2["ln1"].layer.args["eps"] == 1e-6
        assert g2["ln_all"].layer.args["over"] == "all" and g2["rp"].layer.args["mode"] == "reflect"
    else:
        assert g2["in1"].layer.args["affine"] is False
    rf1, rf2 = receptive_fields(g), receptive_fields(g2)
    for n, f in rf1.layers.items():
        h = rf2.layers[n]
        assert (f.r, f.S, f.P) == (h.r, h.S, h.P), n
    p, _ = random_weights(g, seed=1)
    for layer, tensors in p.items():  # the weights come back unchanged (layouts included)
        for t, a in tensors.items():
            np.testing.assert_array_equal(imp.params[layer][t], a, err_msg=f"{layer}/{t}")


def _torch_module(g):
    from cnncalc.interop.torch_export import torch_source
    ns = {}
    exec(compile(torch_source(g), f"{g.name}_net.py", "exec"), ns)
    return ns["Net"]().eval()


def _nchw(shape):
    return (shape[-1], *shape[:-1])


@pytest.mark.parametrize("key", SPECS)
def test_onnxruntime_equals_exported_torch(key):
    """The same random weights (BN statistics too) in onnxruntime and in the exported module."""
    ort = pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from cnncalc.interop.torch_export import torch_state_dict
    g = _graph(key)
    rng = np.random.default_rng(7)
    params, state = random_weights(g, seed=7)
    for layer, s in state.items():
        for t in s:
            s[t] = (rng.random(s[t].shape, dtype=np.float32) + 0.5) if "var" in t else \
                rng.standard_normal(s[t].shape, dtype=np.float32) * 0.1
    m = _torch_module(g)
    m.load_state_dict(torch_state_dict(g, params, state))
    assert sum(p.numel() for p in m.parameters()) == sum(a.size for t in params.values() for a in t.values())
    x = rng.standard_normal((2, *_nchw(g.input_shape)), dtype=np.float32)
    sess = ort.InferenceSession(export_onnx(g, params, state).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x})
    with torch.no_grad():
        yt = m(torch.from_numpy(x)).numpy()
    assert y.shape == yt.shape == (2, g[g.outputs[0]].shape[-1])
    assert np.abs(y - yt).max() <= 1e-4 * max(float(np.abs(yt).max()), 1.0)


@pytest.mark.torch
@pytest.mark.slow  # a subprocess each (torch import): seconds
@pytest.mark.parametrize("key", SPECS)
def test_torch_onnx_export_of_the_module_imports_with_the_same_totals(tmp_path, key):
    """PyTorch's own ONNX (Sigmoid·x, the Erf GELU, Softplus·Tanh·x, GroupNorm through
    InstanceNormalization, permute–LayerNorm–permute, Resize, reflect Pad, crop Slices) reads
    back with the spec's parameter and MAC totals and output shape."""
    pytest.importorskip("torch")
    from cnncalc.interop.torch_export import torch_source
    g = _graph(key)
    src = tmp_path / "net.py"
    src.write_text(torch_source(g) + "\n\ndef make():\n    return Net()\n")
    out = tmp_path / "imported.yaml"
    shape = "x".join(map(str, g.input_shape))
    res = run_module("import", "--torch", f"{src}:make", "--input", shape, "-o", out)
    assert res.returncode == 0, res.stderr
    res = run_module("summarize", out, "--format", "json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    rep = analyze_graph(g)
    assert got["totals"]["params"] == sum(x.params for x in rep.layers)
    assert got["totals"]["macs"] == sum(x.macs for x in rep.layers)
    assert got["layers"][-1]["shape"] == list(g[g.outputs[0]].shape)
    assert "opaque" not in {x["type"] for x in got["layers"]}


def _one_op_model(op, opset, **attrs):
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "c.weight")
    nodes = [h.make_node("Conv", ["x", "c.weight"], ["a"], name="/c/Conv", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["a"], ["r"], name="/r/Relu"),  # fused: the op is a layer of its own
             h.make_node(op, ["r"], ["y"], name=f"/act/{op}", **attrs)]
    g = h.make_graph(nodes, "one", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("op,opset,attrs,want", [
    ("Gelu", 20, {}, {"gelu": None}),
    ("Gelu", 20, {"approximate": "tanh"}, {"gelu": None, "approximate": "tanh"}),
    ("Mish", 18, {}, {"mish": None}),
    ("HardSigmoid", 17, {"alpha": 1 / 6}, {"hardsigmoid": None}),
    ("Elu", 17, {"alpha": 0.25}, {"elu": None, "alpha": 0.25}),
])
def test_single_onnx_ops_of_newer_opsets(op, opset, attrs, want):
    imp = import_model(_one_op_model(op, opset, **attrs), source="one.onnx")
    g = load_spec_text(imp.text)
    assert [(n.kind, n.layer.activation) for n in g.layers] == [("conv", "relu"), (next(iter(want)), None)]
    assert {k: v for k, v in g.layers[-1].layer.args.items() if k in want} == \
        {k: v for k, v in want.items() if v is not None}


def test_hardsigmoid_with_onnx_default_alpha_is_not_pytorchs():
    """ONNX's default HardSigmoid (α = 0.2) is not relu6(x + 3)/6: listed as unmapped."""
    from cnncalc.interop import InteropError
    with pytest.raises(InteropError, match=r"1 ONNX node\(s\) cannot be imported exactly.*\n  node '/act/HardSigmoid' "
                                           r"\(HardSigmoid\): alpha 0.2, beta 0.5"):
        import_model(_one_op_model("HardSigmoid", 17), source="one.onnx")
