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


def test_a_conv_whose_weight_merges_two_learned_tensors_is_refused():
    """NFNet's ScaledStdConv2d: weight standardised at run time, times a learned per-channel
    gain. Folded into one constant weight, the spec's conv would count the weight's parameters
    and lose the gain's (nf_resnet26: 15,424 short of sum(p.numel())): refused, naming both."""
    from cnncalc.interop import InteropError
    from cnncalc.interop.onnx_import import import_model

    nodes = [node("ReduceMean", ["c.weight"], ["mu"], axes=[1, 2, 3], keepdims=1),
             node("Sub", ["c.weight", "mu"], ["wc"]), node("Mul", ["wc", "c.gain"], ["ws"]),
             node("Conv", ["x", "ws", "c.bias"], ["y"], name="/c/Conv", pads=[1, 1, 1, 1])]
    m = model(nodes, {"c.weight": w(4, 3, 3, 3), "c.gain": w(4, 1, 1, 1), "c.bias": w(4)}, x=(1, 3, 6, 6))
    with pytest.raises(InteropError, match=r"computed from 2 learned tensors \(c.gain, c.weight"):
        import_model(m, source="m.onnx")
    # one learned tensor standardised (no gain) is that tensor's parameters: imported
    nodes[2] = node("Mul", ["wc", "half"], ["ws"])
    m = model(nodes, {"c.weight": w(4, 3, 3, 3), "half": np.float32(0.5), "c.bias": w(4)}, x=(1, 3, 6, 6))
    assert lifted(m) == ["conv"]


@covers("conv")
def test_a_conv_of_the_same_weight_and_bias_initializers_shares_the_earlier_conv():
    """A module called twice (CoaT's shared position encodings): two Conv nodes reading one weight
    and one bias initializer are one conv's parameters, counted once (`shares:`), its MACs twice;
    a third conv with its own bias is a layer of its own."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop.onnx import import_model
    from cnncalc.spec.loader import load_spec_text

    c1, inits = conv(out="a", c_in=3, c_out=3, k=3, name="pe")
    c2 = node("Conv", ["a", "pe.weight", "pe.bias"], ["b"], name="/pe_1/Conv", pads=[1, 1, 1, 1])
    c3 = node("Conv", ["b", "pe.weight", "other.bias"], ["y"], name="/other/Conv", pads=[1, 1, 1, 1])
    m = model([c1, c2, c3], {**inits, "other.bias": w(3)}, x=(1, 3, 5, 5))
    assert lifted(m) == ["conv", "conv", "conv"]
    g = load_spec_text(import_model(m, source="m.onnx").text).infer()
    assert [n.layer.args.get("shares") for n in g.layers] == [None, "pe", None]
    tot = analyze_graph(g).totals
    assert (tot["params"], tot["macs"]) == (2 * (3 * 3 * 3 * 3 + 3), 3 * (5 * 5 * 3 * 27))
