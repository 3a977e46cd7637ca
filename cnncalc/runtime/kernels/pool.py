"""Pooling kernels: max / avg (2-D, 1-D, global), numba loops parallel over N x C.

Public API
----------
``maxpool2d_forward(x, kernel, stride=None, pad=0, out_size=None) -> (y, cache)``
``avgpool2d_forward(x, kernel, stride=None, pad=0, out_size=None, count_include_pad=True) -> (y, cache)``
``pool2d_backward(dout, cache) -> dx``  (``maxpool2d_backward`` / ``avgpool2d_backward`` are aliases)
``maxpool1d_forward(x, kernel, stride=None, pad=0, out_size=None)`` / ``avgpool1d_forward(...)``
    on ``(N, C, L)`` with ``pad`` ``p`` or ``(lo, hi)``; ``pool1d_backward(dout, cache) -> dx``
``global_maxpool_forward(x)`` / ``global_avgpool_forward(x) -> (y (N, C, 1, 1), cache)``;
    ``pool2d_backward`` undoes them too.
``pool_output_size(H, W, kernel, stride, pad, ceil_mode=False)`` -- a helper for the caller.

Semantics (PyTorch's): ``stride`` defaults to ``kernel``; ``pad`` is
``((top, bottom), (left, right))``; ``out_size=(OH, OW)`` is decided by the caller (ceil
or floor rounding), default floor.  Window ``(oh, ow)`` starts at ``(oh*sh - top,
ow*sw - left)``; it is clipped to the padded extent ``[-top, H + bottom)`` (this clipped
area is the avg divisor with ``count_include_pad=True``) and then to the real input for
the reduction (``count_include_pad=False`` divides by the real element count).  Max
pooling pads with -inf, i.e. padding never wins; the backward routes each gradient to
the argmax, the *first* maximum in row-major window order on ties.  A window with no
real element (only possible with odd caller-chosen sizes) outputs 0 and gets no gradient.
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime._numba import njit, prange
from cnncalc.runtime.kernels._util import as_float, pads1d, pads2d, pair


def pool_output_size(H, W, kernel, stride=None, pad=0, ceil_mode=False):
    """Output size with PyTorch's rule (in ceil mode the last window must start inside
    the input or the top/left padding)."""
    kh, kw = pair(kernel)
    sh, sw = pair(kernel if stride is None else stride)
    (pt, pb), (pl, pr) = pads2d(pad)

    def one(n, k, s, lo, hi):
        span = n + lo + hi - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + lo:
            o -= 1
        return o

    return one(H, kh, sh, pt, pb), one(W, kw, sw, pl, pr)


@njit(parallel=True)
def _maxpool_fwd(x, kh, kw, sh, sw, pt, pl, OH, OW):
    N, C, H, W = x.shape
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    arg = np.empty((N, C, OH, OW), dtype=np.int64)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            hs = oh * sh - pt
            h0 = max(hs, 0)
            h1 = min(hs + kh, H)
            for ow in range(OW):
                ws = ow * sw - pl
                w0 = max(ws, 0)
                w1 = min(ws + kw, W)
                best = -np.inf
                bi = -1
                for r in range(h0, h1):
                    for q in range(w0, w1):
                        v = x[n, c, r, q]
                        if bi < 0 or v > best:
                            best = v
                            bi = r * W + q
                if bi < 0:
                    out[n, c, oh, ow] = 0.0
                else:
                    out[n, c, oh, ow] = best
                arg[n, c, oh, ow] = bi
    return out, arg


@njit(parallel=True)
def _maxpool_bwd(dout, arg, H, W):
    N, C, OH, OW = dout.shape
    dx = np.zeros((N, C, H, W), dtype=dout.dtype)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            for ow in range(OW):
                bi = arg[n, c, oh, ow]
                if bi >= 0:
                    dx[n, c, bi // W, bi % W] += dout[n, c, oh, ow]
    return dx


@njit(parallel=True)
def _avgpool_fwd(x, kh, kw, sh, sw, pt, pb, pl, pr, OH, OW, include_pad):
    N, C, H, W = x.shape
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            hs = oh * sh - pt
            he = min(hs + kh, H + pb)
            h0 = max(hs, 0)
            h1 = min(he, H)
            for ow in range(OW):
                ws = ow * sw - pl
                we = min(ws + kw, W + pr)
                w0 = max(ws, 0)
                w1 = min(we, W)
                acc = 0.0
                for r in range(h0, h1):
                    for q in range(w0, w1):
                        acc += x[n, c, r, q]
                if include_pad:
                    cnt = (he - hs) * (we - ws)
                else:
                    cnt = max(h1 - h0, 0) * max(w1 - w0, 0)
                out[n, c, oh, ow] = acc / cnt if cnt > 0 else 0.0
    return out


@njit(parallel=True)
def _avgpool_bwd(dout, H, W, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    N, C, OH, OW = dout.shape
    dx = np.zeros((N, C, H, W), dtype=dout.dtype)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            hs = oh * sh - pt
            he = min(hs + kh, H + pb)
            h0 = max(hs, 0)
            h1 = min(he, H)
            for ow in range(OW):
                ws = ow * sw - pl
                we = min(ws + kw, W + pr)
                w0 = max(ws, 0)
                w1 = min(we, W)
                if include_pad:
                    cnt = (he - hs) * (we - ws)
                else:
                    cnt = max(h1 - h0, 0) * max(w1 - w0, 0)
                if cnt <= 0:
                    continue
                g = dout[n, c, oh, ow] / cnt
                for r in range(h0, h1):
                    for q in range(w0, w1):
                        dx[n, c, r, q] += g
    return dx


def _setup(x, kernel, stride, pad, out_size):
    x = as_float(x)
    kh, kw = pair(kernel)
    sh, sw = pair(kernel if stride is None else stride)
    pads = pads2d(pad)
    if out_size is None:
        out_size = pool_output_size(x.shape[2], x.shape[3], (kh, kw), (sh, sw), pads)
    OH, OW = pair(out_size)
    return x, (kh, kw), (sh, sw), pads, (OH, OW)


def maxpool2d_forward(x, kernel, stride=None, pad=0, out_size=None):
    x, (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (OH, OW) = _setup(x, kernel, stride, pad, out_size)
    y, arg = _maxpool_fwd(x, kh, kw, sh, sw, pt, pl, OH, OW)
    return y, ("max", x.shape, arg)


def avgpool2d_forward(x, kernel, stride=None, pad=0, out_size=None, count_include_pad=True):
    x, (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (OH, OW) = _setup(x, kernel, stride, pad, out_size)
    y = _avgpool_fwd(x, kh, kw, sh, sw, pt, pb, pl, pr, OH, OW, bool(count_include_pad))
    return y, ("avg", x.shape, (kh, kw, sh, sw, pt, pb, pl, pr, bool(count_include_pad)))


def pool2d_backward(dout, cache):
    mode, xshape, extra = cache
    H, W = xshape[2], xshape[3]
    if mode == "max":
        return _maxpool_bwd(as_float(dout), extra, H, W)
    if mode == "avg":
        return _avgpool_bwd(as_float(dout), H, W, *extra)
    raise ValueError(f"unknown pool cache {mode!r}")


maxpool2d_backward = pool2d_backward
avgpool2d_backward = pool2d_backward


def global_maxpool_forward(x):
    x = as_float(x)
    return maxpool2d_forward(x, x.shape[2:], 1, 0, (1, 1))


def global_avgpool_forward(x):
    x = as_float(x)
    return avgpool2d_forward(x, x.shape[2:], 1, 0, (1, 1))


def _as2d(x, kernel, stride, pad, out_size):
    lo, hi = pads1d(pad)
    k = pair(kernel)[0]
    s = k if stride is None else pair(stride)[0]
    o = None if out_size is None else (1, pair(out_size)[0])
    return np.asarray(x)[:, :, None, :], (1, k), (1, s), ((0, 0), (lo, hi)), o


def maxpool1d_forward(x, kernel, stride=None, pad=0, out_size=None):
    y, cache = maxpool2d_forward(*_as2d(x, kernel, stride, pad, out_size))
    return y[:, :, 0, :], cache


def avgpool1d_forward(x, kernel, stride=None, pad=0, out_size=None, count_include_pad=True):
    y, cache = avgpool2d_forward(*_as2d(x, kernel, stride, pad, out_size), count_include_pad)
    return y[:, :, 0, :], cache


def pool1d_backward(dout, cache):
    return pool2d_backward(np.asarray(dout)[:, :, None, :], cache)[:, :, 0, :]
