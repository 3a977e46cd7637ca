"""Winograd minimal filtering for 3x3, stride-1, undilated, ungrouped convolutions.

Lavin & Gray's F(m x m, 3 x 3): an ``(m+2) x (m+2)`` input tile ``d`` and a 3x3 filter ``g``
give the ``m x m`` output tile ``A^T [(G g G^T) * (B^T d B)] A`` (``*`` elementwise). Summed
over input channels, the elementwise products become, for each of the ``alpha^2`` transform
positions (``alpha = m + 2``), one GEMM ``V[pos] (tiles, C) @ U[pos]^T (C, K)``: ``alpha^2 /
(9 m^2)`` of the direct conv's multiplies (16/36 for F(2x2,3x3), 36/144 for F(4x4,3x3)).

Public API (used by :mod:`cnncalc.runtime.kernels.conv`, algorithm ``"winograd"``)
---------------------------------------------------------------------------------
``supports(w_shape, stride, dilation, groups) -> bool``
``transforms(m) -> (BT, G, AT)``  the float64 matrices of F(m x m, 3 x 3), m in (2, 4)
``apply_1d(m, "BT" | "AT", v)``   the compiled, unrolled 1-D transform applied to ``v``
``Winograd(m, G=None)``           the kernels of F(m x m, 3 x 3) (``G``: the tests pass a wrong one);
    ``kernels(m)`` the cached instance
``forward(x, w, pads, OH, OW, m=M, keep=False) -> y``  ``(N, K, OH, OW)`` of ``x (N, C, H, W)``
    zero-padded by ``pads = ((top, bottom), (left, right))`` (any pads >= 0), ``w (K, C, 3, 3)``;
    ``keep``: ``(y, V)``, V every chunk's transformed input, for the weight gradient;
    ``sums``: filled with y's per-filter (shifted) sums and sums of squares for a batch norm
``data_grad(dy, w, pads, H, W, m=M) -> dx``  stride 1: the forward conv of dY padded by
    ``2 - pad`` with the 180-degree rotated, channel-transposed filters (pads <= 2:
    ``data_grad_supported(pads)``)
``weight_grad(dy, x, pads, m=M, v=None) -> dw``  ``G^T [sum over tiles (A dY A^T) * (B^T d B)] G``;
    ``v``: the forward's kept ``V`` (x is then not transformed again)
``backward(dy, w, x, pads, m=M, v=None) -> (dx, dw)``  both, in one pass over the chunks
    (dY copied once) where the tilings agree, as for pad 1
``kept_bytes(x_shape, OH, OW, itemsize, m=M)``  the size of that ``V``

Layout and tiling: images are processed a few at a time
(:func:`cnncalc.analysis.workspace.winograd_chunk`: 1 MiB of transformed input and output
together, so the ``alpha^2`` GEMMs read them from cache), **channels last**: a chunk's images
are copied, transposed, into a zeroed ``(T, Hb, Wb, C)`` buffer padded to whole tiles
(:func:`_pad_chunk`); the input transform (:func:`_in_transform`) runs row-then-column 1-D
transforms whose inner loops run over contiguous channels, into ``V (alpha^2, tiles, C)``;
``np.matmul`` of ``V`` with ``U^T (alpha^2, C, K)`` gives ``M (alpha^2, tiles, K)``; the
inverse transform (:func:`_out_transform`) runs over a tile row's tiles and filters at once
and copies them, transposed, into the NCHW output, the partial edge tiles cropped. (The
channel-major layout before it -- ``V (alpha^2, C, tiles)`` made from NCHW planes -- ran its
transforms along a tile row's 2-8 tiles at stride m, ~1.5 cycles a transformed value and 3
at 8x8: 0.80 vs 0.20 ms for the input transform of 32 images of 16 channels at 32x32, with
the transposing copy 0.15 vs 0.05 ms; a GEMM ``U (K, C) @ V^T`` on the channels-last V runs
2x slower in OpenBLAS than ``V @ U^T``, hence ``M``'s layout.) Every call allocates its own
buffers (sub-batches run the kernels on several Python threads).

Accuracy (float32, against a float64 direct conv; tests/runtime/test_winograd.py bounds it):
F(2x2,3x3) is as accurate as im2col (its matrices are 0, +-1, 1/2); F(4x4,3x3)'s points (0,
+-1, +-2, inf) put entries up to 5 in B and 8 in A, and its error is ~10x larger, ~5e-6 of the
output's scale -- see :data:`M` for the measurements and the choice.
"""
from __future__ import annotations

import numpy as np

from cnncalc.analysis.workspace import winograd_chunk
from cnncalc.runtime._numba import njit, numba, prange

#: which F(m x m, 3 x 3) the runtime uses. Errors (max |y - ref| / max |ref| against a float64
#: conv, float32 N(0,1) inputs, He-scaled weights, pad 1): 16 ch 32x32, 64 ch 16x16, 256 ch 8x8:
#: im2col 4.6e-7, 5.1e-7, 4.7e-7; F(2x2) 1.8e-7, 3.9e-7, 5.4e-7; F(4x4) 3.1e-6, 5.4e-6, 3.4e-6
#: -- F(4x4) is ~10x less accurate than im2col, still ~5e-6 relative (float32's epsilon is
#: 1.2e-7), and it is the faster one: forward, float32, 1 thread, CPU ms, N=32 (im2col / F(2x2) /
#: F(4x4)): 16->16 32x32 3.8 / 2.7 / 1.9; 32->32 16x16 2.2 / 2.3 / 1.4; 64->64 8x8 1.9 / 1.9 /
#: 1.4; 64->64 32x32 31.7 / 18.9 / 12.2; 128->128 16x16 25.5 / 18.8 / 12.0; 256->256 8x8
#: 27.1 / 18.2 / 15.1; only on 4x4 and 2x2 planes does F(2x2) beat F(4x4) (512->512 4x4 25.8 /
#: 26.5 / 43.5, 2x2 7.7 / 11.7 / 47.2), and there im2col is as fast or faster.
M = 4


def supports(w_shape, stride, dilation, groups):
    """A 3x3 kernel, stride 1, dilation 1, groups 1."""
    return (tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1)


def transforms(m):
    """``(BT, G, AT)`` of F(m x m, 3 x 3) (Lavin & Gray 2016), float64."""
    if m == 2:
        BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        AT = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"Winograd F({m}x{m},3x3): m must be 2 or 4")
    return np.array(BT, float), np.array(G, float), np.array(AT, float)


# the 1-D transforms, unrolled (written out by hand from transforms(m), zeros dropped; the tests
# check them against the matrices): d[j + p*f] = sum_q X[p, q] s[i + q*e]. The constants are
# float32 (a float64 literal would promote float32 arithmetic to float64).
#: unsigned flat indices (numba wraps negative signed ones: a branch per access)
_U = numba.uint64
_2, _4, _5, _8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@njit(inline="always", cache=True)
def _bt2(s, i, e, d, j, f):
    """d[j + p*f] = sum_q BT[p, q] s[i + q*e], BT of F(2x2,3x3)"""
    x0 = s[_U(i)]
    x1 = s[_U(i + e)]
    x2 = s[_U(i + 2 * e)]
    x3 = s[_U(i + 3 * e)]
    d[_U(j)] = x0 - x2
    d[_U(j + f)] = x1 + x2
    d[_U(j + 2 * f)] = -x1 + x2
    d[_U(j + 3 * f)] = x1 - x3


@njit(inline="always", cache=True)
def _at2(s, i, e, d, j, f):
    """d[j + p*f] = sum_q AT[p, q] s[i + q*e], AT of F(2x2,3x3)"""
    x0 = s[_U(i)]
    x1 = s[_U(i + e)]
    x2 = s[_U(i + 2 * e)]
    x3 = s[_U(i + 3 * e)]
    d[_U(j)] = x0 + x1 + x2
    d[_U(j + f)] = x1 - x2 - x3


@njit(inline="always", cache=True)
def _bt4(s, i, e, d, j, f):
    """d[j + p*f] = sum_q BT[p, q] s[i + q*e], BT of F(4x4,3x3)"""
    x0 = s[_U(i)]
    x1 = s[_U(i + e)]
    x2 = s[_U(i + 2 * e)]
    x3 = s[_U(i + 3 * e)]
    x4 = s[_U(i + 4 * e)]
    x5 = s[_U(i + 5 * e)]
    d[_U(j)] = _4 * x0 - _5 * x2 + x4
    d[_U(j + f)] = -_4 * x1 - _4 * x2 + x3 + x4
    d[_U(j + 2 * f)] = _4 * x1 - _4 * x2 - x3 + x4
    d[_U(j + 3 * f)] = -_2 * x1 - x2 + _2 * x3 + x4
    d[_U(j + 4 * f)] = _2 * x1 - x2 - _2 * x3 + x4
    d[_U(j + 5 * f)] = _4 * x1 - _5 * x3 + x5


@njit(inline="always", cache=True)
def _at4(s, i, e, d, j, f):
    """d[j + p*f] = sum_q AT[p, q] s[i + q*e], AT of F(4x4,3x3)"""
    x0 = s[_U(i)]
    x1 = s[_U(i + e)]
    x2 = s[_U(i + 2 * e)]
    x3 = s[_U(i + 3 * e)]
    x4 = s[_U(i + 4 * e)]
    x5 = s[_U(i + 5 * e)]
    d[_U(j)] = x0 + x1 + x2 + x3 + x4
    d[_U(j + f)] = x1 - x2 + _2 * x3 - _2 * x4
    d[_U(j + 2 * f)] = x1 + x2 + _4 * x3 + _4 * x4
    d[_U(j + 3 * f)] = x1 - x2 + _8 * x3 - _8 * x4 + x5


@njit(inline="always", cache=True)
def _a2(s, i, e, d, j, f):
    """d[j + p*f] = sum_q AT[q, p] s[i + q*e] (A = AT^T, m -> m+2) of F(2x2,3x3): dY's tiles for dW"""
    x0 = s[_U(i)]
    x1 = s[_U(i + e)]
    d[_U(j)] = x0
    d[_U(j + f)] = x0 + x1
    d[_U(j + 2 * f)] = x0 - x1
    d[_U(j + 3 * f)] = -x1


@njit(inline="always", cache=True)
def _a4(s, i, e, d, j, f):
    """d[j + p*f] = sum_q AT[q, p] s[i + q*e] (A = AT^T, m -> m+2) of F(4x4,3x3): dY's tiles for dW"""
    x0 = s[_U(i)]
    x1 = s[_U(i + e)]
    x2 = s[_U(i + 2 * e)]
    x3 = s[_U(i + 3 * e)]
    d[_U(j)] = x0
    d[_U(j + f)] = x0 + x1 + x2 + x3
    d[_U(j + 2 * f)] = x0 - x1 + x2 - x3
    d[_U(j + 3 * f)] = x0 + _2 * x1 + _4 * x2 + _8 * x3
    d[_U(j + 4 * f)] = x0 - _2 * x1 + _4 * x2 - _8 * x3
    d[_U(j + 5 * f)] = x3


@njit(inline="always", cache=True)
def _bt(m, s, i, e, d, j, f):
    """``BT`` of F(m x m, 3 x 3) (``m`` is loop-invariant in the kernels: the branch is hoisted)."""
    if m == 4:
        _bt4(s, i, e, d, j, f)
    else:
        _bt2(s, i, e, d, j, f)


@njit(inline="always", cache=True)
def _at(m, s, i, e, d, j, f):
    """``AT`` of F(m x m, 3 x 3)."""
    if m == 4:
        _at4(s, i, e, d, j, f)
    else:
        _at2(s, i, e, d, j, f)


@njit(inline="always", cache=True)
def _a(m, s, i, e, d, j, f):
    """``A = AT^T`` of F(m x m, 3 x 3)."""
    if m == 4:
        _a4(s, i, e, d, j, f)
    else:
        _a2(s, i, e, d, j, f)


@njit(parallel=True, fastmath={"reassoc"})
def _chunk_sums(y, n0, T, sums):
    """Add ``y[n0:n0+T, k] - sums[0, k]`` to ``sums[1, k]`` and its squares to ``sums[2, k]``, in
    float64 (the sums reordered: vectorised), ``sums[0, k]`` first set to ``y[0, k, 0, 0]`` (a
    shift: no cancellation in the one-pass variance); run on each chunk just written (in cache).
    (Summing inside :func:`_out_transform` slowed its loops down even when not asked for.)"""
    K = y.shape[1]
    M = y.shape[2] * y.shape[3]
    yf = y.reshape(-1)
    for k in prange(K):
        if n0 == 0:
            sums[0, k] = yf[k * M]
        c = sums[0, k]
        s = 0.0
        q = 0.0
        for n in range(n0, n0 + T):
            b = (n * K + k) * M
            for i in range(M):
                d = np.float64(yf[_U(b + i)]) - c
                s += d
                q += d * d
        sums[1, k] += s
        sums[2, k] += q


@njit
def _pad_chunk(x, n0, T, pt, pl, xb):
    """Copy images ``n0 .. n0+T`` of ``x (N, C, H, W)`` into the interior of ``xb (T, Hb, Wb, C)``,
    channels last (the border stays zero)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Hb, Wb = xb.shape[1], xb.shape[2]
    xf = x.reshape(-1)
    bf = xb.reshape(-1)
    for t in range(T):
        for h in range(H):
            d0 = ((t * Hb + h + pt) * Wb + pl) * C
            for c in range(C):
                s_ = (((n0 + t) * C + c) * H + h) * W
                for q in range(W):
                    bf[_U(d0 + q * C + c)] = xf[_U(s_ + q)]


@njit(parallel=True)
def _in_transform(xb, TH, TW, m, V):
    """``V[i1*a + i2, n*TH*TW + th*TW + tw, c] = (B^T d B)[i1, i2]`` for the ``a x a`` tile ``d``
    at row ``th*m``, column ``tw*m`` of channel ``c`` of the chunk's padded channels-last images
    ``xb (T, Hb, Wb, C)``: the 1-D transform down the ``a`` rows of a tile row, over all its
    columns and channels at once (contiguous), then along each resulting row, tile by tile, over
    the channels (contiguous); a thread per tile row. (Channel-major, along the tiles at stride
    ``m``, this ran ~1.5 cycles a value, 4x this one; see the module docstring.)"""
    T, Hb, Wb, C = xb.shape
    a = m + 2
    P = V.shape[1]
    WC = Wb * C
    xf = xb.reshape(-1)
    vf = V.reshape(-1)
    for row in prange(T * TH):
        n = row // TH
        th = row - n * TH
        r = np.empty(a * WC, V.dtype)  # r[i1*WC + w*C + c]: the tile row transformed down
        base = (n * Hb + th * m) * WC
        for u in range(WC):
            _bt(m, xf, base + u, WC, r, u, WC)
        for i1 in range(a):
            for tw in range(TW):
                s0 = i1 * WC + tw * m * C
                d0 = (i1 * a * P + row * TW + tw) * C
                for c in range(C):
                    _bt(m, r, s0 + c, C, vf, d0 + c, P * C)


@njit(parallel=True)
def _dy_transform(db, r0, c0, TH, TW, m, D):
    """``D[i1*a + i2, n*TH*TW + th*TW + tw, k] = (A d A^T)[i1, i2]`` for the ``m x m`` tile ``d``
    of filter ``k`` at row ``r0 + th*m``, column ``c0 + tw*m`` of the chunk's channels-last
    ``db (T, Hd, Wd, K)`` (dY at ``r0, c0``, zero past it): as :func:`_in_transform`, with ``A``."""
    T, Hd, Wd, K = db.shape
    a = m + 2
    P = D.shape[1]
    RW = Wd * K
    L = TW * m * K
    df = db.reshape(-1)
    Df = D.reshape(-1)
    for row in prange(T * TH):
        n = row // TH
        th = row - n * TH
        r = np.empty(a * L, D.dtype)
        base = ((n * Hd + r0 + th * m) * Wd + c0) * K
        for u in range(L):
            _a(m, df, base + u, RW, r, u, L)
        for i1 in range(a):
            for tw in range(TW):
                s0 = i1 * L + tw * m * K
                d0 = (i1 * a * P + row * TW + tw) * K
                for k in range(K):
                    _a(m, r, s0 + k, K, Df, d0 + k, P * K)


@njit(parallel=True)
def _out_transform(Mt, n0, T, TH, TW, m, y):
    """``y[n0 + n, k, th*m + i, tw*m + j] = (A^T M A)[i, j]`` for each tile of the chunk's
    channels-last ``Mt (a*a, T*TH*TW, K)``, the rows and columns past ``OH``, ``OW`` dropped:
    the 1-D transform along the ``a`` positions of each row, then down, each over all the tile
    row's tiles and filters at once (contiguous: over the filters alone, 16 of them were too
    few to vectorise), into ``o[i, j, tw, k]``, then copied into ``y``'s rows (a transpose,
    through a table of o's offsets along the row: faster than loops over ``j`` and ``tw``);
    a thread per tile row."""
    P, K = Mt.shape[1], Mt.shape[2]
    a = m + 2
    OH, OW = y.shape[2], y.shape[3]
    L = TW * K
    mf = Mt.reshape(-1)
    yf = y.reshape(-1)
    off = np.empty(OW, np.int64)  # o's offset of output column w = tw*m + j
    for w in range(OW):
        off[w] = (w % m) * L + (w // m) * K
    for row in prange(T * TH):
        n = row // TH
        th = row - n * TH
        s = np.empty(a * m * L, y.dtype)  # s[(i1*m + j)*L + tw*K + k]
        o = np.empty(m * m * L, y.dtype)  # o[(i*m + j)*L + tw*K + k]
        for i1 in range(a):
            b0 = (i1 * a * P + row * TW) * K
            for u in range(L):
                _at(m, mf, b0 + u, P * K, s, i1 * m * L + u, L)
        for j in range(m):
            for u in range(L):
                _at(m, s, j * L + u, m * L, o, j * L + u, m * L)
        for i in range(min(m, OH - th * m)):
            for k in range(K):
                yb = (((n0 + n) * K + k) * OH + th * m + i) * OW
                ob = i * m * L + k
                for w in range(OW):  # a gather through off: faster than strided loops here
                    yf[_U(yb + w)] = o[_U(ob + off[w])]


_ONE_D = {2: (_bt2, _at2), 4: (_bt4, _at4)}


def apply_1d(m, kind, v):
    """The compiled 1-D transform of F(m x m, 3 x 3) applied to the vector ``v``: ``kind``
    ``"BT"`` (length m+2 -> m+2) or ``"AT"`` (m+2 -> m); equals ``transforms(m)``'s matrix
    times ``v`` (the tests check every column)."""
    f = _ONE_D[m][0 if kind == "BT" else 1]
    v = np.ascontiguousarray(v)
    d = np.empty(m + 2 if kind == "BT" else m, v.dtype)
    _apply(f, v, d)
    return d


@njit
def _apply(f, v, d):
    f(v, 0, 1, d, 0, 1)


class Winograd:
    """The kernels of F(m x m, 3 x 3), m in (2, 4); ``G`` replaces the filter transform's
    matrix (the tests pass a wrong one and expect wrong results)."""

    def __init__(self, m, G=None):
        BT, G0, AT = transforms(m)
        self.m, self.a = m, m + 2
        self.G = G0 if G is None else np.asarray(G, float)
        GG = np.kron(self.G, self.G)  # (a*a, 9): G g G^T of a flattened 3x3 g
        self._GG = {np.dtype(np.float64): GG, np.dtype(np.float32): GG.astype(np.float32)}

    def filters(self, w):
        """``U^T (a*a, C, K)``: ``G g G^T`` of every filter and channel, as one GEMM
        ``kron(G, G) (a*a, 9) @ w^T (C*K, 9)^T`` in ``w``'s dtype (float64 would double its
        cost: 4.8 vs 2.0 ms for 256 -> 256 channels; its output, 4x the weights, is what it
        moves); channel-major, the right-hand side of the forward's GEMMs ``V (tiles, C) @ U^T``."""
        K, C = w.shape[:2]
        wt = w.transpose(1, 0, 2, 3).reshape(C * K, 9)
        return (self._gg(w.dtype) @ wt.T).reshape(self.a * self.a, C, K)

    def _gg(self, dtype):
        """``kron(G, G)`` in ``dtype`` (float32 and float64 made once)."""
        GG = self._GG.get(dtype)
        return self._GG[np.dtype(np.float64)].astype(dtype) if GG is None else GG

    def forward(self, x, w, pads, OH, OW, keep=False, sums=None):
        """y; with ``keep`` ``(y, V)``: every chunk's transformed input kept (chunk after
        chunk, ``a*a*C*N*TH*TW`` values) for :meth:`weight_grad`'s ``v``. ``sums``: a float64
        ``(3, K)`` array that gets row 0 a shift per filter (its first output), rows 1 and 2 the
        sums of the outputs less it and of their squares (:func:`output_sums`)."""
        x = np.ascontiguousarray(x)
        w = np.ascontiguousarray(w, dtype=x.dtype)
        return self._run(x, self.filters(w), pads, OH, OW, keep, sums)

    def _run(self, x, U, pads, OH, OW, keep=False, sums=None):
        """:meth:`forward` given the transformed filters ``U^T (a*a, C, K)``."""
        N, C, H, W = x.shape
        K = U.shape[2]
        (pt, pb), (pl, pr) = pads
        m, a = self.m, self.a
        TH, TW = -(-OH // m), -(-OW // m)
        Hb, Wb = TH * m + 2, TW * m + 2  # whole tiles: >= H + pt, W + pl
        if Hb < H + pt or Wb < W + pl or OH != H + pt + pb - 2 or OW != W + pl + pr - 2:
            raise ValueError(f"Winograd: output {OH}x{OW} does not match input {H}x{W} and pads {pads}")
        T = winograd_chunk(N, C, K, TH * TW, x.itemsize, a)
        y = np.empty((N, K, OH, OW), dtype=x.dtype)
        want = sums is not None
        if want:
            if sums.shape != (3, K) or sums.dtype != np.float64:
                raise ValueError(f"Winograd: sums must be float64 (3, {K}), got {sums.dtype} {sums.shape}")
            sums[:] = 0.0
        xb = np.zeros((T, Hb, Wb, C), dtype=x.dtype)
        Vb = np.empty(a * a * C * (N if keep else T) * TH * TW, dtype=x.dtype)
        Mb = np.empty(a * a * K * T * TH * TW, dtype=x.dtype)
        for n0 in range(0, N, T):
            t = min(T, N - n0)
            nt = t * TH * TW
            v0 = a * a * C * n0 * TH * TW if keep else 0
            V = Vb[v0:v0 + a * a * C * nt].reshape(a * a, nt, C)
            Mt = Mb[:a * a * K * nt].reshape(a * a, nt, K)
            _pad_chunk(x, n0, t, pt, pl, xb)
            _in_transform(xb[:t], TH, TW, m, V)
            np.matmul(V, U, out=Mt)
            _out_transform(Mt, n0, t, TH, TW, m, y)
            if want:
                _chunk_sums(y, n0, t, sums)
        return (y, Vb) if keep else y

    def weight_grad(self, dy, x, pads, v=None):
        """dW ``(K, C, 3, 3)``: ``G^T [sum over tiles (A dY_t A^T) * (B^T d_t B)] G`` -- the
        forward's input transform, dY's tiles transformed by ``A`` (:func:`_dy_transform`),
        per transform position one GEMM ``D (tiles, K)^T @ V (tiles, C)`` accumulated over the
        chunks, then the filter transform's adjoint. ``v``: the forward's kept transformed
        input (``forward(..., keep=True)`` of this ``x``, ``pads``): x is not transformed again."""
        return self._grads(dy, None, x, pads, v)[1]

    def backward(self, dy, w, x, pads, v=None):
        """``(dx, dw)``: :meth:`data_grad` and :meth:`weight_grad` in one pass over the chunks,
        sharing dY's padded channels-last copy (the data gradient's input; the weight
        gradient's tiles read from it at the padding's offset) when the two tilings agree
        (they do for pad 1: same tiles, same chunks), else the two calls."""
        x = np.ascontiguousarray(x)
        dy = np.ascontiguousarray(dy, dtype=x.dtype)
        N, C, H, W = x.shape
        K, OH, OW = dy.shape[1:]
        (pt, pb), (pl, pr) = pads
        m, a = self.m, self.a
        TH, TW = -(-OH // m), -(-OW // m)
        THx, TWx = -(-H // m), -(-W // m)
        if (not data_grad_supported(pads) or OH != H + pt + pb - 2 or OW != W + pl + pr - 2
                or 2 - pt + TH * m > THx * m + 2 or 2 - pl + TW * m > TWx * m + 2
                or winograd_chunk(N, C, K, TH * TW, x.itemsize, a)
                != winograd_chunk(N, K, C, THx * TWx, x.itemsize, a)):
            return self.data_grad(dy, w, pads, H, W), self.weight_grad(dy, x, pads, v)
        return self._grads(dy, w, x, pads, v)

    def _grads(self, dy, w, x, pads, v):
        """``(dx, dw)``; ``w`` None: dw alone (dx None). See :meth:`backward`."""
        x = np.ascontiguousarray(x)
        dy = np.ascontiguousarray(dy, dtype=x.dtype)
        N, C, H, W = x.shape
        K, OH, OW = dy.shape[1:]
        (pt, pb), (pl, pr) = pads
        m, a = self.m, self.a
        TH, TW = -(-OH // m), -(-OW // m)
        Hb, Wb = TH * m + 2, TW * m + 2
        if OH != H + pt + pb - 2 or OW != W + pl + pr - 2:
            raise ValueError(f"Winograd: dY {OH}x{OW} does not match input {H}x{W} and pads {pads}")
        T = winograd_chunk(N, C, K, TH * TW, x.itemsize, a)
        if v is not None and v.size != a * a * C * N * TH * TW:
            raise ValueError(f"Winograd: kept transform of {v.size} values does not match x {x.shape}")
        xb = np.zeros((T, Hb, Wb, C), dtype=x.dtype) if v is None else None
        Vb = np.empty(a * a * C * T * TH * TW, dtype=x.dtype) if v is None else v
        Db = np.empty(a * a * K * T * TH * TW, dtype=x.dtype)
        dU = np.zeros((a * a, K, C), dtype=x.dtype)
        G = np.empty((a * a, K, C), dtype=x.dtype)
        dx = None
        if w is None:  # dY's tiles from a copy of dY alone
            r0 = c0 = 0
            db = np.zeros((T, TH * m, TW * m, K), dtype=x.dtype)
        else:  # dY padded for the data gradient (a forward conv of it); its tiles at the offset
            r0, c0 = 2 - pt, 2 - pl
            THx, TWx = -(-H // m), -(-W // m)
            db = np.zeros((T, THx * m + 2, TWx * m + 2, K), dtype=x.dtype)
            Ud = self._dgrad_filters(w, x.dtype)
            dx = np.empty((N, C, H, W), dtype=x.dtype)
            Vx = np.empty(a * a * K * T * THx * TWx, dtype=x.dtype)
            Mx = np.empty(a * a * C * T * THx * TWx, dtype=x.dtype)
        for n0 in range(0, N, T):
            t = min(T, N - n0)
            nt = t * TH * TW
            _pad_chunk(dy, n0, t, r0, c0, db)
            if w is not None:
                ntx = t * THx * TWx
                Vc = Vx[:a * a * K * ntx].reshape(a * a, ntx, K)
                Mc = Mx[:a * a * C * ntx].reshape(a * a, ntx, C)
                _in_transform(db[:t], THx, TWx, m, Vc)
                np.matmul(Vc, Ud, out=Mc)
                _out_transform(Mc, n0, t, THx, TWx, m, dx)
            D = Db[:a * a * K * nt].reshape(a * a, nt, K)
            if v is None:
                V = Vb[:a * a * C * nt].reshape(a * a, nt, C)
                _pad_chunk(x, n0, t, pt, pl, xb)
                _in_transform(xb[:t], TH, TW, m, V)
            else:
                v0 = a * a * C * n0 * TH * TW
                V = v[v0:v0 + a * a * C * nt].reshape(a * a, nt, C)
            _dy_transform(db[:t], r0, c0, TH, TW, m, D)
            np.matmul(D.transpose(0, 2, 1), V, out=G)
            dU += G
        dw = self._gg(x.dtype).T @ dU.reshape(a * a, K * C)  # (9, K*C)
        return dx, np.ascontiguousarray(dw.reshape(3, 3, K, C).transpose(2, 3, 0, 1))

    def _dgrad_filters(self, w, dtype):
        """The data gradient's ``U^T (a*a, K, C)``: the forward's transformed filters of the
        rotated, channel-transposed ``w[:, :, ::-1, ::-1]^T``, i.e. kron(G, G) with its 9
        columns reversed times w as it is laid out (no transposed copy)."""
        K, C = w.shape[:2]
        w9 = np.ascontiguousarray(w, dtype=dtype).reshape(K * C, 9)
        return (self._gg(dtype)[:, ::-1] @ w9.T).reshape(self.a * self.a, K, C)

    def data_grad(self, dy, w, pads, H, W):
        (pt, pb), (pl, pr) = pads
        fp = ((2 - pt, 2 - pb), (2 - pl, 2 - pr))
        if min(fp[0] + fp[1]) < 0:
            raise ValueError("Winograd data gradient: pads larger than 2")
        dy = np.ascontiguousarray(dy)
        return self._run(dy, self._dgrad_filters(w, dy.dtype), fp, H, W)


_KERNELS = {}


def kernels(m=M):
    """The (cached) :class:`Winograd` of F(m x m, 3 x 3)."""
    if m not in _KERNELS:
        _KERNELS[m] = Winograd(m)
    return _KERNELS[m]


def forward(x, w, pads, OH, OW, m=M, keep=False, sums=None):
    """y of the 3x3 stride-1 conv of ``x`` zero-padded by ``pads`` (see the module docstring);
    ``keep``: ``(y, V)``, V the transformed input for :func:`weight_grad`'s ``v``; ``sums``: a
    float64 ``(3, K)`` array filled with y's shifted per-filter sums (:func:`output_sums`)."""
    return kernels(m).forward(x, w, pads, OH, OW, keep, sums)


def output_sums(K):
    """A float64 ``(3, K)`` array for :func:`forward`'s ``sums``: row 0 the shift (each filter's
    first output), rows 1 and 2 the sums of ``y - shift`` and ``(y - shift)^2`` per filter."""
    return np.zeros((3, K))


def backward(dy, w, x, pads, m=M, v=None):
    """``(dx, dw)`` of the 3x3 stride-1 conv of ``x`` with ``pads`` (each <= 2) given dY, in
    one pass over the chunks where the tilings allow (:meth:`Winograd.backward`)."""
    return kernels(m).backward(dy, w, x, pads, v)


def data_grad(dy, w, pads, H, W, m=M):
    """dX of the 3x3 stride-1 conv with ``pads`` (each <= 2) given dY."""
    return kernels(m).data_grad(dy, w, pads, H, W)


def weight_grad(dy, x, pads, m=M, v=None):
    """dW of the 3x3 stride-1 conv of ``x`` zero-padded by ``pads`` given dY (any pads);
    ``v`` the forward's kept transformed input (``forward(..., keep=True)``), or None."""
    return kernels(m).weight_grad(dy, x, pads, v)


def kept_bytes(x_shape, OH, OW, itemsize, m=M):
    """Bytes of the transformed input ``forward(..., keep=True)`` keeps: ``(m+2)^2`` values per
    channel and ``m x m`` output tile (2.25x the input at 32x32, F(4x4,3x3))."""
    N, C = x_shape[:2]
    return (m + 2) ** 2 * C * N * -(-OH // m) * -(-OW // m) * itemsize


def data_grad_supported(pads):
    """The data gradient runs as a Winograd forward conv when every pad is at most 2."""
    return max(pads[0] + pads[1]) <= 2
