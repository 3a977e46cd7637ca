"""The activation family's rewrites (cnncalc/interop/onnx/rewrites/activation.py)."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.interop.onnx import import_model  # noqa: E402
from tests.interop.rewrites.graphs import conv, covers, lifted, model, node, w  # noqa: E402


@covers("elementwise_function")
def test_a_decomposed_silu_fuses_into_the_conv_and_a_decomposed_gelu_is_one_layer():
    c, i = conv(out="a", c_in=3, c_out=4)
    nodes = [c, node("Sigmoid", ["a"], ["s"]), node("Mul", ["a", "s"], ["b"]),  # SiLU
             node("Div", ["b", "sqrt2"], ["d"]), node("Erf", ["d"], ["e"]), node("Add", ["e", "one"], ["f"]),
             node("Mul", ["b", "f"], ["g"]), node("Mul", ["g", "half"], ["y"])]  # GELU (erf)
    m = model(nodes, {**i, "sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)})
    assert lifted(m) == ["conv", "gelu"]
    assert "activation: silu" in import_model(m, source="m.onnx").text


@covers("hardsigmoid", "clip", "leaky", "elu", "selu", "prelu")
def test_activations_with_arguments():
    # (HardSigmoid then Clip would be one elementwise region: clip(hardsigmoid(x), 0, 6) is hardsigmoid)
    m = model([node("Clip", ["x", "lo", "hi"], ["a"]), node("LeakyRelu", ["a"], ["b"], alpha=0.2),
               node("HardSigmoid", ["b"], ["c"], alpha=1 / 6, beta=0.5),
               node("Elu", ["c"], ["d"], alpha=0.5), node("Selu", ["d"], ["e"]),
               node("PRelu", ["e", "act.weight"], ["y"])],
              {"lo": np.float32(0), "hi": np.float32(6), "act.weight": w(3, 1, 1)})
    assert lifted(m) == ["relu6", "leakyrelu", "hardsigmoid", "elu", "selu", "prelu"]


@covers("gelu")
def test_the_gelu_op_of_opset_20():
    m = model([node("Gelu", ["x"], ["a"]), node("Gelu", ["a"], ["y"], approximate="tanh")], opset=20)
    assert lifted(m) == ["gelu", "gelu"]


@covers("relu", "sigmoid", "tanh", "hardswish", "softplus", "mish")
@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "HardSwish", "Softplus", "Mish"])
def test_one_op_activations_fuse_into_the_conv_before_them(op):
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node(op, ["a"], ["y"])], i, opset=18)
    assert lifted(m) == ["conv"]
    assert f"activation: {op.lower()}" in import_model(m, source="m.onnx").text
    m = model([node(op, ["x"], ["y"])], opset=18)
    assert lifted(m) == [op.lower()]


@covers("softmax")
def test_softmax_over_the_features():
    m = model([node("Softmax", ["x"], ["y"], axis=-1)], x=(1, 8))
    assert lifted(m) == ["softmax"]
