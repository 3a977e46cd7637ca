"""The networks of issue 10, each built a second time by hand from torch.nn modules, following
torchvision's code (torchvision itself does not import here) and the papers.

Compared with the zoo spec: parameters = sum(p.numel()); MACs = the multiply-accumulates of
every Conv/ConvTranspose/Linear call, counted by forward hooks; the output shape; and the
multiset of (conv/fc output shape, parameter count) per layer. Built on the 'meta' device.
"""
from collections import Counter

import pytest

import cnncalc

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
pytestmark = pytest.mark.torch


def measure(model, shape):
    """(params, macs, output shape channels-last, Counter of (shape, params) per conv/linear)."""
    macs, rows = [], Counter()

    def hook(m, inp, out):
        if isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            n = inp[0].numel() * (m.out_channels // m.groups) * _prod(m.kernel_size)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
            n = out.numel() * (m.in_channels // m.groups) * _prod(m.kernel_size)
        else:  # Linear, possibly applied at every position (channels last)
            n = out.numel() * m.in_features
        macs.append(n)
        cl = tuple(out.shape[1:]) if out.dim() == 2 else (*out.shape[2:], out.shape[1])
        if isinstance(m, nn.Linear) and out.dim() > 2:  # (N, H, W, C) already
            cl = tuple(out.shape[1:])
        rows[(cl, sum(p.numel() for p in m.parameters()))] += 1

    kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
    for m in model.modules():
        if isinstance(m, kinds):
            m.register_forward_hook(hook)
    x = torch.empty(1, shape[-1], *shape[:-1], device="meta")
    model.eval()  # BN on 1x1 maps (SE, aux head, ASPP pooling) needs inference mode
    with torch.no_grad():
        y = model(x)
    out = tuple(y.shape[1:]) if y.dim() == 2 else (*y.shape[2:], y.shape[1])
    return sum(p.numel() for p in model.parameters()), sum(macs), out, rows


def _prod(t):
    n = 1
    for v in t:
        n *= v
    return n


def spec_rows(name):
    rep = cnncalc.analyze(name)
    rows = Counter()
    for r in rep.layers:
        if r.type in ("conv", "dwconv", "deconv", "fc"):
            # a conv's bn / prelu are separate rows in cnncalc and separate modules in torch
            rows[(tuple(r.shape), r.params)] += 1
    return rep, rows


def check(name, model, shape=None):
    rep, rows = spec_rows(name)
    params, macs, out, trows = measure(model, shape or rep.input_shape)
    assert params == rep.totals["params"]
    assert macs == rep.totals["macs"]
    assert out == tuple(rep.layers[-1].shape)
    assert trows == rows
    return rep


def cbn(i, o, k, s=1, p=None, g=1, act=nn.ReLU, d=1):
    p = (k // 2 if isinstance(k, int) else tuple(x // 2 for x in k)) if p is None else p
    mods = [nn.Conv2d(i, o, k, s, p, dilation=d, groups=g, bias=False), nn.BatchNorm2d(o)]
    return nn.Sequential(*mods, *([act()] if act else []))


def md(v, d=8):  # torchvision's _make_divisible
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


class SE(nn.Module):
    def __init__(self, c, sq, act, gate):
        super().__init__()
        self.fc1, self.fc2, self.act, self.gate = nn.Conv2d(c, sq, 1), nn.Conv2d(sq, c, 1), act(), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


# ----------------------------------------------------------------------------- EfficientNet-B0
class MBConv(nn.Module):
    def __init__(self, cin, t, k, s, c):
        super().__init__()
        e = cin * t
        self.res = s == 1 and cin == c
        self.f = nn.Sequential(*([cbn(cin, e, 1, act=nn.SiLU)] if t != 1 else []), cbn(e, e, k, s, g=e, act=nn.SiLU),
                               SE(e, max(1, cin // 4), nn.SiLU, nn.Sigmoid), cbn(e, c, 1, act=None))

    def forward(self, x):
        return x + self.f(x) if self.res else self.f(x)


def efficientnet_b0(w=1.0, d=1.0):
    import math
    cfg = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
           (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    layers = [cbn(3, md(32 * w), 3, 2, act=nn.SiLU)]
    for t, k, s, cin, c, n in cfg:
        cin, c = md(cin * w), md(c * w)
        for j in range(int(math.ceil(n * d))):
            layers.append(MBConv(cin if j == 0 else c, t, k, s if j == 0 else 1, c))
    last = md(320 * w)
    layers += [cbn(last, 4 * last, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
               nn.Linear(4 * last, 1000)]
    return nn.Sequential(*layers)


def test_efficientnet_b0():
    with torch.device("meta"):
        m = efficientnet_b0()
    rep = check("efficientnet_b0", m)
    assert rep.totals["params"] == 5_288_548  # torchvision's model table


@pytest.mark.parametrize("b,w,d,published", [(1, 1.0, 1.1, 7_794_184), (2, 1.1, 1.2, 9_109_994),
                                             (3, 1.2, 1.4, 12_233_232)])
def test_efficientnet_b1_to_b3_scaled_by_vars(b, w, d, published):
    with torch.device("meta"):
        m = efficientnet_b0(w, d)
    assert check(f"efficientnet_b{b}", m).totals["params"] == published  # torchvision's model table


# ----------------------------------------------------------------------------- MobileNetV3
class Bneck(nn.Module):
    def __init__(self, cin, k, e, c, se, act, s):
        super().__init__()
        a = nn.Hardswish if act == "HS" else nn.ReLU
        self.res = s == 1 and cin == c
        self.f = nn.Sequential(*([cbn(cin, e, 1, act=a)] if e != cin else []), cbn(e, e, k, s, g=e, act=a),
                               *([SE(e, md(e // 4), nn.ReLU, nn.Hardsigmoid)] if se else []), cbn(e, c, 1, act=None))

    def forward(self, x):
        return x + self.f(x) if self.res else self.f(x)


LARGE = [(16, 3, 16, 16, 0, "RE", 1), (16, 3, 64, 24, 0, "RE", 2), (24, 3, 72, 24, 0, "RE", 1),
         (24, 5, 72, 40, 1, "RE", 2), (40, 5, 120, 40, 1, "RE", 1), (40, 5, 120, 40, 1, "RE", 1),
         (40, 3, 240, 80, 0, "HS", 2), (80, 3, 200, 80, 0, "HS", 1), (80, 3, 184, 80, 0, "HS", 1),
         (80, 3, 184, 80, 0, "HS", 1), (80, 3, 480, 112, 1, "HS", 1), (112, 3, 672, 112, 1, "HS", 1),
         (112, 5, 672, 160, 1, "HS", 2), (160, 5, 960, 160, 1, "HS", 1), (160, 5, 960, 160, 1, "HS", 1)]
SMALL = [(16, 3, 16, 16, 1, "RE", 2), (16, 3, 72, 24, 0, "RE", 2), (24, 3, 88, 24, 0, "RE", 1),
         (24, 5, 96, 40, 1, "HS", 2), (40, 5, 240, 40, 1, "HS", 1), (40, 5, 240, 40, 1, "HS", 1),
         (40, 5, 120, 48, 1, "HS", 1), (48, 5, 144, 48, 1, "HS", 1), (48, 5, 288, 96, 1, "HS", 2),
         (96, 5, 576, 96, 1, "HS", 1), (96, 5, 576, 96, 1, "HS", 1)]


def mobilenet_v3(cfg, last):
    c = cfg[-1][3]
    return nn.Sequential(cbn(3, 16, 3, 2, act=nn.Hardswish), *[Bneck(*r) for r in cfg],
                         cbn(c, 6 * c, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6 * c, last), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(last, 1000))


@pytest.mark.parametrize("name,cfg,last,published", [("mobilenet_v3_large", LARGE, 1280, 5_483_032),
                                                     ("mobilenet_v3_small", SMALL, 1024, 2_542_856)])
def test_mobilenet_v3(name, cfg, last, published):
    with torch.device("meta"):
        m = mobilenet_v3(cfg, last)
    assert check(name, m).totals["params"] == published  # torchvision's model table


# ----------------------------------------------------------------------------- ConvNeXt-T
class LN2d(nn.LayerNorm):  # torchvision's LayerNorm2d: LayerNorm over C of an NCHW tensor
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(c, eps=1e-6), nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c, 1, 1), 1e-6))

    def forward(self, x):
        y = self.fc2(F.gelu(self.fc1(self.norm(self.dw(x).permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)
        return x + self.gamma * y


def convnext_tiny():
    dims, depths = (96, 192, 384, 768), (3, 3, 9, 3)
    layers = [nn.Conv2d(3, 96, 4, 4), LN2d(96, eps=1e-6)]
    for i, (c, d) in enumerate(zip(dims, depths)):
        if i:
            layers += [LN2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], c, 2, 2)]
        layers += [CNBlock(c) for _ in range(d)]
    layers += [nn.AdaptiveAvgPool2d(1), LN2d(768, eps=1e-6), nn.Flatten(), nn.Linear(768, 1000)]
    return nn.Sequential(*layers)


def test_convnext_tiny():
    with torch.device("meta"):
        m = convnext_tiny()
    rep, rows = spec_rows("convnext_tiny")
    params, macs, out, trows = measure(m, rep.input_shape)
    assert (params, macs, out) == (rep.totals["params"], rep.totals["macs"], (1000,))
    assert params == 28_589_128  # torchvision's model table
    # the pointwise Linear layers see channels-last tensors: compare them as 1x1 convs
    assert sorted(trows.values()) == sorted(rows.values()) and sum(trows.values()) == sum(rows.values())


# ----------------------------------------------------------------------------- Inception-v3
class Cat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.b = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.b], 1)


def bc(i, o, k, s=1, p=0):
    return nn.Sequential(nn.Conv2d(i, o, k, s, p, bias=False), nn.BatchNorm2d(o, eps=0.001), nn.ReLU())


def pool_avg():
    return nn.AvgPool2d(3, 1, 1)


def inc_a(i, pf):
    return Cat(bc(i, 64, 1), nn.Sequential(bc(i, 48, 1), bc(48, 64, 5, p=2)),
               nn.Sequential(bc(i, 64, 1), bc(64, 96, 3, p=1), bc(96, 96, 3, p=1)), nn.Sequential(pool_avg(), bc(i, pf, 1)))


def inc_b(i):
    return Cat(bc(i, 384, 3, 2), nn.Sequential(bc(i, 64, 1), bc(64, 96, 3, p=1), bc(96, 96, 3, 2)), nn.MaxPool2d(3, 2))


def inc_c(i, c7):
    return Cat(bc(i, 192, 1), nn.Sequential(bc(i, c7, 1), bc(c7, c7, (1, 7), p=(0, 3)), bc(c7, 192, (7, 1), p=(3, 0))),
               nn.Sequential(bc(i, c7, 1), bc(c7, c7, (7, 1), p=(3, 0)), bc(c7, c7, (1, 7), p=(0, 3)),
                             bc(c7, c7, (7, 1), p=(3, 0)), bc(c7, 192, (1, 7), p=(0, 3))),
               nn.Sequential(pool_avg(), bc(i, 192, 1)))


def inc_d(i):
    return Cat(nn.Sequential(bc(i, 192, 1), bc(192, 320, 3, 2)),
               nn.Sequential(bc(i, 192, 1), bc(192, 192, (1, 7), p=(0, 3)), bc(192, 192, (7, 1), p=(3, 0)),
                             bc(192, 192, 3, 2)), nn.MaxPool2d(3, 2))


def inc_e(i):
    pair = lambda c: Cat(bc(c, 384, (1, 3), p=(0, 1)), bc(c, 384, (3, 1), p=(1, 0)))  # noqa: E731
    return Cat(bc(i, 320, 1), nn.Sequential(bc(i, 384, 1), pair(384)),
               nn.Sequential(bc(i, 448, 1), bc(448, 384, 3, p=1), pair(384)), nn.Sequential(pool_avg(), bc(i, 192, 1)))


class Inception3(nn.Module):
    def __init__(self, aux):
        super().__init__()
        self.pre = nn.Sequential(bc(3, 32, 3, 2), bc(32, 32, 3), bc(32, 64, 3, p=1), nn.MaxPool2d(3, 2), bc(64, 80, 1),
                                 bc(80, 192, 3), nn.MaxPool2d(3, 2), inc_a(192, 32), inc_a(256, 64), inc_a(288, 64),
                                 inc_b(288), inc_c(768, 128), inc_c(768, 160), inc_c(768, 160), inc_c(768, 192))
        self.aux = nn.Sequential(nn.AvgPool2d(5, 3), bc(768, 128, 1), bc(128, 768, 5), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(768, 1000)) if aux else None
        self.post = nn.Sequential(inc_d(768), inc_e(1280), inc_e(2048), nn.AdaptiveAvgPool2d(1), nn.Dropout(0.5),
                                  nn.Flatten(), nn.Linear(2048, 1000))

    def forward(self, x):
        x = self.pre(x)
        if self.aux is not None:
            self.aux(x)
        return self.post(x)


@pytest.mark.parametrize("name,aux,published", [("inception_v3", False, 23_834_568),
                                                ("inception_v3_aux", True, 27_161_264)])
def test_inception_v3(name, aux, published):
    with torch.device("meta"):
        m = Inception3(aux)
    assert check(name, m).totals["params"] == published


# ----------------------------------------------------------------------------- DenseNet-201
class DenseLayer(nn.Module):
    def __init__(self, c, k=32):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 4 * k, 1, bias=False), nn.BatchNorm2d(4 * k),
                               nn.ReLU(), nn.Conv2d(4 * k, k, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


def densenet(blocks):
    layers, c = [cbn(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, 1)], 64
    for i, n in enumerate(blocks):
        for _ in range(n):
            layers.append(DenseLayer(c))
            c += 32
        if i < len(blocks) - 1:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers)


def test_densenet201():
    with torch.device("meta"):
        m = densenet((6, 12, 48, 32))
    assert check("densenet201", m).totals["params"] == 20_013_928


# ----------------------------------------------------------------------------- RegNetX-400MF
class XBlock(nn.Module):
    def __init__(self, cin, w, s):
        super().__init__()
        self.f = nn.Sequential(cbn(cin, w, 1), cbn(w, w, 3, s, g=w // 16), cbn(w, w, 1, act=None))
        self.proj = cbn(cin, w, 1, s, act=None) if (cin != w or s != 1) else None

    def forward(self, x):
        return F.relu(self.f(x) + (self.proj(x) if self.proj is not None else x))


def test_regnet_x_400mf():
    with torch.device("meta"):
        layers, cin = [cbn(3, 32, 3, 2)], 32
        for w, d in zip((32, 64, 160, 400), (1, 2, 7, 12)):
            for j in range(d):
                layers.append(XBlock(cin, w, 2 if j == 0 else 1))
                cin = w
        m = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(400, 1000))
    assert check("regnet_x_400mf", m).totals["params"] == 5_495_976


# ----------------------------------------------------------------------------- U-Net
class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        dbl = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.Conv2d(o, o, 3), nn.ReLU())  # noqa: E731
        self.enc = nn.ModuleList([dbl(1, 64), dbl(64, 128), dbl(128, 256), dbl(256, 512)])
        self.bottom = dbl(512, 1024)
        self.up = nn.ModuleList([nn.ConvTranspose2d(c * 2, c, 2, 2) for c in (512, 256, 128, 64)])
        self.dec = nn.ModuleList([dbl(c * 2, c) for c in (512, 256, 128, 64)])
        self.out = nn.Conv2d(64, 2, 1)

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(x)
            dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            skip = skip[:, :, dh // 2: dh // 2 + x.shape[2], dw // 2: dw // 2 + x.shape[3]]
            x = dec(torch.cat([skip, x], 1))
        return self.out(x)


def test_unet_paper():
    with torch.device("meta"):
        m = UNet()
    rep = check("unet", m)
    assert rep.input_shape == (572, 572, 1) and tuple(rep.layers[-1].shape) == (388, 388, 2)  # Fig. 1
    assert rep["up4/crop"].shape == (56, 56, 512) and rep["up1/crop"].shape == (392, 392, 64)


# ----------------------------------------------------------------------------- DeepLabv3 head
class ASPP(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.ModuleList([cbn(2048, 256, 1)] + [cbn(2048, 256, 3, p=r, d=r) for r in (12, 24, 36)])
        self.pool = cbn(2048, 256, 1)
        self.project = nn.Sequential(cbn(1280, 256, 1), nn.Dropout(0.5))
        self.head = nn.Sequential(cbn(256, 256, 3, p=1), nn.Conv2d(256, 21, 1))

    def forward(self, x):
        p = F.interpolate(self.pool(F.adaptive_avg_pool2d(x, 1)), size=x.shape[2:], mode="bilinear",
                          align_corners=False)
        return self.head(self.project(torch.cat([b(x) for b in self.b] + [p], 1)))


def test_deeplabv3_head():
    with torch.device("meta"):
        m = ASPP()
    check("deeplabv3_head", m)


# ----------------------------------------------------------------------------- C3D
def test_c3d():
    conv = lambda i, o: nn.Sequential(nn.Conv3d(i, o, 3, padding=1), nn.ReLU())  # noqa: E731
    with torch.device("meta"):
        m = nn.Sequential(conv(3, 64), nn.MaxPool3d((1, 2, 2), (1, 2, 2)), conv(64, 128), nn.MaxPool3d(2, 2),
                          conv(128, 256), conv(256, 256), nn.MaxPool3d(2, 2), conv(256, 512), conv(512, 512),
                          nn.MaxPool3d(2, 2), conv(512, 512), conv(512, 512), nn.MaxPool3d(2, 2, ceil_mode=True),
                          nn.Flatten(), nn.Linear(8192, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096),
                          nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 487), nn.Softmax(1))
    rep = check("c3d", m)
    assert rep["pool5"].shape == (1, 4, 4, 512)
