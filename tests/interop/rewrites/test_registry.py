"""The rewrite registry (cnncalc/interop/onnx/rewrites/__init__.py): every registered rewrite has
its own test, the driver finds rewrites through it, and the listing users see is the registry."""
import ast
from pathlib import Path

import pytest

from cnncalc.interop.onnx import rewrites
from cnncalc.interop.onnx.rewrites import FAMILIES, Rewrite, register, registry

HERE = Path(__file__).parent


def _covered() -> dict[str, list[str]]:
    """{rewrite name: [test functions marked @covers(name)]}, read from the test files' source."""
    got: dict[str, list[str]] = {}
    for f in sorted(HERE.glob("test_*.py")):
        for fn in ast.parse(f.read_text()).body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for d in fn.decorator_list:
                if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "covers":
                    for a in d.args:
                        got.setdefault(a.value, []).append(f"{f.name}::{fn.name}")
    return got


def test_every_registered_rewrite_has_a_test_in_its_family_file():
    covered = _covered()
    missing = [r.name for r in registry() if r.name not in covered]
    assert not missing, f"rewrites with no @covers test in tests/interop/rewrites/: {missing}"
    for r in registry():  # ... in the file of its family (test_conv.py for the conv family)
        assert any(t.startswith(f"test_{r.family}.py::") for t in covered[r.name]), (r.name, covered[r.name])


def test_every_covers_names_a_registered_rewrite():
    names = {r.name for r in registry()}
    assert set(_covered()) <= names, set(_covered()) - names


def test_the_registry_is_in_a_fixed_order_with_unique_names_and_one_node_rewrite_per_op():
    rs = registry()
    assert len({r.name for r in rs}) == len(rs)
    assert [FAMILIES.index(r.family) for r in rs] == sorted(FAMILIES.index(r.family) for r in rs)
    ops = [op for r in rs if r.stage == "node" for op in r.ops]
    assert len(ops) == len(set(ops))
    assert registry() == rs
    # the ops the importer lifted before the split (issue 23): every one still has its rewrite
    for op in ("Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool",
               "GlobalMaxPool", "ReduceMean", "ReduceMax", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Softmax",
               "Dropout", "BatchNormalization", "LRN", "Add", "Sum", "Concat", "Flatten", "Reshape", "Identity",
               "Slice", "Pad", "Split", "HardSwish", "HardSigmoid", "Elu", "Selu", "Softplus", "Mish", "Gelu",
               "PRelu", "Mul", "Transpose", "LayerNormalization", "InstanceNormalization", "Resize", "Upsample"):
        assert rewrites.node_rewrite(op) is not None, op
    assert rewrites.node_rewrite("Einsum") is None


def test_a_second_node_rewrite_of_an_op_or_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="two node rewrites"):
        register(Rewrite("another_conv", "conv", ("Conv",), lambda imp, node: None))
    with pytest.raises(ValueError, match="registered twice"):
        register(Rewrite("conv", "conv", ("NotAnOp",), lambda imp, node: None))
    with pytest.raises(ValueError, match="family"):
        register(Rewrite("x", "nofamily", ("NotAnOp",), lambda imp, node: None))
    assert "another_conv" not in {r.name for r in registry()}


def test_the_listing_names_every_rewrite_once(cli):
    text = rewrites.listing()
    for r in registry():
        assert sum(line.startswith((f"  {r.name}:", f"  {r.name} [")) for line in text.splitlines()) == 1, r.name
    res = cli("import", "--list-rewrites")
    assert res.exit_code == 0 and res.output.strip() == text.strip()


def test_docs_interop_lists_the_registry():
    """docs/interop.md's list of rewrites is the registry's listing (regenerate it with
    `cnncalc import --list-rewrites` when a rewrite is added)."""
    doc = (HERE.parents[2] / "docs" / "interop.md").read_text()
    assert "```text\n$ cnncalc import --list-rewrites\n" + rewrites.listing() + "\n```" in doc
