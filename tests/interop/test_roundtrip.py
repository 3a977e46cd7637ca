"""Imports prove themselves, on OUTPUTS (issue 23 point 2): torchvision models imported with
--torch run on cnncalc's runtime with the module's own weights and equal the module; the spec
exported to ONNX (onnxruntime) and to PyTorch (the .pt loaded into the exported class under the
module's own key names) equals the module too. Parameters equal sum(p.numel()), conv/linear MACs
equal a forward-hook count. A handful of small models run by default; every torchvision
classification model and the four segmentation models run in the slow group."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.torch

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop import InteropError  # noqa: E402
from cnncalc.interop.check import check_import  # noqa: E402
from cnncalc.interop import onnx_export  # noqa: E402
from cnncalc.interop.onnx_export import export_onnx, save_onnx, tensor_bytes  # noqa: E402
from cnncalc.interop.torch_export import torch_source, torch_state_dict  # noqa: E402
from cnncalc.interop.torch_import import import_torch  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402
from tests.interop.tvnets import build  # noqa: E402
from tests.interop.zoocheck import dispatch_macs  # noqa: E402

TV = Path(__file__).with_name("tvnets.py")


def _outputs(y):
    if isinstance(y, dict):
        return [t for v in y.values() for t in _outputs(v)]
    if isinstance(y, (list, tuple)):
        return [t for v in y for t in _outputs(v)]
    return [y]


def _close(a, b, what):
    b = np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    d = float(np.abs(np.asarray(a, np.float64).reshape(b.shape) - b).max())
    assert d <= 1e-4 * scale, f"{what}: max |difference| {d:.3g} (outputs up to {scale:.3g})"


def roundtrip(name: str, shape: tuple, *, macs_from_hooks: bool = True, ref: str | None = None):
    """Import --torch, check on the runtime, export to ONNX and PyTorch; all compared on outputs.
    ``ref``: another FILE.py:FACTORY than tvnets.py's ``name``."""
    imp = import_torch(ref or f"{TV}:{name}", shape)
    module = imp.reference
    graph = load_spec_text(imp.text)
    graph.infer()
    totals = analyze_graph(graph).totals
    assert totals["params"] == sum(p.numel() for p in module.parameters()) == imp.source_count
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, shape[-1], *shape[:-1])).astype(np.float32))
    if macs_from_hooks:
        assert totals["macs"] == dispatch_macs(module, x[:1], grad=True)
    with torch.no_grad():
        want = [t.numpy() for t in _outputs(module(x))]
    assert [tuple(graph[o].shape) for o in graph.outputs] == [(*w.shape[2:], w.shape[1]) if w.ndim > 2
                                                             else tuple(w.shape[1:]) for w in want]
    # 1. import → runtime (what `cnncalc import` runs before writing anything)
    res = check_import(graph, imp)
    assert res.ran and res.ok, res.line()
    del res
    # 2. import → export ONNX (with the weights) → onnxruntime
    params = {n.name: imp.params.get(n.name, {}) for n in graph.layers}
    state = {n.name: imp.state.get(n.name, {}) for n in graph.layers}
    proto = export_onnx(graph, params, state)
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as tmp:
        if tensor_bytes(proto) > onnx_export.EXTERNAL_ABOVE:  # over protobuf's 2 GiB: as `cnncalc export` writes it
            path = Path(tmp) / f"{name}.onnx"
            assert save_onnx(proto, path) == Path(tmp) / f"{name}.onnx.data"
            del proto
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        else:
            sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            del proto
        xin = sess.get_inputs()[0].name
        got = [np.concatenate(k) for k in zip(*[sess.run(None, {xin: x[i:i + 1].numpy()}) for i in range(len(x))])]
        del sess
    for a, b in zip(got, want):
        _close(a, b, f"{name}: exported ONNX vs the torch module")
    # 3. import → export PyTorch; the .pt (the module's own key names) loads into the class
    ns = {}
    exec(compile(torch_source(graph), "net.py", "exec"), ns)
    sd = torch_state_dict(graph, params, state, original_names=True)
    if sum(t.numel() * t.element_size() for t in sd.values()) > onnx_export.EXTERNAL_ABOVE:
        net = ns["Net"]().eval()  # a big model: the .pt's tensors assigned, its random weights freed
        net.load_state_dict(sd, assign=True)  # (the meta device would leave its constants unmade)
    else:
        net = ns["Net"]().eval()
        net.load_state_dict(sd)
    own = module.state_dict()
    shared = [k for k in sd if k in own]
    assert shared, "no key of the .pt is the module's own"
    for k in shared:
        assert torch.equal(sd[k].float(), own[k].float()), k
    with torch.no_grad():
        for a, b in zip(_outputs(net(x)), want):
            _close(a.numpy(), b, f"{name}: exported PyTorch module vs the torch module")
    return graph, imp


@pytest.mark.parametrize("name,shape", [("resnet18", (64, 64, 3)), ("mobilenet_v3_small", (64, 64, 3))])
def test_round_trip_small_models(name, shape):
    roundtrip(name, shape)


def test_round_trip_through_external_data(monkeypatch):
    """The path of the models over 2 GiB (vit_h_14, regnet_y_128gf), forced on a small one:
    import --torch through a file with external data, the exported ONNX written as a pair and
    run by onnxruntime from it, the .pt assigned into the exported PyTorch module."""
    monkeypatch.setattr(onnx_export, "EXTERNAL_ABOVE", 0)
    calls = []
    real = save_onnx
    monkeypatch.setitem(globals(), "save_onnx", lambda *a, **k: calls.append(1) or real(*a, **k))
    roundtrip("resnet18", (32, 32, 3))
    assert calls == [1]


def test_the_check_catches_a_dropped_relu_after_a_residual_add():
    """The bug of issue 23: a spec without the ReLU after each residual add computes another
    network; the check says so (and the counts alone would not have)."""
    imp = import_torch(f"{TV}:resnet18", (32, 32, 3))
    good = load_spec_text(imp.text)
    good.infer()
    assert check_import(good, imp).ok
    assert "  add: {activation: relu}\n" in imp.text  # (factored into defaults, as in issue 23)
    bad = load_spec_text(imp.text.replace("  add: {activation: relu}\n", ""))
    bad.infer()
    res = check_import(bad, imp)
    assert res.ran and not res.ok and res.max_diff > 100 * 1e-4 * res.scale, res.line()
    assert "DIFFERENT network" in res.line()


def test_cli_import_prints_the_check_and_writes_a_loadable_pt(cli, tmp_path):
    spec, ck = tmp_path / "r.yaml", tmp_path / "r.npz"
    res = cli("import", "--torch", f"{TV}:resnet18", "--input", "32x32x3", "-o", spec, "--weights", ck)
    assert res.exit_code == 0, res.output
    assert "check: max |spec - the torch module| = " in res.output and "same network" in res.output
    res = cli("export", spec, "--to", "torch", "-o", tmp_path / "r_net.py", "--weights", ck)
    assert res.exit_code == 0, res.output
    ns = {}
    exec((tmp_path / "r_net.py").read_text(), ns)
    sd = torch.load(tmp_path / "r_net.pt")
    assert "layer1.0.conv1.weight" in sd  # torchvision's own key, not layer1_0_conv1.weight
    net = ns["Net"]()
    net.load_state_dict(sd)
    own = build("resnet18")
    own.load_state_dict(sd)  # and the .pt loads into torchvision's own resnet18
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _close(net.eval()(x).numpy(), own(x).numpy(), "exported module vs torchvision with the .pt")


def test_cli_no_check_skips_the_run(cli, tmp_path):
    res = cli("import", "--torch", f"{TV}:resnet18", "--input", "32x32x3", "-o", tmp_path / "r.yaml", "--no-check")
    assert res.exit_code == 0, res.output
    assert "check:" not in res.output


def test_onnx_file_import_checks_against_onnxruntime(cli, tmp_path):
    model = build("mobilenet_v3_small")
    path = tmp_path / "m.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17)
    res = cli("import", path, "-o", tmp_path / "m.yaml", "--weights", tmp_path / "m.npz")
    assert res.exit_code == 0, res.output
    assert "check: max |spec - onnxruntime| = " in res.output and "same network" in res.output
    res = cli("summarize", tmp_path / "m.yaml", "--format", "json")
    assert json.loads(res.stdout)["layers"]


# ----------------------------------------------------------------------------- the slow group
def _classification():
    import torchvision
    return sorted(torchvision.models.list_models(module=torchvision.models))


# smallest inputs torch.onnx.export accepts: inception's stem; an adaptive pool to 6x6 / 7x7
# (AlexNet, VGG) must divide its input, which only 224 does
SIZES = {"inception_v3": 80, "googlenet": 64, "alexnet": 224, **{f"vgg{d}{bn}": 224 for d in (11, 13, 16, 19)
                                                               for bn in ("", "_bn")}}
BIG = ("vit_", "swin_", "maxvit_")  # fixed 224 input (position embeddings, windows)


# the slow group (CI) round-trips the torchvision models whose patterns nothing else in it has
# (channel shuffle, fire-module concat, the channels-last CNBlock, dilation and an atrous head);
# the others are `zoo_full` (`python -m pytest -q -m zoo_full`; docs/contributing.md)
# (resnet18 and mobilenet_v3_small: test_round_trip_small_models; vit/swin/maxvit: issue 24's transformer import)
SAMPLE = ("shufflenet_v2_x0_5", "squeezenet1_1", "convnext_tiny", "lraspp_mobilenet_v3_large")
# refused by the importer, with the reason it prints (expected, strict: a fix shows as a failure)
REFUSED: dict[str, str] = {}


def _slow_params():
    try:
        names = _classification()
    except Exception:
        names = []
    seg = ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
    return [pytest.param(n, marks=pytest.mark.slow if n in SAMPLE else pytest.mark.zoo_full) for n in names + seg]


@pytest.mark.parametrize("name", _slow_params())
def test_round_trip_every_torchvision_model(name):
    size = 224 if name.startswith(BIG) else SIZES.get(name, 64)
    if name in REFUSED:  # an honest refusal (listed), never a wrong network
        with pytest.raises(InteropError, match=REFUSED[name]):
            roundtrip(name, (size, size, 3))
        return
    roundtrip(name, (size, size, 3))


@pytest.mark.parametrize("body", ["import sys\nsys.exit(3)\n", "import sys\ndef f():\n    sys.exit('bye')\n"])
def test_system_exit_in_the_factory_file_is_an_error_not_an_exit(cli, tmp_path, body):
    """`import --torch FILE.py:FACTORY` executes FILE.py (its --help says so): a SystemExit in it
    is reported like any other error (exit 2, a message), never cnncalc's own exit."""
    p = tmp_path / "m.py"
    p.write_text(body)
    res = cli("import", "--torch", f"{p}:f", "--input", "8x8x3")
    assert res.exit_code == 2 and "raised SystemExit" in res.output and "Traceback" not in res.output
    assert "executes FILE.py" in cli("import", "--help").output
