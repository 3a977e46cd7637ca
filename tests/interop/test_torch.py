"""PyTorch bridges: the exported module of every zoo spec, and hand-built models imported
with --torch (parameter count = sum(p.numel()); conv/linear MACs from forward hooks)."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytestmark = pytest.mark.torch

from conftest import run_module  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.onnx_export import unsupported_layers  # noqa: E402
from cnncalc.interop.torch_export import _attr_path, torch_source  # noqa: E402
from cnncalc.spec.loader import load_spec, zoo_names  # noqa: E402

NETS = Path(__file__).with_name("nets.py")


def _module(graph):
    ns = {}
    exec(compile(torch_source(graph), "net.py", "exec"), ns)
    with torch.device("meta"):  # shapes without allocating VGG's 138M weights
        return ns["Net"]().eval()


def _nchw(shape):
    from cnncalc.shapes import Tensor
    if shape.__class__ is Tensor:  # tokens and tensors are in PyTorch's order already
        return tuple(shape)
    return (shape[-1], *shape[:-1]) if len(shape) > 1 else tuple(shape)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "cifar_resnet1202" else n
                                  for n in zoo_names()])
def test_exported_module_params_and_every_layer_shape(name):
    g = load_spec(name)
    if unsupported_layers(g):
        pytest.skip("not exportable (see tests/interop/test_onnx.py NOT_EXPORTABLE)")
    g.infer()
    m = _module(g)
    rep = analyze_graph(g)
    assert sum(p.numel() for p in m.parameters()) == rep.totals["params"] if hasattr(rep, "totals") \
        else rep.to_dict()["totals"]["params"]
    seen = {}
    for node in g.layers:
        try:
            sub = m.get_submodule(".".join(_attr_path(node.name)))
        except AttributeError:
            continue  # inline plumbing (concat, add, flatten, split, pad_channels)
        sub.register_forward_hook(lambda mod, i, o, n=node.name: seen.__setitem__(n, tuple(o.shape[1:])))
    with torch.no_grad():
        out = m(torch.zeros(1, *_nchw(g.input_shape), device="meta"))
    assert len(seen) >= len([n for n in g.layers if n.layer.param_shapes()])
    for n, s in seen.items():
        assert s == _nchw(g[n].shape), n
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape[1:]) for o in outs] == [_nchw(g[o].shape) for o in g.outputs]


def _hook_macs(model, shape):
    """Conv/linear MACs by forward hooks: output elements × (kernel volume × C_in/groups)."""
    total = []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            total.append(out.numel() * mod.weight[0].numel())
        elif isinstance(mod, torch.nn.ConvTranspose2d):
            total.append(inp[0].numel() * mod.weight[0].numel())  # every input value × a k·k·F/g patch
        elif isinstance(mod, torch.nn.Linear):
            total.append(out.numel() * mod.in_features)
    for mod in model.modules():
        mod.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, *_nchw(shape)))
    return sum(total)


@pytest.mark.parametrize("factory,shape", [("resnet18", (224, 224, 3)), ("unet", (64, 64, 3)),
                                           ("unet_upsample", (60, 60, 3))])
def test_import_torch_counts_exactly(tmp_path, factory, shape):
    import importlib.util
    spec = importlib.util.spec_from_file_location("nets", NETS)
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    model = getattr(nets, factory)()
    want_params = sum(p.numel() for p in model.parameters())
    want_macs = _hook_macs(model, shape)
    out = tmp_path / f"{factory}.yaml"
    res = run_module("import", "--torch", f"{NETS}:{factory}", "--input", "x".join(map(str, shape)), "-o", out)
    assert res.returncode == 0, res.stderr
    res = run_module("summarize", out, "--format", "json")
    totals = json.loads(res.stdout)["totals"]
    assert totals["params"] == want_params
    assert totals["macs"] == want_macs
    if factory == "resnet18":
        assert want_params == 11_689_512  # torchvision's published resnet18 parameter count
    if factory == "unet_upsample":  # upsample, crop, concat and silu came through as layers
        kinds = [x["type"] for x in json.loads(res.stdout)["layers"]]
        assert kinds.count("upsample") == 2 and kinds.count("crop") >= 2 and kinds.count("concat") == 2
        assert "opaque" not in kinds


@pytest.mark.parametrize("factory,message", [("raises", "raised RuntimeError: no GPU here"),
                                             ("not_a_module", "returned int, not a torch.nn.Module"),
                                             ("missing", "has no function 'missing'")])
def test_bad_factories_exit_2(cli, factory, message):
    res = cli("import", "--torch", f"{NETS}:{factory}", "--input", "8x8x3")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_export_with_weights_loads_into_the_module(tmp_path):
    """A checkpoint written by `import --weights` round-trips into the exported module's .pt."""
    ck = tmp_path / "r.npz"
    spec = tmp_path / "u.yaml"
    res = run_module("import", "--torch", f"{NETS}:unet", "--input", "16x16x3", "-o", spec, "--weights", ck)
    assert res.returncode == 0, res.stderr
    res = run_module("export", spec, "--to", "torch", "-o", tmp_path / "unet_net.py", "--weights", ck)
    assert res.returncode == 0, res.stderr
    ns = {}
    exec((tmp_path / "unet_net.py").read_text(), ns)
    m = ns["Net"]()
    m.load_state_dict(torch.load(tmp_path / "unet_net.pt"))
    from cnncalc.runtime.checkpoint import load_checkpoint
    c = load_checkpoint(ck)
    sd = m.state_dict()
    # layer 'enc1.0' (PyTorch's own module path) is the attribute enc1_0: '.' cannot name a submodule
    assert np.array_equal(sd["enc1_0.weight"].numpy(), c.params["enc1.0/weight"])
    assert np.array_equal(sd["enc1_1.running_var"].numpy(), c.state["enc1.1/running_var"])
    assert sum(p.numel() for p in m.parameters()) == sum(a.size for a in c.params.values())


def test_parameters_the_forward_never_uses_are_reported(cli, tmp_path):
    res = cli("import", "--torch", f"{NETS}:with_unused", "--input", "8x8x3", "-o", tmp_path / "u.yaml")
    assert res.exit_code == 1, res.output
    # conv (3*3*3)*4 + 4 = 112 in the spec; + Linear(2, 2) 2*2 + 2 = 6 unused → 118
    assert "the spec has 112 parameters but sum(p.numel() for p in model.parameters()) is 118" in res.output
    assert (tmp_path / "u.yaml").exists()


def test_a_folded_lookup_counted_as_parameters_is_named(cli, tmp_path):
    """The other direction: a parameter read at fixed indices is folded by torch.onnx.export into
    a constant of its own (64 values for a table of 5): the error says what such a constant is
    and names it, instead of blaming parameters the forward never uses."""
    res = cli("import", "--torch", f"{NETS}:lookup_bias", "--input", "8x8x3", "-o", tmp_path / "l.yaml")
    assert res.exit_code == 1, res.output
    # conv (3*3*3)*4 + 4 = 112, + the table's 5 = 117 in the module; the spec: 112 + 64
    assert "the spec has 176 parameters but sum(p.numel() for p in model.parameters()) is 117" in res.output
    assert "the spec counts 59 more" in res.output and "a lookup read at fixed indices" in res.output
    assert "(64)" in res.output  # the folded constant, named with its size
