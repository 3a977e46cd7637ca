"""Factories of torchvision models for `cnncalc import --torch tvnets.py:NAME`: any name
torchvision.models.get_model knows, untrained (no download), seeded, with random batch-norm
statistics (so that a folded or mis-wired BatchNorm shows in the outputs, not only the
trained-from-scratch identity statistics)."""
import torch
import torchvision

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
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model.eval()


def __getattr__(name):  # tvnets.py:resnet18 → build("resnet18")
    if name.startswith("__"):
        raise AttributeError(name)
    return lambda: build(name)
