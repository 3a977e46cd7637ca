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


# ----------------------------------------------------------------------------- Swin V2
def _buffers(m, *names):
    """What `import --torch` adds: the module's buffers (here, initializers named like parameters)."""
    e = m.metadata_props.add()
    e.key, e.value = "cnncalc.torch_buffers", "\n".join(names)
    return m


def _bias_mlp_model(torch_path=True, swin=True):
    """Swin V2's continuous position bias in small (windows of 2 x 2): a fixed (1, 3, 3, 2)
    coordinate table (a buffer named like a parameter, as torchvision's relative_coords_table)
    through Linear(2, 8), ReLU, Linear(8, 2, no bias); the 9 x 2 result gathered by Swin's relative
    index (``swin``; else by another 16 indices), put back to (2, 4, 4) (heads first), a leading
    axis added, 16·sigmoid, added to x (1, 2, 4, 4)."""
    from cnncalc.layers.tensor import relative_index

    table = np.sign(w(1, 3, 3, 2)) * np.log2(np.abs(w(1, 3, 3, 2)) + 1)
    idx = np.array(relative_index((2, 2)) if swin else [(7 * k) % 9 for k in range(16)], np.int64)
    nodes = [node("MatMul", ["attn.table", "onnx::MatMul_1"], ["h0"], name="/attn/cpb/cpb.0/MatMul"),
             node("Add", ["cpb.0.bias", "h0"], ["h1"], name="/attn/cpb/cpb.0/Add"),
             node("Relu", ["h1"], ["h2"]),
             node("MatMul", ["h2", "onnx::MatMul_2"], ["h3"]),
             node("Reshape", ["h3", "flat"], ["h4"]),
             node("Gather", ["h4", "idx"], ["h5"], axis=0),
             node("Reshape", ["h5", "grid"], ["h6"]),
             node("Transpose", ["h6"], ["h7"], perm=[2, 0, 1]),
             node("Unsqueeze", ["h7", "zero"], ["h8"]),
             node("Sigmoid", ["h8"], ["h9"]),
             node("Mul", ["h9", "sixteen"], ["h10"]),
             node("Add", ["x", "h10"], ["y"])]
    inits = {"attn.table": table.astype(np.float32), "onnx::MatMul_1": w(2, 8), "cpb.0.bias": w(8),
             "onnx::MatMul_2": w(8, 2), "flat": np.array([-1, 2], np.int64), "idx": idx,
             "grid": np.array([4, 4, 2], np.int64), "zero": np.array([0], np.int64),
             "sixteen": np.array(16.0, np.float32)}
    m = model(nodes, inits, x=(1, 2, 4, 4))
    return _buffers(m, "attn.table") if torch_path else m


@covers("matmul_of_constants", "relative_gather")
def test_swin_v2_position_bias_mlp_on_a_fixed_table_keeps_its_parameters_and_macs():
    """The MLP runs on every forward: its MatMul of the table (a buffer) by the first weight is a
    matmul with inputs: [], the ops after it low-level layers of a value the same for every
    sample (a leading axis put in front of it by Unsqueeze, then added to x); the gather by
    Swin's index is written `relative: [2, 2]`, another gather keeps its indices. Parameters
    2·8 + 8 + 8·2 = 40, MACs 9·8·2 + 9·2·8 = 288, the table 18 non-trainable values; outputs
    against onnxruntime."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop.onnx import import_model
    from cnncalc.spec.loader import load_spec_text

    for swin in (True, False):
        m = _bias_mlp_model(swin=swin)
        kinds = lifted(m)
        assert kinds[:3] == ["matmul", "binary", "relu"] and kinds[-1] == "binary" and "gather" in kinds
        text = import_model(m, source="m.onnx").text
        assert ("relative: [2, 2]" in text) == swin
        g = load_spec_text(text).infer()
        tot = analyze_graph(g).totals
        assert (tot["params"], tot["macs"], tot["nontrainable"]) == (40, 288, 18)
        assert g.layers[0].inputs == []


def test_a_matmul_of_two_constants_named_like_parameters_in_an_onnx_file_is_refused():
    """Without `import --torch`'s list of buffers, the table is named like a parameter, as the
    weight is: which one is learned nobody says, so the MatMul is refused rather than counted
    either way."""
    from cnncalc.interop import InteropError
    from cnncalc.interop.onnx import import_model

    with pytest.raises(InteropError, match="a MatMul of constants only"):
        import_model(_bias_mlp_model(torch_path=False), source="m.onnx")


def _logit_scale_model(into_conv=False):
    """Swin V2's cosine attention scale: exp(clamp(logit_scale, max=log 100)) of a learned (2, 1, 1)
    logit_scale, multiplying x (1, 2, 3, 3). ``into_conv``: a clamped conv weight instead (folded
    as before: a weight, not a value that meets the activations)."""
    if into_conv:
        nodes = [node("Clip", ["c.weight", "lo", "hi"], ["wc"]),
                 node("Conv", ["x", "wc", "c.bias"], ["y"], kernel_shape=[1, 1])]
        return model(nodes, {"c.weight": w(4, 2, 1, 1), "c.bias": w(4), "lo": np.array(-0.5, np.float32),
                             "hi": np.array(0.5, np.float32)}, x=(1, 2, 3, 3))
    nodes = [node("Clip", ["attn.logit_scale", "", "hi"], ["s1"]), node("Exp", ["s1"], ["s2"]),
             node("Mul", ["x", "s2"], ["y"])]
    scale = np.array([[[1.2]], [[5.0]]], np.float32)  # (the second clamped at log 100 = 4.6)
    return model(nodes, {"attn.logit_scale": scale, "hi": np.array(np.log(100.0), np.float32)}, x=(1, 2, 3, 3))


@covers("clip_of_parameter")
def test_swin_v2_logit_scale_is_a_binary_min_of_constants_that_keeps_the_parameter():
    """clamp(s, max=log 100) of the learned s: binary min with inputs: [] (2 parameters, not a
    folded constant of none), exp, times x (the (2, 1, 1) value against (1, 2, 3, 3): the batch
    left out); outputs against onnxruntime. A clamped conv weight is folded as before."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop.onnx import import_model
    from cnncalc.spec.loader import load_spec_text

    assert lifted(_logit_scale_model()) == ["binary", "unary", "binary"]
    g = load_spec_text(import_model(_logit_scale_model(), source="m.onnx").text).infer()
    assert g.layers[0].inputs == [] and g.layers[0].name == "attn.logit_scale"
    assert analyze_graph(g).totals["params"] == 2
    assert lifted(_logit_scale_model(into_conv=True)) == ["conv"]


@covers("zeroed_parameter")
def test_swin_v2_qkv_bias_with_its_k_third_zeroed_is_the_parameter_times_a_mask():
    """qkv_bias.clone(); qkv_bias[2:4].zero_() (a ScatterND of zeros): binary mul of the learned
    bias (6 parameters, all counted) by a 0/1 mask (6 non-trainable values), added to x·W;
    outputs against onnxruntime, with a bias whose k third is not zero (so that the mask shows)."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop.onnx import import_model
    from cnncalc.spec.loader import load_spec_text

    nodes = [node("ScatterND", ["qkv.bias", "rows", "zeros"], ["b"]),
             node("MatMul", ["x", "onnx::MatMul_1"], ["p"]), node("Add", ["b", "p"], ["y"])]
    m = model(nodes, {"qkv.bias": w(6), "rows": np.array([[2], [3]], np.int64), "zeros": np.zeros(2, np.float32),
                      "onnx::MatMul_1": w(4, 6)}, x=(1, 5, 4))
    assert lifted(m) == ["binary", "matmul", "binary"]
    g = load_spec_text(import_model(m, source="m.onnx").text).infer()
    tot = analyze_graph(g).totals
    assert (tot["params"], tot["nontrainable"], tot["macs"]) == (6 + 24, 6, 5 * 6 * 4)
