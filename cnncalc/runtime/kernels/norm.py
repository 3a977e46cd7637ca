"""Normalisation layers: batch norm and local response norm (numpy, vectorised).

Batch norm (PyTorch convention), per channel over ``(N, C, H, W)`` or ``(N, C)``:
``batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True,
    momentum=0.1, eps=1e-5) -> (y, cache)``
    train: normalise with the batch mean / biased variance and update the running
    statistics **in place**: ``running = (1 - momentum) * running + momentum * batch``
    with the *unbiased* batch variance (``M / (M - 1)``, ``M = N*H*W``).
    eval: normalise with ``running_mean`` / ``running_var`` (not modified).
``batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)`` (train mode differentiates
    through the batch statistics, eval mode through the fixed affine map).

Local response norm, across channels as PyTorch ``LocalResponseNorm(size, alpha, beta, k)``:
``lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=1.0) -> (y, cache)``
    ``y_c = x_c / (k + alpha/size * sum_{c' = c - size//2}^{c + (size-1)//2} x_{c'}^2) ** beta``
    (channels outside ``[0, C)`` count as zero; note ``alpha`` is divided by ``size``
    like PyTorch, unlike the AlexNet paper's formula).
``lrn_backward(dout, cache) -> dx``
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels._util import as_float


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True, momentum=0.1, eps=1e-5):
    x = as_float(x)
    axes, bs = _axes(x), _bshape(x)
    g = as_float(gamma, x.dtype).reshape(bs)
    b = as_float(beta, x.dtype).reshape(bs)
    if train:
        M = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            unbiased = var * (M / (M - 1)) if M > 1 else var
            running_var *= 1 - momentum
            running_var += momentum * unbiased
    else:
        mean = as_float(running_mean, x.dtype)
        var = as_float(running_var, x.dtype)
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mean.reshape(bs)) * invstd.reshape(bs)
    y = xhat * g + b
    return y, (xhat, invstd, g, bool(train))


def batchnorm_backward(dout, cache):
    xhat, invstd, g, train = cache
    dout = as_float(dout, xhat.dtype)
    axes, bs = _axes(xhat), _bshape(xhat)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    if not train:
        return dout * (g * invstd.reshape(bs)), dgamma, dbeta
    M = xhat.size // xhat.shape[1]
    dxhat = dout * g
    dx = (invstd.reshape(bs) / M) * (
        M * dxhat
        - dxhat.sum(axis=axes).reshape(bs)
        - xhat * (dxhat * xhat).sum(axis=axes).reshape(bs)
    )
    return dx, dgamma, dbeta


def _window_sum(v, lo, hi):
    """``out[:, c] = sum_{c' = c-lo}^{c+hi} v[:, c']`` with zeros outside ``[0, C)``."""
    C = v.shape[1]
    out = np.zeros_like(v)
    for off in range(-lo, hi + 1):
        if off >= 0:
            if off < C:
                out[:, : C - off] += v[:, off:]
        elif -off < C:
            out[:, -off:] += v[:, : C + off]
    return out


def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=1.0):
    x = as_float(x)
    D = k + (alpha / size) * _window_sum(x * x, size // 2, (size - 1) // 2)
    Dpow = D ** (-beta)
    return x * Dpow, (x, D, Dpow, size, alpha, beta)


def lrn_backward(dout, cache):
    x, D, Dpow, size, alpha, beta = cache
    dout = as_float(dout, x.dtype)
    # channel c' sums x_c^2 for c in [c'-size//2, c'+(size-1)//2], so c receives from
    # c' in [c-(size-1)//2, c+size//2]
    t = _window_sum(dout * x * Dpow / D, (size - 1) // 2, size // 2)
    return dout * Dpow - (2.0 * alpha * beta / size) * x * t
