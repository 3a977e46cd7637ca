"""The conv family's rewrites (cnncalc/interop/onnx/rewrites/conv.py), one tiny graph each."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from tests.interop.rewrites.graphs import conv, covers, lifted, model, node, w  # noqa: E402


@covers("conv")
def test_a_conv_a_depthwise_conv_and_a_zero_pad_folded_into_the_conv():
    c1, i1 = conv(out="a", c_in=3, c_out=6, k=3, strides=[2, 2])
    c2, i2 = conv(x="a", out="b", c_in=6, c_out=6, k=3, name="dw", group=6, pads=[0, 0, 0, 0])
    pad = node("Pad", ["b", "pads"], ["bp"])  # F.pad(x, (1, 1, 1, 1)) before a conv: its padding
    c3, i3 = conv(x="bp", out="y", c_in=6, c_out=5, k=3, name="c3", pads=[0, 0, 0, 0])
    pads = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    m = model([c1, c2, pad, c3], {**i1, **i2, **i3, "pads": pads}, x=(1, 3, 9, 9))
    assert lifted(m) == ["conv", "dwconv", "conv"]


@covers("conv_transpose")
def test_a_transposed_conv_is_a_deconv():
    m = model([node("ConvTranspose", ["x", "up.weight", "up.bias"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                    output_padding=[1, 1])], {"up.weight": w(3, 5, 3, 3), "up.bias": w(5)})
    assert lifted(m) == ["deconv"]
