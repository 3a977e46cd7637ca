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
    # Swin: 2 stages of 2 blocks at 32 px (8x8 then 4x4 tokens, windows of 4: shifted by 2, then one
    # window, no shift), and Swin-T itself (224 px, 12 blocks: 20 s)
    ("swin_tiny_patch4_window7_224", 32, {"img_size": 32, "window_size": 4, "depths": (2, 2), "num_heads": (3, 6),
                                          "embed_dim": 48}, True, 4),
    ("swin_tiny_patch4_window7_224", 224, {}, True, 12),
]


def _sharpen(model):
    """Linear weights of std 1/√in: with timm's 0.02, q·kᵀ is so small that the softmax is near
    uniform and the check could not see a wrong attention scale."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.weight.data.normal_(0, m.in_features ** -0.5, generator=g)
    for name, p in model.named_parameters():  # (Swin's bias table: values the scores notice)
        if name.endswith("relative_position_bias_table"):
            p.data.normal_(0, 1, generator=g)
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


# CI's slow group runs ViT both ways and MobileViT (its 1/sqrt(20) scale); `-m zoo_full` every family
CI_SAMPLE = {"vit_tiny_patch16_224", "mobilevit_xxs", ("swin_tiny_patch4_window7_224", 32)}


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
    g, imp = _import(model, size)
    macs = count(model, torch.randn(1, 3, size, size))
    tot = analyze_graph(g).totals
    assert tot["params"] == sum(p.numel() for p in model.parameters())
    assert tot["macs"] == macs
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line()
    assert sum(n.kind == "attention" for n in g.layers) == lifted


@pytest.mark.slow
def test_levit_attention_biases_are_refused_not_miscounted():
    """LeViT's attention biases are a parameter table read by constant indices: no spec layer
    holds such a table, so the importer refuses the Gather instead of counting the gathered
    N x N values (or none) as parameters."""
    from cnncalc.interop import InteropError

    model = timm.create_model("levit_128s", pretrained=False, img_size=64).eval()
    with pytest.raises(InteropError, match="attention_biases"):
        _import(model, 64)


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
