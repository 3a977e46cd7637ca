"""Convolution kernels: conv2d (3 algorithms), conv1d, transposed conv, locally-connected.

Layouts (PyTorch): ``x`` is ``(N, C, H, W)``; conv weight ``(F, C // groups, kh, kw)``;
bias ``(F,)`` or, *untied*, ``(F, OH, OW)``.  ``pad`` is ``((top, bottom), (left, right))``
(``p`` and ``(ph, pw)`` are accepted too), ``stride=(sh, sw)``, ``dilation=(dh, dw)``.
Output size is the floor rule ``OH = (H + top + bottom - dh*(kh-1) - 1) // sh + 1``;
rows/columns of the padded input that no window reaches are simply unused.

Public API
----------
``conv2d_forward(x, w, b=None, stride=1, pad=0, dilation=1, groups=1, algo="auto", keep_cols=False)``
    ``-> (y, cache)``; ``keep_cols`` keeps im2col's unfolded input for the weight gradient
``conv2d_backward(dout, cache, need_dx=True, need_dw=True) -> (dx, dw, db)``
    (``db`` is None without bias; skipped gradients are None)
``conv2d_data_grad(dy, w, x_shape, stride, pad, dilation, groups, algo) -> dx``
``conv2d_weight_grad(dy, x, w_shape, stride, pad, dilation, groups, algo) -> dw``
``conv1d_forward(x, w, b=None, stride=1, pad=0, dilation=1, groups=1, algo="auto")``
    ``x (N, C, L)``, ``w (F, C//g, k)``, ``pad=(lo, hi)``; runs as 2-D with H=1.
``conv1d_backward(dout, cache) -> (dx, dw, db)``
``conv_transpose2d_forward(x, w, b=None, stride=1, pad=0, dilation=1, groups=1,
    output_padding=0, algo="auto") -> (y, cache)``   weight ``(C_in, F//groups, kh, kw)``,
    ``OH = (H-1)*sh - top - bottom + dh*(kh-1) + 1 + output_padding_h``.
``conv_transpose2d_backward(dout, cache) -> (dx, dw, db)``
``locally_connected2d_forward(x, w, b=None, stride=1, pad=0, dilation=1) -> (y, cache)``
    weight ``(OH, OW, F, C, kh, kw)``, bias ``(OH, OW, F)``; groups=1.
``locally_connected2d_backward(dout, cache) -> (dx, dw, db)``
``choose_algo(x_shape, w_shape, stride, dilation, groups) -> "depthwise" | "winograd" | "im2col" | "fft"``
``winograd_pays(x_shape, w_shape, stride, dilation, groups) -> bool``  (the ``winograd`` rule)

Algorithms (``algo=``) -- all compute the same sums and are tested to agree:

``direct``  numba loops, ``prange`` over batch x output channels (forward), batch x input
            channels (dX) and output x input channels (dW).  Accumulates in float64.
``im2col``  njit ``im2col`` / ``col2im`` (parallel over channel rows) and the GEMM in numpy
            between the njit calls (``np.dot`` inside njit would need SciPy).  ``cols`` is
            ``(groups, C/g*kh*kw, N*OH*OW)`` so each group is one ``np.matmul``.  Stride-1
            ungrouped convs with wide kernels (:func:`_rows_pays`) unfold only the kernel
            rows over the padded width and sum the kernel columns after the GEMM
            (:func:`_rows_fwd`, :func:`_rows_dw`).
``fft``     ``numpy.fft.rfft2`` of the padded input and of the *dilated* kernel at a common
            5-smooth size >= the padded input; the valid correlation never wraps, stride is
            applied by subsampling the stride-1 result.  The channel sum is a batched complex
            matmul over frequencies.  Backward uses FFTs too.
``winograd`` (not in ``ALGOS`` either) :mod:`.winograd`'s F(4x4,3x3) minimal filtering for
            3x3 stride-1 undilated ungrouped convs: 36 multiplies per 4x4 output tile instead
            of 144, as 36 GEMMs over transformed tiles; dX (pads <= 2) is the same kernel
            run on dY with the flipped, channel-transposed filters; dW transforms dY's tiles
            with A and sums ``D V^T`` per position over the batch. Asked for elsewhere it
            runs im2col.
``auto``    :func:`choose_algo`; it runs depthwise-like convs with ``depthwise``, a
            fourth, non-lecture kernel (:mod:`.depthwise`: float32, one vectorised pass
            per three taps over each padded, cache-resident plane), selectable here as
            ``algo="depthwise"`` but not in ``ALGOS`` (the CLI's ``--conv-algo`` offers
            the lectures' three and ``auto``).

Backward, as derived in the lectures: ``dW[f,c] = corr(X_pad[c], dY[f])`` (with the
stride/dilation of the forward pass), and ``dX`` is the *full* correlation of dY
(zero-upsampled by the stride) with the 180-degree flipped (dilated) kernels, cropped by
the padding.  ``direct`` evaluates that sum visiting only the non-inserted dY taps;
``im2col`` gets it as ``col2im(W^T dY)`` or, at stride 1 when it moves less data
(:func:`_flip_pays`), as the forward im2col conv of dY with those flipped kernels, computed
on the input's interior only; ``fft`` as ``irfft(FFT(dY_up) * FFT(W_dil))``.
"""
from __future__ import annotations

import numpy as np

from cnncalc.analysis.workspace import KEEP_BYTES, fast_len, winograd_size_pays
from cnncalc.analysis.workspace import TILE_KEEP_BYTES as _TILE_KEEP_BYTES
from cnncalc.runtime._numba import njit, numba, prange
from cnncalc.runtime.kernels import depthwise as _dwk
from cnncalc.runtime.kernels import winograd as _wg
from cnncalc.runtime.kernels._util import as_float, pads1d, pads2d, pair

ALGOS = ("direct", "im2col", "fft")
#: every ``algo=`` the kernels accept besides ``auto``: the lectures' three, ``depthwise`` and
#: ``winograd`` (3x3 stride-1 ungrouped convs; others asking for it run im2col)
KERNEL_ALGOS = ALGOS + ("depthwise", "winograd")
#: unsigned flat indices: numba wraps negative signed indices (a branch per access that
#: stops vectorisation; see kernels/depthwise.py)
_U = numba.uint64


def conv2d_output_size(H, W, kernel, stride=1, pad=0, dilation=1):
    """Floor output size ``(OH, OW)`` of a 2-D convolution."""
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = pads2d(pad)
    OH = (H + pt + pb - dh * (kh - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return OH, OW


# --------------------------------------------------------------------------------------
# direct
# --------------------------------------------------------------------------------------
@njit(parallel=True)
def _direct_fwd(xp, w, sh, sw, dh, dw, groups, OH, OW):
    N, C, Hp, Wp = xp.shape
    F, Cg, kh, kw = w.shape
    Fg = F // groups
    out = np.empty((N, F, OH, OW), dtype=xp.dtype)
    for t in prange(N * F):
        n = t // F
        f = t % F
        g = f // Fg
        acc = np.zeros((OH, OW), dtype=np.float64)
        for c in range(Cg):
            ci = g * Cg + c
            for i in range(kh):
                for j in range(kw):
                    wv = np.float64(w[f, c, i, j])
                    for oh in range(OH):
                        r = oh * sh + i * dh
                        for ow in range(OW):
                            acc[oh, ow] += wv * xp[n, ci, r, ow * sw + j * dw]
        for oh in range(OH):
            for ow in range(OW):
                out[n, f, oh, ow] = acc[oh, ow]
    return out


@njit(parallel=True)
def _direct_dx(dy, w, sh, sw, dh, dw, groups, Hp, Wp):
    # dXpad[c] = sum_f  full_corr(upsample_s(dY[f]), rot180(dilate_d(W[f, c])));
    # the loop runs over the non-zero (non-inserted) dY taps only.
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    C = Cg * groups
    Fg = F // groups
    dxp = np.empty((N, C, Hp, Wp), dtype=dy.dtype)
    for t in prange(N * C):
        n = t // C
        ci = t % C
        g = ci // Cg
        c = ci % Cg
        acc = np.zeros((Hp, Wp), dtype=np.float64)
        for fo in range(Fg):
            f = g * Fg + fo
            for i in range(kh):
                for j in range(kw):
                    wv = np.float64(w[f, c, i, j])
                    for oh in range(OH):
                        r = oh * sh + i * dh
                        for ow in range(OW):
                            acc[r, ow * sw + j * dw] += wv * dy[n, f, oh, ow]
        for r in range(Hp):
            for q in range(Wp):
                dxp[n, ci, r, q] = acc[r, q]
    return dxp


@njit(parallel=True)
def _direct_dw(dy, xp, Cg, kh, kw, sh, sw, dh, dw, groups):
    N, F, OH, OW = dy.shape
    Fg = F // groups
    out = np.empty((F, Cg, kh, kw), dtype=dy.dtype)
    for t in prange(F * Cg):
        f = t // Cg
        c = t % Cg
        ci = (f // Fg) * Cg + c
        for i in range(kh):
            for j in range(kw):
                acc = 0.0
                for n in range(N):
                    for oh in range(OH):
                        r = oh * sh + i * dh
                        for ow in range(OW):
                            acc += dy[n, f, oh, ow] * xp[n, ci, r, ow * sw + j * dw]
                out[f, c, i, j] = acc
    return out


# --------------------------------------------------------------------------------------
# im2col
# --------------------------------------------------------------------------------------
@njit(parallel=True)
def _im2col(xp, kh, kw, sh, sw, dh, dw, OH, OW, groups):
    """cols[g, (c*kh + i)*kw + j, n*OH*OW + oh*OW + ow] = xp[n, g*Cg + c, oh*sh+i*dh, ow*sw+j*dw]

    Indexes the flat arrays with unsigned offsets (numba wraps negative signed indices: a
    branch per access, which keeps short rows from vectorising); rows of 32 or more at
    stride 1 stay slice copies of row views (as before: as fast as a flat loop or faster).
    Measured (1 thread, CPU ms, 4-D indexing -> flat): LeNet's C3 (5x5, 14x14x6, N=32, rows
    of 10) 0.47 -> 0.13; C1 (32x32x1, N=32) 0.28 -> 0.13; 7x7 28x28x16 N=4 0.79 -> 0.49;
    7x7 s2 112x112x3 N=2 0.95-1.35 -> 0.49; 11x11 s4 227x227x3 1.1-1.3 -> 0.4-0.6."""
    N, C, Hp, Wp = xp.shape
    Cg = C // groups
    P = OH * OW
    cols = np.empty((groups, Cg * kh * kw, N * P), dtype=xp.dtype)
    xf = np.ascontiguousarray(xp).reshape(-1)
    cf = cols.reshape(-1)
    for t in prange(C * kh * kw):
        ci = t // (kh * kw)
        i = (t // kw) % kh
        j = t % kw
        g = ci // Cg
        k = ((ci % Cg) * kh + i) * kw + j
        rb = (g * Cg * kh * kw + k) * N * P
        row = cols[g, k]
        for n in range(N):
            for oh in range(OH):
                src = ((n * C + ci) * Hp + oh * sh + i * dh) * Wp + j * dw
                dst = rb + n * P + oh * OW
                if sw == 1 and OW >= 32:  # a long contiguous run: a slice copy
                    row[n * P + oh * OW:n * P + oh * OW + OW] = xp[n, ci, oh * sh + i * dh, j * dw:j * dw + OW]
                elif sw == 1:
                    for ow in range(OW):
                        cf[_U(dst + ow)] = xf[_U(src + ow)]
                else:
                    for ow in range(OW):
                        cf[_U(dst + ow)] = xf[_U(src + ow * sw)]
    return cols


@njit(parallel=True)
def _col2im(cols, N, C, Hp, Wp, kh, kw, sh, sw, dh, dw, OH, OW):
    """Adjoint of :func:`_im2col`: scatter-add the columns back into the padded image
    (accumulated in the columns' dtype, like the GEMM that produced them; per pixel in tap
    order (i, j)). Flat unsigned indexing as in :func:`_im2col`: LeNet's C3 fold (N=32)
    0.69 -> 0.38 ms, 7x7 s2 112x112x3 (N=2) 1.15 -> 0.45, 3x3 56x56x64 (N=8) 18 -> 8."""
    groups = cols.shape[0]
    Cg = C // groups
    P = OH * OW
    K = cols.shape[1]
    dxp = np.zeros((N, C, Hp, Wp), dtype=cols.dtype)
    cf = np.ascontiguousarray(cols).reshape(-1)
    df = dxp.reshape(-1)
    for t in prange(N * C):
        n = t // C
        ci = t % C
        g = ci // Cg
        c = ci % Cg
        pb = t * Hp * Wp
        for i in range(kh):
            for j in range(kw):
                rb = (g * K + (c * kh + i) * kw + j) * N * P + n * P
                for oh in range(OH):
                    d = pb + (oh * sh + i * dh) * Wp + j * dw
                    s = rb + oh * OW
                    if sw == 1:  # unit stride: a vectorisable run
                        for ow in range(OW):
                            df[_U(d + ow)] += cf[_U(s + ow)]
                    else:
                        for ow in range(OW):
                            df[_U(d + ow * sw)] += cf[_U(s + ow)]
    return dxp


# --------------------------------------------------------------------------------------
# im2col by tiles of images (ungrouped convs): columns per image, GEMMs straight into NCHW
# --------------------------------------------------------------------------------------
#: bytes of unfolded columns per tile: half of this machine's 1 MiB L2, so a tile's columns are
#: still in cache when its GEMM reads them (the whole batch's columns are 19 MB for
#: resnet20's 16-filter convs at batch 32, 75 MB at 128: out of every cache)
TILE_BYTES = 512 << 10


#: output planes smaller than this (8x8 and less) keep the whole-batch GEMM: per-image GEMMs
#: of so few columns run far below BLAS's rate (VGG's 2x2 planes: 512 x 4608 by 4 columns)
TILE_MIN_PLANE = 256


#: planes of this many positions up to TILE_MIN_PLANE (8x8 .. 15x15) still run tile by tile when
#: the weight matrix is at most TILE_SMALL_W_BYTES: each image's GEMM re-reads it from cache
TILE_SMALL_PLANE = 64
TILE_SMALL_W_BYTES = 256 << 10
#: the tiled path keeps the batch's columns for the weight gradient only when they are at most
#: this many bytes (LeNet-5's C1 and C3 at a sub-batch of 32: 2.5 and 1.9 MB; a training step
#: 5-6 % faster); larger ones are unfolded again tile by tile in backward, in cache (resnet20's
#: 19 MB stage-1 columns: faster than writing them out and reading them back). Defined with
#: `summarize --workspace`'s model, which restates it.
TILE_KEEP_BYTES = _TILE_KEEP_BYTES


def _tiles(OH, OW, w_shape=None):
    """Ungrouped im2col runs tile by tile (:func:`_tiled_fwd`) for planes of TILE_MIN_PLANE
    positions or more; smaller planes multiply the whole batch's columns at once."""
    P = OH * OW
    if P >= TILE_MIN_PLANE:
        return True
    return (w_shape is not None and P >= TILE_SMALL_PLANE
            and w_shape[0] * w_shape[1] * w_shape[2] * w_shape[3] * 4 <= TILE_SMALL_W_BYTES)


def _tile(N, K, P, itemsize):
    return max(1, min(N, TILE_BYTES // max(1, K * P * itemsize)))


@njit
def _valid_cols(qo, sw, W, OW):
    """The output columns ``ow_lo .. ow_hi`` whose input column ``ow*sw + qo`` is inside
    ``0 .. W-1`` (the others read the zero padding)."""
    lo = 0 if qo >= 0 else (sw - 1 - qo) // sw
    hi = 0 if W - 1 - qo < 0 else (W - 1 - qo) // sw + 1
    lo = min(lo, OW)
    hi = max(lo, min(hi, OW))
    return lo, hi


@njit
def _unfold_imgs(x, n0, xp, pt, pl, kh, kw, sh, sw, dh, dw, OH, OW, out):
    """``out[t, (c*kh + i)*kw + j, oh*OW + ow] = xpad[n0 + t, c, oh*sh + i*dh, ow*sw + j*dw]``:
    the columns of images ``n0 .. n0 + len(out)`` of ``x`` zero-padded by ``pt`` rows on top
    and ``pl`` columns on the left, one (K, OH*OW) matrix per image, so that ``W (F, K) @
    out[t]`` is image ``t``'s output in NCHW. ``xp`` is a buffer of the tile's padded images
    whose border is zero (:class:`_TilePad`): the images are first copied into its interior
    (or, when ``xp`` is ``x`` itself — no padding —, read in place). Flat unsigned indexing
    (see :func:`_im2col`). (Reading the unpadded input with the padding's zeros written here
    instead ran 2-3x slower: the zero runs at the edges become memset calls and the copies of
    31 values of 32 scalar remainders; the interior copy as a numpy slice assignment cost
    10 us a call.)"""
    T, K, P = out.shape
    N, C, H, W = x.shape
    _, _, Hp, Wp = xp.shape
    xf = x.reshape(-1)
    pf = xp.reshape(-1)
    of = out.reshape(-1)
    inplace = xp.shape[0] == N and Hp == H and Wp == W and pt == 0 and pl == 0
    base = n0 if inplace else 0
    if not inplace:
        for t in range(T):
            for c in range(C):
                for h in range(H):
                    s_ = (((n0 + t) * C + c) * H + h) * W
                    d = ((t * C + c) * Hp + h + pt) * Wp + pl
                    for q in range(W):
                        pf[_U(d + q)] = xf[_U(s_ + q)]
    for t in range(T):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    k = (c * kh + i) * kw + j
                    ob = (t * K + k) * P
                    for oh in range(OH):
                        src = (((base + t) * C + c) * Hp + oh * sh + i * dh) * Wp + j * dw
                        dst = ob + oh * OW
                        if sw == 1:
                            for ow in range(OW):
                                of[_U(dst + ow)] = pf[_U(src + ow)]
                        else:
                            for ow in range(OW):
                                of[_U(dst + ow)] = pf[_U(src + ow * sw)]


class _TilePad:
    """Where :func:`_unfold_imgs` pads a tile of images: one buffer whose border is zeroed
    once (each tile copies only its interior, in cache), instead of a padded copy of the whole
    batch (zeros + copy, out of cache); without padding, the input itself."""

    def __init__(self, x, pads, T):
        (pt, pb), (pl, pr) = pads
        self.x, self.pt, self.pl = np.ascontiguousarray(x), pt, pl
        N, C, H, W = x.shape
        self.buf = self.x if pt == pb == pl == pr == 0 else \
            np.zeros((T, C, H + pt + pb, W + pl + pr), dtype=x.dtype)

    def unfold(self, n0, kh, kw, stride, dilation, OH, OW, out):
        _unfold_imgs(self.x, n0, self.buf, self.pt, self.pl, kh, kw, stride[0], stride[1], dilation[0],
                     dilation[1], OH, OW, out)


@njit
def _fold_imgs(dcols, n0, kh, kw, sh, sw, dh, dw, pt, pl, OH, OW, dx):
    """Adjoint of :func:`_unfold_imgs`: scatter-add image ``t``'s columns into ``dx[n0 + t]``
    (per pixel in tap order (i, j), as :func:`_col2im`); what falls on the padding is dropped."""
    T, K, P = dcols.shape
    N, C, H, W = dx.shape
    cf = dcols.reshape(-1)
    df = dx.reshape(-1)
    for t in range(T):
        for c in range(C):
            pb = ((n0 + t) * C + c) * H * W
            for i in range(kh):
                for j in range(kw):
                    rb = (t * K + (c * kh + i) * kw + j) * P
                    qo = j * dw - pl
                    lo, hi = _valid_cols(qo, sw, W, OW)
                    for oh in range(OH):
                        r = oh * sh + i * dh - pt
                        if r < 0 or r >= H:
                            continue
                        d = pb + r * W + qo
                        s_ = rb + oh * OW
                        if sw == 1:
                            for ow in range(lo, hi):
                                df[_U(d + ow)] += cf[_U(s_ + ow)]
                        else:
                            for ow in range(lo, hi):
                                df[_U(d + ow * sw)] += cf[_U(s_ + ow)]


def _tiled_fwd(x, w, stride, dilation, pads, OH, OW, keep_cols=False):
    """An ungrouped conv as im2col tile by tile: each tile of images is padded (:class:`_TilePad`)
    and unfolded (:func:`_unfold_imgs`) into cache-sized columns and multiplied at once into
    its slice of the NCHW output (``np.matmul`` of ``W (F, K)`` with the tile's ``(T, K, P)``
    columns is ``(T, F, P)``: no transpose copy). ``keep_cols``: also return the whole batch's
    columns ``(N, K, P)`` for the weight gradient."""
    N = x.shape[0]
    F, C, kh, kw = w.shape
    K, P = C * kh * kw, OH * OW
    wr = w.reshape(F, K)
    y = np.empty((N, F, P), dtype=x.dtype)
    T = _tile(N, K, P, x.itemsize)
    cols = np.empty((N if keep_cols else T, K, P), dtype=x.dtype)
    xt = _TilePad(x, pads, T)
    for n0 in range(0, N, T):
        n1 = min(N, n0 + T)
        c = cols[n0:n1] if keep_cols else cols[:n1 - n0]
        xt.unfold(n0, kh, kw, stride, dilation, OH, OW, c)
        np.matmul(wr, c, out=y[n0:n1])
    y = y.reshape(N, F, OH, OW)
    return (y, cols) if keep_cols else y


def _tiled_dw(dy, x, w_shape, stride, dilation, pads, cols=None):
    """dW of an ungrouped conv: ``sum_n dY[n] (F, P) @ cols[n].T`` -- dY read in NCHW as it is,
    the columns the forward kept (``cols``, all at once) or unfolded again tile by tile from
    ``x``. Each span's per-image products are one batched ``np.matmul`` into ``(T, K, F)``,
    summed over its images (one call instead of a Python loop of a GEMM and an add per image:
    LeNet-5 runs 128 of those per step)."""
    N, F, OH, OW = dy.shape
    _, C, kh, kw = w_shape
    K, P = C * kh * kw, OH * OW
    dy3 = np.ascontiguousarray(dy).reshape(N, F, P)
    # dW transposed: cols (K, P) @ dY.T (P, F) is the faster GEMM shape for these thin
    # products (1 thread, GFLOP/s: 114 vs 75 for 16x1024x144, 127 vs 94 for 32x256x288, 141
    # vs 75 for 64x64x576)
    T = N if cols is not None else _tile(N, K, P, dy.itemsize)
    buf = None if cols is not None else np.empty((T, K, P), dtype=dy.dtype)
    xt = None if cols is not None else _TilePad(x, pads, T)
    part = np.empty((T, K, F), dtype=dy.dtype)
    dwt = None
    for n0 in range(0, N, T):
        n1 = min(N, n0 + T)
        if cols is not None:
            c = cols[n0:n1]
        else:
            c = buf[:n1 - n0]
            xt.unfold(n0, kh, kw, stride, dilation, OH, OW, c)
        p = part[:n1 - n0]
        np.matmul(c, dy3[n0:n1].transpose(0, 2, 1), out=p)
        s_ = p.sum(axis=0)
        dwt = s_ if dwt is None else dwt + s_
    return np.ascontiguousarray(dwt.T).reshape(w_shape)


def _tiled_dx(dy, w, stride, dilation, pads, H, W):
    """dX of an ungrouped conv: per tile ``W.T (K, F) @ dY[tile]`` into cache-sized columns,
    folded at once into the unpadded input's gradient (:func:`_fold_imgs`)."""
    N, F, OH, OW = dy.shape
    _, C, kh, kw = w.shape
    K, P = C * kh * kw, OH * OW
    wt = np.ascontiguousarray(w.reshape(F, K).T)
    dy3 = np.ascontiguousarray(dy).reshape(N, F, P)
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    T = _tile(N, K, P, dy.itemsize)
    buf = np.empty((T, K, P), dtype=dy.dtype)
    for n0 in range(0, N, T):
        n1 = min(N, n0 + T)
        c = buf[:n1 - n0]
        np.matmul(wt, dy3[n0:n1], out=c)
        _fold_imgs(c, n0, kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0][0], pads[1][0], OH, OW, dx)
    return dx


def _im2col_fwd(x, w, stride, dilation, groups, pads, OH, OW, keep_cols=False):
    """y (N, F, OH, OW) of the input ``x`` zero-padded by ``pads``; with ``keep_cols`` returns
    ``(y, cols)`` for the weight gradient."""
    N = x.shape[0]
    F, Cg, kh, kw = w.shape
    if groups == 1 and _tiles(OH, OW, w.shape):
        return _tiled_fwd(x, w, stride, dilation, pads, OH, OW, keep_cols)
    xp = _pad_input(x, pads)
    cols = _im2col(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1], OH, OW, groups)
    wr = w.reshape(groups, F // groups, Cg * kh * kw)
    if groups == 1:
        y = _gemm_nchw(wr[0], cols[0], N, OH, OW)  # (F, N*P): a plain 2-D GEMM
    else:
        y = np.matmul(wr, cols)  # (g, Fg, N*P)
        y = np.ascontiguousarray(y.reshape(F, N, OH, OW).transpose(1, 0, 2, 3))
    return (y, cols) if keep_cols else y


def _dy_rows(dy, groups):
    N, F, OH, OW = dy.shape
    return np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(groups, F // groups, N * OH * OW)


def _gemm_nchw(wr, cols, N, OH, OW):
    """``wr (F, K) @ cols (K, N*OH*OW)`` as an ``(N, F, OH, OW)`` array: one GEMM, then the
    ``(F, N)`` -> ``(N, F)`` reorder (small planes only: larger ones run :func:`_tiled_fwd`)."""
    y = wr @ cols
    return np.ascontiguousarray(y.reshape(wr.shape[0], N, OH, OW).transpose(1, 0, 2, 3))


def _rows_pays(w_shape, stride, groups):
    """Stride 1, ungrouped, kernels at least 5 wide: run the conv as a *row* unfold (the
    input's rows, kh per channel, whole padded width) and a GEMM whose rows are the
    ``(filter, kernel column)`` pairs, then a shifted sum over the kernel columns
    (:func:`_rows_fwd`). It moves kw times fewer bytes than im2col's columns and gives
    OpenBLAS kw times more GEMM rows (16 -> 112 for the 7x7 16->16 conv). Measured (1 thread,
    CPU min ms, forward GEMM+unfold, im2col vs rows; weight gradient on the kept unfold):
    7x7 28x28x16->16 N=4 2.77 vs 1.55, dW 1.62 vs 1.58; 5x5 16x16x32->32 N=8 2.66 vs 1.93,
    dW 1.73 vs 1.95 (but no full unfold to keep); 3x3 56x56x64->64 N=8 33.0 vs 30.3, dW 27.7
    vs 29.6 -- left on im2col (a wash, 21 % more MACs on the padded width at 3 taps)."""
    return stride == (1, 1) and groups == 1 and w_shape[3] >= 5 and w_shape[1] * w_shape[2] >= 64


def _row_unfold(xp, kh, dh, OH):
    """``R[(c, i), (n, oh, q)] = xp[n, c, oh + i*dh, q]`` for every column q of the padded
    width: per (c, i, n) one contiguous run of ``OH*Wp`` values."""
    N, C, Hp, Wp = xp.shape
    it = xp.itemsize
    xp = np.ascontiguousarray(xp)
    v = np.lib.stride_tricks.as_strided(
        xp, (C, kh, N, OH * Wp), (Hp * Wp * it, dh * Wp * it, C * Hp * Wp * it, it), writeable=False)
    return np.ascontiguousarray(v).reshape(C * kh, N * OH * Wp)


@njit(parallel=True)
def _shift_sum(G, OW, dw):
    """``y[n, f, oh, ow] = sum_j G[f, j, n, oh, ow + j*dw]`` (j in kernel-column order)."""
    F, kw, N, OH, Wp = G.shape
    y = np.empty((N, F, OH, OW), dtype=G.dtype)
    for t in prange(N * F):
        n = t // F
        f = t % F
        for oh in range(OH):
            for ow in range(OW):
                y[n, f, oh, ow] = G[f, 0, n, oh, ow]
            for j in range(1, kw):
                off = j * dw
                for ow in range(OW):
                    y[n, f, oh, ow] += G[f, j, n, oh, ow + off]
    return y


@njit(parallel=True)
def _shift_rows(dy, kw, dw, Wp):
    """``D[f, j, n, oh, ow + j*dw] = dy[n, f, oh, ow]``, zero elsewhere on the padded width."""
    N, F, OH, OW = dy.shape
    D = np.zeros((F, kw, N, OH, Wp), dtype=dy.dtype)
    for t in prange(F * kw):
        f = t // kw
        j = t % kw
        off = j * dw
        for n in range(N):
            for oh in range(OH):
                for ow in range(OW):
                    D[f, j, n, oh, off + ow] = dy[n, f, oh, ow]
    return D


def _rows_fwd(xp, w, dilation, OH, OW):
    """Stride-1 ungrouped conv as :func:`_row_unfold` + one GEMM
    ``W[(f, j), (c, i)] @ R`` + :func:`_shift_sum`; returns ``(y, R)`` (R for the weight
    gradient)."""
    F, C, kh, kw = w.shape
    N, _, _, Wp = xp.shape
    R = _row_unfold(xp, kh, dilation[0], OH)
    wj = np.ascontiguousarray(w.transpose(0, 3, 1, 2)).reshape(F * kw, C * kh)
    G = (wj @ R).reshape(F, kw, N, OH, Wp)
    return _shift_sum(G, OW, dilation[1]), R


def _rows_dw(dy, R, w_shape, dilation, Wp):
    """dW from the row unfold: ``D[(f, j), (n, oh, q)] @ R^T`` with D the dY rows shifted by
    ``j*dw`` on the padded width (:func:`_shift_rows`)."""
    F, C, kh, kw = w_shape
    D = _shift_rows(dy, kw, dilation[1], Wp).reshape(F * kw, R.shape[1])
    return np.ascontiguousarray((D @ R.T).reshape(F, kw, C, kh).transpose(0, 2, 3, 1))


def _flip_pads(w_shape, pads, dilation):
    """The zero padding of dY that makes dX (the input's interior, not the padded input) the
    flipped-kernel forward conv of dY: ``(kh-1)*dh - top`` etc.; None if one is negative (a
    padding wider than the kernel's reach: dY would need cropping, not padding)."""
    kh, kw = w_shape[2:]
    (pt, pb), (pl, pr) = pads
    eh, ew = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    q = ((eh - pt, eh - pb), (ew - pl, ew - pr))
    return None if min(q[0] + q[1]) < 0 else q


def _flip_conv_dx(dy, w, dilation, fpads, H, W):
    """Stride 1: dX is the forward conv of dY, zero-padded by ``fpads`` (:func:`_flip_pads`),
    with the 180-degree flipped kernels, input and output channels swapped (the lectures'
    "full correlation" restricted to the input's interior), so it runs as an unfold (a copy)
    and one GEMM, instead of a GEMM and a fold (a scatter-add) followed by a crop of the
    padding."""
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    if _rows_pays(w.shape, (1, 1), 1):
        return _rows_fwd(_pad_input(dy, fpads), wf, dilation, H, W)[0]
    return _im2col_fwd(dy, wf, (1, 1), dilation, 1, fpads, H, W)


def _flip_pays(dy_shape, w_shape, stride, groups, x_hw, fpads):
    """Use :func:`_flip_conv_dx` when its unfolded dY (``F*H*W`` per kernel tap) is at most
    1.5x the fold's columns (``C*OH*OW``). Measured (dX only, float32, 1 thread, min ms, flip
    against GEMM + fold + crop): ratio 0.5 (3x3 28x28 64->32, N=8) 4.6 vs 9.9; 1.0 (3x3
    56x56x64->64 N=8: 42 vs 54; 7x7 28x28x16->16 N=4: 3.2 vs 4.9; 5x5 16x16x32->32 N=8:
    3.8 vs 6.7); 1.25 (3x3 28x28 32->40: 5.3 vs 7.3; 5x5 16x16 32->40 N=16: 10.5 vs 14.5);
    1.56 (an unpadded 3x3 10x10 16->16, N=32) 1.41 vs 0.90; 2.0 (3x3 28x28 32->64) 6.4 vs
    5.9; 5.2 (LeNet's C3, 5x5 6->16) 4.2 vs 1.2."""
    N, F, OH, OW = dy_shape
    _, Cg, kh, kw = w_shape
    return (stride == (1, 1) and groups == 1 and fpads is not None
            and 2 * F * x_hw[0] * x_hw[1] <= 3 * Cg * OH * OW)


def _im2col_dx(dy, w, stride, dilation, groups, pads, H, W, dyr=None):
    """dX of the input padded by ``pads``: ``col2im(W^T dY)``, then the padding cropped."""
    if groups == 1 and _tiles(*dy.shape[2:], w.shape):
        return _tiled_dx(dy, w, stride, dilation, pads, H, W)
    (pt, pb), (pl, pr) = pads
    Hp, Wp = H + pt + pb, W + pl + pr
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    wr = w.reshape(groups, F // groups, Cg * kh * kw)
    if dyr is None:
        dyr = _dy_rows(dy, groups)
    if groups == 1:
        dcols = (wr[0].T @ dyr[0])[None]
    else:
        dcols = np.ascontiguousarray(np.matmul(wr.transpose(0, 2, 1), dyr))
    dxp = _col2im(dcols, N, Cg * groups, Hp, Wp, kh, kw, stride[0], stride[1],
                  dilation[0], dilation[1], OH, OW)
    return _crop(dxp, pads, H, W)


def _crop(xp, pads, H, W):
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return xp
    return np.ascontiguousarray(xp[:, :, pt : pt + H, pl : pl + W])


def _im2col_dw(dy, x, w_shape, stride, dilation, groups, pads, cols=None, dyr=None):
    """dW of the conv of ``x`` zero-padded by ``pads``; ``cols``: the forward's kept columns
    (then ``x`` may be None)."""
    if groups == 1 and _tiles(*dy.shape[2:], w_shape):
        return _tiled_dw(dy, x, w_shape, stride, dilation, pads, cols)
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w_shape
    if cols is None:
        cols = _im2col(_pad_input(x, pads), kh, kw, stride[0], stride[1], dilation[0], dilation[1], OH, OW, groups)
    if dyr is None:
        dyr = _dy_rows(dy, groups)
    if groups == 1:
        dw = dyr[0] @ cols[0].T  # (F, K)
    else:
        dw = np.matmul(dyr, cols.transpose(0, 2, 1))  # (g, Fg, K)
    return np.ascontiguousarray(dw.reshape(F, Cg, kh, kw))


# --------------------------------------------------------------------------------------
# fft
# --------------------------------------------------------------------------------------
# the smallest 2,3,5-smooth integer >= n (fast pocketfft sizes); one definition, shared with
# the workspace analysis (summarize --workspace) that counts these buffers
_fast_len = fast_len


def _dilate(w, dh, dw):
    if dh == 1 and dw == 1:
        return w
    F, Cg, kh, kw = w.shape
    wd = np.zeros((F, Cg, dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    wd[:, :, ::dh, ::dw] = w
    return wd


def _upsample(dy, sh, sw, Hv, Wv):
    """Zero-insert dY by the stride into the stride-1 valid grid ``(Hv, Wv)``."""
    N, F, OH, OW = dy.shape
    if sh == 1 and sw == 1 and OH == Hv and OW == Wv:
        return dy
    up = np.zeros((N, F, Hv, Wv), dtype=dy.dtype)
    up[:, :, : (OH - 1) * sh + 1 : sh, : (OW - 1) * sw + 1 : sw] = dy
    return up


def _fft_fwd(xp, w, stride, dilation, groups, OH, OW):
    N, C, Hp, Wp = xp.shape
    F, Cg, kh, kw = w.shape
    Fg = F // groups
    wd = _dilate(w, *dilation)
    L = (_fast_len(Hp), _fast_len(Wp))
    X = np.fft.rfft2(xp, s=L)  # (N, C, L0, L1//2+1)
    Wf = np.fft.rfft2(wd, s=L)  # (F, Cg, ...)
    S = X.shape[2] * X.shape[3]
    Xt = X.reshape(N, groups, Cg, S).transpose(1, 3, 0, 2)  # (g, S, N, Cg)
    Wt = np.conj(Wf).reshape(groups, Fg, Cg, S).transpose(0, 3, 2, 1)  # (g, S, Cg, Fg)
    Y = np.matmul(Xt, Wt)  # (g, S, N, Fg)
    Y = Y.transpose(2, 0, 3, 1).reshape(N, F, X.shape[2], X.shape[3])
    y = np.fft.irfft2(Y, s=L)  # circular correlation; the valid part does not wrap
    sh, sw = stride
    y = y[:, :, : (OH - 1) * sh + 1 : sh, : (OW - 1) * sw + 1 : sw]
    return np.ascontiguousarray(y, dtype=xp.dtype)


def _fft_dx(dy, w, stride, dilation, groups, Hp, Wp):
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w.shape
    Fg = F // groups
    wd = _dilate(w, *dilation)
    khd, kwd = wd.shape[2:]
    Hv, Wv = Hp - khd + 1, Wp - kwd + 1
    dyu = _upsample(dy, stride[0], stride[1], Hv, Wv)
    L = (_fast_len(Hp), _fast_len(Wp))
    D = np.fft.rfft2(dyu, s=L)  # (N, F, ...)
    Wf = np.fft.rfft2(wd, s=L)  # (F, Cg, ...)
    S = D.shape[2] * D.shape[3]
    Dt = D.reshape(N, groups, Fg, S).transpose(1, 3, 0, 2)  # (g, S, N, Fg)
    Wt = Wf.reshape(groups, Fg, Cg, S).transpose(0, 3, 1, 2)  # (g, S, Fg, Cg)
    Xh = np.matmul(Dt, Wt)  # (g, S, N, Cg)
    Xh = Xh.transpose(2, 0, 3, 1).reshape(N, groups * Cg, D.shape[2], D.shape[3])
    # full convolution of dY_up (Hv) with W_dil (khd) has length Hp <= L: no wrap
    dxp = np.fft.irfft2(Xh, s=L)[:, :, :Hp, :Wp]
    return np.ascontiguousarray(dxp, dtype=dy.dtype)


def _fft_dw(dy, xp, w_shape, stride, dilation, groups):
    N, F, OH, OW = dy.shape
    _, Cg, kh, kw = w_shape
    Fg = F // groups
    dh, dw_ = dilation
    Hp, Wp = xp.shape[2:]
    khd, kwd = dh * (kh - 1) + 1, dw_ * (kw - 1) + 1
    dyu = _upsample(dy, stride[0], stride[1], Hp - khd + 1, Wp - kwd + 1)
    L = (_fast_len(Hp), _fast_len(Wp))
    X = np.fft.rfft2(xp, s=L)
    D = np.fft.rfft2(dyu, s=L)
    S = X.shape[2] * X.shape[3]
    Dt = np.conj(D).reshape(N, groups, Fg, S).transpose(1, 3, 2, 0)  # (g, S, Fg, N)
    Xt = X.reshape(N, groups, Cg, S).transpose(1, 3, 0, 2)  # (g, S, N, Cg)
    G = np.matmul(Dt, Xt)  # (g, S, Fg, Cg)
    G = G.transpose(0, 2, 3, 1).reshape(F, Cg, X.shape[2], X.shape[3])
    g = np.fft.irfft2(G, s=L)  # g[i', j'] = sum_y xp[y + i'] dyu[y]
    return np.ascontiguousarray(g[:, :, :khd:dh, :kwd:dw_], dtype=dy.dtype)


# --------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------
def choose_algo(x_shape, w_shape, stride=1, dilation=1, groups=1):
    """The ``auto`` rule, measured on the 2-core dev machine (float32, forward+backward as in
    training: im2col keeps its columns for the weight gradient; 1 thread, CPU ms; table in
    benchmarks/README.md, "Kernels"):

    * thin groups (groups > 1 with <= 32 filter x channel pairs per group: depthwise convs,
      ResNeXt-50's first-stage 4x4 groups) -> ``depthwise``, the kernel of
      :mod:`.depthwise`: the GEMMs degenerate to (near) dot products (56x56x64 dw 3x3, N=2,
      wall min: depthwise 2.1 ms — PyTorch 2.1 in the same run —, the reference ``direct``
      loops 16.7, fft 22, im2col 32; 3x3 N=2, CPU ms, depthwise vs im2col: 4 pairs 5.5 vs
      17.3, 16 pairs (56x56x128, 32 groups) 18.7 vs 36.2, 32 pairs 4.2 vs 7.4 and 8.5 vs 12.6,
      64 pairs 10.3 vs 8.5 and 12.2 vs 8.0 — there im2col wins).
      ``--conv-algo direct`` still runs the lectures' reference loops for every conv,
      depthwise included: ``direct`` names an algorithm to read, ``auto`` the fast choice;
    * 3x3, stride 1, dilation 1, ungrouped, >= 16 channels in and out on planes of 16x16
      and more (>= 64 channels: 8x8 and more) -> ``winograd`` (:func:`winograd_pays`);
    * stride 1, >= 81 taps (9x9 and larger) and an output larger than 1x1 -> ``fft``: its
      cost does not grow with the kernel while im2col's grows with kh*kw (9x9 32x32x16->16:
      fft 16 ms, im2col 45; 11x11 56x56x8->8: 17 vs 43);
    * everything else -> ``im2col``, including LeNet's 5x5 convs and 7x7 (LeNet C1 N=64:
      im2col 18 ms, fft 30; C3: 9.6 vs 20; C5, a 1x1 output: 1.2 vs 14; 3x3 56x56x64: 207
      vs 886).

    Re-measured after im2col's stride-1 data gradient became the flipped-kernel conv onto the
    input's interior (branch ``kern3``; 1 thread, CPU ms, min of 5, load average ~2.4): 5x5
    16x16x32->32 (N=8) im2col 9.4 vs fft 17.5; 7x7 28x28x16->16 (N=4) 9.0 vs 13.0 — im2col;
    9x9 32x32x16->16 (N=4) 19-23 vs 16-18 and 11x11 56x56x8->8 (N=2) 19-23 vs 15-20 — fft
    still ahead, by less than before; but 9x9 28x28x32->32 (N=4) 47 vs 58: with more channels
    im2col wins at 9x9 too (left as is: one shape, and fft's lead at 16 channels is as large).
    """
    F, Cg, kh, kw = w_shape
    sh, sw = pair(stride)
    if groups > 1 and Cg * (F // groups) <= 32:
        return "depthwise"
    if winograd_pays(x_shape, w_shape, stride, dilation, groups):
        return "winograd"
    H, W = x_shape[2:]
    one_by_one = H - (kh - 1) * pair(dilation)[0] <= sh and W - (kw - 1) * pair(dilation)[1] <= sw
    if kh * kw >= 81 and sh == 1 and sw == 1 and not one_by_one:
        return "fft"
    return "im2col"


def winograd_pays(x_shape, w_shape, stride=1, dilation=1, groups=1):
    """``auto`` runs :mod:`.winograd` F(4x4,3x3) for a 3x3 stride-1 undilated ungrouped conv
    (any padding) whose channel counts and plane are large enough that its transforms (per
    4x4 tile: 36 values per input channel and per filter) are outweighed by the GEMM work it
    saves (36 instead of 144 multiply-adds per tile, channel and filter). Measured (forward,
    float32, 1 thread, CPU ms, min of 7, pad 1, Winograd vs im2col; benchmarks/README.md,
    "Winograd"): N=32 64->64 32x32 12.1 vs 30.8; 128->128 16x16 12.2 vs 26.0; 256->256 8x8
    16.3 vs 27.9; 128->128 8x8 3.9 vs 8.2; 64->64 8x8 1.37 vs 1.95 (N=128: 5.2 vs 8.0);
    16->16 32x32 2.0 vs 2.7-4.1; 32->32 16x16 1.4 vs 2.1. Not taken: 32->32 8x8 0.56 vs 0.48,
    16->16 8x8 0.35 vs 0.17, 16->16 12x12 and 32->32 10x10 (ties), 8->8 32x32 0.79 vs 0.63,
    3->16 32x32 0.77 vs 0.40, 64->64 4x4 0.77 vs 0.65, 512->512 2x2 46 vs 7.8 and 4x4 44 vs
    26 (the 36 transformed 512x512 filters and GEMMs of a few columns); 256->256 4x4 won
    (5.5 vs 7.0) but is left to im2col (one shape). (8->16 and 16->3 at 32x32 won too: 1.28
    vs 1.77, 1.24 vs 1.42 -- below workspace.WINO_MIN_CHANNELS, left out for the same reason.)
    The size thresholds are :func:`cnncalc.analysis.workspace.winograd_size_pays`, shared with
    ``summarize --workspace``."""
    if not _wg.supports(w_shape, pair(stride), pair(dilation), groups):
        return False
    # the input plane (the output's with pad 1; pads are not known here)
    return winograd_size_pays(min(w_shape[0], w_shape[1]), x_shape[2] * x_shape[3])


def _resolve(algo, x_shape, w_shape, stride, dilation, groups):
    if algo == "auto":
        return choose_algo(x_shape, w_shape, stride, dilation, groups)
    if algo not in KERNEL_ALGOS:
        raise ValueError(f"unknown conv algorithm {algo!r}; expected one of {KERNEL_ALGOS + ('auto',)}")
    if algo == "winograd" and not _wg.supports(w_shape, stride, dilation, groups):
        return "im2col"  # Winograd F(m x m, 3 x 3) is only for 3x3, stride 1, dilation 1, groups 1
    return algo


def _pad_input(x, pads):
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    # zeros + one slice copy: np.pad's generic edge handling took 0.22 ms for 8x32x16x16 by 2
    # (this 0.05) and 1.2 ms for 8x64x56x56 by 1 (this 1.0)
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + pt + pb, W + pl + pr), dtype=x.dtype)
    xp[:, :, pt:pt + H, pl:pl + W] = x
    return xp


def _check(x, w, groups):
    N, C, H, W = x.shape
    F, Cg = w.shape[:2]
    if C != Cg * groups or F % groups:
        raise ValueError(f"conv shapes: x {x.shape}, w {w.shape}, groups={groups}")


#: columns (or a Winograd transformed input) of one conv larger than this are recomputed in
#: backward instead of kept (defined with the workspace model that restates it)
KEEP_COLS_BYTES = KEEP_BYTES


def _pointwise(w_shape, pads, groups):
    """A 1x1 unpadded ungrouped conv: im2col's "unfold" is the input itself (strided), so
    the GEMMs run per image on the NCHW arrays directly — no unfold, fold or transposes."""
    return w_shape[2] == 1 and w_shape[3] == 1 and groups == 1 and not any(pads[0] + pads[1])


def _whole_window(x_shape, w_shape, pads, dilation, groups):
    """An unpadded ungrouped conv whose window covers the whole input (LeNet's C5, a 5x5
    conv on a 5x5 input): a dense layer. Its unfold is the input itself, (N, C*kh*kw)."""
    return (groups == 1 and dilation == (1, 1) and not any(pads[0] + pads[1])
            and tuple(x_shape[2:]) == tuple(w_shape[2:]))


def _pw_cols(x, stride, OH, OW):
    """(N, C, OH*OW): the input at the strided positions (a view for stride 1)."""
    if stride != (1, 1):
        x = np.ascontiguousarray(x[:, :, ::stride[0], ::stride[1]][:, :, :OH, :OW])
    return x.reshape(x.shape[0], x.shape[1], OH * OW)


def _pw_dx(dy, w, x_shape, stride):
    N, F, OH, OW = dy.shape
    if OH * OW == 1:  # one position: a dense layer (per-image products of one column are slow)
        d = (dy.reshape(N, F) @ w.reshape(F, -1)).reshape(N, -1, 1, 1)
    else:
        d = np.matmul(w.reshape(F, -1).T, dy.reshape(N, F, OH * OW)).reshape(N, -1, OH, OW)
    if stride == (1, 1) and d.shape == tuple(x_shape):
        return d
    dx = np.zeros(x_shape, dy.dtype)
    dx[:, :, ::stride[0], ::stride[1]][:, :, :OH, :OW] = d
    return dx


#: pointwise weight gradients on planes of at most this many positions run as one GEMM over
#: the batch's positions (per-image products with 1..16 terms: 7.1 -> 0.15 ms for 960 -> 160
#: channels on 1x1 planes at batch 32, 0.67 -> 0.38 ms for 576 -> 96 on 2x2)
PW_SMALL_PLANE = 16


def _pw_dw(dy, x3, w_shape):
    N, F = dy.shape[:2]
    dy3 = dy.reshape(N, F, -1)
    P = dy3.shape[2]
    if P == 1:
        return (dy3.reshape(N, F).T @ x3.reshape(N, -1)).reshape(w_shape)
    if P <= PW_SMALL_PLANE:
        dr = np.ascontiguousarray(dy3.transpose(1, 0, 2)).reshape(F, N * P)
        xr = np.ascontiguousarray(x3.transpose(1, 0, 2)).reshape(x3.shape[1], N * P)
        return (dr @ xr.T).reshape(w_shape)
    dw = dy3[0] @ x3[0].T
    for n in range(1, N):
        dw += dy3[n] @ x3[n].T
    return dw.reshape(w_shape)


def _conv_nobias(x, w, stride, pads, dilation, groups, algo, out_hw=None, keep_cols=False, sums=None):
    """y, or ``(y, cols)`` with ``keep_cols`` (``cols`` None unless im2col kept them);
    ``sums`` (Winograd only): filled with y's shifted per-filter sums."""
    _check(x, w, groups)
    kh, kw = w.shape[2:]
    if out_hw is None:
        out_hw = conv2d_output_size(x.shape[2], x.shape[3], (kh, kw), stride, pads, dilation)
    OH, OW = out_hw
    if OH < 1 or OW < 1:
        raise ValueError(f"conv output would be empty: {out_hw}")
    if algo == "depthwise":  # pads plane by plane inside the kernel: no padded copy of x
        y = _dwk.depthwise_forward(x, w, stride, pads, dilation, groups, OH, OW)
        return (y, None) if keep_cols else y
    if algo == "winograd":  # keep_cols: the transformed input (2.25x x) for the weight gradient
        keep = keep_cols and _wg.kept_bytes(x.shape, OH, OW, x.itemsize) <= KEEP_COLS_BYTES
        y = _wg.forward(x, w, pads, OH, OW, keep=keep, sums=sums)
        return (y if keep else (y, None)) if keep_cols else y
    cols = None
    if algo == "direct":
        y = _direct_fwd(_pad_input(x, pads), w, stride[0], stride[1], dilation[0], dilation[1], groups, OH, OW)
    elif algo == "im2col" and _whole_window(x.shape, w.shape, pads, dilation, groups):
        y = (x.reshape(x.shape[0], -1) @ w.reshape(w.shape[0], -1).T).reshape(x.shape[0], w.shape[0], 1, 1)
    elif algo == "im2col" and _pointwise(w.shape, pads, groups):
        cols = _pw_cols(x, stride, OH, OW)
        if OH * OW == 1:  # one position: a dense layer
            y = (cols.reshape(x.shape[0], -1) @ w.reshape(w.shape[0], -1).T).reshape(x.shape[0], w.shape[0], 1, 1)
        else:
            y = np.matmul(w.reshape(w.shape[0], -1), cols).reshape(x.shape[0], w.shape[0], OH, OW)
    elif algo == "im2col" and _rows_pays(w.shape, stride, groups):
        y, R = _rows_fwd(_pad_input(x, pads), w, dilation, OH, OW)
        cols = R if keep_cols and R.nbytes <= KEEP_COLS_BYTES else None
    elif algo == "im2col":
        nb = x.shape[0] * OH * OW * w[0].size * x.itemsize
        keep = (keep_cols and nb <= KEEP_COLS_BYTES
                and (nb <= TILE_KEEP_BYTES or groups > 1 or not _tiles(OH, OW, w.shape)))
        y = _im2col_fwd(x, w, stride, dilation, groups, pads, OH, OW, keep_cols=keep)
        if keep:
            y, cols = y
    else:
        y = _fft_fwd(_pad_input(x, pads), w, stride, dilation, groups, OH, OW)
    return (y, cols) if keep_cols else y


def _data_grad(dy, w, x_shape, stride, pads, dilation, groups, algo, dyr=None):
    (pt, pb), (pl, pr) = pads
    N, C, H, W = x_shape
    Hp, Wp = H + pt + pb, W + pl + pr
    if algo == "depthwise":
        return _dwk.depthwise_data_grad(dy, w, x_shape, stride, pads, dilation, groups)
    if algo == "winograd":
        if _wg.data_grad_supported(pads):
            return _wg.data_grad(dy, w, pads, H, W)
        algo = "im2col"  # pads over 2: dY would need cropping, not padding
    if algo == "im2col" and _whole_window(x_shape, w.shape, pads, dilation, groups):
        return (dy.reshape(N, -1) @ w.reshape(w.shape[0], -1)).reshape(x_shape)
    if algo == "im2col" and _pointwise(w.shape, pads, groups):
        return _pw_dx(dy, w, x_shape, stride)
    if algo == "direct":
        dxp = _direct_dx(dy, w, stride[0], stride[1], dilation[0], dilation[1], groups, Hp, Wp)
    elif algo == "im2col":
        fpads = _flip_pads(w.shape, pads, dilation)
        if _flip_pays(dy.shape, w.shape, stride, groups, (H, W), fpads):
            return _flip_conv_dx(dy, w, dilation, fpads, H, W)
        return _im2col_dx(dy, w, stride, dilation, groups, pads, H, W, dyr)
    else:
        dxp = _fft_dx(dy, w, stride, dilation, groups, Hp, Wp)
    return _crop(dxp, pads, H, W)


def _weight_grad(dy, x, w_shape, stride, pads, dilation, groups, algo, cols=None, dyr=None):
    if algo == "winograd":
        return _wg.weight_grad(dy, x, pads, v=cols)
    if algo == "depthwise":
        return _dwk.depthwise_weight_grad(dy, x, w_shape, stride, pads, dilation, groups)
    if algo == "im2col" and _whole_window(x.shape, w_shape, pads, dilation, groups):
        return (dy.reshape(dy.shape[0], -1).T @ x.reshape(x.shape[0], -1)).reshape(w_shape)
    if algo == "im2col" and _pointwise(w_shape, pads, groups):
        return _pw_dw(dy, _pw_cols(x, stride, *dy.shape[2:]) if cols is None else cols, w_shape)
    if algo == "im2col" and _rows_pays(w_shape, stride, groups):  # cols: the row unfold
        Wp = x.shape[3] + pads[1][0] + pads[1][1]
        if cols is None:
            cols = _row_unfold(_pad_input(x, pads), w_shape[2], dilation[0], dy.shape[2])
        return _rows_dw(dy, cols, w_shape, dilation, Wp)
    if algo == "im2col" and cols is not None:
        return _im2col_dw(dy, None, w_shape, stride, dilation, groups, pads, cols, dyr)
    if algo == "im2col":
        return _im2col_dw(dy, x, w_shape, stride, dilation, groups, pads, None, dyr)
    xp = _pad_input(x, pads)
    if algo == "direct":
        _, Cg, kh, kw = w_shape
        return _direct_dw(dy, xp, Cg, kh, kw, stride[0], stride[1], dilation[0], dilation[1], groups)
    return _fft_dw(dy, xp, w_shape, stride, dilation, groups)


def _norm_args(stride, pad, dilation):
    return pair(stride), pads2d(pad), pair(dilation)


def conv2d_data_grad(dy, w, x_shape, stride=1, pad=0, dilation=1, groups=1, algo="auto"):
    """dL/dX of a conv2d given dL/dY (no cache needed)."""
    stride, pads, dilation = _norm_args(stride, pad, dilation)
    dy = as_float(dy)
    w = as_float(w, dy.dtype)
    algo = _resolve(algo, x_shape, w.shape, stride, dilation, groups)
    return _data_grad(dy, w, tuple(x_shape), stride, pads, dilation, groups, algo)


def conv2d_weight_grad(dy, x, w_shape, stride=1, pad=0, dilation=1, groups=1, algo="auto"):
    """dL/dW of a conv2d given dL/dY and the input X."""
    stride, pads, dilation = _norm_args(stride, pad, dilation)
    x = as_float(x)
    dy = as_float(dy, x.dtype)
    algo = _resolve(algo, x.shape, w_shape, stride, dilation, groups)
    return _weight_grad(dy, x, tuple(w_shape), stride, pads, dilation, groups, algo)


def _add_bias(y, b):
    if b is None:
        return y
    if b.ndim == 1:
        y += b[None, :, None, None]
    elif b.ndim == 3:  # untied bias (F, OH, OW)
        if b.shape != y.shape[1:]:
            raise ValueError(f"untied bias shape {b.shape} != output {y.shape[1:]}")
        y += b[None]
    else:
        raise ValueError(f"bias must be (F,) or (F, OH, OW), got {b.shape}")
    return y


class ConvCache:
    """What :func:`conv2d_backward` needs: the input, the weight, the geometry and, when
    the forward ran im2col with ``keep_cols``, the unfolded input (so the weight gradient
    does not unfold it again) -- with Winograd, the transformed input (``cols`` too: the weight
    gradient does not transform x again; one of three input transforms per training step)."""

    __slots__ = ("x", "w", "bdim", "stride", "pads", "dilation", "groups", "algo", "cols", "sums")

    def __init__(self, x, w, bdim, stride, pads, dilation, groups, algo, cols=None, sums=None):
        self.x, self.w, self.bdim, self.stride, self.pads = x, w, bdim, stride, pads
        self.dilation, self.groups, self.algo, self.cols = dilation, groups, algo, cols
        self.sums = sums  # bn_sums: y's shifted per-filter sums (Winograd), else None

    def arrays(self):
        """The arrays this cache keeps alive (for memory accounting)."""
        return [a for a in (self.x, self.w, self.cols) if a is not None]

    def speed_arrays(self):
        """Arrays kept only to make backward faster (im2col's unfolded input), not needed by it."""
        if self.cols is None or np.may_share_memory(self.cols, self.x):  # a 1x1 conv's view of x
            return []
        return [self.cols]


def conv2d_forward(x, w, b=None, stride=1, pad=0, dilation=1, groups=1, algo="auto", keep_cols=False,
                   bn_sums=False):
    """y = conv2d(x, w) + b.  Returns ``(y, cache)``; see the module docstring.

    ``keep_cols``: with im2col, keep the unfolded input in the cache for the weight
    gradient (training; up to :data:`KEEP_COLS_BYTES` per layer). ``bn_sums``: when the conv
    runs Winograd without a bias, ``cache.sums`` gets y's shifted per-filter sums for the batch
    norm that follows (:func:`cnncalc.runtime.kernels.norm.stats_from_sums`), else None."""
    stride, pads, dilation = _norm_args(stride, pad, dilation)
    x = as_float(x)
    w = as_float(w, x.dtype)
    b = None if b is None else as_float(b, x.dtype)
    algo = _resolve(algo, x.shape, w.shape, stride, dilation, groups)
    sums = _wg.output_sums(w.shape[0]) if bn_sums and b is None and algo == "winograd" else None
    y, cols = _conv_nobias(x, w, stride, pads, dilation, groups, algo, keep_cols=True, sums=sums) if keep_cols \
        else (_conv_nobias(x, w, stride, pads, dilation, groups, algo, sums=sums), None)
    y = _add_bias(y, b)
    return y, ConvCache(x, w, None if b is None else b.ndim, stride, pads, dilation, groups, algo, cols, sums)


def conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """Returns ``(dx, dw, db)``; ``db`` has the bias's shape, None without bias.

    ``need_dx=False`` skips the data gradient (a first layer: nobody reads it) and
    ``need_dw=False`` the parameter gradients (receptive-field checks); the skipped
    entries are None.  ``conv2d_backward(dy, cache, need_dw=False)[0]`` is the
    data-gradient entry point."""
    c = cache
    dout = as_float(dout, c.x.dtype)
    dyr = (_dy_rows(dout, c.groups) if c.algo == "im2col" and need_dx and need_dw
           and (c.groups > 1 or not _tiles(*dout.shape[2:], c.w.shape))
           and not _pointwise(c.w.shape, c.pads, c.groups) and not _rows_pays(c.w.shape, c.stride, c.groups)
           and not _whole_window(c.x.shape, c.w.shape, c.pads, c.dilation, c.groups) else None)
    dw = db = None
    both = need_dx and need_dw and c.algo == "winograd" and _wg.data_grad_supported(c.pads)
    if both:  # one pass over the chunks, dY copied once for both
        dx, dw = _wg.backward(dout, c.w, c.x, c.pads, v=c.cols)
    else:
        dx = _data_grad(dout, c.w, c.x.shape, c.stride, c.pads, c.dilation, c.groups, c.algo, dyr) if need_dx else None
    if need_dw:
        if not both:
            dw = _weight_grad(dout, c.x, c.w.shape, c.stride, c.pads, c.dilation, c.groups, c.algo, c.cols, dyr)
        if c.bdim is not None:
            # per filter: the images' planes added first, then each plane summed (numpy's
            # reduce over axes (0, 2, 3) at once is ~2x slower: 28 vs 16 us for 32x6x28x28)
            db = (dout.reshape(dout.shape[0], dout.shape[1], -1).sum(axis=0).sum(axis=1) if c.bdim == 1
                  else dout.sum(axis=0))
    return dx, dw, db


# --------------------------------------------------------------------------------------
# 1-D wrappers (executor may also reshape itself: (N, C, L) -> (N, C, 1, L))
# --------------------------------------------------------------------------------------
def conv1d_forward(x, w, b=None, stride=1, pad=0, dilation=1, groups=1, algo="auto"):
    """``x (N, C, L)``, ``w (F, C//g, k)``, ``pad`` ``p`` or ``(lo, hi)``, untied ``b (F, OL)``."""
    lo, hi = pads1d(pad)
    x = np.asarray(x)
    w = np.asarray(w)
    b4 = None if b is None else (np.asarray(b) if np.ndim(b) == 1 else np.asarray(b)[:, None, :])
    y, cache = conv2d_forward(x[:, :, None, :], w[:, :, None, :], b4, (1, stride if np.isscalar(stride) else stride[0]),
                              ((0, 0), (lo, hi)), (1, dilation if np.isscalar(dilation) else dilation[0]), groups, algo)
    return y[:, :, 0, :], cache


def conv1d_backward(dout, cache):
    dx, dw, db = conv2d_backward(np.asarray(dout)[:, :, None, :], cache)
    if db is not None and db.ndim == 3:
        db = db[:, 0, :]
    return dx[:, :, 0, :], dw[:, :, 0, :], db


# --------------------------------------------------------------------------------------
# transposed convolution = the data gradient of the conv with the same weight
# --------------------------------------------------------------------------------------
def conv_transpose2d_output_size(H, W, kernel, stride=1, pad=0, dilation=1, output_padding=0):
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    oph, opw = pair(output_padding)
    (pt, pb), (pl, pr) = pads2d(pad)
    return ((H - 1) * sh - pt - pb + dh * (kh - 1) + 1 + oph,
            (W - 1) * sw - pl - pr + dw * (kw - 1) + 1 + opw)


def conv_transpose2d_forward(x, w, b=None, stride=1, pad=0, dilation=1, groups=1,
                             output_padding=0, algo="auto"):
    """Transposed conv, weight ``(C_in, F//groups, kh, kw)`` (PyTorch).  ``(y, cache)``."""
    stride, pads, dilation = _norm_args(stride, pad, dilation)
    x = as_float(x)
    w = as_float(w, x.dtype)
    b = None if b is None else as_float(b, x.dtype)
    N, Cin, H, W = x.shape
    if w.shape[0] != Cin or Cin % groups:
        raise ValueError(f"conv_transpose shapes: x {x.shape}, w {w.shape}, groups={groups}")
    F = w.shape[1] * groups
    OH, OW = conv_transpose2d_output_size(H, W, w.shape[2:], stride, pads, dilation, output_padding)
    y_shape = (N, F, OH, OW)
    algo = _resolve(algo, y_shape, w.shape, stride, dilation, groups)
    y = _add_bias(_data_grad(x, w, y_shape, stride, pads, dilation, groups, algo), b)
    return y, ConvCache(x, w, None if b is None else b.ndim, stride, pads, dilation, groups, algo)


def conv_transpose2d_backward(dout, cache):
    c = cache
    x, w, bdim, stride, pads, dilation, groups, algo = (c.x, c.w, c.bdim, c.stride, c.pads, c.dilation,
                                                        c.groups, c.algo)
    dout = as_float(dout, x.dtype)
    dx = _conv_nobias(dout, w, stride, pads, dilation, groups, algo, out_hw=x.shape[2:])
    # the forward conv (of which this layer is the transpose) has input dout and output x
    dw = _weight_grad(x, dout, w.shape, stride, pads, dilation, groups, algo)
    db = None if bdim is None else (dout.sum(axis=(0, 2, 3)) if bdim == 1 else dout.sum(axis=0))
    return dx, dw, db


# --------------------------------------------------------------------------------------
# locally connected (untied weights): im2col + per-position batched GEMM
# --------------------------------------------------------------------------------------
def locally_connected2d_forward(x, w, b=None, stride=1, pad=0, dilation=1):
    """Untied conv: ``y[n,f,p] = sum_k cols[n,p,k] w[p,f,k] + b[p,f]``.  ``(y, cache)``."""
    stride, pads, dilation = _norm_args(stride, pad, dilation)
    x = as_float(x)
    w = as_float(w, x.dtype)
    OH, OW, F, C, kh, kw = w.shape
    N = x.shape[0]
    if x.shape[1] != C or conv2d_output_size(x.shape[2], x.shape[3], (kh, kw), stride, pads, dilation) != (OH, OW):
        raise ValueError(f"locally connected shapes: x {x.shape}, w {w.shape}")
    xp = _pad_input(x, pads)
    P, K = OH * OW, C * kh * kw
    cols = _im2col(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1], OH, OW, 1)
    cols_p = cols.reshape(K, N, P).transpose(2, 1, 0)  # (P, N, K)
    wp = w.reshape(P, F, K)
    y = np.matmul(cols_p, wp.transpose(0, 2, 1))  # (P, N, F)
    y = np.ascontiguousarray(y.transpose(1, 2, 0)).reshape(N, F, OH, OW)
    if b is not None:
        y += as_float(b, x.dtype).transpose(2, 0, 1)[None]
    return y, (x, w, b is not None, stride, pads, dilation)


def locally_connected2d_backward(dout, cache):
    x, w, has_b, stride, pads, dilation = cache
    dout = as_float(dout, x.dtype)
    OH, OW, F, C, kh, kw = w.shape
    N, _, H, W = x.shape
    P, K = OH * OW, C * kh * kw
    xp = _pad_input(x, pads)
    cols = _im2col(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1], OH, OW, 1)
    cols_p = cols.reshape(K, N, P).transpose(2, 1, 0)  # (P, N, K)
    dy_p = dout.reshape(N, F, P).transpose(2, 0, 1)  # (P, N, F)
    dw = np.matmul(dy_p.transpose(0, 2, 1), cols_p).reshape(w.shape)
    dcols_p = np.matmul(dy_p, w.reshape(P, F, K))  # (P, N, K)
    dcols = np.ascontiguousarray(dcols_p.transpose(2, 1, 0)).reshape(1, K, N * P)
    (pt, pb), (pl, pr) = pads
    dxp = _col2im(dcols, N, C, H + pt + pb, W + pl + pr, kh, kw, stride[0], stride[1],
                  dilation[0], dilation[1], OH, OW)
    dx = np.ascontiguousarray(dxp[:, :, pt : pt + H, pl : pl + W])
    db = dout.sum(axis=0).transpose(1, 2, 0).copy() if has_b else None
    return dx, np.ascontiguousarray(dw), db
