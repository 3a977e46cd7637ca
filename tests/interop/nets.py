"""Hand-written PyTorch models (not from a cnncalc spec) for `cnncalc import --torch`."""
import torch
from torch import nn


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout, written out by hand."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, stages = 64, []
        for i, c in enumerate([64, 128, 256, 512]):
            stages.append(nn.Sequential(Basic(cin, c, 1 if i == 0 else 2), Basic(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _double(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """A small U-Net (Ronneberger et al. 2015, with 'same' convs): two levels down, two up."""

    def __init__(self, c=8, classes=2):
        super().__init__()
        self.enc1, self.enc2, self.mid = _double(3, c), _double(c, 2 * c), _double(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = _double(4 * c, 2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = _double(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


class UNetUpsample(nn.Module):
    """A small U-Net as in the 2015 paper (valid 3x3 convs, so the skips are centre-cropped),
    upsampling with nn.Upsample (bilinear) + a 1x1 conv instead of a transposed conv, SiLU."""

    def __init__(self, c=4, classes=2):
        super().__init__()

        def double(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.SiLU(), nn.Conv2d(cout, cout, 3), nn.SiLU())
        self.enc1, self.enc2, self.mid = double(3, c), double(c, 2 * c), double(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.reduce2, self.reduce1 = nn.Conv2d(4 * c, 2 * c, 1), nn.Conv2d(2 * c, c, 1)
        self.dec2, self.dec1 = double(4 * c, 2 * c), double(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    @staticmethod
    def crop(skip, like):
        dh, dw = (skip.shape[2] - like.shape[2]) // 2, (skip.shape[3] - like.shape[3]) // 2
        return skip[:, :, dh:dh + like.shape[2], dw:dw + like.shape[3]]

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        u2 = self.reduce2(self.up(m))
        d2 = self.dec2(torch.cat([self.crop(e2, u2), u2], 1))
        u1 = self.reduce1(self.up(d2))
        d1 = self.dec1(torch.cat([self.crop(e1, u1), u1], 1))
        return self.head(d1)


def unet_upsample():
    return UNetUpsample()


def resnet18():
    return ResNet18()


def unet():
    return UNet()


def raises():
    raise RuntimeError("no GPU here")


def not_a_module():
    return 42


class _WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.unused = nn.Linear(2, 2)  # 6 parameters the forward pass never touches

    def forward(self, x):
        return self.conv(x)


def with_unused():
    return _WithUnused()


class _LookupBias(nn.Module):
    """A conv, then a bias read from a learned table of 5 at fixed indices (64 of them, one per
    pixel of the 8x8 map): torch.onnx.export folds table[idx] into one (8, 8) constant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.table = nn.Parameter(torch.randn(5))
        self.register_buffer("idx", torch.arange(64) % 5)

    def forward(self, x):  # (torchvision's Swin reads its bias table so: a flat index, a view)
        return self.conv(x) + self.table[self.idx].view(8, 8).contiguous().unsqueeze(0)


def lookup_bias():
    return _LookupBias()
