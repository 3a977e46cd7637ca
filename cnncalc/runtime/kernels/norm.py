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


def update_running(running_mean, running_var, mean, var, M: int, momentum: float) -> None:
    """PyTorch's running statistics, in place: an exponential average of the batch mean and of
    the unbiased batch variance (over M values per channel)."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        unbiased = var * (M / (M - 1)) if M > 1 else var
        running_var *= 1 - momentum
        running_var += momentum * unbiased


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True, momentum=0.1, eps=1e-5):
    x = as_float(x)
    axes, bs = _axes(x), _bshape(x)
    g = as_float(gamma, x.dtype).reshape(bs)
    b = as_float(beta, x.dtype).reshape(bs)
    if train:
        M = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        update_running(running_mean, running_var, mean, var, M, momentum)
    else:
        mean = as_float(running_mean, x.dtype)
        var = as_float(running_var, x.dtype)
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mean.reshape(bs)) * invstd.reshape(bs)
    y = xhat * g + b
    return y, (xhat, invstd, g, bool(train))


def batchnorm_backward(dout, cache, need_dparams=True):
    """(dx, dgamma, dbeta) from :func:`batchnorm_forward`'s cache; ``need_dparams=False``
    (data gradients only, in evaluation mode: receptive-field checks) skips the two
    reductions over the batch and returns None for dgamma and dbeta."""
    xhat, invstd, g, train = cache
    if not need_dparams and not train:
        return as_float(dout, xhat.dtype) * (g * invstd.reshape(_bshape(xhat))), None, None
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


# ----------------------------------------------------------------------------- fused batch norm
# Training-mode batch norm (optionally with the ReLU that follows it) in numba: two passes over
# the input forward (statistics, then normalise + scale + shift + ReLU) and two backward (the
# two per-channel sums, then dX), instead of numpy's ~8 forward and ~10 backward passes with
# their temporaries plus the ReLU's own passes and mask. Statistics are summed in float64,
# vectorised (_REASSOC).
from cnncalc.runtime._numba import njit, prange  # noqa: E402


#: the backward channel sums may reorder their float64 sums (LLVM vectorises them: 3-4x faster
#: than four scalar partial sums at resnet20's shapes); the order is fixed by the compiled code,
#: so the same bits on every run and thread count. The forward statistics keep their four
#: partial sums in the same order (with the channel innermost on small planes): vectorised, or
#: one sum per channel, the network gradcheck of a bias before batch norm failed (its true
#: gradient is zero, so the loss must come out bit-identical under a 1e-5 shift of it for a
#: relative error with a 1e-8 floor; the four-sum order does on the test specs, the others did not)
_REASSOC = {"reassoc"}

#: planes of fewer positions than this (4x4 and less: MobileNet-v2's last stages at a 32x32
#: input, 32 x 960 planes of one value) run with the channel as the inner loop: a loop per
#: (image, channel) plane of 1..15 values cost more than its arithmetic (mobilenet_v2 at batch
#: 32: ~350 us of batch norm per layer, forward and backward)
SMALL_M = 16


@njit(parallel=True)
def _bn_stats(x3, mean, var):
    N, C, M = x3.shape
    cnt = N * M
    if M < SMALL_M:  # the same four partial sums per channel as below, the channel innermost
        M4 = M - M % 4
        s = np.zeros((4, C))
        for n in range(N):
            for m in range(M):
                lane = m % 4 if m < M4 else 0
                for c in range(C):
                    s[lane, c] += x3[n, c, m]
        for c in range(C):
            mean[c] = (s[0, c] + s[1, c] + s[2, c] + s[3, c]) / cnt
        q = np.zeros((4, C))
        for n in range(N):
            for m in range(M):
                lane = m % 4 if m < M4 else 0
                for c in range(C):
                    d = x3[n, c, m] - mean[c]
                    q[lane, c] += d * d
        for c in range(C):
            var[c] = (q[0, c] + q[1, c] + q[2, c] + q[3, c]) / cnt
        return
    for c in prange(C):
        s0 = s1 = s2 = s3 = 0.0
        for n in range(N):
            m = 0
            while m + 4 <= M:
                s0 += x3[n, c, m]
                s1 += x3[n, c, m + 1]
                s2 += x3[n, c, m + 2]
                s3 += x3[n, c, m + 3]
                m += 4
            while m < M:
                s0 += x3[n, c, m]
                m += 1
        mu = (s0 + s1 + s2 + s3) / cnt
        q0 = q1 = q2 = q3 = 0.0
        for n in range(N):
            m = 0
            while m + 4 <= M:
                d0 = x3[n, c, m] - mu
                d1 = x3[n, c, m + 1] - mu
                d2 = x3[n, c, m + 2] - mu
                d3 = x3[n, c, m + 3] - mu
                q0 += d0 * d0
                q1 += d1 * d1
                q2 += d2 * d2
                q3 += d3 * d3
                m += 4
            while m < M:
                d0 = x3[n, c, m] - mu
                q0 += d0 * d0
                m += 1
        mean[c] = mu
        var[c] = (q0 + q1 + q2 + q3) / cnt


@njit(parallel=True)
def _bn_apply(x3, mean, invstd, g, b, relu, xhat, y):
    """xhat = (x - mean) * invstd; y = xhat * g + b (then max(y, 0) with ``relu``); all in x's dtype."""
    N, C, M = x3.shape
    if M < SMALL_M:
        zero = x3.dtype.type(0)
        for t in prange(N * M):
            n, m = t // M, t % M
            for c in range(C):
                xh = (x3[n, c, m] - mean[c]) * invstd[c]
                xhat[n, c, m] = xh
                v = xh * g[c] + b[c]
                y[n, c, m] = v if (not relu or v > zero) else zero
        return
    for t in prange(N * C):
        n, c = t // C, t % C
        mu, k, gc, bc = mean[c], invstd[c], g[c], b[c]
        zero = gc - gc
        for m in range(M):
            xh = (x3[n, c, m] - mu) * k
            xhat[n, c, m] = xh
            v = xh * gc + bc
            y[n, c, m] = v if (not relu or v > zero) else zero


@njit(parallel=True, fastmath=_REASSOC)
def _bn_sums(dy3, xhat3, relu, g, b, s1, s2):
    """Per channel: sum of dY (ReLU-masked with ``relu``: where ``xhat * g + b``, the forward's
    pre-ReLU output recomputed as :func:`_bn_apply` computed it, is not > 0) and of dY * xhat,
    in float64. (Reading the kept output y for the mask instead was a third stream of the
    batch's size.)"""
    N, C, M = dy3.shape
    if M < SMALL_M:
        sa = np.zeros(C)
        sb = np.zeros(C)
        for n in range(N):
            for m in range(M):
                for c in range(C):
                    d = dy3[n, c, m]
                    xh = xhat3[n, c, m]
                    if relu and not xh * g[c] + b[c] > 0:
                        d = d - d
                    sa[c] += d
                    sb[c] += d * xh
        for c in range(C):
            s1[c] = sa[c]
            s2[c] = sb[c]
        return
    for c in prange(C):
        gc, bc = g[c], b[c]
        sa = 0.0
        sb = 0.0
        for n in range(N):
            for m in range(M):
                d = dy3[n, c, m]
                xh = xhat3[n, c, m]
                if relu and not xh * gc + bc > 0:
                    d = d - d
                sa += d
                sb += d * xh
        s1[c] = sa
        s2[c] = sb


@njit(parallel=True)
def _bn_dx(dy3, xhat3, relu, g, b, k, c1, c2, dx3):
    """dx = k * dY' - c1 - xhat * c2 per channel (dY' the ReLU-masked dY, masked as in
    :func:`_bn_sums`)."""
    N, C, M = dy3.shape
    if M < SMALL_M:
        zero = dy3.dtype.type(0)
        for t in prange(N * M):
            n, m = t // M, t % M
            for c in range(C):
                d = dy3[n, c, m]
                xh = xhat3[n, c, m]
                if relu and not xh * g[c] + b[c] > zero:
                    d = zero
                dx3[n, c, m] = k[c] * d - c1[c] - xh * c2[c]
        return
    for t in prange(N * C):
        n, c = t // C, t % C
        kc, a, bb, gc, bc = k[c], c1[c], c2[c], g[c], b[c]
        zero = kc - kc
        for m in range(M):
            d = dy3[n, c, m]
            xh = xhat3[n, c, m]
            if relu and not xh * gc + bc > zero:
                d = zero
            dx3[n, c, m] = kc * d - a - xh * bb


class BNCache:
    """What :func:`batchnorm_train_backward` needs: x̂, 1/σ, γ and β (the fused ReLU's mask is
    ``x̂ γ + β > 0``, recomputed: no mask array, and the output is not read again); with the
    fused ReLU the output too, as the memory the step holds (the next layer reads it)."""

    __slots__ = ("xhat", "invstd", "g", "y", "relu", "b")

    def __init__(self, xhat, invstd, g, y, relu, b=None):
        self.xhat, self.invstd, self.g, self.y, self.relu, self.b = xhat, invstd, g, y, relu, b

    def arrays(self):
        return [self.xhat, self.invstd] + ([self.y] if self.relu else [])


def stats_from_sums(sums, count):
    """Per-channel float64 ``(mean, var)`` from shifted sums: ``sums`` ``(3, C)`` float64 holds
    a shift ``k`` (a value of the channel), ``sum(x - k)`` and ``sum((x - k)^2)`` over ``count``
    values (the shift keeps the one-pass variance from cancelling when the mean is large)."""
    sums = np.asarray(sums, np.float64)
    if sums.ndim != 2 or sums.shape[0] != 3:
        raise ValueError(f"sums must be (3, C): shift, sum, sum of squares; got {sums.shape}")
    d = sums[1] / count
    return sums[0] + d, np.maximum(sums[2] / count - d * d, 0.0)


def batchnorm_train_forward(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5, relu=False,
                            sums=None):
    """Training-mode :func:`batchnorm_forward` (then ``max(y, 0)`` with ``relu``) in two numba
    passes; the running statistics are updated in place as there. Returns ``(y, BNCache)``.
    ``sums``: x's shifted per-channel sums (:func:`stats_from_sums`, e.g. from the Winograd
    conv that made x): the statistics pass is skipped, one pass."""
    x = as_float(x)
    N, C = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(N, C, -1)
    M = N * x3.shape[2]
    if sums is not None:
        if np.shape(sums)[1:] != (C,):
            raise ValueError(f"sums of {np.shape(sums)[1:]} channels for an input of {C}")
        mean64, var64 = stats_from_sums(sums, M)
    else:
        mean64, var64 = np.empty(C), np.empty(C)
        _bn_stats(x3, mean64, var64)
    mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
    update_running(running_mean, running_var, mean, var, M, momentum)
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    g = np.ascontiguousarray(as_float(gamma, x.dtype).reshape(C))
    b = np.ascontiguousarray(as_float(beta, x.dtype).reshape(C))
    xhat = np.empty_like(x3)
    y = np.empty_like(x3)
    _bn_apply(x3, mean, invstd, g, b, relu, xhat, y)
    y = y.reshape(x.shape)
    return y, BNCache(xhat, invstd, g, y, relu, b)


def batchnorm_train_backward(dout, cache):
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_train_forward` (through the ReLU too)."""
    xhat, invstd, g = cache.xhat, cache.invstd, cache.g
    N, C, Mi = xhat.shape
    dy3 = np.ascontiguousarray(as_float(dout, xhat.dtype)).reshape(N, C, Mi)
    b = cache.b if cache.b is not None else np.zeros_like(g)
    s1, s2 = np.empty(C), np.empty(C)
    _bn_sums(dy3, xhat, cache.relu, g, b, s1, s2)
    M = N * Mi
    dt = xhat.dtype
    # dx = (invstd / M) * (M * g * dy - g * s1 - xhat * g * s2)
    k = (g * invstd).astype(dt)
    c1 = (g * invstd * (s1 / M)).astype(dt)
    c2 = (g * invstd * (s2 / M)).astype(dt)
    dx = np.empty_like(dy3)
    _bn_dx(dy3, xhat, cache.relu, g, b, k, c1, c2, dx)
    return dx.reshape(dout.shape), s2.astype(dt), s1.astype(dt)
