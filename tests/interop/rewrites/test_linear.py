"""The linear family's rewrites (cnncalc/interop/onnx/rewrites/linear.py)."""
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.interop.onnx import import_model  # noqa: E402
from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402


@covers("gemm")
def test_gemm_is_an_fc_layer():
    m = model([node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=1, alpha=0.5)],
              {"fc.weight": w(5, 8), "fc.bias": w(5)}, x=(1, 8))
    assert lifted(m) == ["fc"]


@covers("matmul", "fc_bias")
def test_matmul_by_a_constant_then_add_a_bias_is_one_fc_layer():
    m = model([node("MatMul", ["x", "fc.weight"], ["a"]), node("Add", ["a", "fc.bias"], ["y"])],
              {"fc.weight": w(8, 5), "fc.bias": w(5)}, x=(1, 8))
    assert lifted(m) == ["fc"]


@covers("fc_bias")
def test_the_bias_lift_leaves_an_add_that_is_no_fc_bias_low_level_and_names_unmoved():
    """The lift runs on the low-level add right after its node: a bias of the wrong size stays
    an add; an fc with a second reader keeps no bias; the names of later layers are the ones
    they would have had (the lifted add's name is free again)."""
    m = model([node("MatMul", ["x", "fc.weight"], ["a"], name="/fc/MatMul"),
               node("Add", ["a", "fc.bias"], ["b"], name="/fc/Add"),
               node("MatMul", ["b", "fc2.weight"], ["c"], name="/fc/MatMul_1"),
               node("Add", ["c", "one"], ["d"], name="/fc/Add_1"),  # one value for 5 units: no bias
               node("Relu", ["d"], ["y"], name="/fc/Relu")],
              {"fc.weight": w(8, 5), "fc.bias": w(5), "fc2.weight": w(5, 5), "one": w(1)}, x=(1, 8))
    assert lifted(m) == ["fc", "fc", "binary", "relu"]
    text = import_model(m, source="m.onnx").text
    names = [line.rsplit("name: ", 1)[1].rstrip("}") for line in text.splitlines() if line.startswith("  - {")]
    assert names == ["fc", "fc2", "fc_2", "fc_3"]  # (the lifted Add's name fc_2 is free again)


@covers("token_fc")
def test_a_linear_on_tokens_is_one_fc_layer_per_token():
    """nn.Linear on (1, T, C) tokens as torch exports it: MatMul by the (C, C') weight, Add of the
    bias (first operand): one fc read per token, its MACs T·C·C'; without the Add it stays a matmul."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.spec.loader import load_spec_text

    m = model([node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
               node("MatMul", ["t", "fc.weight"], ["a"]), node("Add", ["fc.bias", "a"], ["b"]),
               node("MatMul", ["b", "fc2.weight"], ["y"])],
              {"fc.weight": w(8, 5), "fc.bias": w(5), "fc2.weight": w(5, 3)}, x=(1, 8, 6))
    assert lifted(m) == ["transpose", "fc", "matmul"]
    tot = analyze_graph(load_spec_text(import_model(m, source="m.onnx").text)).totals
    assert (tot["params"], tot["macs"]) == (8 * 5 + 5 + 5 * 3, 6 * 8 * 5 + 6 * 5 * 3)
