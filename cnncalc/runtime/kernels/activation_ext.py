"""The activations of issue 10: silu (swish), hardswish, hardsigmoid, gelu (exact erf form
or ``approximate="tanh"``), mish, elu, selu, softplus, and the learned prelu.

Same conventions as :mod:`.activation` (``*_forward(x, **kw) -> (y, cache)``,
``*_backward(dout, cache) -> dx``; any shape; dtype follows the input), and the same
formulas as PyTorch's ``torch.nn.functional`` (its defaults: elu α = 1, softplus β = 1 with
threshold 20, selu's λ and α to full precision). ``prelu_forward(x, a)`` takes the slopes
``a`` of shape ``(C,)`` (per channel, along axis 1) or ``(1,)`` (shared);
``prelu_backward`` returns ``(dx, da)``.

numpy has no ``erf``: the exact GELU evaluates it with a small numba loop (``math.erf``).
"""
from __future__ import annotations

import math

import numpy as np

from cnncalc.runtime.kernels._util import as_float
from cnncalc.runtime.kernels.tensor import erf

SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def silu_forward(x):
    x = as_float(x)
    s = _sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    x, s = cache
    return dout * (s * (1 + x * (1 - s)))


def hardswish_forward(x):
    x = as_float(x)
    return x * np.clip(x + 3, 0, 6) / 6, x


def hardswish_backward(dout, x):
    g = np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2 * x + 3) / 6)).astype(x.dtype)
    return dout * g


def hardsigmoid_forward(x):
    x = as_float(x)
    return np.clip(x + 3, 0, 6) / 6, x


def hardsigmoid_backward(dout, x):
    return dout * (((x > -3) & (x < 3)) / 6.0).astype(x.dtype)


_K = math.sqrt(2.0 / math.pi)


def gelu_forward(x, approximate="none"):
    x = as_float(x)
    if approximate == "tanh":
        t = np.tanh(_K * (x + 0.044715 * x ** 3))
        return 0.5 * x * (1 + t), (x, t, "tanh")
    e = erf(x * (1 / math.sqrt(2.0)))  # the tensor ops' erf kernel: compiled once for both
    phi_cdf = 0.5 * (1 + e)
    return x * phi_cdf, (x, phi_cdf, "none")


def gelu_backward(dout, cache):
    x, v, mode = cache
    if mode == "tanh":
        return dout * (0.5 * (1 + v) + 0.5 * x * (1 - v * v) * _K * (1 + 3 * 0.044715 * x * x))
    pdf = np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return dout * (v + x * pdf)


def mish_forward(x):
    x = as_float(x)
    t = np.tanh(np.logaddexp(0, x))
    return x * t, (x, t)


def mish_backward(dout, cache):
    x, t = cache
    return dout * (t + x * (1 - t * t) * _sigmoid(x))


def elu_forward(x, alpha=1.0):
    x = as_float(x)
    neg = alpha * np.expm1(np.minimum(x, 0))
    return np.where(x > 0, x, neg), (x, neg, alpha)


def elu_backward(dout, cache):
    x, neg, alpha = cache
    return dout * np.where(x > 0, 1.0, neg + alpha).astype(x.dtype)


def selu_forward(x):
    y, cache = elu_forward(x, SELU_ALPHA)
    return SELU_LAMBDA * y, cache


def selu_backward(dout, cache):
    return SELU_LAMBDA * elu_backward(dout, cache)


def softplus_forward(x, beta=1.0, threshold=20.0):
    x = as_float(x)
    bx = beta * x
    y = np.where(bx > threshold, x, np.logaddexp(0, bx) / beta)
    return y, (bx, threshold)


def softplus_backward(dout, cache):
    bx, threshold = cache
    return dout * np.where(bx > threshold, 1.0, _sigmoid(bx)).astype(bx.dtype)


def _slopes(a, x):
    a = as_float(a, x.dtype)
    return a.reshape((1, a.size) + (1,) * (x.ndim - 2)) if a.size > 1 else a.reshape(())


def prelu_forward(x, a):
    x = as_float(x)
    return np.where(x > 0, x, _slopes(a, x) * x), (x, a)


def prelu_backward(dout, cache):
    x, a = cache
    dx = dout * np.where(x > 0, 1.0, _slopes(a, x)).astype(x.dtype)
    g = dout * np.minimum(x, 0)
    da = g.sum(axis=(0, *range(2, x.ndim))) if np.size(a) > 1 else np.array([g.sum()], x.dtype)
    return dx, da.reshape(np.shape(a))


FORWARD = {"silu": silu_forward, "hardswish": hardswish_forward, "hardsigmoid": hardsigmoid_forward,
           "gelu": gelu_forward, "mish": mish_forward, "elu": elu_forward, "selu": selu_forward,
           "softplus": softplus_forward}
BACKWARD = {"silu": silu_backward, "hardswish": hardswish_backward, "hardsigmoid": hardsigmoid_backward,
            "gelu": gelu_backward, "mish": mish_backward, "elu": elu_backward, "selu": selu_backward,
            "softplus": softplus_backward}
