"""The pool family's rewrites (cnncalc/interop/onnx/rewrites/pool.py)."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from tests.interop.rewrites.graphs import covers, lifted, model, node  # noqa: E402


@covers("maxpool", "avgpool")
def test_max_and_average_pooling():
    m = model([node("MaxPool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
               node("AveragePool", ["a"], ["y"], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1],
                    count_include_pad=0)], x=(1, 3, 9, 9))
    assert lifted(m) == ["maxpool", "avgpool"]


@covers("global_avgpool", "global_maxpool")
def test_global_pools():
    m = model([node("GlobalMaxPool", ["x"], ["a"]), node("GlobalAveragePool", ["x"], ["b"]),
               node("Add", ["a", "b"], ["y"])])
    assert lifted(m) == ["global_maxpool", "global_avgpool", "add"]


@covers("global_reduce")
def test_a_mean_over_the_spatial_axes_without_keepdims_is_a_global_pool_and_a_flatten():
    m = model([node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)])
    assert lifted(m) == ["global_avgpool", "flatten"]
    m = model([node("ReduceMax", ["x", "axes"], ["y"], keepdims=1)], {"axes": np.array([-2, -1], np.int64)},
              opset=18)
    assert lifted(m) == ["global_maxpool"]
