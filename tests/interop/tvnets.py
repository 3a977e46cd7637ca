"""Factories of torchvision models for `cnncalc import --torch tvnets.py:NAME`: any name
torchvision.models.get_model knows, untrained (no download), seeded, with batch-norm statistics
of a random batch and random values for every parameter initialised to a constant (zoocheck.prepare:
so that a folded or mis-wired BatchNorm, or a ConvNeXt block behind its 1e-6 layer scale, shows
in the outputs, not only the trained-from-scratch identity statistics)."""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (loaded as a file by import --torch)
from zoocheck import prepare  # noqa: E402

SEGMENTATION = ("fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")


def build(name: str):
    torch.manual_seed(0)
    kw = {"weights": None}
    if name in SEGMENTATION or name.startswith(("fcn_", "deeplabv3_", "lraspp_")):
        kw.update(weights_backbone=None, **({} if name.startswith("lraspp") else {"aux_loss": False}))
    if name in ("inception_v3", "googlenet"):
        kw["init_weights"] = True
        kw["aux_logits"] = False
    model = torchvision.models.get_model(name, **kw)
    fixed = name.startswith(("vit_", "swin_", "maxvit_", "alexnet", "vgg"))  # (224 px only)
    return prepare(model, 224 if fixed else 96)


def swin_v2_mini():
    """torchvision's Swin V2 in small (its V2 blocks and patch merging in the SwinTransformer of
    swin_v2_t): 2 stages of 2 blocks, 48 channels, windows of 4 — at 32 px 8 x 8 tokens in shifted
    windows, then 4 x 4 in one window; each block's first head's logit scale set above log 100,
    so that its clamp shows in the outputs."""
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

    torch.manual_seed(0)
    model = prepare(SwinTransformer(patch_size=[4, 4], embed_dim=48, depths=[2, 2], num_heads=[3, 6],
                                    window_size=[4, 4], block=SwinTransformerBlockV2,
                                    downsample_layer=PatchMergingV2), 32)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "logit_scale"):
                m.logit_scale[0] = 5.0
    return model


def __getattr__(name):  # tvnets.py:resnet18 → build("resnet18")
    if name.startswith("__"):
        raise AttributeError(name)
    return lambda: build(name)
