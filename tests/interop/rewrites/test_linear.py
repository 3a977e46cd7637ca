"""The linear family's rewrites (cnncalc/interop/onnx/rewrites/linear.py)."""
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402


@covers("gemm")
def test_gemm_is_an_fc_layer():
    m = model([node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=1, alpha=0.5)],
              {"fc.weight": w(5, 8), "fc.bias": w(5)}, x=(1, 8))
    assert lifted(m) == ["fc"]


@covers("matmul")
def test_matmul_by_a_constant_then_add_a_bias_is_one_fc_layer():
    m = model([node("MatMul", ["x", "fc.weight"], ["a"]), node("Add", ["a", "fc.bias"], ["y"])],
              {"fc.weight": w(8, 5), "fc.bias": w(5)}, x=(1, 8))
    assert lifted(m) == ["fc"]
