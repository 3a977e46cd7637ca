"""The constant family's rewrites (cnncalc/interop/onnx/rewrites/constant.py), one tiny graph each."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from onnx import helper as h  # noqa: E402

from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402


def _grid_model(k=1, pads=(0, 0, 0, 0), bias=True):
    """EdgeNeXt's position encoding in small: a fixed grid (a Constant node: not a parameter) of
    6 channels on 4 x 4, a learned conv of it to 5 channels, added to the input x (1, 5, 4, 4)."""
    grid = np.sin(np.arange(6 * 16, dtype=np.float32).reshape(1, 6, 4, 4) / 7.0) + 1.5
    c = h.make_node("Constant", [], ["grid"], value=h.make_tensor("g", 1, grid.shape, grid.reshape(-1)))
    ins = ["grid", "pe.weight"] + (["pe.bias"] if bias else [])
    conv = node("Conv", ins, ["pos"], name="/pe/Conv", kernel_shape=[k, k], pads=list(pads))
    inits = {"pe.weight": w(5, 6, k, k), **({"pe.bias": w(5)} if bias else {})}
    return model([c, conv, node("Add", ["x", "pos"], ["y"])], inits, x=(1, 5, 4, 4))


@covers("conv_of_constants")
def test_a_1x1_conv_of_a_constant_grid_is_a_matmul_of_two_constants_that_keeps_its_parameters():
    """Outputs against onnxruntime at batch 2 (the one result repeated over the batch); the
    parameters are the conv's 5·6 + 5 (the grid is a buffer), the MACs its 5·16·6."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop.onnx import import_model
    from cnncalc.spec.loader import load_spec_text

    m = _grid_model()
    assert lifted(m) == ["matmul", "reshape", "binary", "binary"]
    g = load_spec_text(import_model(m, source="m.onnx").text).infer()
    tot = analyze_graph(g).totals
    assert (tot["params"], tot["macs"], tot["nontrainable"]) == (5 * 6 + 5, 5 * 16 * 6, 6 * 16)
    assert g.layers[0].inputs == []
    assert lifted(_grid_model(bias=False)) == ["matmul", "reshape", "binary"]


def test_a_wider_conv_of_constants_is_refused_not_folded():
    """A 3x3 conv of the grid has no spec form of constants (no conv reads a constant): refused,
    where folding it would drop its 5·6·9 + 5 parameters."""
    from cnncalc.interop import InteropError
    from cnncalc.interop.onnx import import_model

    with pytest.raises(InteropError, match="a Conv of constants only"):
        import_model(_grid_model(k=3, pads=(1, 1, 1, 1)), source="m.onnx")
