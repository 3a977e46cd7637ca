"""The arith family's rewrites (cnncalc/interop/onnx/rewrites/arith.py)."""
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from tests.interop.rewrites.graphs import conv, covers, lifted, model, node, w  # noqa: E402


@covers("add")
def test_a_residual_add():
    c, i = conv(out="a", c_in=3, c_out=3)
    m = model([c, node("Add", ["a", "x"], ["y"])], i)
    assert lifted(m) == ["conv", "add"]


@covers("mul")
def test_a_per_channel_gain_is_a_scale_and_a_product_of_tensors_a_mul():
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Mul", ["a", "ls.gamma"], ["b"]), node("Sigmoid", ["a"], ["s"], name="/gate/Sigmoid"),
               node("Mul", ["b", "s"], ["y"])], {**i, "ls.gamma": w(1, 4, 1, 1)})
    assert lifted(m) == ["conv", "scale", "sigmoid", "mul"]
