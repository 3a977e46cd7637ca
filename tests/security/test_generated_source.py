"""Issue 25 item 1: names reach the Python source that ``export --to torch`` writes only as
repr() literals, escaped one-line comments and docstring text, or ASCII identifiers. A spec
(and an imported ONNX model) whose names hold every payload of ``hostile.NAMES`` exports to a
module that parses, whose docstring and comments say what the names are, and which runs
(import, build, forward) without ever running the payload (the $MARK file stays absent)."""
import ast
import io
import os
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import yaml

from cnncalc.escape import one_line
from cnncalc.interop.torch_export import torch_source
from cnncalc.spec.loader import load_spec_text
from tests.security.hostile import NAMES, RUN, layer_names

from conftest import run_module  # noqa: E402


def hostile_spec(graph_name=NAMES[0]) -> str:
    names = layer_names()
    layers = [{"conv": 2, "kernel": 3, "pad": 1, "name": names[1]}]
    layers += [{"relu": None, "name": n} for n in names[2:]]
    layers += [{"flatten": None, "name": names[0]}, {"fc": 3, "name": names[4] + "fc"}]
    return yaml.safe_dump({"name": graph_name, "input": "8x8x1", "layers": layers}, sort_keys=False,
                          allow_unicode=True)


def _check_source(src: str, graph):
    tree = ast.parse(src)  # a SyntaxError here is a name that escaped its literal
    assert "\x00" not in src and "\r" not in src and "\u2028" not in src and "\u202e" not in src
    # top level: the docstring, three imports and class definitions, nothing else
    kinds = [type(s).__name__ for s in tree.body]
    assert kinds[0] == "Expr" and set(kinds[1:]) <= {"Import", "ImportFrom", "ClassDef"}, kinds
    doc = ast.get_docstring(tree)
    assert doc.splitlines()[0].startswith(one_line(graph.name) + " as a PyTorch module")
    # every comment is one line, and the payload code never appears outside a literal or comment
    comments = [t.string for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT]
    assert len(comments) >= len(graph.layers)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id in {"getattr", "super", "float", "tuple", "range", "Net"}, ast.unparse(node)
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"environ", "open", "system"}, ast.unparse(node)


def test_every_payload_stays_inside_its_literal(tmp_path):
    g = load_spec_text(hostile_spec(), file=str(tmp_path / f'f"""\n{RUN}\n"""x.yaml'))
    src = torch_source(g)
    _check_source(src, g)
    doc = ast.get_docstring(ast.parse(src))
    assert doc.startswith('x"""\\n__import__') and '\\n"""x.yaml.' in doc  # the names, escaped, on one line


@pytest.mark.parametrize("name", [n for n in NAMES if "\n" in n or "\\" in n or '"' in n or "\r" in n])
def test_graph_name_payloads_parse(name):
    _check_source(torch_source(load_spec_text(hostile_spec(name), file="net.yaml")), load_spec_text(
        hostile_spec(name), file="net.yaml"))


def test_class_name_must_be_an_identifier():
    from cnncalc.interop import InteropError

    g = load_spec_text(hostile_spec(), file="net.yaml")
    with pytest.raises(InteropError):
        torch_source(g, class_name="Net(nn.Module): pass\nimport os\nclass X")


def _run_exported(py: Path, tmp_path: Path):
    """Import the module, build it, run a forward pass, in a fresh interpreter."""
    mark = tmp_path / "MARK"
    code = ("import importlib.util, sys, torch\n"
            "s = importlib.util.spec_from_file_location('net', sys.argv[1])\n"
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
            "n = m.Net()\n"
            "x = torch.zeros(1, *[int(d) for d in sys.argv[2].split(',')])\n"
            "print(tuple(n(x).shape), len(n.state_dict()))\n")
    res = subprocess.run([sys.executable, "-c", code, str(py), "1,8,8" if "onnx" not in py.name else "3,8,8"],
                         capture_output=True, text=True, env={**os.environ, "MARK": str(mark)}, cwd=tmp_path,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert not mark.exists(), "a name's payload ran"
    return res.stdout


@pytest.mark.torch
def test_exported_module_imports_and_runs_without_running_a_name(tmp_path):
    pytest.importorskip("torch")
    spec = tmp_path / "net.yaml"
    spec.write_text(hostile_spec())
    out = tmp_path / "net.py"
    res = run_module("export", spec, "--to", "torch", "-o", out)
    assert res.returncode == 0, res.stderr
    assert _run_exported(out, tmp_path).startswith("(1, 3) ")


def _hostile_onnx(path: Path):
    onnx = pytest.importorskip("onnx")
    import numpy as np

    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), NAMES[1] + ".weight")
    nodes = [h.make_node("Conv", ["x", w.name], ["a0"], name=NAMES[1], pads=[1, 1, 1, 1])]
    hostile = [n for n in NAMES[2:] if n != NAMES[1]]
    for i, n in enumerate(hostile):
        nodes.append(h.make_node("Relu", [f"a{i}"], ["y" if i == len(hostile) - 1 else f"a{i + 1}"], name=n))
    g = h.make_graph(nodes, NAMES[0], [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


@pytest.mark.torch
def test_onnx_node_names_through_import_and_export(tmp_path):
    """A downloaded ONNX: node names → import (YAML) → export --to torch → a module that runs
    without running any name; the import's comment line stays one line."""
    pytest.importorskip("torch")
    model = tmp_path / f'm"""\n{RUN}\nonnx.onnx'
    _hostile_onnx(model)
    spec, out = tmp_path / "imp.yaml", tmp_path / "imp_onnx.py"
    res = run_module("import", model, "-o", spec)
    assert res.returncode == 0, res.stderr
    text = spec.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# imported by cnncalc from ") and "\\n" in first
    assert set(yaml.safe_load(text)) == {"name", "source", "input", "layers"}  # no key added by the file name
    res = run_module("export", spec, "--to", "torch", "-o", out)
    assert res.returncode == 0, res.stderr
    src = out.read_text()
    ast.parse(src)
    assert _run_exported(out, tmp_path).startswith("(1, 4, 8, 8) ")
