"""`export --to torch` without torch (the fast run's check of the exporter; the slow group
runs the exported modules in PyTorch against the runtime): the generated source is read with
Python's own parser, and the parameters its layer constructors create — counted from their
arguments as PyTorch would allocate them — are the analyzer's parameters, layer by layer."""
import ast

import pytest

from cnncalc.analysis.report import analyze_graph
from cnncalc.spec.loader import load_spec


def _constructors(source: str) -> dict[str, tuple[str, list, dict]]:
    """self.NAME = nn.KIND(args, kw=...) in Net.__init__ → {NAME: (KIND, args, kwargs)}."""
    tree = ast.parse(source)
    net = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net")
    init = next(n for n in net.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    out = {}
    for st in ast.walk(init):
        if (isinstance(st, ast.Assign) and isinstance(st.targets[0], ast.Attribute)
                and isinstance(st.value, ast.Call) and isinstance(st.value.func, ast.Attribute)):
            call = st.value
            out[st.targets[0].attr] = (call.func.attr, [ast.literal_eval(a) for a in call.args],
                                       {k.arg: ast.literal_eval(k.value) for k in call.keywords})
    return out


def _torch_params(kind: str, args: list, kw: dict) -> int:
    """What PyTorch allocates for the constructor (its documented weight and bias shapes)."""
    if kind == "Conv2d":
        cin, cout = args[:2]
        k = kw["kernel_size"]
        kh, kw_ = (k, k) if isinstance(k, int) else k
        groups = kw.get("groups", 1)
        return cout * (cin // groups) * kh * kw_ + (cout if kw.get("bias", True) else 0)
    if kind == "Linear":
        return args[0] * args[1] + (args[1] if kw.get("bias", True) else 0)
    if kind == "BatchNorm2d":
        return 2 * args[0]
    return 0


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg16"])
def test_exported_source_allocates_the_analyzers_parameters(name, cli, tmp_path):
    out = tmp_path / f"{name}.py"
    res = cli("export", name, "--to", "torch", "-o", out)
    assert res.exit_code == 0, res.output
    layers = _constructors(out.read_text(encoding="utf-8"))
    graph = load_spec(name).infer()
    report = analyze_graph(graph)
    checked = 0
    for node in graph.layers:
        stats = report[node.name]
        if node.kind in ("conv", "fc"):
            kind, args, kw = layers[node.name]
            assert _torch_params(kind, args, kw) == stats.params, node.name
            checked += 1
    assert checked >= 5
    assert sum(_torch_params(*c) for c in layers.values()) == report.totals["params"]
