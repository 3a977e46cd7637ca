"""Cross-check of the kernels against PyTorch CPU in float32 (relative 1e-4).

Skipped when torch is not importable.  Each test runs the same layer forward and
backward (probe ``dY``) in both and compares output and every gradient.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from cnncalc.runtime.kernels import activation as act  # noqa: E402
from cnncalc.runtime.kernels import conv, loss, norm, pool  # noqa: E402

pytestmark = pytest.mark.torch
RTOL = 1e-4


def close(ours, theirs, what=""):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, what
    scale = max(float(np.abs(theirs).max()), 1e-6)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def leaf(a):
    return torch.tensor(a, requires_grad=True)


def f32(r, *shape):
    return r.standard_normal(shape).astype(np.float32)


def torch_pad(x, pads):
    (t, b), (l, r) = pads
    return F.pad(x, (l, r, t, b))


@pytest.mark.parametrize("algo", conv.ALGOS)
@pytest.mark.parametrize(
    "C,Fo,groups,k,stride,pads,dil",
    [
        (3, 8, 1, (5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1)),
        (4, 6, 2, (3, 2), (2, 3), ((1, 0), (2, 1)), (2, 1)),
        (6, 6, 6, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
        # im2col's row unfold (C*kh >= 64, kw >= 5, stride 1), plain and dilated/asymmetric
        (16, 8, 1, (7, 7), (1, 1), ((3, 3), (3, 3)), (1, 1)),
        (13, 4, 1, (5, 5), (1, 1), ((2, 1), (4, 3)), (1, 2)),
    ],
)
def test_conv2d_vs_torch(algo, C, Fo, groups, k, stride, pads, dil):
    r = np.random.default_rng(0)
    x, w, b = f32(r, 2, C, 11, 10), f32(r, Fo, C // groups, *k), f32(r, Fo)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    yt = F.conv2d(torch_pad(xt, pads), wt, bt, stride, 0, dil, groups)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, cache = conv.conv2d_forward(x, w, b, stride, pads, dil, groups, algo)
    close(y, yt, "y")
    for ours, t, n in zip(conv.conv2d_backward(dy, cache), (xt, wt, bt), "xwb"):
        close(ours, t.grad, "d" + n)


@pytest.mark.parametrize("algo", conv.ALGOS)
def test_conv1d_vs_torch(algo):
    r = np.random.default_rng(1)
    x, w, b = f32(r, 2, 4, 20), f32(r, 6, 2, 5), f32(r, 6)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    yt = F.conv1d(xt, wt, bt, 2, 2, 2, 2)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, cache = conv.conv1d_forward(x, w, b, 2, 2, 2, 2, algo)
    close(y, yt)
    for ours, t in zip(conv.conv1d_backward(dy, cache), (xt, wt, bt)):
        close(ours, t.grad)


@pytest.mark.parametrize("algo", conv.ALGOS)
def test_conv_transpose2d_vs_torch(algo):
    r = np.random.default_rng(2)
    x, w, b = f32(r, 2, 4, 5, 6), f32(r, 4, 3, 3, 4), f32(r, 6)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    yt = F.conv_transpose2d(xt, wt, bt, (2, 3), (1, 2), (1, 1), 2, (1, 2))
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, cache = conv.conv_transpose2d_forward(x, w, b, (2, 3), (1, 2), (1, 2), 2, (1, 1), algo)
    close(y, yt)
    for ours, t in zip(conv.conv_transpose2d_backward(dy, cache), (xt, wt, bt)):
        close(ours, t.grad)


@pytest.mark.parametrize("algo", conv.ALGOS)
def test_conv_transpose2d_row_unfold_vs_torch(algo):
    # weight (4, 16, 5, 5): the conv it transposes has 16 input channels * 5 rows = 80 >= 64,
    # so im2col's forward (a data gradient), dX (a forward conv) and dW take the row unfold
    assert conv._rows_pays((4, 16, 5, 5), (1, 1), 1)
    r = np.random.default_rng(3)
    x, w, b = f32(r, 2, 4, 6, 7), f32(r, 4, 16, 5, 5), f32(r, 16)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    yt = F.conv_transpose2d(xt, wt, bt, 1, 1)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, cache = conv.conv_transpose2d_forward(x, w, b, 1, 1, algo=algo)
    close(y, yt)
    for ours, t in zip(conv.conv_transpose2d_backward(dy, cache), (xt, wt, bt)):
        close(ours, t.grad)


@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("mode,include_pad", [("max", None), ("avg", True), ("avg", False)])
def test_pool_vs_torch(mode, include_pad, ceil):
    r = np.random.default_rng(3)
    x = f32(r, 2, 3, 9, 8)
    xt = leaf(x)
    if mode == "max":
        yt = F.max_pool2d(xt, 3, 2, 1, ceil_mode=ceil)
    else:
        yt = F.avg_pool2d(xt, 3, 2, 1, ceil_mode=ceil, count_include_pad=include_pad)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    out = pool.pool_output_size(9, 8, 3, 2, 1, ceil_mode=ceil)
    if mode == "max":
        y, cache = pool.maxpool2d_forward(x, 3, 2, 1, out)
    else:
        y, cache = pool.avgpool2d_forward(x, 3, 2, 1, out, include_pad)
    close(y, yt)
    close(pool.pool2d_backward(dy, cache), xt.grad)


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (8, 5)])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_vs_torch(shape, train):
    r = np.random.default_rng(4)
    x = f32(r, *shape) * 3 + 1
    C = shape[1]
    g, b = f32(r, C), f32(r, C)
    rm, rv = f32(r, C), (0.5 + r.random(C)).astype(np.float32)
    xt, gt, bt = leaf(x), leaf(g), leaf(b)
    rmt, rvt = torch.tensor(rm), torch.tensor(rv)
    yt = F.batch_norm(xt, rmt, rvt, gt, bt, training=train, momentum=0.1, eps=1e-5)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, cache = norm.batchnorm_forward(x, g, b, rm, rv, train=train)
    close(y, yt)
    close(rm, rmt, "running_mean")
    close(rv, rvt, "running_var")
    for ours, t in zip(norm.batchnorm_backward(dy, cache), (xt, gt, bt)):
        close(ours, t.grad)


@pytest.mark.parametrize("size", [2, 5])
def test_lrn_vs_torch(size):
    r = np.random.default_rng(5)
    x = f32(r, 2, 7, 4, 3)
    xt = leaf(x)
    yt = F.local_response_norm(xt, size, alpha=1e-2, beta=0.75, k=2.0)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, cache = norm.lrn_forward(x, size, 1e-2, 0.75, 2.0)
    close(y, yt)
    close(norm.lrn_backward(dy, cache), xt.grad)


def test_softmax_cross_entropy_vs_torch():
    r = np.random.default_rng(6)
    z = f32(r, 8, 10) * 4
    labels = r.integers(0, 10, 8)
    zt = leaf(z)
    lt = F.cross_entropy(zt, torch.from_numpy(labels))
    lt.backward()
    L, dz = loss.softmax_cross_entropy(z, labels)
    assert L == pytest.approx(lt.item(), rel=RTOL)
    close(dz, zt.grad)


@pytest.mark.parametrize("name,tfn", [("relu", F.relu), ("relu6", F.relu6), ("tanh", torch.tanh),
                                      ("sigmoid", torch.sigmoid), ("softmax", lambda t: F.softmax(t, 1))])
def test_activations_vs_torch(name, tfn):
    r = np.random.default_rng(7)
    x = f32(r, 6, 5) * 4
    xt = leaf(x)
    yt = tfn(xt)
    dy = f32(r, *yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, c = act.activation_forward(name, x)
    close(y, yt)
    close(act.activation_backward(name, dy, c), xt.grad)
