"""The attention zoo against timm: parameters = sum(p.numel()) of timm's model (pretrained=False), and
MACs = the matrix products and convolutions timm's forward runs, counted at the dispatcher with
the unfused attention (tests/attention/test_torch_twin.py's counter)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import cnncalc  # noqa: E402

from .test_torch_twin import count  # noqa: E402

ZOO = [("vit_b_16", "vit_base_patch16_224", 224), ("deit_tiny", "deit_tiny_patch16_224", 224),
       ("deit_small", "deit_small_patch16_224", 224), ("swin_t", "swin_tiny_patch4_window7_224", 224),
       ("mobilevit_xxs", "mobilevit_xxs", 256)]


@pytest.mark.parametrize("spec, name, size", ZOO)
def test_params_equal_timm(spec, name, size):
    model = timm.create_model(name, pretrained=False)
    assert cnncalc.analyze(spec).totals["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("spec, name, size", [pytest.param(*z, marks=pytest.mark.slow) if z[0] == "vit_b_16"
                                              else z for z in ZOO])
def test_macs_equal_timm_unfused(spec, name, size):
    fused = timm.layers.use_fused_attn()
    timm.layers.set_fused_attn(False)
    try:
        model = timm.create_model(name, pretrained=False, img_size=size) if "mobilevit" not in name else \
            timm.create_model(name, pretrained=False)
        macs = count(model.eval(), torch.randn(1, 3, size, size))
    finally:
        timm.layers.set_fused_attn(fused)
    assert cnncalc.analyze(spec).totals["macs"] == macs
