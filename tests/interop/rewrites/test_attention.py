"""The attention family's rewrites (cnncalc/interop/onnx/rewrites/attention.py): timm's Attention
block as torch.onnx.export writes it, fused (SDPA: the scale split as √s on q and on kᵀ) and
unfused (q·s, then q @ kᵀ), lifted to one attention layer with the same outputs (onnxruntime)
and the same counts as the low-level ops it replaces."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.onnx import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402
from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402

T, C, H = 5, 8, 2
D = C // H


def _i(*v):
    return np.array(v, np.int64)


def _qkv_bias(how):
    """The qkv bias (nodes, initializers, its tensor): timm's Linear bias (``param``, named like a
    parameter, its k third zero — a value, not a rule), BEiT's and Swin V2's cat((q_bias, zeros,
    v_bias)) as torch.onnx.export folds it (``folded``: an onnx:: tensor) or as a Concat node."""
    b = w(3 * C)
    b[C:2 * C] = 0.0
    if how == "param":
        return [], {"attn.qkv.bias": b}, "attn.qkv.bias"
    if how == "folded":
        return [], {"onnx::Add_41": b}, "onnx::Add_41"
    zero = onnx.numpy_helper.from_array(np.zeros(C, np.float32), "kz")
    return ([node("Constant", [], ["k_bias"], "/attn/Constant", value=zero),
             node("Concat", ["attn.q_bias", "k_bias", "attn.v_bias"], ["qkv_bias"], "/attn/Concat", axis=0)],
            {"attn.q_bias": b[:C], "attn.v_bias": b[2 * C:]}, "qkv_bias")


def _block(fused=True, scale=D ** -0.5, proj_bias=True, extra_reader=False, bias="param"):
    """x (1, C, T) → tokens (1, T, C) → timm's Attention → y (1, T, C)."""
    s = np.float32(scale ** 0.5) if fused else np.float32(scale)
    b_nodes, b_inits, b_name = _qkv_bias(bias)
    nodes = [node("Transpose", ["x"], ["tok"], "/tok/Transpose", perm=[0, 2, 1]),
             *b_nodes,
             node("MatMul", ["tok", "attn.qkv.weight"], ["qkv"], "/attn/qkv/MatMul"),
             node("Add", [b_name, "qkv"], ["qkvb"], "/attn/qkv/Add"),
             node("Reshape", ["qkvb", "s_heads"], ["r"], "/attn/Reshape"),
             node("Transpose", ["r"], ["p"], "/attn/Transpose", perm=[2, 0, 3, 1, 4]),
             node("Split", ["p", "ones"], ["q5", "k5", "v5"], "/attn/Split", axis=0),
             node("Squeeze", ["q5", "zero"], ["q"], "/attn/Squeeze"),
             node("Squeeze", ["k5", "zero"], ["k"], "/attn/Squeeze_1"),
             node("Squeeze", ["v5", "zero"], ["v"], "/attn/Squeeze_2")]
    if fused:  # what torch writes for scaled_dot_product_attention
        nodes += [node("Shape", ["q"], ["qshape"], "/attn/Shape"),
                  node("Mul", ["q", "s"], ["qs"], "/attn/Mul"),
                  node("Transpose", ["k"], ["kt"], "/attn/Transpose_1", perm=[0, 1, 3, 2]),
                  node("Mul", ["kt", "s"], ["ks"], "/attn/Mul_1"),
                  node("MatMul", ["qs", "ks"], ["sc"], "/attn/MatMul")]
    else:
        nodes += [node("Mul", ["q", "s"], ["qs"], "/attn/Mul"),
                  node("Transpose", ["k"], ["kt"], "/attn/Transpose_1", perm=[0, 1, 3, 2]),
                  node("MatMul", ["qs", "kt"], ["sc"], "/attn/MatMul")]
    nodes += [node("Softmax", ["sc"], ["a"], "/attn/Softmax", axis=-1),
              node("MatMul", ["a", "v"], ["o"], "/attn/MatMul_1"),
              node("Transpose", ["o"], ["ot"], "/attn/Transpose_2", perm=[0, 2, 1, 3]),
              node("Reshape", ["ot", "s_back"], ["om"], "/attn/Reshape_1"),
              node("MatMul", ["om", "attn.proj.weight"], ["pm" if proj_bias else "y"], "/attn/proj/MatMul")]
    if proj_bias:
        nodes.append(node("Add", ["attn.proj.bias", "pm"], ["y"], "/attn/proj/Add"))
    outputs = ("y",)
    if extra_reader:  # the attention map is also an output: the block cannot be one layer
        nodes.append(node("Identity", ["a"], ["amap"], "/attn/Identity"))
        outputs = ("y", "amap")
    inits = {"attn.qkv.weight": w(C, 3 * C), "s_heads": _i(1, T, 3, H, D),
             "ones": _i(1, 1, 1), "zero": _i(0), "s": s, "s_back": _i(1, T, C),
             "attn.proj.weight": w(C, C), "attn.proj.bias": w(C), **b_inits}
    return model(nodes, inits, x=(1, C, T), outputs=outputs)


MACS = T * C * 3 * C + 2 * H * T * T * D + T * C * C
PARAMS = C * 3 * C + 3 * C + C * C + C


def _totals(m):
    g = load_spec_text(import_model(m, source="m.onnx").text)
    return analyze_graph(g).totals


@covers("attention", "attention_proj_bias")
@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "unfused"])
def test_timm_attention_is_one_attention_layer(fused):
    m = _block(fused)
    assert lifted(m) == ["transpose", "attention"]
    tot = _totals(m)
    assert (tot["params"], tot["macs"]) == (PARAMS, MACS)


@covers("attention")
def test_without_the_output_bias_the_layer_says_so():
    m = _block(proj_bias=False)
    assert lifted(m) == ["transpose", "attention"]
    assert "proj_bias: false" in import_model(m, source="m.onnx").text
    assert _totals(m)["params"] == PARAMS - C


@covers("attention")
@pytest.mark.parametrize("bias", ["folded", "concat", "param"])
def test_a_qkv_bias_computed_as_q_zeros_v_is_qkv_bias_qv(bias):
    """BEiT's and Swin V2's cat((q_bias, zeros, v_bias)) — folded by the exporter or a Concat —
    lifts into qkv_bias: qv, 2·C parameters; a Linear's own bias stays 3·C, zeros and all."""
    m = _block(bias=bias)
    assert lifted(m) == ["transpose", "attention"]  # (and the outputs are onnxruntime's)
    text = import_model(m, source="m.onnx").text
    assert ("qkv_bias: qv" in text) == (bias != "param")
    assert _totals(m)["params"] == PARAMS - (C if bias != "param" else 0)


@covers("attention")
@pytest.mark.parametrize("why", ["scale", "reader"])
def test_a_block_that_is_not_exactly_attention_stays_low_level_with_the_same_counts(why):
    """A scale other than 1/√d (cnncalc's attention scales by 1/√d), or an attention map read
    outside the block: no lift; the low-level ops count the same MACs."""
    m = _block(fused=False, scale=0.3) if why == "scale" else _block(extra_reader=True)
    kinds = lifted(m)
    # (qkv and proj: Linear layers on tokens, the token_fc rewrite; QKᵀ and AV: matmuls)
    assert "attention" not in kinds and kinds.count("matmul") == 2 and kinds.count("fc") == 2 and "softmax" in kinds
    assert _totals(m)["macs"] == MACS


# ----------------------------------------------------------------------------- Swin
SC, SH, SW = 4, 2, 2  # channels, heads, window: a 4 x 4 map of 4 windows of 2 x 2 tokens
SN, SD, SMAP = SW * SW, SC // SH, 4


def _roll(nodes, x, out, s, axes=(1, 2), tag="roll"):
    """torch.roll(x, (s, s), (1, 2)) as torch.onnx.export writes it: two slices and a concat per axis."""
    for a in axes:
        c = out if a == axes[-1] else f"{tag}_c{a}"
        nodes += [node("Slice", [x, f"{tag}_st{a}", f"{tag}_big", f"ax{a}"], [f"{tag}_hi{a}"], f"/{tag}/Slice_{a}"),
                  node("Slice", [x, "zero", f"{tag}_st{a}", f"ax{a}"], [f"{tag}_lo{a}"], f"/{tag}/Slice_{a}b"),
                  node("Concat", [f"{tag}_hi{a}", f"{tag}_lo{a}"], [c], f"/{tag}/Concat_{a}", axis=a)]
        x = c
    return {f"{tag}_st{a}": _i(-s % SMAP) for a in axes} | {f"{tag}_big": _i(SMAP)}


def _swin_block(shift=1, bias="table", mask="right", qkv="split"):
    """x (1, C, 4, 4) → channels last → timm's (or torchvision's, qkv="gather") shifted window
    attention: roll by −shift, 2x2 windows, qkv, heads, q·s @ kᵀ + the relative position bias
    (a table of (2w − 1)² x heads read by Swin's index, as torch.onnx.export folds it) [+ the
    shifted-window mask], softmax, @ v, proj, windows back, roll back → channels first."""
    from cnncalc.runtime.kernels.attention import rel_index, shift_mask  # (the runtime's: a second method)

    nodes = [node("Transpose", ["x"], ["xh"], "/t/Transpose", perm=[0, 2, 3, 1])]
    inits = {"zero": _i(0), "ax1": _i(1), "ax2": _i(2), "one": _i(1)}
    x = "xh"
    if shift:
        inits |= _roll(nodes, "xh", "xr", -shift, tag="roll")
        x = "xr"
    nodes += [node("Reshape", [x, "s_part"], ["p6"], "/b/Reshape"),
              node("Transpose", ["p6"], ["p6t"], "/b/Transpose", perm=[0, 1, 3, 2, 4, 5]),
              node("Reshape", ["p6t", "s_win"], ["xw"], "/b/Reshape_1"),
              node("MatMul", ["xw", "attn.qkv.weight"], ["qkv0"], "/b/attn/qkv/MatMul"),
              node("Add", ["attn.qkv.bias", "qkv0"], ["qkv"], "/b/attn/qkv/Add"),
              node("Reshape", ["qkv", "s_heads"], ["r"], "/b/attn/Reshape"),
              node("Transpose", ["r"], ["p"], "/b/attn/Transpose", perm=[2, 0, 3, 1, 4])]
    if qkv == "split":
        nodes += [node("Split", ["p", "ones"], ["q5", "k5", "v5"], "/b/attn/Split", axis=0)]
        nodes += [node("Squeeze", [f"{t}5", "zero"], [t], f"/b/attn/Squeeze_{t}") for t in "qkv"]
    else:
        nodes += [node("Gather", ["p", f"i{j}"], [t], f"/b/attn/Gather_{t}", axis=0) for j, t in enumerate("qkv")]
        inits |= {f"i{j}": np.array(j, np.int64) for j in range(3)}
    table = w((2 * SW - 1) ** 2, SH)
    rpb = table[rel_index(SW).reshape(-1)].reshape(SN, SN, SH).transpose(2, 0, 1)[None]
    if bias == "free":  # one value per pair of tokens: not a relative position table
        rpb = w(1, SH, SN, SN)
    nodes += [node("Mul", ["q", "scale"], ["qs"], "/b/attn/Mul"),
              node("Transpose", ["k"], ["kt"], "/b/attn/Transpose_1", perm=[0, 1, 3, 2]),
              node("MatMul", ["qs", "kt"], ["sc"], "/b/attn/MatMul"),
              node("Add", ["sc", "attn.rel_pos_bias"], ["scb"], "/b/attn/Add")]
    sm_in = "scb"
    if shift and mask != "none":
        m = shift_mask(SMAP, SMAP, SW, shift)
        if mask == "other":  # (the windows' masks in another order)
            m = np.roll(m, 1, axis=0)
        nodes += [node("Reshape", ["scb", "s_mw"], ["scm"], "/b/attn/Reshape_m"),
                  h_const("maskc", m[:, None].astype(np.float32)),
                  node("Add", ["scm", "maskc"], ["scmm"], "/b/attn/Add_1"),
                  node("Reshape", ["scmm", "s_sc"], ["scb2"], "/b/attn/Reshape_m2")]
        sm_in = "scb2"
    nodes += [node("Softmax", [sm_in], ["a"], "/b/attn/Softmax", axis=-1),
              node("MatMul", ["a", "v"], ["o"], "/b/attn/MatMul_1"),
              node("Transpose", ["o"], ["ot"], "/b/attn/Transpose_2", perm=[0, 2, 1, 3]),
              node("Reshape", ["ot", "s_win"], ["om"], "/b/attn/Reshape_1"),
              node("MatMul", ["om", "attn.proj.weight"], ["pm"], "/b/attn/proj/MatMul"),
              node("Add", ["attn.proj.bias", "pm"], ["po"], "/b/attn/proj/Add"),
              node("Reshape", ["po", "s_rev"], ["q6"], "/b/Reshape_2"),
              node("Transpose", ["q6"], ["q6t"], "/b/Transpose_1", perm=[0, 1, 3, 2, 4, 5]),
              node("Reshape", ["q6t", "s_map"], ["ym"], "/b/Reshape_3")]
    y = "ym"
    if shift:
        inits |= _roll(nodes, "ym", "yr", shift, tag="back")
        y = "yr"
    nodes.append(node("Transpose", [y], ["y"], "/out/Transpose", perm=[0, 3, 1, 2]))
    nw = (SMAP // SW) ** 2
    inits |= {"s_part": _i(1, SMAP // SW, SW, SMAP // SW, SW, SC), "s_win": _i(-1, SN, SC),
              "s_heads": _i(nw, SN, 3, SH, SD), "ones": _i(1, 1, 1), "scale": np.float32(SD ** -0.5),
              "s_mw": _i(1, nw, SH, SN, SN), "s_sc": _i(nw, SH, SN, SN),
              "s_rev": _i(1, SMAP // SW, SMAP // SW, SW, SW, SC), "s_map": _i(1, SMAP, SMAP, SC),
              "attn.qkv.weight": w(SC, 3 * SC), "attn.qkv.bias": w(3 * SC), "attn.rel_pos_bias": rpb,
              "attn.proj.weight": w(SC, SC), "attn.proj.bias": w(SC)}
    return model(nodes, inits, x=(1, SC, SMAP, SMAP)), table


def h_const(out, value):
    import onnx

    return onnx.helper.make_node("Constant", [], [out], name=f"/{out}/Constant",
                                 value=onnx.numpy_helper.from_array(value))


SWIN_PARAMS = SC * 3 * SC + 3 * SC + SC * SC + SC + (2 * SW - 1) ** 2 * SH  # qkv, proj, the bias table
SWIN_MACS = 16 * SC * 3 * SC + 2 * 4 * SH * SN * SN * SD + 16 * SC * SC  # projections + 4 windows' QKᵀ and AV


@covers("swin_window_attention")
@pytest.mark.parametrize("shift, qkv", [(1, "split"), (0, "split"), (1, "gather")],
                         ids=["shifted", "unshifted", "torchvision-qkv"])
def test_swin_window_attention_is_one_layer_with_its_bias_table(shift, qkv):
    m, table = _swin_block(shift, qkv=qkv)
    assert lifted(m) == ["transpose", "reshape", "attention", "reshape", "transpose"]
    imp = import_model(m, source="m.onnx")
    att = next(k for k, v in imp.params.items() if "rel_pos_table" in v)
    assert np.array_equal(imp.params[att]["rel_pos_table"], table)  # (the table itself, not a copy of the gather)
    assert ("shift: 1" in imp.text) == bool(shift) and "window: 2" in imp.text
    tot = _totals(m)
    assert (tot["params"], tot["macs"]) == (SWIN_PARAMS, SWIN_MACS)


@covers("swin_window_attention")
@pytest.mark.parametrize("why", ["free-bias", "wrong-mask", "no-mask"])
def test_a_window_block_that_is_not_exactly_swin_stays_low_level_and_exact(why):
    """A bias of one value per pair of tokens (not one per relative offset), a mask that is not
    the shifted windows', or a shifted block without a mask: no attention layer; the low-level
    ops compute the same outputs (checked) and count the bias constant as it is."""
    m, _ = _swin_block(1, bias="free" if why == "free-bias" else "table",
                       mask={"wrong-mask": "other", "no-mask": "none"}.get(why, "right"))
    kinds = lifted(m)
    assert "attention" not in kinds and kinds.count("softmax") == 1
    assert _totals(m)["macs"] == SWIN_MACS


def _merging(style):
    """x (1, C, 4, 4) → channels last → Swin's patch merging (timm: reshape and permute;
    torchvision: four strided slices and a concat) → LayerNorm over 4C → linear 4C → 2C → channels first."""
    nodes = [node("Transpose", ["x"], ["xh"], "/t/Transpose", perm=[0, 2, 3, 1])]
    inits = {}
    if style == "timm":
        nodes += [node("Reshape", ["xh", "s6"], ["x6"], "/m/Reshape"),
                  node("Transpose", ["x6"], ["x6t"], "/m/Transpose", perm=[0, 1, 3, 4, 2, 5]),
                  node("Reshape", ["x6t", "s4"], ["xm"], "/m/Reshape_1")]
        inits |= {"s6": _i(1, 2, 2, 2, 2, SC), "s4": _i(1, 2, 2, 4 * SC)}
    else:
        for k, (r, c) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
            nodes += [node("Slice", ["xh", f"st{r}{c}", "big", "ax12", "two2"], [f"x{k}"], f"/m/Slice_{k}")]
            inits[f"st{r}{c}"] = _i(r, c)
        nodes.append(node("Concat", ["x0", "x1", "x2", "x3"], ["xm"], "/m/Concat", axis=-1))
        inits |= {"big": _i(4, 4), "ax12": _i(1, 2), "two2": _i(2, 2)}
    nodes += [node("LayerNormalization", ["xm", "m.norm.weight", "m.norm.bias"], ["xn"], "/m/norm/LayerNormalization",
                   axis=-1, epsilon=1e-5),
              node("MatMul", ["xn", "m.reduction.weight"], ["xr"], "/m/reduction/MatMul"),
              node("Transpose", ["xr"], ["y"], "/out/Transpose", perm=[0, 3, 1, 2])]
    inits |= {"m.norm.weight": w(4 * SC), "m.norm.bias": w(4 * SC), "m.reduction.weight": w(4 * SC, 2 * SC)}
    return model(nodes, inits, x=(1, SC, 4, 4))


@covers("swin_patch_merging")
@pytest.mark.parametrize("style", ["timm", "torchvision"])
def test_swin_patch_merging_is_one_layer(style):
    m = _merging(style)
    assert lifted(m) == ["transpose", "reshape", "patch_merging", "reshape", "transpose"]
    tot = _totals(m)
    assert (tot["params"], tot["macs"]) == (2 * 4 * SC + 4 * SC * 2 * SC, 4 * 4 * SC * 2 * SC)


@covers("swin_patch_merging")
def test_a_2x2_gather_in_another_order_is_not_patch_merging():
    """The 2x2 tokens concatenated row offset first (x0, x2, x1, x3): patch_merging's weight
    would read the channels in the wrong order; the low-level ops stay (and compute the same)."""
    m = _merging("torchvision")
    cat = next(n for n in m.graph.node if n.op_type == "Concat")
    cat.input[:] = ["x0", "x2", "x1", "x3"]
    kinds = lifted(m)
    assert "patch_merging" not in kinds and "layernorm" in kinds


# ----------------------------------------------------------------------------- MaxViT
MC, MH, MP, MG = 8, 2, 4, 4  # channels, heads, window side, windows: (4, 16, 8) sequences


def _maxvit_block(bias="table", split="slice"):
    """x (1, C, G, P²) → (1, G, P², C) → torchvision's MaxViT attention: qkv cut into q, k, v
    along the channels, heads, k scaled by 1/√C (MaxViT's, not 1/√d), Einsum q·kᵀ, + the
    relative position bias (a (2P − 1)² x heads table read by Swin's index, folded), softmax,
    Einsum ·v, merge → back to (1, C, G, P²)."""
    from cnncalc.runtime.kernels.attention import rel_index

    n, d = MP * MP, MC // MH
    nodes = [node("Transpose", ["x"], ["t"], "/t/Transpose", perm=[0, 2, 3, 1]),
             node("MatMul", ["t", "a.to_qkv.weight"], ["qkv0"], "/a/to_qkv/MatMul"),
             node("Add", ["a.to_qkv.bias", "qkv0"], ["qkv"], "/a/to_qkv/Add")]
    if split == "slice":
        nodes += [node("Slice", ["qkv", f"st{j}", f"en{j}", "last"], [f"c{j}"], f"/a/Slice_{j}") for j in range(3)]
    else:
        nodes.append(node("Split", ["qkv", "thirds"], ["c0", "c1", "c2"], "/a/Split", axis=-1))
    for j in range(3):
        nodes += [node("Reshape", [f"c{j}", "s_heads"], [f"r{j}"], f"/a/Reshape_{j}"),
                  node("Transpose", [f"r{j}"], [f"h{j}"], f"/a/Transpose_{j}", perm=[0, 1, 3, 2, 4])]
    table = w((2 * MP - 1) ** 2, MH)
    rpb = table[rel_index(MP).reshape(-1)].reshape(n, n, MH).transpose(2, 0, 1)[None]
    if bias == "free":
        rpb = w(1, MH, n, n)
    nodes += [node("Mul", ["h1", "scale"], ["ks"], "/a/Mul"),
              node("Einsum", ["h0", "ks"], ["sc"], "/a/Einsum", equation="bghid,bghjd->bghij"),
              node("Add", ["sc", "a.rel_bias"], ["scb"], "/a/Add"),
              node("Softmax", ["scb"], ["p"], "/a/Softmax", axis=-1),
              node("Einsum", ["p", "h2"], ["o"], "/a/Einsum_1", equation="bghij,bghjd->bghid"),
              node("Transpose", ["o"], ["ot"], "/a/Transpose_3", perm=[0, 1, 3, 2, 4]),
              node("Reshape", ["ot", "s_back"], ["om"], "/a/Reshape_3"),
              node("MatMul", ["om", "a.merge.weight"], ["m0"], "/a/merge/MatMul"),
              node("Add", ["a.merge.bias", "m0"], ["m"], "/a/merge/Add"),
              node("Transpose", ["m"], ["y"], "/out/Transpose", perm=[0, 3, 1, 2])]
    inits = {**{f"st{j}": _i(j * MC) for j in range(3)}, **{f"en{j}": _i((j + 1) * MC) for j in range(3)},
             "last": _i(-1), "thirds": _i(MC, MC, MC), "s_heads": _i(1, MG, n, MH, d), "s_back": _i(1, MG, n, MC),
             "scale": np.float32(MC ** -0.5), "a.to_qkv.weight": w(MC, 3 * MC), "a.to_qkv.bias": w(3 * MC),
             "a.rel_bias": rpb, "a.merge.weight": w(MC, MC), "a.merge.bias": w(MC)}
    return model(nodes, inits, x=(1, MC, MG, n)), table


MAXVIT_PARAMS = MC * 3 * MC + 3 * MC + MC * MC + MC + (2 * MP - 1) ** 2 * MH
MAXVIT_MACS = MG * 16 * MC * 3 * MC + 2 * MG * MH * 16 * 16 * (MC // MH) + MG * 16 * MC * MC


@covers("attention_bias_window", "attention_proj_bias")
@pytest.mark.parametrize("split", ["slice", "split"])
def test_maxvit_attention_is_one_layer_with_its_bias_table_and_scale(split):
    m, table = _maxvit_block(split=split)
    assert lifted(m) == ["transpose", "attention", "transpose"]
    imp = import_model(m, source="m.onnx")
    att = next(k for k, v in imp.params.items() if "rel_pos_table" in v)
    assert np.array_equal(imp.params[att]["rel_pos_table"], table)
    assert "bias_window: 4" in imp.text and f"qk_scale: {float(np.float32(MC ** -0.5))}" in imp.text
    tot = _totals(m)
    assert (tot["params"], tot["macs"]) == (MAXVIT_PARAMS, MAXVIT_MACS)


@covers("attention_bias_window")
def test_a_bias_that_is_not_a_relative_position_table_stays_low_level():
    m, _ = _maxvit_block(bias="free")
    kinds = lifted(m)
    assert "attention" not in kinds and kinds.count("matmul") == 2
    assert _totals(m)["macs"] == MAXVIT_MACS


# ----------------------------------------------------------------------------- Swin V2's cosine attention
def _cosine_block(bias="folded"):
    """x (1, C, T) → tokens → Swin V2's cosine attention (q and k L2-normalised, no scale) with the
    qkv bias ``bias`` (:func:`_qkv_bias`) → y (1, T, C): low-level ops, no attention layer."""
    b_nodes, b_inits, b_name = _qkv_bias(bias)
    nodes = [node("Transpose", ["x"], ["tok"], "/tok/Transpose", perm=[0, 2, 1]),
             *b_nodes,
             node("MatMul", ["tok", "attn.qkv.weight"], ["qkv"], "/attn/MatMul"),
             node("Add", [b_name, "qkv"], ["qkvb"], "/attn/Add"),
             node("Reshape", ["qkvb", "s_heads"], ["r"], "/attn/Reshape"),
             node("Transpose", ["r"], ["p"], "/attn/Transpose", perm=[2, 0, 3, 1, 4]),
             node("Split", ["p", "ones"], ["q5", "k5", "v5"], "/attn/Split", axis=0),
             node("Squeeze", ["q5", "zero"], ["q"], "/attn/Squeeze"),
             node("Squeeze", ["k5", "zero"], ["k"], "/attn/Squeeze_1"),
             node("Squeeze", ["v5", "zero"], ["v"], "/attn/Squeeze_2"),
             node("ReduceL2", ["q"], ["qn"], "/attn/ReduceL2", axes=[-1], keepdims=1),
             node("Div", ["q", "qn"], ["qu"], "/attn/Div"),
             node("ReduceL2", ["k"], ["kn"], "/attn/ReduceL2_1", axes=[-1], keepdims=1),
             node("Div", ["k", "kn"], ["ku"], "/attn/Div_1"),
             node("Transpose", ["ku"], ["kt"], "/attn/Transpose_1", perm=[0, 1, 3, 2]),
             node("MatMul", ["qu", "kt"], ["sc"], "/attn/MatMul_1"),
             node("Mul", ["sc", "ls"], ["scs"], "/attn/Mul"),
             node("Softmax", ["scs"], ["a"], "/attn/Softmax", axis=-1),
             node("MatMul", ["a", "v"], ["o"], "/attn/MatMul_2"),
             node("Transpose", ["o"], ["ot"], "/attn/Transpose_2", perm=[0, 2, 1, 3]),
             node("Reshape", ["ot", "s_back"], ["y"], "/attn/Reshape_1")]
    inits = {"attn.qkv.weight": w(C, 3 * C), "s_heads": _i(1, T, 3, H, D), "ones": _i(1, 1, 1), "zero": _i(0),
             "ls": np.float32(10.0), "s_back": _i(1, T, C), **b_inits}
    return model(nodes, inits, x=(1, C, T), opset=17)


@covers("cosine_attention_qv_bias")
@pytest.mark.parametrize("bias", ["folded", "param"])  # (a Concat left in the file: its matmul and add stay
# low-level — the bias is no learned initializer, so no fc takes it — and the rewrite does not run)
def test_cosine_attention_takes_its_q_and_v_biases_apart(bias):
    """Swin V2's block stays low-level ops: with the cat((q_bias, zeros, v_bias)) bias its qkv fc
    has no bias and q_bias, v_bias (h x 1 x d) are added after the heads split — 2·C parameters,
    the same outputs (onnxruntime's); a Linear's own bias stays the fc's, 3·C."""
    m = _cosine_block(bias)
    kinds = lifted(m)
    assert "attention" not in kinds
    imp = import_model(m, source="m.onnx")
    g = load_spec_text(imp.text)
    qkv = next(n for n in g.layers if n.kind == "fc")
    adds = [n for n in g.layers if n.kind == "binary" and n.layer.args.get("op") == "add"]
    assert analyze_graph(g).totals["params"] == C * 3 * C + (2 * C if bias != "param" else 3 * C)
    if bias == "param":
        assert qkv.layer.args["bias"] is True and not adds
    else:
        assert qkv.layer.args["bias"] is False and len(adds) == 2
        assert [imp.params[n.name]["const1"].shape for n in adds] == [(H, 1, D)] * 2
