"""The conv family's rewrites (cnncalc/interop/onnx/rewrites/conv.py), one tiny graph each."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
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
    """A weight computed from a weight and a gain in a form that is not timm's weight
    standardisation (here: centred, no variance, times the gain). Folded into one constant
    weight, the spec's conv would count the weight's parameters and lose the gain's (how
    nf_resnet26 imported before: 15,424 short of sum(p.numel())): refused, naming both."""
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


def _standardised_conv(F=4, C=3, k=3, group=1, *, folded=True, gain=True, eps=1e-5, scale=0.5, bias_bn=None):
    """A conv whose weight is timm's ``F.batch_norm(w.reshape(1, F, -1), weight=gain * scale,
    training=True)`` as torch.onnx.export writes it: a BatchNormalization in training mode over
    the weight, its scale the gain times a scalar (``folded``: one initializer, as the exporter's
    constant folding leaves it) or ones (StdConv2d, ``gain`` False), then a Reshape to the
    conv's weight shape."""
    n = C // group * k * k
    wt, g = w(F, C // group, k, k), w(F, positive=True)
    inits = {"c.weight": wt, "c.bias": w(F), "shape3": np.array([1, F, -1], np.int64),
             "shape4": np.array(wt.shape, np.int64), "c.mean_in": w(n, F), "c.var_in": w(n, F, positive=True)}
    # (the mean and variance inputs: the running statistics' update, ignored in training mode)
    zero = np.zeros(F, np.float32) if bias_bn is None else bias_bn  # (a Constant, as the exporter writes it)
    nodes = [node("Constant", [], ["zero"], value=onnx.numpy_helper.from_array(zero)),
             node("Reshape", ["c.weight", "shape3"], ["w3"])]
    if not gain:  # (F.batch_norm's weight None: a Constant of ones)
        nodes.append(node("Constant", [], ["s"], value=onnx.numpy_helper.from_array(np.full(F, scale, np.float32))))
    elif folded:
        inits["s"] = g * np.float32(scale)
    else:
        inits["c.gain"], inits["scale"] = g.reshape(F, 1, 1, 1), np.float32(scale)
        inits["flat"] = np.array([-1], np.int64)
        nodes += [node("Mul", ["c.gain", "scale"], ["gs"]), node("Reshape", ["gs", "flat"], ["s"])]
    nodes += [node("ReduceMean", ["c.mean_in"], ["mu"], axes=[0], keepdims=0),
              node("ReduceMean", ["c.var_in"], ["var"], axes=[0], keepdims=0),
              node("BatchNormalization", ["w3", "s", "zero", "mu", "var"], ["wn", "rm", "rv"], epsilon=eps, momentum=1.0,
                   training_mode=1),
              node("Reshape", ["wn", "shape4"], ["ws"]),
              node("Conv", ["x", "ws", "c.bias"], ["y"], name="/c/Conv", pads=[1, 1, 1, 1], group=group)]
    return model(nodes, inits, x=(1, C, 6, 6)), g


@covers("conv")
@pytest.mark.parametrize("folded", [True, False])
def test_a_standardised_weight_imports_as_a_conv_with_standardize(folded):
    """NFNet's ScaledStdConv2d (issue 23): the raw weight, the gain and the bias are the conv's
    parameters (4*3*3*3 + 4 + 4 = 116), eps is the BatchNormalization's, and the outputs equal
    onnxruntime's. Folded by the exporter, the gain is gain * scale (scale 1 in the spec); as
    written (a Mul of the gain by a scalar) the two come apart, as timm's state_dict has them."""
    from cnncalc.interop.onnx_import import import_model
    from cnncalc.spec.loader import load_spec_text

    m, g = _standardised_conv(folded=folded)
    assert lifted(m) == ["conv"]
    imp = import_model(m, source="m.onnx")
    want = {"eps": 1e-05, "gain": True} if folded else {"eps": 1e-05, "gain": True, "scale": 0.5}
    assert f"standardize: {want}".replace("'", "").replace("True", "true").replace("1e-05", "1.0e-05") in imp.text
    spec = load_spec_text(imp.text)
    spec.infer()
    assert sum(a.size for a in imp.params["c"].values()) == 116 == cnncalc_params(spec)
    np.testing.assert_allclose(imp.params["c"]["gain"], g * np.float32(0.5) if folded else g, rtol=1e-6)


def cnncalc_params(spec):
    from cnncalc.analysis.report import analyze_graph

    return analyze_graph(spec).totals["params"]


@covers("conv")
def test_a_standardised_depthwise_weight_without_gain_is_a_dwconv_with_standardize():
    """BiT's StdConv2d (no gain: the BatchNormalization's scale is ones, a constant), depthwise:
    only the weight and bias are parameters (4*1*3*3 + 4 = 40)."""
    from cnncalc.interop.onnx_import import import_model

    m, _ = _standardised_conv(F=4, C=4, group=4, gain=False, scale=1.0, eps=1e-8)
    assert lifted(m) == ["dwconv"]
    imp = import_model(m, source="m.onnx")
    assert "standardize: {eps: 1.0e-08, gain: false}" in imp.text
    assert sorted(imp.params["c"]) == ["bias", "weight"] and imp.params["c"]["weight"].size == 36


def test_a_weight_batch_norm_with_a_bias_is_no_standardisation_and_stays_refused():
    """A non-zero BatchNormalization bias on the weight is not timm's form: the importer does not
    guess, it refuses as before (the weight merges several learned tensors)."""
    from cnncalc.interop import InteropError
    from cnncalc.interop.onnx_import import import_model

    m, _ = _standardised_conv(bias_bn=w(4))
    with pytest.raises(InteropError, match="learned tensors"):
        import_model(m, source="m.onnx")


@covers("conv")
@pytest.mark.parametrize("side", [6, 1])
def test_ecas_conv1d_over_the_channel_descriptor_reads_it_as_a_signal(side):
    """timm's EcaModule (eca_nfnet_l0): ``x.mean((2, 3)).view(N, 1, -1)`` → Conv1d(1, 1, 5) →
    sigmoid → ``.view(N, -1, 1, 1)`` → ``x * y.expand_as(x)``, then a residual add. The conv reads
    a tensor of 2 axes (1, C) as PyTorch's Conv1d reads (N, C, L): one channel, a signal of C
    values (it was refused: a conv read images only). At a 1x1 map (eca_nfnet_l0's last stage at
    32 px) the gated product is a tensor whose channel axis lost its role, laid out as the image:
    the residual add reads it as that image (it was "add needs equal shapes"). Outputs =
    onnxruntime's; the gradients through it are checked against finite differences."""
    from cnncalc.interop.onnx_import import import_model
    from cnncalc.runtime.gradcheck import TOL, gradcheck
    from cnncalc.spec.loader import load_spec_text

    nodes = [node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
             node("Reshape", ["m", "s3"], ["m3"]),
             node("Conv", ["m3", "eca.conv.weight"], ["c"], name="/eca/conv/Conv", pads=[2, 2], kernel_shape=[5]),
             node("Sigmoid", ["c"], ["g"]), node("Reshape", ["g", "s4"], ["g4"]),
             node("Expand", ["g4", "full"], ["ge"]), node("Mul", ["x", "ge"], ["xg"]),
             node("Add", ["xg", "x"], ["y"])]
    inits = {"s3": np.array([1, 1, -1], np.int64), "s4": np.array([1, -1, 1, 1], np.int64),
             "full": np.array([1, 8, side, side], np.int64), "eca.conv.weight": w(1, 1, 5)}
    m = model(nodes, inits, x=(1, 8, side, side))
    kinds = lifted(m)
    assert "conv" in kinds
    imp = import_model(m, source="m.onnx")
    g = load_spec_text(imp.text)
    g.infer()
    conv = next(n for n in g.layers if n.layer.kind == "conv")
    assert conv.shape == (8, 1) and conv.layer.macs() == 8 * 5  # 8 positions x 5 taps, one channel
    bad = [c for c in gradcheck(g, batch=2, seed=0) if not c.rel_error <= TOL]
    assert not bad, bad
    # the receptive field: the conv slides over channels, not over a spatial axis; after the
    # global mean it sees the whole input (it was "cannot follow the receptive field")
    from cnncalc.analysis.rf import receptive_fields
    rf = receptive_fields(g)
    assert rf.layers[conv.name].is_global


def test_a_computed_rank_0_weight_is_refused_not_a_crash():
    """A conv weight computed at import by a training-mode BatchNormalization (so the
    standardisation match looks at it), reshaped to rank 0: the weight-rank refusal, not an
    IndexError (exit 70)."""
    from cnncalc.interop import InteropError
    from cnncalc.interop.onnx_import import import_model

    one = onnx.numpy_helper.from_array(np.ones(1, np.float32))
    nodes = [node("Constant", [], ["s"], value=one), node("Constant", [], ["zero"], value=onnx.numpy_helper.from_array(
        np.zeros(1, np.float32))), node("BatchNormalization", ["c.weight", "s", "zero", "zero", "s"], ["wn", "rm", "rv"],
                                         training_mode=1),
             node("Reshape", ["wn", "scalar"], ["w2"]), node("Conv", ["x", "w2"], ["y"])]
    m = model(nodes, {"c.weight": w(1, 1, 1), "scalar": np.zeros(0, np.int64)})
    with pytest.raises(InteropError, match=r"a weight of shape \[\] \(rank 0\)"):
        import_model(m, source="m.onnx")


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


@covers("conv")
def test_a_standardised_conv_called_twice_imports_as_shares():
    """A standardised conv module used twice (`shares:`): cnncalc's ONNX export standardises the
    one weight at each use; the import finds the same raw weight, gain and bias behind both and
    writes `shares:` (parameters 4*4*3*3 + 4 + 4 = 152 once, MACs twice), not a second copy."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop.check import check_import
    from cnncalc.interop.onnx import import_model
    from cnncalc.interop.onnx_export import export_onnx
    from cnncalc.spec.loader import load_spec_text

    g = load_spec_text("input: 6x6x4\nlayers:\n"
                       "  - {conv: 4, kernel: 3, pad: 1, standardize: {gain: true, scale: 0.5}, activation: relu, name: a}\n"
                       "  - {conv: 4, kernel: 3, pad: 1, standardize: {gain: true, scale: 0.5}, shares: a, name: b}\n")
    g.infer()
    rng = np.random.default_rng(0)
    params = {"a": {k: rng.standard_normal(s).astype(np.float32) for k, (s, _) in g["a"].layer.param_shapes().items()},
              "b": {}}
    imp = import_model(export_onnx(g, params, {}), source="m.onnx")
    back = load_spec_text(imp.text).infer()
    assert [n.layer.args.get("shares") for n in back.layers] == [None, "a"]
    tot = analyze_graph(back).totals
    assert (tot["params"], tot["macs"]) == (4 * 4 * 9 + 4 + 4, 2 * 6 * 6 * 4 * 36)
    res = check_import(back, imp)
    assert res.ran and res.ok, res.line()
