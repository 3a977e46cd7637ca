"""The shape family's rewrites (cnncalc/interop/onnx/rewrites/shape.py)."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from tests.interop.rewrites.graphs import conv, covers, lifted, model, node, w  # noqa: E402


@covers("resize")
def test_nearest_and_bilinear_upsampling():
    roi = np.zeros(0, np.float32)
    m = model([node("Resize", ["x", "roi", "s2"], ["a"], mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor"),
               node("Resize", ["a", "roi", "s2"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel")],
              {"roi": roi, "s2": np.array([1, 1, 2, 2], np.float32)})
    assert lifted(m) == ["upsample", "upsample"]


@covers("dropout", "identity")
def test_dropout_and_identity():
    m = model([node("Dropout", ["x"], ["a"]), node("Identity", ["a"], ["y"])])
    assert lifted(m) == ["dropout", "identity"]


@covers("concat")
def test_concat_over_the_channels():
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Concat", ["a", "x"], ["y"], axis=1)], i)
    assert lifted(m) == ["conv", "concat"]


@covers("flatten", "reshape")
def test_flatten_and_a_reshape_to_n_by_minus_one():
    m = model([node("Flatten", ["x"], ["a"]), node("Gemm", ["a", "fc.weight"], ["y"], transB=1)],
              {"fc.weight": w(5, 108)})
    assert lifted(m) == ["flatten", "fc"]
    m = model([node("Reshape", ["x", "flat"], ["y"])], {"flat": np.array([1, -1], np.int64)})
    assert lifted(m) == ["flatten"]


@covers("slice")
def test_a_channel_slice_is_a_split_and_a_spatial_slice_a_crop():
    m = model([node("Slice", ["x", "s", "e", "ax"], ["a"]), node("Slice", ["x", "s2", "e2", "ax2"], ["b"]),
               node("GlobalAveragePool", ["a"], ["ga"]), node("GlobalAveragePool", ["b"], ["gb"]),
               node("Concat", ["ga", "gb"], ["y"], axis=1)],
              {"s": np.array([2], np.int64), "e": np.array([4], np.int64), "ax": np.array([1], np.int64),
               "s2": np.array([1, 1], np.int64), "e2": np.array([5, 4], np.int64), "ax2": np.array([2, 3], np.int64)},
              x=(1, 4, 6, 6))
    assert lifted(m) == ["split", "crop", "global_avgpool", "global_avgpool", "concat"]


@covers("pad")
def test_reflect_padding_and_resnet_option_a_channel_padding():
    m = model([node("Pad", ["x", "p"], ["a"], mode="reflect"),
               node("Slice", ["a", "z", "big", "hw", "two"], ["s"]),
               node("Pad", ["s", "pc"], ["y"])],
              {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "z": np.array([0, 0], np.int64),
               "big": np.array([99, 99], np.int64), "hw": np.array([2, 3], np.int64),
               "two": np.array([2, 2], np.int64), "pc": np.array([0, 2, 0, 0, 0, 2, 0, 0], np.int64)})
    assert lifted(m) == ["padding", "pad_channels"]


@covers("split")
def test_an_equal_channel_split():
    m = model([node("Split", ["x"], ["y", "z"], axis=1, num_outputs=2)], x=(1, 4, 6, 6), outputs=("y", "z"), opset=18)
    assert lifted(m) == ["split", "split"]


@covers("channel_shuffle")
def test_shufflenet_channel_shuffle():
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Reshape", ["a", "g"], ["r"]), node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
               node("Reshape", ["t", "back"], ["y"])],
              {**i, "g": np.array([1, 2, 2, 6, 6], np.int64), "back": np.array([1, -1, 6, 6], np.int64)})
    assert lifted(m) == ["conv", "channel_shuffle"]
