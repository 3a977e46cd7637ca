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
def _maxpool2_fwd(x, OH, OW):
    """:func:`_maxpool_fwd` for 2x2 windows at stride 2 without padding, every window inside x
    (``2*OH <= H``, ``2*OW <= W``): the four values compared unrolled, the same maximum and
    argmax (the first in row-major order on ties; NaN as there)."""
    N, C, H, W = x.shape
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    arg = np.empty((N, C, OH, OW), dtype=np.int64)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            r = 2 * oh
            for ow in range(OW):
                q = 2 * ow
                best = x[n, c, r, q]
                bi = r * W + q
                v = x[n, c, r, q + 1]
                if v > best:
                    best = v
                    bi = r * W + q + 1
                v = x[n, c, r + 1, q]
                if v > best:
                    best = v
                    bi = (r + 1) * W + q
                v = x[n, c, r + 1, q + 1]
                if v > best:
                    best = v
                    bi = (r + 1) * W + q + 1
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


def _ranges(n, o, k, s, lo, hi):
    """Per output index: the clipped window [a, b) in the input, and its extent clipped to
    the padded input (the count_include_pad divisor), as int64 arrays."""
    st = np.arange(o, dtype=np.int64) * s - lo
    en = np.minimum(st + k, n + hi)
    a = np.maximum(st, 0)
    b = np.minimum(en, n)
    return a, np.maximum(b, a), en - st


def _avg_plan(H, W, OH, OW, kh, kw, sh, sw, pt, pb, pl, pr, include_pad):
    """Row/column windows and the (OH, OW) reciprocal divisors, shared by every plane."""
    h0, h1, hext = _ranges(H, OH, kh, sh, pt, pb)
    w0, w1, wext = _ranges(W, OW, kw, sw, pl, pr)
    cnt = (np.outer(hext, wext) if include_pad else np.outer(h1 - h0, w1 - w0)).astype(np.float64)
    inv = np.where(cnt > 0, 1.0 / np.maximum(cnt, 1.0), 0.0)
    return h0, h1, w0, w1, inv


@njit(parallel=True)
def _avgpool_fwd(x, h0, h1, w0, w1, inv):
    N, C, H, W = x.shape
    OH, OW = inv.shape
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    for t in prange(N * C):
        xs = x[t // C, t % C]
        o = out[t // C, t % C]
        for oh in range(OH):
            for ow in range(OW):
                acc = 0.0
                for r in range(h0[oh], h1[oh]):
                    for q in range(w0[ow], w1[ow]):
                        acc += xs[r, q]
                o[oh, ow] = acc * inv[oh, ow]
    return out


@njit(parallel=True)
def _avgpool_bwd(dout, H, W, h0, h1, w0, w1, inv, overlap):
    """Without overlapping windows: walks the pooled cells, each assigning its share to its
    window. With them: accumulates, each input cell summing its shares in row-major order of
    the pooled cells (the order of a walk over the cells, the same bits), but walked by
    output row, its input rows, then the offset ``j`` of the column in the clipped window,
    descending, and the output columns: the window starts ``w0`` do not decrease, so for a
    given input column the ``ow`` that reach it come in increasing order, and each ``(j,
    ow)`` pass touches a column at most once. Contiguous rows instead of a 3x3 block per
    cell: GoogLeNet's 3x3 stride-1 poolings (the linear copy's) 1.7x faster at 28x28."""
    N, C, OH, OW = dout.shape
    dx = np.zeros((N, C, H, W), dtype=dout.dtype) if overlap else np.empty((N, C, H, W), dtype=dout.dtype)
    kw = 0
    for ow in range(OW):
        kw = max(kw, w1[ow] - w0[ow])
    for t in prange(N * C):
        d = dout[t // C, t % C]
        dxs = dx[t // C, t % C]
        if overlap:
            g = np.empty(OW, dtype=dout.dtype)
            for oh in range(OH):
                for ow in range(OW):
                    g[ow] = d[oh, ow] * inv[oh, ow]
                for r in range(h0[oh], h1[oh]):
                    row = dxs[r]
                    for j in range(kw - 1, -1, -1):
                        for ow in range(OW):
                            q = w0[ow] + j
                            if q < w1[ow]:
                                row[q] += g[ow]
            continue
        # cells no window covers (floor rounding, or stride > kernel) get 0
        covered_h = np.zeros(H, np.bool_)
        covered_w = np.zeros(W, np.bool_)
        for oh in range(OH):
            covered_h[h0[oh]:h1[oh]] = True
        for ow in range(OW):
            covered_w[w0[ow]:w1[ow]] = True
        for r in range(H):
            if not covered_h[r]:
                dxs[r, :] = 0.0
            else:
                for q in range(W):
                    if not covered_w[q]:
                        dxs[r, q] = 0.0
        for oh in range(OH):
            for ow in range(OW):
                gv = d[oh, ow] * inv[oh, ow]
                for r in range(h0[oh], h1[oh]):
                    for q in range(w0[ow], w1[ow]):
                        dxs[r, q] = gv
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


# ---------------------------------------------------------------- regular windows, any rank
def _regular(shape, kernel, stride, pads, out):
    """True when every window lies inside the input (no padding, no clipping): then average
    pooling is a handful of strided whole-batch numpy operations, one per kernel offset, for
    any number of spatial axes (LeNet's 2x2, batch 64: 0.25 ms forward and 0.24 backward
    against 1.1 and 1.3 for the per-plane loops; the same scheme for max pooling was slower
    than its numba loop, which stays)."""
    return (all(lo == 0 and hi == 0 for lo, hi in pads)
            and all((o - 1) * s + k <= n for n, k, s, o in zip(shape, kernel, stride, out)))


def _offsets(kernel):
    return np.ndindex(*kernel)


def _view(x, off, stride, out):
    """x[..., off_d : off_d + s_d*(o_d-1)+1 : s_d] over the trailing spatial axes."""
    return x[(Ellipsis, *(slice(i, i + s * (o - 1) + 1, s) for i, s, o in zip(off, stride, out)))]


def _tiles(shape, kernel, stride, out):
    """Windows cover the input exactly once (stride == kernel, no remainder)."""
    return all(k == s and o * s == n for n, k, s, o in zip(shape, kernel, stride, out))


@njit(parallel=True)
def _avg2x2_fwd(x, OH, OW):
    """2x2 stride-2 average pooling, summed in the order of :func:`_avg_regular_fwd` (the
    same bits): the commonest pooling, 6x faster than the strided numpy ops (64x6x28x28:
    0.06 ms against 0.35; a kernel with the window size as a loop bound took 0.8)."""
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    q = x.dtype.type(0.25)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            for ow in range(OW):
                y[n, c, oh, ow] = (((x[n, c, 2 * oh, 2 * ow] + x[n, c, 2 * oh, 2 * ow + 1])
                                    + x[n, c, 2 * oh + 1, 2 * ow]) + x[n, c, 2 * oh + 1, 2 * ow + 1]) * q
    return y


@njit(parallel=True)
def _avg2x2_bwd(dout, H, W):
    N, C, OH, OW = dout.shape
    dx = np.zeros((N, C, H, W), dtype=dout.dtype) if (H != 2 * OH or W != 2 * OW) else \
        np.empty((N, C, H, W), dtype=dout.dtype)
    q = dout.dtype.type(0.25)
    for t in prange(N * C):
        n = t // C
        c = t % C
        for oh in range(OH):
            for ow in range(OW):
                v = dout[n, c, oh, ow] * q
                dx[n, c, 2 * oh, 2 * ow] = v
                dx[n, c, 2 * oh, 2 * ow + 1] = v
                dx[n, c, 2 * oh + 1, 2 * ow] = v
                dx[n, c, 2 * oh + 1, 2 * ow + 1] = v
    return dx


def _avg_regular_fwd(x, kernel, stride, out):
    if len(kernel) == 2 and kernel == (2, 2) and stride == (2, 2):
        return _avg2x2_fwd(x, *out)
    offs = list(_offsets(kernel))
    y = _view(x, offs[0], stride, out).copy()
    for off in offs[1:]:
        y += _view(x, off, stride, out)
    y *= x.dtype.type(1.0 / len(offs))
    return y


def _avg_regular_bwd(dout, xshape, kernel, stride):
    if len(kernel) == 2 and kernel == (2, 2) and stride == (2, 2):
        return _avg2x2_bwd(dout, xshape[2], xshape[3])
    out = dout.shape[2:]
    g = dout * dout.dtype.type(1.0 / int(np.prod(kernel)))
    overlap = any(s < k for k, s in zip(kernel, stride))
    dx = np.empty(xshape, dout.dtype) if _tiles(xshape[2:], kernel, stride, out) else np.zeros(xshape, dout.dtype)
    for off in _offsets(kernel):
        if overlap:
            _view(dx, off, stride, out)[...] += g
        else:
            _view(dx, off, stride, out)[...] = g
    return dx


def maxpool2d_forward(x, kernel, stride=None, pad=0, out_size=None):
    x, (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (OH, OW) = _setup(x, kernel, stride, pad, out_size)
    if (kh, kw, sh, sw, pt, pl) == (2, 2, 2, 2, 0, 0) and 2 * OH <= x.shape[2] and 2 * OW <= x.shape[3]:
        y, arg = _maxpool2_fwd(x, OH, OW)  # the common 2x2/2 pool, unrolled
    else:
        y, arg = _maxpool_fwd(x, kh, kw, sh, sw, pt, pl, OH, OW)
    return y, ("max", x.shape, arg)


def avgpool2d_forward(x, kernel, stride=None, pad=0, out_size=None, count_include_pad=True):
    x, (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (OH, OW) = _setup(x, kernel, stride, pad, out_size)
    # one whole-batch numpy op per kernel offset: for small windows only (a global pool would
    # be thousands of ops; the per-plane loop serves it)
    if kh * kw <= 16 and _regular(x.shape[2:], (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (OH, OW)):
        return _avg_regular_fwd(x, (kh, kw), (sh, sw), (OH, OW)), ("avg_regular", x.shape, ((kh, kw), (sh, sw)))
    h0, h1, w0, w1, inv = _avg_plan(x.shape[2], x.shape[3], OH, OW, kh, kw, sh, sw, pt, pb, pl, pr,
                                    bool(count_include_pad))
    y = _avgpool_fwd(x, h0, h1, w0, w1, inv.astype(x.dtype))
    overlap = sh < kh or sw < kw
    return y, ("avg", x.shape, (h0, h1, w0, w1, inv.astype(x.dtype), overlap))


def pool2d_backward(dout, cache):
    mode, xshape, extra = cache
    H, W = xshape[2], xshape[3]
    dout = as_float(dout)
    if mode == "avg_regular":
        return _avg_regular_bwd(dout, xshape, *extra)
    if mode == "max":
        return _maxpool_bwd(dout, extra, H, W)
    if mode == "avg":
        return _avgpool_bwd(dout, H, W, *extra)
    raise ValueError(f"unknown pool cache {mode!r}")


maxpool2d_backward = pool2d_backward
avgpool2d_backward = pool2d_backward


def avgpool2d_backward_window(dout, cache, rows, cols):
    """The data gradient of an average pooling (a 2-D cache of :func:`avgpool2d_forward`,
    of any batch size) from ``dout`` (N, C, oh, ow): the output gradient on the window of
    output rows ``rows`` = (first, last) and columns ``cols``, zero outside it. Returns
    ``(dx, (r0, c0))``: the gradient on the input rows and columns the window's pooling
    windows reach, starting at input row ``r0`` and column ``c0`` (the whole input's gradient
    is zero elsewhere), with the same divisors as :func:`pool2d_backward`; None for a max
    pooling's cache."""
    mode, xshape, extra = cache
    (a, b), (c, d) = rows, cols
    dout = as_float(dout)
    if dout.ndim != 4 or dout.shape[2:] != (b - a + 1, d - c + 1) or a < 0 or c < 0:
        raise ValueError(f"dout {dout.shape} is not the window rows {rows}, columns {cols}")
    if mode == "avg_regular":
        kernel, stride = extra
        r0, c0 = a * stride[0], c * stride[1]
        shape = (*dout.shape[:2], (b - a) * stride[0] + kernel[0], (d - c) * stride[1] + kernel[1])
        return _avg_regular_bwd(np.ascontiguousarray(dout), shape, kernel, stride), (r0, c0)
    if mode != "avg":
        return None
    h0, h1, w0, w1, inv, overlap = extra
    h0, h1, w0, w1 = h0[a:b + 1], h1[a:b + 1], w0[c:d + 1], w1[c:d + 1]
    r0, r1, c0, c1 = int(h0.min()), int(h1.max()), int(w0.min()), int(w1.max())
    dx = _avgpool_bwd(np.ascontiguousarray(dout), r1 - r0, c1 - c0, h0 - r0, h1 - r0, w0 - c0, w1 - c0,
                      np.ascontiguousarray(inv[a:b + 1, c:d + 1]), overlap)
    return dx, (r0, c0)


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
