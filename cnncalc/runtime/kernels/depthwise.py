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

from cnncalc.runtime._numba import njit, numba, prange

# Loops index flat 1-D arrays through unsigned offsets: numba wraps negative signed indices
# around (a branch per access, which stops vectorisation) and a row view per row costs an
# atomic reference count (about as much as the 56-wide row it would serve).
_U = numba.uint64


@njit
def _ranges(n_out, n_in, s, offs):
    """For tap ``j``: the outputs ``k`` in ``[lo[j], hi[j])`` read ``src[k*s + offs[j]]``
    inside ``[0, n_in)`` (the others read padding)."""
    kw = offs.shape[0]
    lo = np.empty(kw, np.int64)
    hi = np.empty(kw, np.int64)
    for j in range(kw):
        off = offs[j]
        a = 0 if off >= 0 else (-off + s - 1) // s
        b = (n_in - 1 - off) // s + 1 if n_in - 1 - off >= 0 else 0
        a = min(a, n_out)
        lo[j] = a
        hi[j] = max(min(b, n_out), a)
    return lo, hi


@njit
def _corr_row(acc, src, base, wf, wb, offs, lo, hi, s):
    """``acc[k] += sum_j wf[wb + j] * src[base + k*s + offs[j]]`` over the valid ``k`` of
    each tap ``j``.

    With ``s == 1`` the taps go in groups of three (two, one for the rest): where all taps
    of a group are valid, one vectorised pass adds ``(w0*x0 + w1*x1) + w2*x2`` (one load
    and store of ``acc`` per three products); the few edge columns get the taps one at a
    time.  The order of the additions is fixed by the shapes alone."""
    kw = offs.shape[0]
    if s != 1:
        for j in range(kw):
            wv = wf[_U(wb + j)]
            o = base + offs[j]
            for k in range(lo[j], hi[j]):
                acc[_U(k)] += wv * src[_U(o + k * s)]
        return
    for j0 in range(0, kw, 3):
        G = min(3, kw - j0)
        L = lo[j0]
        R = hi[j0]
        for j in range(j0 + 1, j0 + G):
            L = max(L, lo[j])
            R = min(R, hi[j])
        if G == 1 or L >= R:
            L = R = hi[j0]  # no common run: every tap on its own below
            for j in range(j0, j0 + G):
                wv = wf[_U(wb + j)]
                o = base + offs[j]
                for k in range(lo[j], hi[j]):
                    acc[_U(k)] += wv * src[_U(k + o)]
            continue
        w0 = wf[_U(wb + j0)]
        w1 = wf[_U(wb + j0 + 1)]
        o0 = base + offs[j0]
        o1 = base + offs[j0 + 1]
        if G == 3:
            w2 = wf[_U(wb + j0 + 2)]
            o2 = base + offs[j0 + 2]
            for k in range(L, R):
                acc[_U(k)] += (w0 * src[_U(k + o0)] + w1 * src[_U(k + o1)]) + w2 * src[_U(k + o2)]
        else:
            for k in range(L, R):
                acc[_U(k)] += w0 * src[_U(k + o0)] + w1 * src[_U(k + o1)]
        for j in range(j0, j0 + G):  # the edges: columns where only some taps are valid
            wv = wf[_U(wb + j)]
            o = base + offs[j]
            for k in range(lo[j], min(L, hi[j])):
                acc[_U(k)] += wv * src[_U(k + o)]
            for k in range(max(R, lo[j]), hi[j]):
                acc[_U(k)] += wv * src[_U(k + o)]


@njit(parallel=True)
def _fwd(x, w, sh, sw, dh, dw, pt, pl, groups, OH, OW):
    N, C, H, W = x.shape
    F, Cg, kh, kw = w.shape
    Fg = F // groups
    offs = np.arange(kw) * dw - pl
    lo, hi = _ranges(OW, W, sw, offs)
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    yf = y.reshape(-1)
    zero = x.dtype.type(0)
    for t in prange(N * F):
        n = t // F
        f = t % F
        g = f // Fg
        acc = np.empty(OW, dtype=x.dtype)
        for oh in range(OH):
            for k in range(OW):
                acc[k] = zero
            for c in range(Cg):
                ci = g * Cg + c
                for i in range(kh):
                    r = oh * sh + i * dh - pt
                    if r < 0 or r >= H:
                        continue
                    _corr_row(acc, xf, ((n * C + ci) * H + r) * W, wf, ((f * Cg + c) * kh + i) * kw,
                              offs, lo, hi, sw)
            yb = (t * OH + oh) * OW
            for k in range(OW):
                yf[_U(yb + k)] = acc[k]
    return y


@njit(parallel=True)
def _dx(dy, w, sh, sw, dh, dw, pt, pl, groups, H, W):
    # dx[n, ci, h, q] = sum_{fo, i, j} w[f, c, i, j] * dy[n, f, oh, ow]
    #   over oh*sh + i*dh - pt == h and ow*sw + j*dw - pl == q: per output row, a gather
    #   (stride 1: a correlation of dy's row with offsets pl - j*dw) or a scatter (stride > 1)
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    C = Cg * groups
    Fg = F // groups
    if sw == 1:
        offs = pl - np.arange(kw) * dw
        lo, hi = _ranges(W, OW, 1, offs)
    else:
        offs = np.arange(kw) * dw - pl
        lo, hi = _ranges(OW, W, sw, offs)
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    wf = w.reshape(-1)
    dxf = dx.reshape(-1)
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
                    base = ((n * F + f) * OH + s // sh) * OW
                    wb = ((f * Cg + c) * kh + i) * kw
                    if sw == 1:
                        _corr_row(acc, dyf, base, wf, wb, offs, lo, hi, 1)
                        continue
                    for j in range(kw):
                        wv = wf[_U(wb + j)]
                        for ow in range(lo[j], hi[j]):
                            acc[_U(ow * sw + offs[j])] += wv * dyf[_U(base + ow)]
            xb = (t * H + h) * W
            for q in range(W):
                dxf[_U(xb + q)] = acc[q]
    return dx


@njit(parallel=True)
def _dw(dy, x, Cg, kh, kw, sh, sw, dh, dw, pt, pl, groups):
    # dw[f, c, i, j] = sum_{n, oh, ow} dy[n, f, oh, ow] * x[n, ci, oh*sh + i*dh - pt, ow*sw + j*dw - pl],
    # summed into one partial sum per tap and output column (vectorised), then over the columns
    N, F, OH, OW = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Fg = F // groups
    offs = np.arange(kw) * dw - pl
    lo, hi = _ranges(OW, W, sw, offs)
    out = np.empty((F, Cg, kh, kw), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    xf = x.reshape(-1)
    for t in prange(F * Cg):
        f = t // Cg
        c = t % Cg
        ci = (f // Fg) * Cg + c
        part = np.zeros(kh * kw * OW, dtype=dy.dtype)
        for n in range(N):
            for oh in range(OH):
                db = ((n * F + f) * OH + oh) * OW
                for i in range(kh):
                    r = oh * sh + i * dh - pt
                    if r < 0 or r >= H:
                        continue
                    xb = ((n * C + ci) * H + r) * W
                    for j in range(kw):
                        pb = (i * kw + j) * OW
                        o = xb + offs[j]
                        if sw == 1:
                            for k in range(lo[j], hi[j]):
                                part[_U(pb + k)] += dyf[_U(db + k)] * xf[_U(o + k)]
                        else:
                            for k in range(lo[j], hi[j]):
                                part[_U(pb + k)] += dyf[_U(db + k)] * xf[_U(o + k * sw)]
        for i in range(kh):
            for j in range(kw):
                pb = (i * kw + j) * OW
                acc = part[pb]
                for k in range(1, OW):
                    acc += part[pb + k]
                out[f, c, i, j] = acc
    return out


@njit
def _pad_plane(dst, src, sb, H, W, top, left, Hs, Ws):
    """``dst[r*Ws + q] = src[sb + (r - top)*W + (q - left)]``, zero outside the source plane
    (a negative ``top``/``left`` crops), for ``r < Hs``, ``q < Ws``; the rest of ``dst``
    (slack read by the last taps) is zeroed."""
    zero = dst.dtype.type(0)
    for r in range(Hs):
        rr = r - top
        db = r * Ws
        if rr < 0 or rr >= H:
            for q in range(Ws):
                dst[_U(db + q)] = zero
            continue
        a = min(max(left, 0), Ws)
        b = max(min(left + W, Ws), a)
        for q in range(a):
            dst[_U(db + q)] = zero
        o = sb + rr * W - left
        for q in range(a, b):
            dst[_U(db + q)] = src[_U(o + q)]
        for q in range(b, Ws):
            dst[_U(db + q)] = zero
    for p in range(Hs * Ws, dst.shape[0]):
        dst[p] = zero


@njit
def _wide_corr(acc, xp, Ws, n, wf, wb, kh, kw, dh, dw, flip):
    """Stride 1 on the "wide" grid of row pitch ``Ws``: ``acc[p] += sum_{i,j} w[i, j] *
    xp[p + i*dh*Ws + j*dw]`` for ``p < n`` — one long vectorised loop per group of three
    taps along a kernel row (columns past the output width are computed and discarded).
    ``flip`` reads the kernel rotated by 180 degrees (the data gradient)."""
    for i in range(kh):
        wi = wb + ((kh - 1 - i) if flip else i) * kw
        for j0 in range(0, kw, 3):
            G = min(3, kw - j0)
            o0 = i * dh * Ws + j0 * dw
            w0 = wf[_U(wi + ((kw - 1 - j0) if flip else j0))]
            if G == 1:
                for p in range(n):
                    acc[_U(p)] += w0 * xp[_U(p + o0)]
                continue
            o1 = o0 + dw
            w1 = wf[_U(wi + ((kw - 2 - j0) if flip else j0 + 1))]
            if G == 2:
                for p in range(n):
                    acc[_U(p)] += w0 * xp[_U(p + o0)] + w1 * xp[_U(p + o1)]
                continue
            o2 = o1 + dw
            w2 = wf[_U(wi + ((kw - 3 - j0) if flip else j0 + 2))]
            for p in range(n):
                acc[_U(p)] += (w0 * xp[_U(p + o0)] + w1 * xp[_U(p + o1)]) + w2 * xp[_U(p + o2)]


@njit(parallel=True)
def _fwd1(x, w, dh, dw, pt, pl, groups, OH, OW):
    """Stride 1: per output plane, the padded input plane (a cache-resident copy) and
    :func:`_wide_corr`."""
    N, C, H, W = x.shape
    F, Cg, kh, kw = w.shape
    Fg = F // groups
    Ws = OW + (kw - 1) * dw
    Hs = OH + (kh - 1) * dh + 1  # + a zero row: the last taps of the last row read past Ws
    n = OH * Ws
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    yf = y.reshape(-1)
    zero = x.dtype.type(0)
    for t in prange(N * F):
        nn = t // F
        f = t % F
        g = f // Fg
        acc = np.empty(n, dtype=x.dtype)
        xp = np.empty(Hs * Ws, dtype=x.dtype)
        for p in range(n):
            acc[p] = zero
        for c in range(Cg):
            ci = g * Cg + c
            _pad_plane(xp, xf, (nn * C + ci) * H * W, H, W, pt, pl, Hs, Ws)
            _wide_corr(acc, xp, Ws, n, wf, (f * Cg + c) * kh * kw, kh, kw, dh, dw, False)
        for oh in range(OH):
            for ow in range(OW):
                yf[_U((t * OH + oh) * OW + ow)] = acc[_U(oh * Ws + ow)]
    return y


@njit(parallel=True)
def _dx1(dy, w, dh, dw, pt, pl, groups, H, W):
    """Stride 1: ``dx`` is the forward correlation of ``dy`` padded by the kernel extent
    less the forward padding, with the kernels rotated by 180 degrees (and the roles of
    filters and channels swapped within a group)."""
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    C = Cg * groups
    Fg = F // groups
    Ws = W + (kw - 1) * dw
    Hs = H + (kh - 1) * dh + 1
    top = (kh - 1) * dh - pt
    left = (kw - 1) * dw - pl
    n = H * Ws
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    wf = w.reshape(-1)
    dxf = dx.reshape(-1)
    zero = dy.dtype.type(0)
    for t in prange(N * C):
        nn = t // C
        ci = t % C
        g = ci // Cg
        c = ci % Cg
        acc = np.empty(n, dtype=dy.dtype)
        sp = np.empty(Hs * Ws, dtype=dy.dtype)
        for p in range(n):
            acc[p] = zero
        for fo in range(Fg):
            f = g * Fg + fo
            _pad_plane(sp, dyf, (nn * F + f) * OH * OW, OH, OW, top, left, Hs, Ws)
            _wide_corr(acc, sp, Ws, n, wf, (f * Cg + c) * kh * kw, kh, kw, dh, dw, True)
        for h in range(H):
            for q in range(W):
                dxf[_U((t * H + h) * W + q)] = acc[_U(h * Ws + q)]
    return dx


_LANES = 128


@njit(parallel=True)
def _dw1(dy, x, Cg, kh, kw, dh, dw, pt, pl, groups):
    """Stride 1: ``dw[f, c, i, j]`` is the dot product of ``dy``'s plane laid on the wide
    grid (zeros past the output width) with the padded input plane shifted by the tap:
    the products go into ``_LANES`` partial sums (element ``p`` of the plane into lane
    ``p % _LANES``, vectorised, in order over ``p`` and the images), then the lanes are
    summed in order — a summation order fixed by the shapes alone."""
    N, F, OH, OW = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Fg = F // groups
    Ws = OW + (kw - 1) * dw
    L = OH * Ws
    Hs = OH + (kh - 1) * dh
    xlen = max(Hs * Ws, L + (kh - 1) * dh * Ws + (kw - 1) * dw)
    out = np.empty((F, Cg, kh, kw), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for t in prange(F * Cg):
        f = t // Cg
        c = t % Cg
        ci = (f // Fg) * Cg + c
        part = np.zeros(kh * kw * _LANES, dtype=dy.dtype)  # _LANES partial sums per tap
        xp = np.empty(xlen, dtype=dy.dtype)
        dyw = np.zeros(L, dtype=dy.dtype)  # columns past OW stay zero
        for nn in range(N):
            _pad_plane(xp, xf, (nn * C + ci) * H * W, H, W, pt, pl, Hs, Ws)
            db = (nn * F + f) * OH * OW
            for oh in range(OH):
                for ow in range(OW):
                    dyw[_U(oh * Ws + ow)] = dyf[_U(db + oh * OW + ow)]
            for i in range(kh):
                for j in range(kw):
                    o = i * dh * Ws + j * dw
                    pb = (i * kw + j) * _LANES
                    for c0 in range(0, L, _LANES):
                        for q in range(min(_LANES, L - c0)):
                            part[_U(pb + q)] += dyw[_U(c0 + q)] * xp[_U(c0 + q + o)]
        for k in range(kh * kw):
            acc = part[k * _LANES]
            for q in range(1, _LANES):
                acc += part[k * _LANES + q]
            of[_U(t * kh * kw + k)] = acc
    return out


def depthwise_forward(x, w, stride, pads, dilation, groups, OH, OW):
    """``y (N, F, OH, OW)`` of the unpadded input ``x`` (the padding is implicit)."""
    (pt, _), (pl, _) = pads
    if stride == (1, 1):
        return _fwd1(x, w, dilation[0], dilation[1], pt, pl, groups, OH, OW)
    return _fwd(x, w, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups, OH, OW)


def depthwise_data_grad(dy, w, x_shape, stride, pads, dilation, groups):
    """``dL/dx`` of shape ``x_shape`` (zero where no window reads the input)."""
    (pt, _), (pl, _) = pads
    if stride == (1, 1):
        return _dx1(dy, w, dilation[0], dilation[1], pt, pl, groups, x_shape[2], x_shape[3])
    return _dx(dy, w, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups, x_shape[2], x_shape[3])


def depthwise_weight_grad(dy, x, w_shape, stride, pads, dilation, groups):
    """``dL/dw`` of shape ``w_shape``."""
    (pt, _), (pl, _) = pads
    _, Cg, kh, kw = w_shape
    if stride == (1, 1):
        return _dw1(dy, x, Cg, kh, kw, dilation[0], dilation[1], pt, pl, groups)
    return _dw(dy, x, Cg, kh, kw, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups)
