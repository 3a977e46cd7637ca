"""Depthwise (and other thin grouped) 2-D convolution: forward, data gradient, weight gradient.

A depthwise conv (``groups == C``, ``F = m*C``) has one input channel per filter: im2col's
GEMMs degenerate to dot products, and the lectures' ``direct`` loops (float64 accumulators,
a zero-filled plane per output, a scalar weight-gradient reduction, a padded copy of the
whole input) leave the vector units idle.  These kernels compute the same sums with

* float32 in, float32 out and float32 accumulation (float64 stays float64), like PyTorch;
* one long vectorised loop per tap (three taps per pass) over a whole output plane: each
  input plane is padded into a small cache-resident buffer — split by stride phase when
  the stride is > 1 — whose row pitch makes every tap a *constant offset* from the output
  position on a "wide" output grid (the few columns past the output width are computed
  and dropped).  Measured at 56x56x64 3x3 (N=2, 1 thread, CPU ms, forward / data grad /
  weight grad): row loops clipped to the valid taps with no padding at all 0.79 / 0.81 /
  1.34; these plane loops 0.32 / 0.32 / 0.63 (the clipped rows are 56 wide: the loop
  set-up and remainder cost as much as the arithmetic);
* no ``np.pad`` of the whole input and no crop of the gradient, and every output written
  once (no zero-filled output array);
* the weight gradient summed into ``_LANES`` partial sums per tap (vectorisable without
  reassociation: numba runs without fastmath), then over the lanes in order;
* the data gradient, for stride 1, as the correlation of the padded ``dy`` with the
  180-degree rotated kernels (a gather); for stride > 1 as a scatter of ``dy`` into the
  stride phases of the padded input, read back through the padding.

They are correct for any ``groups`` (a thin group only is fast: the work per output plane
is ``Cg*kh*kw`` passes), any kernel size, stride, dilation and asymmetric padding.

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
# around (a branch per access, which stops vectorisation), and a view per row costs an
# atomic reference count (measured: about as much as the 56-wide row it would serve).
_U = numba.uint64


@njit
def _geometry(kh, kw, sh, sw, dh, dw, OH, OW):
    """The phase planes of a strided window: the padded input split by row and column
    phase (``sh*sw`` planes of ``Hq x Wq``; one plane for stride 1), so that tap ``(i, j)``
    reads, for output ``(oh, ow)``, element ``p + offs[i*kw + j]`` with ``p = oh*Wq + ow``
    — a constant offset over the whole "wide" output grid of row pitch ``Wq`` (whose
    columns past ``OW`` are computed and discarded).  The last row of each plane is slack
    that the last taps of the last output row read past ``Wq``."""
    Wq = OW + ((kw - 1) * dw) // sw
    Hq = OH + ((kh - 1) * dh) // sh + 1
    offs = np.empty(kh * kw, np.int64)
    for i in range(kh):
        for j in range(kw):
            offs[i * kw + j] = ((((i * dh) % sh) * sw + (j * dw) % sw) * Hq + (i * dh) // sh) * Wq + (j * dw) // sw
    return Hq, Wq, offs


@njit
def _phase_planes(dst, src, sb, H, W, top, left, sh, sw, Hq, Wq):
    """``dst[((a*sw + b)*Hq + r)*Wq + q] = src[sb + (r*sh + a - top)*W + (q*sw + b - left)]``,
    zero outside the source plane (its padding; a negative ``top``/``left`` crops)."""
    zero = dst.dtype.type(0)
    P = Hq * Wq
    for a in range(sh):
        for r in range(Hq):
            rr = r * sh + a - top
            inside = 0 <= rr < H
            o = sb + rr * W - left
            for b in range(sw):
                db = (a * sw + b) * P + r * Wq
                # the columns q whose source column q*sw + b - left lies in [0, W)
                q0 = min(max(0, (left - b + sw - 1) // sw), Wq)
                q1 = max(min(Wq, (W - 1 + left - b) // sw + 1), q0) if W - 1 + left - b >= 0 else q0
                if not inside:
                    q0 = q1 = Wq
                for q in range(q0):
                    dst[_U(db + q)] = zero
                if sw == 1:
                    for q in range(q0, q1):
                        dst[_U(db + q)] = src[_U(o + q)]
                elif sw == 2 and b == 1 and inside:
                    # both phases of the row in one pass (a vectorised de-interleave); the
                    # columns outside the common range were written by b == 0 or below
                    d0 = (a * sw) * P + r * Wq
                    e0 = min(max(0, (left + 1) // 2), Wq)
                    e1 = max(min(Wq, (W - 1 + left) // 2 + 1), e0) if W - 1 + left >= 0 else e0
                    L = max(q0, e0)
                    R = max(min(q1, e1), L)
                    for q in range(L, R):
                        dst[_U(d0 + q)] = src[_U(o + 2 * q)]
                        dst[_U(db + q)] = src[_U(o + 2 * q + 1)]
                    for q in range(e0, min(L, e1)):
                        dst[_U(d0 + q)] = src[_U(o + 2 * q)]
                    for q in range(max(R, e0), e1):
                        dst[_U(d0 + q)] = src[_U(o + 2 * q)]
                    for q in range(q0, min(L, q1)):
                        dst[_U(db + q)] = src[_U(o + 2 * q + 1)]
                    for q in range(max(R, q0), q1):
                        dst[_U(db + q)] = src[_U(o + 2 * q + 1)]
                elif not (sw == 2 and b == 0 and inside):
                    for q in range(q0, q1):
                        dst[_U(db + q)] = src[_U(o + q * sw + b)]
                for q in range(q1, Wq):
                    dst[_U(db + q)] = zero


@njit
def _wide_corr(acc, xp, n, wf, wb, offs, kh, kw):
    """``acc[p] += sum_{i,j} wf[wb + i*kw + j] * xp[p + offs[i*kw + j]]`` for ``p < n``:
    one long vectorised pass per group of three taps of a kernel row, adding
    ``(w0*x0 + w1*x1) + w2*x2`` (one load and store of ``acc`` per three products)."""
    for i in range(kh):
        for j0 in range(0, kw, 3):
            G = min(3, kw - j0)
            k = i * kw + j0
            w0 = wf[_U(wb + k)]
            o0 = offs[k]
            if G == 1:
                for p in range(n):
                    acc[_U(p)] += w0 * xp[_U(p + o0)]
                continue
            w1 = wf[_U(wb + k + 1)]
            o1 = offs[k + 1]
            if G == 2:
                for p in range(n):
                    acc[_U(p)] += w0 * xp[_U(p + o0)] + w1 * xp[_U(p + o1)]
                continue
            w2 = wf[_U(wb + k + 2)]
            o2 = offs[k + 2]
            for p in range(n):
                acc[_U(p)] += (w0 * xp[_U(p + o0)] + w1 * xp[_U(p + o1)]) + w2 * xp[_U(p + o2)]


#: planes per chunk of the parallel loops: their scratch arrays are allocated once per chunk
#: (one allocation per plane cost more than the work on MobileNet-v2's 4x4 .. 1x1 planes at a
#: 32x32 input: 30,000 planes of 960 channels per call)
_PLANES = 32


@njit
def _to_wide(dst, src, sb, OH, OW, Wq):
    """The ``OH x OW`` plane at ``src[sb:]`` onto the wide grid of row pitch ``Wq``
    (``dst``'s columns past ``OW`` are left as they are)."""
    for oh in range(OH):
        for ow in range(OW):
            dst[_U(oh * Wq + ow)] = src[_U(sb + oh * OW + ow)]


@njit
def _from_wide(dst, db, src, OH, OW, Wq):
    """The inverse of :func:`_to_wide`: the first ``OW`` columns of each wide row of
    ``src`` to the ``OH x OW`` plane at ``dst[db:]``."""
    for oh in range(OH):
        for ow in range(OW):
            dst[_U(db + oh * OW + ow)] = src[_U(oh * Wq + ow)]


@njit(parallel=True)
def _fwd(x, w, sh, sw, dh, dw, pt, pl, groups, OH, OW):
    """Per output plane: the phase planes of its input channel(s) (a cache-resident copy
    that makes the padding free) and :func:`_wide_corr`."""
    N, C, H, W = x.shape
    F, Cg, kh, kw = w.shape
    Fg = F // groups
    Hq, Wq, offs = _geometry(kh, kw, sh, sw, dh, dw, OH, OW)
    n = OH * Wq
    y = np.empty((N, F, OH, OW), dtype=x.dtype)
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    yf = y.reshape(-1)
    zero = x.dtype.type(0)
    T = N * F
    for b in prange((T + _PLANES - 1) // _PLANES):
        acc = np.empty(n, dtype=x.dtype)  # scratch per chunk of planes, not per plane
        xp = np.empty(sh * sw * Hq * Wq, dtype=x.dtype)
        for t in range(b * _PLANES, min(T, (b + 1) * _PLANES)):
            nn = t // F
            f = t % F
            g = f // Fg
            for p in range(n):
                acc[p] = zero
            for c in range(Cg):
                ci = g * Cg + c
                _phase_planes(xp, xf, (nn * C + ci) * H * W, H, W, pt, pl, sh, sw, Hq, Wq)
                _wide_corr(acc, xp, n, wf, (f * Cg + c) * kh * kw, offs, kh, kw)
            _from_wide(yf, t * OH * OW, acc, OH, OW, Wq)
    return y


@njit(parallel=True)
def _dx1(dy, w, dh, dw, pt, pl, groups, H, W):
    """Stride 1: ``dx`` is the forward correlation of ``dy`` padded by the kernel extent
    less the forward padding, with the kernels rotated by 180 degrees (and the roles of
    filters and channels swapped within a group): a gather, each element written once."""
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    C = Cg * groups
    Fg = F // groups
    Hq, Wq, offs = _geometry(kh, kw, 1, 1, dh, dw, H, W)
    rot = offs[::-1].copy()  # weight (i, j) reads at the offset of tap (kh-1-i, kw-1-j)
    n = H * Wq
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    wf = w.reshape(-1)
    dxf = dx.reshape(-1)
    zero = dy.dtype.type(0)
    T = N * C
    for b in prange((T + _PLANES - 1) // _PLANES):
        acc = np.empty(n, dtype=dy.dtype)
        sp = np.empty(Hq * Wq, dtype=dy.dtype)
        for t in range(b * _PLANES, min(T, (b + 1) * _PLANES)):
            nn = t // C
            ci = t % C
            g = ci // Cg
            c = ci % Cg
            for p in range(n):
                acc[p] = zero
            for fo in range(Fg):
                f = g * Fg + fo
                _phase_planes(sp, dyf, (nn * F + f) * OH * OW, OH, OW, (kh - 1) * dh - pt, (kw - 1) * dw - pl,
                              1, 1, Hq, Wq)
                _wide_corr(acc, sp, n, wf, (f * Cg + c) * kh * kw, rot, kh, kw)
            _from_wide(dxf, t * H * W, acc, H, W, Wq)
    return dx


@njit(parallel=True)
def _dxs(dy, w, sh, sw, dh, dw, pt, pl, groups, H, W):
    """Stride > 1: per input plane, ``dy`` on the wide grid scattered into the phase planes
    of the padded input (tap by tap: a vectorised axpy at a constant offset), then read
    back through the padding; input rows and columns no window reads come out zero."""
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    C = Cg * groups
    Fg = F // groups
    Hq, Wq, offs = _geometry(kh, kw, sh, sw, dh, dw, OH, OW)
    n = OH * Wq
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    wf = w.reshape(-1)
    dxf = dx.reshape(-1)
    zero = dy.dtype.type(0)
    T = N * C
    for bb in prange((T + _PLANES - 1) // _PLANES):
        ph = np.empty(sh * sw * Hq * Wq, dtype=dy.dtype)
        dyw = np.zeros(n, dtype=dy.dtype)  # columns past OW stay zero (_to_wide never writes them)
        for t in range(bb * _PLANES, min(T, (bb + 1) * _PLANES)):
            nn = t // C
            ci = t % C
            g = ci // Cg
            c = ci % Cg
            for p in range(ph.shape[0]):
                ph[p] = zero
            for fo in range(Fg):
                f = g * Fg + fo
                _to_wide(dyw, dyf, (nn * F + f) * OH * OW, OH, OW, Wq)
                wb = (f * Cg + c) * kh * kw
                for k in range(kh * kw):
                    wv = wf[_U(wb + k)]
                    o = offs[k]
                    for p in range(n):
                        ph[_U(p + o)] += wv * dyw[_U(p)]
            for h in range(H):
                R = h + pt
                r = R // sh
                a = R % sh
                xb = (t * H + h) * W
                for b in range(sw):  # the columns q of phase b: (q + pl) % sw == b, every sw-th
                    q = (b - pl) % sw
                    cq = (q + pl) // sw
                    pb = ((a * sw + b) * Hq + r) * Wq
                    while q < W:
                        dxf[_U(xb + q)] = ph[_U(pb + cq)] if (r < Hq and cq < Wq) else zero
                        q += sw
                        cq += 1
    return dx


#: partial sums per tap in the weight gradient (element ``p`` of the wide grid goes to lane
#: ``p % _LANES``): long enough to vectorise, short enough that summing the lanes is cheap
#: (measured at 56x56x64: 128 and 256 equal, 512 and 1024 slower, a 16-lane loop 4x slower)
_LANES = 128


@njit(parallel=True)
def _dw(dy, x, Cg, kh, kw, sh, sw, dh, dw, pt, pl, groups):
    """``dw[f, c, i, j]`` is the dot product of ``dy``'s plane laid on the wide grid (zeros
    past the output width) with the phase planes of the input at the tap's offset: the
    products go into ``_LANES`` partial sums (vectorised, in order over the grid and the
    images), then the lanes are summed in order — an order fixed by the shapes alone."""
    N, F, OH, OW = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Fg = F // groups
    Hq, Wq, offs = _geometry(kh, kw, sh, sw, dh, dw, OH, OW)
    n = OH * Wq
    out = np.empty((F, Cg, kh, kw), dtype=dy.dtype)
    dyf = dy.reshape(-1)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for t in prange(F * Cg):
        f = t // Cg
        c = t % Cg
        ci = (f // Fg) * Cg + c
        part = np.zeros(kh * kw * _LANES, dtype=dy.dtype)
        xp = np.empty(sh * sw * Hq * Wq, dtype=dy.dtype)
        dyw = np.zeros(n, dtype=dy.dtype)  # columns past OW stay zero
        for nn in range(N):
            _phase_planes(xp, xf, (nn * C + ci) * H * W, H, W, pt, pl, sh, sw, Hq, Wq)
            _to_wide(dyw, dyf, (nn * F + f) * OH * OW, OH, OW, Wq)
            for k in range(kh * kw):
                o = offs[k]
                pb = k * _LANES
                for c0 in range(0, n, _LANES):
                    for q in range(min(_LANES, n - c0)):
                        part[_U(pb + q)] += dyw[_U(c0 + q)] * xp[_U(c0 + q + o)]
        for k in range(kh * kw):
            acc = part[k * _LANES]
            for q in range(1, _LANES):
                acc += part[k * _LANES + q]
            of[_U(t * kh * kw + k)] = acc
    return out


def _stride(stride, OH, OW):
    """The stride along an axis of one output position is never applied: 1 there, exactly. The
    phase planes hold ``stride`` x the output extent, so a stride far past the input (10^9, an
    ONNX model of the fuzz, seed 521) asked for gigabytes of scratch in a parallel loop, whose
    MemoryError then surfaced as numba's SystemError (exit 70)."""
    return (1 if OH == 1 else stride[0], 1 if OW == 1 else stride[1])


def depthwise_forward(x, w, stride, pads, dilation, groups, OH, OW):
    """``y (N, F, OH, OW)`` of the unpadded input ``x`` (the padding is implicit)."""
    (pt, _), (pl, _) = pads
    stride = _stride(stride, OH, OW)
    return _fwd(x, w, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups, OH, OW)


def depthwise_data_grad(dy, w, x_shape, stride, pads, dilation, groups):
    """``dL/dx`` of shape ``x_shape`` (zero where no window reads the input)."""
    (pt, _), (pl, _) = pads
    H, W = x_shape[2], x_shape[3]
    stride = _stride(stride, dy.shape[2], dy.shape[3])
    if stride == (1, 1):
        return _dx1(dy, w, dilation[0], dilation[1], pt, pl, groups, H, W)
    return _dxs(dy, w, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups, H, W)


def depthwise_weight_grad(dy, x, w_shape, stride, pads, dilation, groups):
    """``dL/dw`` of shape ``w_shape``."""
    (pt, _), (pl, _) = pads
    _, Cg, kh, kw = w_shape
    stride = _stride(stride, dy.shape[2], dy.shape[3])
    return _dw(dy, x, Cg, kh, kw, stride[0], stride[1], dilation[0], dilation[1], pt, pl, groups)
