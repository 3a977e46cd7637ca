"""The norm family's rewrites (cnncalc/interop/onnx/rewrites/norm.py)."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from tests.interop.rewrites.graphs import conv, covers, lifted, model, node, w  # noqa: E402


@covers("batchnorm")
def test_conv_then_batchnorm():
    c, i = conv(out="a", c_in=3, c_out=4, bias=None)
    bn = node("BatchNormalization", ["a", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], ["y"],
              epsilon=1e-3)
    m = model([c, bn], {**i, "bn.weight": w(4), "bn.bias": w(4), "bn.running_mean": w(4),
                        "bn.running_var": w(4, positive=True)})
    assert lifted(m) == ["conv", "batchnorm"]


@covers("lrn")
def test_local_response_normalisation():
    m = model([node("LRN", ["x"], ["y"], size=3, alpha=1e-3, beta=0.75, bias=2.0)])
    assert lifted(m) == ["lrn"]


@covers("layernorm")
def test_layernorm_over_c_h_w_and_over_the_features_of_a_flat_input():
    m = model([node("LayerNormalization", ["x", "ln.weight", "ln.bias"], ["y"], axis=1, epsilon=1e-6)],
              {"ln.weight": w(3, 6, 6), "ln.bias": w(3, 6, 6)})
    assert lifted(m) == ["layernorm"]
    m = model([node("LayerNormalization", ["x", "ln.weight", "ln.bias"], ["y"], axis=-1)],
              {"ln.weight": w(8), "ln.bias": w(8)}, x=(1, 8))
    assert lifted(m) == ["layernorm"]


@covers("channels_last_transpose", "layernorm")
def test_convnext_channels_last_layernorm_is_one_layernorm_over_the_channels():
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Transpose", ["a"], ["t"], perm=[0, 2, 3, 1]),
               node("LayerNormalization", ["t", "ln.weight", "ln.bias"], ["n"], axis=-1, epsilon=1e-6),
               node("Transpose", ["n"], ["y"], name="/back/Transpose", perm=[0, 3, 1, 2])],
              {**i, "ln.weight": w(4), "ln.bias": w(4)})
    assert lifted(m) == ["conv", "layernorm"]


@covers("instancenorm")
def test_instance_normalisation():
    m = model([node("InstanceNormalization", ["x", "in.weight", "in.bias"], ["y"])],
              {"in.weight": w(3), "in.bias": w(3)})
    assert lifted(m) == ["instancenorm"]


@covers("groupnorm")
def test_torch_onnx_exports_groupnorm_as_reshape_instancenorm_reshape_mul_add():
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Reshape", ["a", "grouped"], ["r"]),
               node("InstanceNormalization", ["r", "ones", "zeros"], ["n"], epsilon=1e-5),
               node("Reshape", ["n", "back"], ["b"], name="/gn/Reshape_1"),
               node("Mul", ["b", "gn.weight"], ["g"]), node("Add", ["g", "gn.bias"], ["y"])],
              {**i, "grouped": np.array([1, 2, -1], np.int64), "ones": np.ones(2, np.float32),
               "zeros": np.zeros(2, np.float32), "back": np.array([1, 4, 6, 6], np.int64),
               "gn.weight": w(4, 1, 1), "gn.bias": w(4, 1, 1)})
    assert lifted(m) == ["conv", "groupnorm"]
