"""Depthwise (and other thin grouped) 2-D convolution: forward, data gradient, weight gradient.

A depthwise conv (``groups == C``, ``F = m*C``) has one input channel per filter: im2col's
GEMMs degenerate to dot products, and the lectures' ``direct`` loops (float64 accumulators,
a zero-filled plane per output, a scalar weight-gradient reduction, a padded copy of the
input) leave the vector units idle.  These kernels compute the same sums with

* float32 in, float32 out and float32 accumulation (float64 stays float64), like PyTorch;
* the innermost loop running along an output row (contiguous ``W``) with unit stride when
  the conv's stride is 1, so LLVM vectorises it (an axpy ``acc[ow] += w * x[ow + off]``);
* no padded copy of the input and no cropped copy of the gradient: every loop is clipped
  to the taps that fall inside the input (precomputed per kernel column), so padding costs
  nothing and rows no window reaches come out zero;
* every output row written once from a row accumulator (no zero-filled output);
* the weight gradient reduced into one partial sum per output column and tap (vectorisable,
  no reassociation: numba runs without fastmath), then summed over the columns in order.

They are correct for any ``groups`` (a thin group only is fast: the work per output is
``Cg*kh*kw`` axpys of a row), any kernel size, stride, dilation and asymmetric padding.

Parallelism: ``prange`` over independent outputs — (image, filter) planes in forward,
(image, input channel) planes for the data gradient, (filter, channel) pairs for the
weight gradient — each computed by one thread in a fixed order, so the bits do not depend
on the thread count.  Training on sub-batches runs them single-threaded per Python thread
(the kernels are ``nogil``; see ``cnncalc/runtime/_numba.py``).

Public API (used by :mod:`cnncalc.runtime.kernels.conv`, algorithm ``"depthwise"``)
---------------------------------------------------------------------------------
``depthwise_forward(x, w, stride, pads, dilation, groups, OH, OW) -> y``
``depthwise_data_grad(dy, w, x_shape, stride, pads, dilation, groups) -> dx``
``depthwise_weight_grad(dy, x, w_shape, stride, pads, dilation, groups) -> dw``

``x (N, C, H, W)``, ``w (F, C // groups, kh, kw)``, ``stride=(sh, sw)``,
``pads=((top, bottom), (left, right))``, ``dilation=(dh, dw)``; the arrays must be
C-contiguous and of one float dtype (``conv`` ensures both).
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime._numba import njit, prange


@njit
def _col_ranges(W, OW, kw, sw, dw, pl):
    """For tap column ``j``: the output columns ``ow`` in ``[lo[j], hi[j])`` read input
    column ``ow*sw + j*dw - pl`` inside ``[0, W)`` (the others read padding)."""
    lo = np.empty(kw, np.int64)
    hi = np.empty(kw, np.int64)
    for j in range(kw):
        off = j * dw - pl
        a = 0 if off >= 0 else (-off + sw - 1) // sw
        b = (W - 1 - off) // sw + 1 if W - 1 - off >= 0 else 0
        a = min(a, OW)
        lo[j] = a
        hi[j] = max(min(b, OW), a)
    return lo, hi


@njit(parallel=True)
def _fwd(x, w, sh, sw, dh, dw, pt, pl, groups, OH, OW):
    N, C, H, W = x.shape
    F, Cg, kh, kw = w.shape
    Fg = F // groups
    lo, hi = _col_ranges(W, OW, kw, sw, dw, pl)
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    zero = x.dtype.type(0)
    for t in prange(N * F):
        n = t // F
        f = t % F
        g = f // Fg
        acc = np.empty(OW, dtype=x.dtype)
        for oh in range(OH):
            for ow in range(OW):
                acc[ow] = zero
            for c in range(Cg):
                ci = g * Cg + c
                for i in range(kh):
                    r = oh * sh + i * dh - pt
                    if r < 0 or r >= H:
                        continue
                    xr = x[n, ci, r]
                    for j in range(kw):
                        wv = w[f, c, i, j]
                        off = j * dw - pl
                        a = lo[j]
                        m = hi[j] - a
                        if sw == 1:
                            ar = acc[a:a + m]
                            xs = xr[a + off:a + off + m]
                            for k in range(m):
                                ar[k] += wv * xs[k]
                        else:
                            for ow in range(lo[j], hi[j]):
                                acc[ow] += wv * xr[ow * sw + off]
            yr = y[n, f, oh]
            for ow in range(OW):
                yr[ow] = acc[ow]
    return y


@njit(parallel=True)
def _dx(dy, w, sh, sw, dh, dw, pt, pl, groups, H, W):
    # dx[n, ci, h, q] = sum_{fo, i, j} w[f, c, i, j] * dy[n, f, oh, ow]
    #   over oh*sh + i*dh - pt == h and ow*sw + j*dw - pl == q (a gather per output row)
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    C = Cg * groups
    Fg = F // groups
    lo, hi = _col_ranges(W, OW, kw, sw, dw, pl)
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    zero = dy.dtype.type(0)
    for t in prange(N * C):
        n = t // C
        ci = t % C
        g = ci // Cg
        c = ci % Cg
        acc = np.empty(W, dtype=dy.dtype)
        for h in range(H):
            for q in range(W):
                acc[q] = zero
            for fo in range(Fg):
                f = g * Fg + fo
                for i in range(kh):
                    s = h + pt - i * dh
                    if s < 0 or s % sh != 0 or s // sh >= OH:
                        continue
                    dyr = dy[n, f, s // sh]
                    for j in range(kw):
                        wv = w[f, c, i, j]
                        off = j * dw - pl
                        if sw == 1:
                            a = lo[j]
                            m = hi[j] - a
                            ar = acc[a + off:a + off + m]
                            ds = dyr[a:a + m]
                            for k in range(m):
                                ar[k] += wv * ds[k]
                        else:
                            for ow in range(lo[j], hi[j]):
                                acc[ow * sw + off] += wv * dyr[ow]
            dr = dx[n, ci, h]
            for q in range(W):
                dr[q] = acc[q]
    return dx


@njit(parallel=True)
def _dw(dy, x, Cg, kh, kw, sh, sw, dh, dw, pt, pl, groups):
    # dw[f, c, i, j] = sum_{n, oh, ow} dy[n, f, oh, ow] * x[n, ci, oh*sh + i*dh - pt, ow*sw + j*dw - pl]
    N, F, OH, OW = dy.shape
    H, W = x.shape[2], x.shape[3]
    Fg = F // groups
    lo, hi = _col_ranges(W, OW, kw, sw, dw, pl)
    out = np.empty((F, Cg, kh, kw), dtype=dy.dtype)
    for t in prange(F * Cg):
        f = t // Cg
        c = t % Cg
        ci = (f // Fg) * Cg + c
        part = np.zeros((kh * kw, OW), dtype=dy.dtype)  # one partial sum per tap and column
        for n in range(N):
            for oh in range(OH):
                dyr = dy[n, f, oh]
                for i in range(kh):
                    r = oh * sh + i * dh - pt
                    if r < 0 or r >= H:
                        continue
                    xr = x[n, ci, r]
                    for j in range(kw):
                        pr = part[i * kw + j]
                        off = j * dw - pl
                        if sw == 1:
                            a = lo[j]
                            m = hi[j] - a
                            ps = pr[a:a + m]
                            ds = dyr[a:a + m]
                            xs = xr[a + off:a + off + m]
                            for k in range(m):
                                ps[k] += ds[k] * xs[k]
                        else:
                            for ow in range(lo[j], hi[j]):
                                pr[ow] += dyr[ow] * xr[ow * sw + off]
        for i in range(kh):
            for j in range(kw):
                pr = part[i * kw + j]
                s = pr[0]
                for ow in range(1, OW):
                    s += pr[ow]
                out[f, c, i, j] = s
    return out


def depthwise_forward(x, w, stride, pads, dilation, groups, OH, OW):
    """``y (N, F, OH, OW)`` of the unpadded input ``x`` (the padding is implicit)."""
    (pt, _), (pl, _) = pads
    return _fwd(x, w, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups, OH, OW)


def depthwise_data_grad(dy, w, x_shape, stride, pads, dilation, groups):
    """``dL/dx`` of shape ``x_shape`` (zero where no window reads the input)."""
    (pt, _), (pl, _) = pads
    return _dx(dy, w, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups, x_shape[2], x_shape[3])


def depthwise_weight_grad(dy, x, w_shape, stride, pads, dilation, groups):
    """``dL/dw`` of shape ``w_shape``."""
    (pt, _), (pl, _) = pads
    _, Cg, kh, kw = w_shape
    return _dw(dy, x, Cg, kh, kw, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups)
