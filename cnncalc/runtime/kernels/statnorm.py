"""Normalisations with per-sample statistics (layer, group, instance norm), the per-channel
scale, and the broadcasting product of the ``mul`` merge.  numpy, any number of spatial axes.

``statnorm_forward(x, groups_shape, gamma, beta, eps)``: the statistics run over the last
axis of ``x.reshape(groups_shape)`` (biased variance, as PyTorch), then ``γ·x̂ + β`` with
``γ``, ``β`` already shaped to broadcast against ``x`` (or None: no affine).

* layernorm over the channels at each position: ``x`` moved to channels-last first;
* layernorm over all: ``(N, -1)``; groupnorm: ``(N, G, -1)``; instancenorm: ``(N, C, -1)``.
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels._util import as_float


def statnorm_forward(x, groups_shape, gamma=None, beta=None, eps=1e-5):
    x = as_float(x)
    xr = x.reshape(groups_shape)
    mean = xr.mean(axis=-1, keepdims=True)
    xc = xr - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (xc * invstd).reshape(x.shape)
    y = xhat if gamma is None else xhat * gamma
    if beta is not None:
        y = y + beta
    return np.ascontiguousarray(y), (xhat, invstd, groups_shape, gamma, beta is not None)


def statnorm_backward(dout, cache, param_axes=None):
    """Returns (dx, dγ, dβ); dγ, dβ summed over ``param_axes`` (the axes γ broadcasts over)."""
    xhat, invstd, groups_shape, gamma, has_beta = cache
    dout = as_float(dout, xhat.dtype)
    dg = db = None
    if gamma is not None:
        dg = (dout * xhat).sum(axis=param_axes, keepdims=True)
        dxhat = dout * gamma
    else:
        dxhat = dout
    if has_beta:
        db = dout.sum(axis=param_axes, keepdims=True)
    d = dxhat.reshape(groups_shape)
    xh = xhat.reshape(groups_shape)
    M = d.shape[-1]
    dx = invstd * (d - d.mean(axis=-1, keepdims=True) - xh * (d * xh).mean(axis=-1, keepdims=True))
    del M
    return dx.reshape(xhat.shape), dg, db


def scale_forward(x, gamma):
    x = as_float(x)
    g = as_float(gamma, x.dtype).reshape((1, -1) + (1,) * (x.ndim - 2))
    return x * g, (x, g)


def scale_backward(dout, cache, need_dg=True):
    x, g = cache
    dg = (dout * x).sum(axis=(0, *range(2, x.ndim))) if need_dg else None
    return dout * g, dg


def mul_forward(xs):
    y = xs[0]
    for x in xs[1:]:
        y = y * x
    return y, xs


def _reduce_to(g, shape):
    """Sum a broadcast gradient back to ``shape``."""
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def mul_backward(dout, xs, need=None):
    out = []
    for i, x in enumerate(xs):
        if need is not None and not need[i]:
            out.append(None)
            continue
        g = dout
        for j, other in enumerate(xs):
            if j != i:
                g = g * other
        out.append(np.ascontiguousarray(_reduce_to(g, x.shape)))
    return out
