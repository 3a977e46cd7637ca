"""Second, independent method: the same networks built by hand from torch.nn modules.

Parameters are ``sum(p.numel() for p in model.parameters())``; MACs are counted by forward
hooks on Conv2d / Linear (output elements × in_channels/groups × kernel area, or in × out).
Skipped when torch is not installed; built on the 'meta' device (no weights allocated).
"""
import pytest

import cnncalc

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = pytest.mark.torch


class Bottleneck(nn.Module):
    def __init__(self, cin, w, s, v15):
        super().__init__()
        c = lambda i, o, k, st: nn.Sequential(nn.Conv2d(i, o, k, st, k // 2, bias=False), nn.BatchNorm2d(o))  # noqa: E731
        self.body = nn.Sequential(c(cin, w, 1, 1 if v15 else s), nn.ReLU(), c(w, w, 3, s if v15 else 1), nn.ReLU(),
                                  c(w, 4 * w, 1, 1))
        self.short = c(cin, 4 * w, 1, s) if (s != 1 or cin != 4 * w) else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet(blocks, v15):
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for w, n, s in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)):
        for j in range(n):
            layers.append(Bottleneck(cin, w, s if j == 0 else 1, v15))
            cin = 4 * w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def count(model, shape):
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs.append(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        else:
            macs.append(m.in_features * m.out_features)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.empty(1, shape[2], shape[0], shape[1], device="meta"))
    return sum(p.numel() for p in model.parameters()), sum(macs)


@pytest.mark.parametrize("name,blocks", [("resnet50", (3, 4, 6, 3)), ("resnet101", (3, 4, 23, 3))])
@pytest.mark.parametrize("v15", [False, True])
def test_resnet_against_torch(name, blocks, v15):
    with torch.device("meta"):
        model = resnet(blocks, v15)
    params, macs = count(model, (224, 224, 3))
    t = cnncalc.analyze(name + ("_tv" if v15 else "")).totals
    assert (t["params"], t["macs"]) == (params, macs)


def test_mobilenet_v2_against_torch():
    def cbr(i, o, k, s, g=1, act=True):
        mods = [nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o)]
        return nn.Sequential(*mods, *([nn.ReLU6()] if act else []))

    class IR(nn.Module):
        def __init__(self, i, o, s, t):
            super().__init__()
            h = i * t
            self.res = s == 1 and i == o
            self.f = nn.Sequential(*([cbr(i, h, 1, 1)] if t != 1 else []), cbr(h, h, 3, s, g=h), cbr(h, o, 1, 1, act=False))

        def forward(self, x):
            return x + self.f(x) if self.res else self.f(x)

    with torch.device("meta"):
        layers, cin = [cbr(3, 32, 3, 2)], 32
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)]:
            for j in range(n):
                layers.append(IR(cin, c, s if j == 0 else 1, t))
                cin = c
        layers += [cbr(320, 1280, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
        model = nn.Sequential(*layers)
    params, macs = count(model, (224, 224, 3))
    t = cnncalc.analyze("mobilenet_v2").totals
    assert (t["params"], t["macs"]) == (params, macs) == (3_504_872, 300_774_272)
