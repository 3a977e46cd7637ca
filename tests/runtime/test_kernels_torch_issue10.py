"""Issue 10's runtime against PyTorch CPU (float64, relative 1e-9): every new layer type run
through the executor's own row (so the layout plumbing is checked too), forward output and
the gradients of the input and of every parameter for a random probe dY. Skipped without torch.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import cnncalc  # noqa: E402
from cnncalc.runtime.executor import Net  # noqa: E402

pytestmark = pytest.mark.torch
TOL = 1e-9


def close(ours, theirs, what="", tol=TOL):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, float(np.abs(theirs).max())),
                               err_msg=what)


def run(tmp_path, input_shape, layer_yaml, torch_fn, runtime_shape, tol=TOL):
    """Build a one-layer spec, run its row forward and backward, and compare with
    ``torch_fn(x, *params)`` (x in runtime layout, params as the runtime holds them)."""
    p = tmp_path / "one.yaml"
    p.write_text(f"name: one\ninput: {input_shape}\nlayers:\n  - {layer_yaml}\n")
    graph = cnncalc.load(p)
    net = Net(graph, dtype="float64")
    name = graph.layers[0].name
    r = np.random.default_rng(3)
    for arr in net.params[name].values():  # random parameters, not the init's constants
        arr[...] = r.uniform(0.5, 1.5, arr.shape) * r.choice([-1, 1], arr.shape) * 0.8
    x = r.standard_normal(runtime_shape)
    y, cache = net.run_node(name, [x], train=True)
    dy = r.standard_normal(y.shape)
    dxs, dps = net.backward_node(name, dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in net.params[name].items()}
    yt = torch_fn(xt, pt)
    yt.backward(torch.tensor(dy))
    close(y, yt, "y", tol)
    close(dxs[0], xt.grad, "dx", tol)
    for k, t in pt.items():
        close(dps[k], t.grad, "d" + k, tol)


ACTS = [
    ("silu", F.silu), ("swish", F.silu), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid),
    ("gelu", F.gelu), ("{gelu: {approximate: tanh}}", lambda x: F.gelu(x, approximate="tanh")),
    ("mish", F.mish), ("elu", F.elu), ("{elu: 0.3}", lambda x: F.elu(x, 0.3)), ("selu", F.selu),
    ("softplus", F.softplus), ("{softplus: {beta: 2, threshold: 1}}", lambda x: F.softplus(x, 2, 1)),
]


@pytest.mark.parametrize("spec,fn", ACTS, ids=[a[0] for a in ACTS])
def test_activation_layers(tmp_path, spec, fn):
    # PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32 (relative 3e-8 off)
    run(tmp_path, "5x4x3", spec, lambda x, p: fn(x), (2, 3, 5, 4), 1e-7 if spec == "hardsigmoid" else TOL)


ACTS_1D_3D = [("elu", F.elu), ("{elu: 0.3}", lambda x: F.elu(x, 0.3)), ("selu", F.selu),
              ("softplus", F.softplus), ("{softplus: {beta: 2, threshold: 1}}", lambda x: F.softplus(x, 2, 1)),
              ("hardsigmoid", F.hardsigmoid)]


@pytest.mark.parametrize("shape,rt", [("7x3", (2, 3, 1, 7)), ("3x4x2x3", (2, 3, 3, 4, 2))], ids=["1d", "3d"])
@pytest.mark.parametrize("spec,fn", ACTS_1D_3D, ids=[a[0] for a in ACTS_1D_3D])
def test_activation_layers_1d_3d(tmp_path, spec, fn, shape, rt):
    run(tmp_path, shape, spec, lambda x, p: fn(x), rt, 1e-7 if spec == "hardsigmoid" else TOL)


@pytest.mark.parametrize("shape,rt", [("7x3", (2, 3, 1, 7)), ("3x4x2x3", (2, 3, 3, 4, 2))], ids=["1d", "3d"])
@pytest.mark.parametrize("slopes", ["channel", "shared"])
def test_prelu_1d_3d(tmp_path, slopes, shape, rt):
    run(tmp_path, shape, f"{{prelu: {slopes}}}", lambda x, p: F.prelu(x, p["weight"]), rt)


@pytest.mark.parametrize("act,fn", [("silu", F.silu), ("gelu", F.gelu), ("hardswish", F.hardswish),
                                    ("mish", F.mish), ("elu", F.elu), ("selu", F.selu)])
def test_fused_activation_on_a_conv(tmp_path, act, fn):
    run(tmp_path, "6x3", f"{{conv: 4, kernel: 3, activation: {act}}}",
        lambda x, p: fn(F.conv2d(x, p["weight"][:, :, None, :], p["bias"])), (2, 3, 1, 6))


@pytest.mark.parametrize("slopes", ["channel", "shared"])
def test_prelu(tmp_path, slopes):
    run(tmp_path, "4x5x3", f"{{prelu: {slopes}}}", lambda x, p: F.prelu(x, p["weight"]), (2, 3, 4, 5))


def test_scale(tmp_path):
    run(tmp_path, "3x4x5x2", "{scale: 0.1}", lambda x, p: x * p["gamma"].reshape(1, 2, 1, 1, 1),
        (2, 2, 3, 4, 5))


@pytest.mark.parametrize("shape,rt,norm", [
    ("4x5x6", (2, 6, 4, 5), "{layernorm: channels}"),
    ("7x6", (2, 6, 1, 7), "{layernorm: channels}"),
    ("[6]", (3, 6), "{layernorm: channels}"),
])
def test_layernorm_channels(tmp_path, shape, rt, norm):
    def fn(x, p):
        xt = x.movedim(1, -1)
        return F.layer_norm(xt, (x.shape[1],), p["gamma"], p["beta"], 1e-5).movedim(-1, 1)
    run(tmp_path, shape, norm, fn, rt)


def test_layernorm_all_and_eps(tmp_path):
    run(tmp_path, "3x4x5", "{layernorm: {over: all, eps: 0.001}}",
        lambda x, p: F.layer_norm(x, x.shape[1:], p["gamma"], p["beta"], 1e-3), (2, 5, 3, 4))


@pytest.mark.parametrize("shape,rt", [("4x5x6", (2, 6, 4, 5)), ("3x2x4x6", (2, 6, 3, 2, 4)), ("7x6", (2, 6, 1, 7))])
def test_groupnorm_instancenorm(tmp_path, shape, rt):
    run(tmp_path, shape, "{groupnorm: 3}", lambda x, p: F.group_norm(x, 3, p["gamma"], p["beta"]), rt)
    run(tmp_path, shape, "{instancenorm: {}}",
        lambda x, p: F.instance_norm(x, weight=p["gamma"], bias=p["beta"]), rt)
    run(tmp_path, shape, "{instancenorm: {affine: false}}", lambda x, p: F.instance_norm(x), rt)


UPS = [  # input, runtime shape, spec, F.interpolate kwargs
    ("5x4x2", (2, 2, 5, 4), "{upsample: 2}", dict(scale_factor=2, mode="nearest")),
    ("5x4x2", (2, 2, 5, 4), "{upsample: {size: 7x9}}", dict(size=(7, 9), mode="nearest")),
    ("5x4x2", (2, 2, 5, 4), "{upsample: {size: 3x3}}", dict(size=(3, 3), mode="nearest")),
    ("5x4x2", (2, 2, 5, 4), "{upsample: 2, mode: bilinear}", dict(scale_factor=2, mode="bilinear")),
    ("5x4x2", (2, 2, 5, 4), "{upsample: {size: 12x7, mode: bilinear}}", dict(size=(12, 7), mode="bilinear")),
    ("5x4x2", (2, 2, 5, 4), "{upsample: {size: 12x7, mode: bilinear, align_corners: true}}",
     dict(size=(12, 7), mode="bilinear", align_corners=True)),
    ("5x4x2", (2, 2, 5, 4), "{upsample: {factor: 3, mode: bilinear, align_corners: true}}",
     dict(scale_factor=3, mode="bilinear", align_corners=True)),
    ("6x2", (2, 2, 1, 6), "{upsample: {size: 13, mode: linear}}", dict(size=13, mode="linear")),
    ("3x4x2x2", (2, 2, 3, 4, 2), "{upsample: {factor: 2, mode: trilinear}}",
     dict(scale_factor=2, mode="trilinear")),
    ("3x4x2x2", (2, 2, 3, 4, 2), "{upsample: [1, 2, 3]}", dict(scale_factor=(1, 2, 3), mode="nearest")),
]


@pytest.mark.parametrize("shape,rt,spec,kw", UPS, ids=[u[2] for u in UPS])
def test_upsample_matches_interpolate(tmp_path, shape, rt, spec, kw):
    def fn(x, p):
        if len(rt) == 4 and rt[2] == 1 and shape.count("x") == 1:  # 1-D carried as (N, C, 1, L)
            return F.interpolate(x[:, :, 0], **kw)[:, :, None]
        return F.interpolate(x, **kw)
    run(tmp_path, shape, spec, fn, rt)


@pytest.mark.parametrize("kind,fn", [("adaptive_avgpool", F.adaptive_avg_pool2d),
                                     ("adaptive_maxpool", F.adaptive_max_pool2d)])
@pytest.mark.parametrize("size", ["3x2", "5x4", "4x3", "1x1"])
def test_adaptive_pools_2d(tmp_path, kind, fn, size):
    out = tuple(map(int, size.split("x")))
    run(tmp_path, "7x5x2", f"{{{kind}: {size}}}", lambda x, p: fn(x, out), (2, 2, 7, 5))


def test_adaptive_pools_1d_3d(tmp_path):
    run(tmp_path, "9x2", "{adaptive_avgpool: 4}", lambda x, p: F.adaptive_avg_pool1d(x[:, :, 0], 4)[:, :, None],
        (2, 2, 1, 9))
    run(tmp_path, "9x2", "{adaptive_maxpool: 4}", lambda x, p: F.adaptive_max_pool1d(x[:, :, 0], 4)[:, :, None],
        (2, 2, 1, 9))
    run(tmp_path, "5x7x3x2", "{adaptive_avgpool: 2x3x2}", lambda x, p: F.adaptive_avg_pool3d(x, (2, 3, 2)),
        (2, 2, 5, 7, 3))
    run(tmp_path, "5x7x3x2", "{adaptive_maxpool: 2x3x2}", lambda x, p: F.adaptive_max_pool3d(x, (2, 3, 2)),
        (2, 2, 5, 7, 3))


@pytest.mark.parametrize("mode,tmode", [("zero", "constant"), ("reflect", "reflect"), ("replicate", "replicate")])
def test_padding(tmp_path, mode, tmode):
    run(tmp_path, "5x4x2", f"{{padding: {{amount: [[1, 2], [3, 0]], mode: {mode}}}}}",
        lambda x, p: F.pad(x, (3, 0, 1, 2), mode=tmode), (2, 2, 5, 4))


def test_crop(tmp_path):
    run(tmp_path, "6x7x2", "{crop: [[1, 2], [0, 3]]}", lambda x, p: x[:, :, 1:4, 0:4], (2, 2, 6, 7))


CONV3D = [
    ("{conv: 4, kernel: 3, pad: 1}", lambda x, p: F.conv3d(x, p["weight"], p["bias"], padding=1)),
    ("{conv: 4, kernel: [3, 2, 1], stride: [2, 1, 2], dilation: [1, 2, 1], groups: 2, rounding: floor}",
     lambda x, p: F.conv3d(x, p["weight"], p["bias"], stride=(2, 1, 2), dilation=(1, 2, 1), groups=2)),
    ("{deconv: 4, kernel: 3, stride: 2, pad: 1}",
     lambda x, p: F.conv_transpose3d(x, p["weight"], p["bias"], stride=2, padding=1)),
    ("{deconv: 6, kernel: [2, 3, 2], stride: [2, 1, 3], groups: 2}",
     lambda x, p: F.conv_transpose3d(x, p["weight"], p["bias"], stride=(2, 1, 3), groups=2)),
    ("{maxpool: 2, rounding: floor}", lambda x, p: F.max_pool3d(x, 2)),
    ("{maxpool: 3, stride: 2, pad: 1, rounding: ceil}", lambda x, p: F.max_pool3d(x, 3, 2, 1, ceil_mode=True)),
    ("{avgpool: 3, stride: 2, pad: 1, rounding: ceil}",
     lambda x, p: F.avg_pool3d(x, 3, 2, 1, ceil_mode=True)),
    ("{avgpool: {kernel: 3, stride: 2, pad: 1, count_include_pad: false}, rounding: floor}",
     lambda x, p: F.avg_pool3d(x, 3, 2, 1, count_include_pad=False)),
    ("{global_avgpool: {}}", lambda x, p: F.adaptive_avg_pool3d(x, 1)),
    ("{global_maxpool: {}}", lambda x, p: F.adaptive_max_pool3d(x, 1)),
    ("{batchnorm: {}}", lambda x, p: F.batch_norm(x, None, None, p["gamma"], p["beta"], training=True)),
]


@pytest.mark.parametrize("spec,fn", CONV3D, ids=[c[0] for c in CONV3D])
def test_3d_layers(tmp_path, spec, fn):
    run(tmp_path, "5x6x7x4", spec, fn, (2, 4, 5, 6, 7))
