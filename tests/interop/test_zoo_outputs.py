"""Every zoo spec that says it is a torchvision or timm model computes that model: the model's
tensors (random, with random batch-norm statistics and no constant left: tests/interop/zoocheck.py
``prepare``), in module order, loaded into the runtime's layers in spec order, give the model's
logits in float64 on a random image. Equal parameter and MAC counts do not show this: TF's
``pad: same`` on a stride-2 conv (pad [0, 1] on an even map where PyTorch pads [1, 1]) or a
batch norm's eps change the outputs and leave every count alone — mobilenet_v2 and
mobilevit_xxs (padding) and mobilenet_v3_large/small (eps 0.001) computed another network
until these tests. Small inputs where the network takes any size."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

import cnncalc  # noqa: E402
from cnncalc.runtime.executor import Net  # noqa: E402

from .zoocheck import prepare  # noqa: E402


def move_last(keys, word):
    """Module order differs from spec order where a module registers a tensor before the layers
    it follows (torchvision's RegNet projection shortcut, ConvNeXt's layer scale): each key
    ``<prefix>.<word>…`` moves after the last key of its ``<prefix>``."""
    keys = list(keys)
    for k in [k for k in keys if f".{word}" in k or k.startswith(word)]:
        prefix = k.split(f".{word}")[0] + "." if f".{word}" in k else ""
        keys.remove(k)
        at = max(i for i, o in enumerate(keys) if o.startswith(prefix) and not o.split(prefix, 1)[1].startswith(word))
        j = at + 1
        while j < len(keys) and keys[j].startswith(prefix + word):  # (after the ones moved before it)
            j += 1
        keys.insert(j, k)
    return keys


def move_after(keys, moved, anchor):
    """Keys starting with ``moved`` go right after the last key starting with ``anchor`` (timm's
    ViT registers its class token and position embedding before the patch embedding)."""
    keys = list(keys)
    take = [k for k in keys if k.startswith(moved)]
    rest = [k for k in keys if not k.startswith(moved)]
    at = max(i for i, k in enumerate(rest) if k.startswith(anchor)) + 1
    return rest[:at] + take + rest[at:]


def outputs_gap(spec, model, size, *, last=(), after=()):
    """Largest |ours − theirs| over the logits, and the logits' largest magnitude."""
    torch.manual_seed(0)
    model = prepare(model).double().eval()
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    keys = list(sd)
    for word in last:
        keys = move_last(keys, word)
    for moved, anchor in after:
        keys = move_after(keys, moved, anchor)
    g = cnncalc.load(spec)
    g.infer((size, size, 3))
    net = Net(g, dtype="float64")
    ours = [(node.name, d, k) for node in g.layers for d in (net.params[node.name], net.state[node.name]) for k in d]
    assert len(ours) == len(keys)
    for (layer, d, k), key in zip(ours, keys):
        assert d[k].size == sd[key].numel(), (layer, k, d[k].shape, key, tuple(sd[key].shape))
        d[k] = sd[key].numpy().reshape(d[k].shape)
    x = np.random.default_rng(1).standard_normal((1, 3, size, size))  # (the runtime's layout: N, C, H, W)
    with torch.no_grad():
        want = model(torch.from_numpy(x))
    want = (want[0] if isinstance(want, tuple) else want).numpy()
    out = net.forward(x)
    got = net.logits(g.outputs[0] if g.outputs and g.outputs[0] in out else next(iter(out)))  # (before a softmax)
    got = got.reshape(want.shape)
    return float(np.abs(got - want).max()), float(np.abs(want).max())


def _tv(name, **kw):
    def make():
        tv = pytest.importorskip("torchvision")
        return getattr(tv.models, name)(**kw)
    return make


# spec, torchvision model, input side (the smallest multiple of 32 the network keeps > 1x1 at
# its last stage where it takes any size), keys to move after their block
TORCHVISION = [
    ("resnet18", _tv("resnet18"), 64, ()), ("resnet34", _tv("resnet34"), 64, ()),
    ("resnet50_tv", _tv("resnet50"), 64, ()), ("resnet101_tv", _tv("resnet101"), 64, ()),
    ("resnet152_tv", _tv("resnet152"), 64, ()), ("wide_resnet50_2", _tv("wide_resnet50_2"), 64, ()),
    ("resnext50_32x4d", _tv("resnext50_32x4d"), 64, ()),
    ("densenet121", _tv("densenet121"), 64, ()), ("densenet169", _tv("densenet169"), 64, ()),
    ("densenet201", _tv("densenet201"), 64, ()),
    ("mobilenet_v2", _tv("mobilenet_v2"), 64, ()),
    ("mobilenet_v3_large", _tv("mobilenet_v3_large"), 64, ()), ("mobilenet_v3_small", _tv("mobilenet_v3_small"), 64, ()),
    ("shufflenet_v2", _tv("shufflenet_v2_x1_0"), 64, ()),
    ("squeezenet1_0", _tv("squeezenet1_0"), 224, ()), ("squeezenet1_1", _tv("squeezenet1_1"), 224, ()),
    ("efficientnet_b0", _tv("efficientnet_b0"), 64, ()), ("efficientnet_b1", _tv("efficientnet_b1"), 64, ()),
    ("efficientnet_b2", _tv("efficientnet_b2"), 64, ()), ("efficientnet_b3", _tv("efficientnet_b3"), 64, ()),
    ("convnext_tiny", _tv("convnext_tiny"), 64, ("layer_scale",)),
    ("regnet_x_400mf", _tv("regnet_x_400mf"), 64, ("proj",)),
    *[(f"vgg{n}{bn}", _tv(f"vgg{n}{bn.replace('-', '_')}"), 224, ()) for n in (11, 13, 16, 19) for bn in ("", "-bn")],
    ("inception_v3", _tv("inception_v3", aux_logits=False, init_weights=False, transform_input=False), 299, ()),
]


# CI's slow group (its minutes) runs a sample with every fix and layout this file covers (padding,
# BN eps, key moves, a token network); `-m zoo_full` runs every spec
CI_SAMPLE = {"resnet18", "mobilenet_v2", "mobilenet_v3_small", "convnext_tiny", "regnet_x_400mf", "deit_tiny",
             "mobilevit_xxs"}


def _sampled(rows):
    return [pytest.param(*r, id=r[0], marks=pytest.mark.slow if r[0] in CI_SAMPLE else pytest.mark.zoo_full) for r in rows]


@pytest.mark.parametrize("spec, make, size, last", _sampled(TORCHVISION))
def test_outputs_equal_torchvision(spec, make, size, last):
    gap, scale = outputs_gap(spec, make(), size, last=last)
    assert gap <= 1e-9 * max(1.0, scale), (gap, scale)


@pytest.mark.slow
def test_move_last():
    keys = ["b.0.proj.w", "b.0.f.a.w", "b.0.f.b.w", "b.1.f.a.w", "c.ls", "c.x.w", "c.y.w"]
    assert move_last(keys, "proj") == ["b.0.f.a.w", "b.0.f.b.w", "b.0.proj.w", "b.1.f.a.w", "c.ls", "c.x.w", "c.y.w"]
    assert move_last(keys, "ls") == ["b.0.proj.w", "b.0.f.a.w", "b.0.f.b.w", "b.1.f.a.w", "c.x.w", "c.y.w", "c.ls"]
    assert move_after(keys, "c.ls", "b.0") == ["b.0.proj.w", "b.0.f.a.w", "b.0.f.b.w", "c.ls", "b.1.f.a.w", "c.x.w",
                                               "c.y.w"]


# spec, timm model, input side (the token networks' position embeddings fix it), key moves
TIMM = [("deit_tiny", "deit_tiny_patch16_224", 224), ("deit_small", "deit_small_patch16_224", 224),
        ("vit_b_16", "vit_base_patch16_224", 224), ("swin_t", "swin_tiny_patch4_window7_224", 224),
        ("mobilevit_xxs", "mobilevit_xxs", 256)]
_VIT_MOVES = (("cls_token", "patch_embed"), ("pos_embed", "cls_token"))


@pytest.mark.parametrize("spec, name, size", _sampled(TIMM))
def test_outputs_equal_timm(spec, name, size):
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False)
    gap, scale = outputs_gap(spec, model, size, after=_VIT_MOVES if name.startswith(("vit", "deit")) else (),
                             last=("relative_position_bias_table",) if name.startswith("swin") else ())
    assert gap <= 1e-9 * max(1.0, scale), (gap, scale)
