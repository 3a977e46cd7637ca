"""Factories of torchvision models for `cnncalc import --torch tvnets.py:NAME`: any name
torchvision.models.get_model knows, untrained (no download), seeded, with random batch-norm
statistics and random values for every parameter initialised to a constant (zoocheck.prepare:
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
    return prepare(model)


def __getattr__(name):  # tvnets.py:resnet18 → build("resnet18")
    if name.startswith("__"):
        raise AttributeError(name)
    return lambda: build(name)
