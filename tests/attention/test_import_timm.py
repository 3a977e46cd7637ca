"""timm's and torchvision's transformers through `import --torch` (issue 24 point 4): parameters =
sum(p.numel()), MACs = every conv/linear/matmul multiply-add counted at the dispatcher with the
attention unfused (test_torch_twin's counter), and the imported spec run on the runtime with the
module's weights against the module. Small inputs where the model takes them. Slow (one
torch.onnx.export and one import each: 5-20 s)."""
from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("onnx")
pytest.importorskip("numba")

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.check import check_import  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.interop.torch_import import torch_to_onnx  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

from tests.interop.zoocheck import dispatch_macs  # noqa: E402


def count(model, x):
    """MACs at the dispatcher, the attention on its unfused math path; grad enabled, because under
    no_grad torchvision's MultiheadAttention runs one fused aten op whose products it does not see."""
    return dispatch_macs(model, x, grad=True)


EXACT = [  # (timm name, input size, create kwargs, fused attention, attention layers lifted)
    ("vit_tiny_patch16_224", 32, {"img_size": 32, "depth": 2}, True, 2),
    ("vit_tiny_patch16_224", 32, {"img_size": 32, "depth": 2}, False, 2),
    ("deit_tiny_patch16_224", 64, {"img_size": 64}, True, 12),
    ("mobilevit_xxs", 64, {}, True, 9),  # (heads of 20 and 24 channels: a scale of 1/√20, 1/√24)
    ("efficientvit_b0", 64, {}, True, 0),  # (ReLU linear attention: matmuls, no softmax)
    ("poolformer_s12", 64, {}, True, 0),
    ("fastvit_t8", 64, {}, True, 0),
    ("levit_128s", 64, {"img_size": 64}, True, 0),  # (attention biases: relbias; subsampling attention)
    ("efficientvit_m0", 64, {"img_size": 64}, True, 0),  # (cascaded group attention; 1 x 1 last stage)
    # (XCA over channels with a learned temperature; the Fourier position encoding's 1x1 conv of a
    # constant grid as a matmul of two constants, inputs: [])
    ("edgenext_xx_small", 64, {}, True, 0),
    # (factorized attention with convolutional relative position encodings; each stage's position
    # encodings are one module called by both its blocks: shares:, parameters counted once)
    ("coat_lite_tiny", 64, {"img_size": 64}, True, 0),
    # Swin: 2 stages of 2 blocks at 32 px (8x8 then 4x4 tokens, windows of 4: shifted by 2, then one
    # window, no shift), and Swin-T itself (224 px, 12 blocks: 20 s)
    ("swin_tiny_patch4_window7_224", 32, {"img_size": 32, "window_size": 4, "depths": (2, 2), "num_heads": (3, 6),
                                          "embed_dim": 48}, True, 4),
    ("swin_tiny_patch4_window7_224", 224, {}, True, 12),
    # BEiT's q and v biases around a zero k bias (torch.cat((q_bias, k_bias, v_bias)), folded by
    # torch.onnx.export): qkv_bias: qv. Here without its relative position bias (an absolute position
    # embedding instead); with it: test_timm_beit_relative_position_bias_imports_exactly (cls_bias)
    ("beit_base_patch16_224", 32, {"img_size": 32, "depth": 2, "use_rel_pos_bias": False, "use_abs_pos_emb": True},
     True, 2),
    ("beit_base_patch16_224", 32, {"img_size": 32, "depth": 2, "use_rel_pos_bias": False, "use_abs_pos_emb": True},
     False, 2),
    # EVA's attention adds the same cat (a small EVA: the giant's blocks at 64 channels, no rotary
    # embedding). Unfused only: torch.onnx.export fails on its fused call (is_causal as a tensor)
    ("eva_giant_patch14_224", 32, {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 2,
                                   "mlp_ratio": 4}, False, 2),
    # Swin V2: the same folded cat as BEiT's, in cosine attention, which stays low-level ops: the
    # qkv fc without a bias, q_bias and v_bias added after the heads split (cosine_attention_qv_bias).
    # Two stages at 32 px, and Swin V2-T at 64 px with windows of 4 (28,347,154 parameters)
    ("swinv2_tiny_window8_256", 32, {"img_size": 32, "window_size": 4, "depths": (2, 2), "num_heads": (3, 6),
                                     "embed_dim": 48}, True, 0),
    ("swinv2_tiny_window8_256", 64, {"img_size": 64, "window_size": 4}, True, 0),
]


def _sharpen(model):
    """Linear weights of std 1/√in: with timm's 0.02, q·kᵀ is so small that the softmax is near
    uniform and the check could not see a wrong attention scale."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.weight.data.normal_(0, m.in_features ** -0.5, generator=g)
    for name, p in model.named_parameters():  # LeViT's and EfficientViT-M's tables start at zero:
        if name.endswith(("attention_biases", "relative_position_bias_table")):  # a table read at the
            # wrong offsets would not show; Swin's: values the scores notice
            p.data.normal_(0, 1, generator=g)
        elif name.endswith(("q_bias", "v_bias")):  # (BEiT's, zero at the start: a bias put in the wrong
            p.data.normal_(0, 1, generator=g)      # third, or k's, would not show)
    return model


def _import(model, size):
    _sharpen(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = torch_to_onnx(model, (size, size, 3))
    imp = import_model(proto, source="m", input_shape=(size, size, 3), name="m")
    imp.reference = model
    g = load_spec_text(imp.text)
    g.infer()
    return g, imp


# CI's slow group runs ViT both ways, MobileViT (its 1/sqrt(20) scale), LeViT (relbias), EdgeNeXt
# (its layer of constants only) and a two-stage Swin at 32 px; `-m zoo_full` every family
CI_SAMPLE = {"vit_tiny_patch16_224", "mobilevit_xxs", "levit_128s", "edgenext_xx_small",
             ("swin_tiny_patch4_window7_224", 32), "beit_base_patch16_224", ("swinv2_tiny_window8_256", 32),
             "eva_giant_patch14_224"}


@pytest.mark.parametrize("name, size, kw, fused, lifted", [
    pytest.param(*e, id=f"{e[0]}{'' if e[3] else '-unfused'}{'-' + str(e[1]) if e[0].startswith('swin') else ''}",
                 marks=pytest.mark.slow if e[0] in CI_SAMPLE or e[:2] in CI_SAMPLE else pytest.mark.zoo_full)
    for e in EXACT])
def test_timm_imports_exactly(name, size, kw, fused, lifted):
    was = timm.layers.use_fused_attn()
    timm.layers.set_fused_attn(fused)
    try:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, **kw).eval()
    finally:
        timm.layers.set_fused_attn(was)
    if name.startswith(("beit", "eva", "swinv2")):  # (Swin V2's post-norms start at γ = 0: every block would add
        from tests.interop.zoocheck import prepare  # nothing, and the check could not see its attention)
        prepare(model, size)
    g, imp = _import(model, size)
    macs = count(model, torch.randn(1, 3, size, size))
    tot = analyze_graph(g).totals
    assert tot["params"] == sum(p.numel() for p in model.parameters())
    assert tot["macs"] == macs
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line()
    assert sum(n.kind == "attention" for n in g.layers) == lifted
    if name.startswith(("beit", "eva")):  # (the k bias, a buffer of zeros, is no parameter: qv)
        assert {n.layer.args["qkv_bias"] for n in g.layers if n.kind == "attention"} == {"qv"}
    if name.startswith("swinv2"):  # (every block's qkv fc without its folded 3·C bias)
        qkv = [n for n in g.layers if n.kind == "fc" and n.name.endswith(".attn")]
        assert qkv and all(n.layer.args["bias"] is False for n in qkv)


@pytest.mark.parametrize("name, kw", [
    pytest.param("edgenext_xx_small", {}, marks=pytest.mark.slow),
    pytest.param("coat_lite_tiny", {"img_size": 64}, marks=pytest.mark.zoo_full)])
def test_from_an_exported_onnx_file_imports_exactly(name, kw):
    """The other path: a default torch.onnx.export file (batch norm folded), imported without the
    module: parameters and MACs as the module's, outputs as onnxruntime's (tests/interop/zoocheck),
    with every constant-initialised parameter drawn at random so that EdgeNeXt's position
    encoding's bias and layer scales show on the outputs. CoaT's shared modules are one initializer
    each in the file: `shares:` again."""
    from tests.interop.zoocheck import one_path, prepare

    torch.manual_seed(0)
    model = prepare(timm.create_model(name, pretrained=False, **kw), 64)
    r = one_path(model, name, 64, "onnx")
    assert r["status"] == "exact", r
    assert r["params"] == sum(p.numel() for p in model.parameters())
    assert r["macs"] == count(model, torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("name, size", [
    pytest.param("levit_128s", 64, marks=pytest.mark.slow),
    pytest.param("efficientvit_m0", 64, marks=pytest.mark.zoo_full)])
def test_attention_bias_tables_import_exactly_both_paths(name, size):
    """LeViT's and EfficientViT-M's attention biases — a learned (heads, T) table gathered by a
    constant (Nq, Nk) index of |Δy|·W + |Δx| offsets — as relbias layers holding the table: on
    `import --torch` parameters = sum(p.numel()) (the tables, not the heads x Nq x Nk values
    they are read at), MACs at the dispatcher, outputs = the module; on a default
    torch.onnx.export file outputs = onnxruntime (zoocheck: every constant-initialised
    parameter, the tables included, drawn at random; BN statistics measured)."""
    from tests.interop.zoocheck import one_path, prepare

    torch.manual_seed(0)
    model = prepare(timm.create_model(name, pretrained=False, img_size=size), size)
    want_params = sum(p.numel() for p in model.parameters())
    macs = count(model, torch.randn(1, 3, size, size))
    for path in ("torch", "onnx"):
        r = one_path(model, name, size, path, want_params=want_params, want_macs=macs)
        assert r["status"] == "exact", (path, r)
    g, _ = _import(model, size)
    tables = {n: p.numel() for n, p in model.named_parameters() if n.endswith("attention_biases")}
    rb = [n.layer for n in g.layers if n.kind == "relbias"]
    # one relbias per attention (LeViT) or per head (EfficientViT-M's cascade), holding the table
    assert sum(L.table[0] * L.table[1] for L in rb) == sum(tables.values())
    assert len(rb) == (len(tables) if name.startswith("levit") else
                       sum(m.num_heads for m in model.modules() if type(m).__name__ == "CascadedGroupAttention"))


@pytest.mark.zoo_full  # (minutes: a developer's run, not CI's)
def test_torchvision_vit_b_16_imports_exactly():
    """torchvision's ViT-B/16 at 32 x 32 (4 patches + the class token; the zero-initialised head
    drawn at random by _sharpen): nn.MultiheadAttention as
    torch.onnx.export writes it (sequence first, q/k/v folded with the heads), the class token, the
    position embedding. MACs by hand: patches 4·768·768 + 12 layers × (5·768·2304 + 2·12·5·5·64 +
    5·768·768 + 2·5·768·3072) + the head 768·1000."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(image_size=32).eval()
    g, imp = _import(model, 32)
    tot = analyze_graph(g).totals
    hand = 4 * 768 * 768 + 12 * (5 * 768 * 2304 + 2 * 12 * 5 * 5 * 64 + 5 * 768 * 768 + 2 * 5 * 768 * 3072) + 768 * 1000
    assert tot["macs"] == count(model, torch.randn(1, 3, 32, 32)) == hand
    assert tot["params"] == sum(p.numel() for p in model.parameters())
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["torch", "onnx"])
def test_torchvision_swin_imports_exactly(path):
    """torchvision's Swin (its functional shifted_window_attention: the windows padded first and
    then rolled, q, k, v taken by index, the shifted-window mask built in the graph from the
    map's size, patch merging by four strided slices) at 32 px, 2 stages of 2 blocks, windows of
    4: exact through `import --torch` and through a default torch.onnx.export file, the bias
    lookup that the exporter folded counted as its (2w − 1)² x heads table."""
    pytest.importorskip("torchvision")
    from torchvision.models.swin_transformer import SwinTransformer

    from tests.interop.zoocheck import one_path, prepare

    torch.manual_seed(0)
    model = prepare(SwinTransformer(patch_size=[4, 4], embed_dim=48, depths=[2, 2], num_heads=[3, 6],
                                    window_size=[4, 4]), 32)
    g = torch.Generator().manual_seed(4)
    for m in model.modules():  # (the bias tables: values the scores notice)
        if hasattr(m, "relative_position_bias_table"):
            m.relative_position_bias_table.data.normal_(0, 1, generator=g)
    params = sum(p.numel() for p in model.parameters())
    r = one_path(model, "swin", 32, path, want_params=params, want_macs=count(model, torch.randn(1, 3, 32, 32)))
    assert r["status"] == "exact", r
    assert r["params"] == params  # (the onnx path too)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["torch", "onnx"])
def test_torchvision_maxvit_imports_exactly(path):
    """torchvision's MaxViT at 64 px (two blocks of 16 and 32 channels, 4x4 partitions): its
    MBConv, and its block and grid attention (windows and grid cells partitioned by reshapes and
    permutes, q·kᵀ and ·v written as Einsum, k scaled by 1/√C, a bias table gathered by Swin's
    index and folded by the exporter): exact through both paths, every attention one layer with
    bias_window 4 and its (2·4 − 1)² x heads table."""
    pytest.importorskip("torchvision")
    from torchvision.models.maxvit import MaxVit

    from tests.interop.zoocheck import one_path, prepare

    torch.manual_seed(0)
    model = prepare(MaxVit(input_size=(64, 64), stem_channels=16, partition_size=4, block_channels=[16, 32],
                           block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.0), 64)
    g = torch.Generator().manual_seed(4)
    for name, p in model.named_parameters():  # (the bias tables: values the scores notice)
        if name.endswith("relative_position_bias_table"):
            p.data.normal_(0, 1, generator=g)
    params = sum(p.numel() for p in model.parameters())
    r = one_path(model, "maxvit", 64, path, want_params=params, want_macs=count(model, torch.randn(1, 3, 64, 64)))
    assert r["status"] == "exact", r
    if path == "torch":  # (the ONNX file has batch norm folded into the convs: fewer parameters)
        assert r["params"] == params


@pytest.mark.slow
def test_torchvision_swin_v2_imports_exactly_and_round_trips():
    """torchvision's Swin V2 in small (tests/interop/tvnets.py swin_v2_mini: V2 blocks and patch
    merging, 32 px, windows of 4) through `import --torch`: parameters = sum(p.numel()), MACs = the
    dispatcher's (the position-bias MLP's two matmuls on its fixed table counted on every forward),
    outputs on the runtime, then exported to ONNX and to PyTorch, all equal the module. Its
    position-bias MLP is a matmul of constants only, its clamped logit scale a binary min of
    constants only, its qkv bias with the k third zeroed the parameter times a mask (each layer
    with inputs: []); the bias table is read by `gather relative: [4, 4]`. As an ONNX file the
    table and the weight are both named like parameters: refused, not counted either way."""
    pytest.importorskip("torchvision")
    from tests.interop.test_roundtrip import TV, roundtrip
    from tests.interop.tvnets import swin_v2_mini
    from tests.interop.zoocheck import one_path

    g, imp = roundtrip("swin_v2_mini", (32, 32, 3), ref=f"{TV}:swin_v2_mini")
    model = imp.reference
    assert analyze_graph(g).totals["params"] == sum(p.numel() for p in model.parameters()) == 413_866
    assert analyze_graph(g).totals["macs"] == count(model, torch.randn(1, 3, 32, 32)) == 8_563_456
    sourceless = [n for n in g.layers if not n.inputs]
    assert sorted(n.kind for n in sourceless) == ["binary"] * 8 + ["matmul"] * 4  # 4 blocks: MLP, scale, bias
    assert sum(1 for n in g.layers if n.kind == "gather" and list(n.layer.args["relative"] or ()) == [4, 4]) == 4
    r = one_path(swin_v2_mini(), "swin_v2_mini", 32, "onnx")
    assert r["status"] == "refused" and "a MatMul of constants only" in r["why"]


BEIT_SMALL = {"img_size": 32, "depth": 2, "embed_dim": 64, "num_heads": 4}  # (2x2 patches + the class token)


@pytest.mark.slow
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("path", ["torch", "onnx"])
def test_timm_beit_relative_position_bias_imports_exactly(path, fused):
    """timm's BEiT with its relative position bias (2 blocks of 64 channels, 4 heads, 32 px: a class
    token and 2x2 patches): every block one attention layer with bias_window: 2, cls_bias: true and
    qkv_bias: qv, holding the (2·2 − 1)² + 3 = 12 x 4 table (torch.onnx.export folds its lookup
    into a 4 x 5 x 5 constant, which the import reads back through BEiT's index); parameters =
    sum(p.numel()), MACs = the dispatcher's, outputs = the module's (`--torch`) and onnxruntime's
    (an ONNX file), every table and q/v bias random (timm starts them at zero)."""
    from tests.interop.zoocheck import one_path, prepare

    was = timm.layers.use_fused_attn()
    timm.layers.set_fused_attn(fused)
    try:
        torch.manual_seed(0)
        model = timm.create_model("beit_base_patch16_224", pretrained=False, **BEIT_SMALL).eval()
    finally:
        timm.layers.set_fused_attn(was)
    prepare(_sharpen(model), 32)
    params = sum(p.numel() for p in model.parameters())
    macs = count(model, torch.randn(1, 3, 32, 32))
    r = one_path(model, "beit", 32, path, want_params=params, want_macs=macs)
    assert r["status"] == "exact", r
    assert r["params"] == params and r["macs"] == macs
    if path == "torch":
        g, _ = _import(model, 32)
        att = [n.layer for n in g.layers if n.kind == "attention"]
        assert [(L.args["bias_window"], L.args["cls_bias"], L.args["qkv_bias"]) for L in att] == [(2, True, "qv")] * 2
        assert all(L.param_shapes()["rel_pos_table"][0] == (12, 4) for L in att)
