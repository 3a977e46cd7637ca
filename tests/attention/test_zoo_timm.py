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
       ("mobilevit_xxs", "mobilevit_xxs", 256), ("efficientvit_b1", "efficientvit_b1", 224)]


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
        model = timm.create_model(name, pretrained=False, img_size=size) if name.startswith(("vit", "deit", "swin")) \
            else timm.create_model(name, pretrained=False)  # (mobilevit and efficientvit take any size)
        macs = count(model.eval(), torch.randn(1, 3, size, size))
    finally:
        timm.layers.set_fused_attn(fused)
    assert cnncalc.analyze(spec).totals["macs"] == macs


@pytest.mark.slow
def test_efficientvit_b1_outputs_equal_timm(monkeypatch):
    """The zoo's EfficientViT-B1 (linear attention written with the tensor vocabulary: matmuls of
    two activations, the [V 1] padding, the division by the last column) computes timm's
    efficientvit_b1: timm's tensors, in module order, loaded into the runtime's layers in spec
    order, give timm's logits (float64; timm's attention casts to float32, here it keeps the
    model's dtype: the same products and division)."""
    import numpy as np
    from timm.models import efficientvit_mit

    def attn64(self, q, k, v):  # timm's LiteMLA._attn without its .float() casts
        out = q @ (k.transpose(-1, -2) @ v)
        return out[..., :-1] / (out[..., -1:] + self.eps)

    monkeypatch.setattr(efficientvit_mit.LiteMLA, "_attn", attn64)

    from cnncalc.runtime.executor import Net

    torch.manual_seed(0)
    model = timm.create_model("efficientvit_b1", pretrained=False).double().eval()
    with torch.no_grad():  # (random BN statistics and LayerNorm affine: make every tensor count)
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else
                        torch.randn_like(t) * (0.05 if t.ndim > 1 else 0.2))
    theirs = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    g = cnncalc.load("efficientvit_b1")
    net = Net(g, dtype="float64")
    ours = [(d, k) for node in g.layers for d in (net.params[node.name], net.state[node.name]) for k in d]
    assert len(ours) == len(theirs)
    for (d, k), (name, v) in zip(ours, theirs):
        assert d[k].size == v.numel(), (k, name)
        d[k] = v.numpy().reshape(d[k].shape)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224))  # (the runtime's layout: N, C, H, W)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = next(iter(net.forward(x).values()))
    assert np.allclose(got.reshape(want.shape), want, rtol=1e-9, atol=1e-9), np.abs(got.reshape(want.shape) - want).max()
