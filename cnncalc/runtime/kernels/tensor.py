"""Kernels of the low-level tensor vocabulary (cnncalc/layers/tensor.py): numpy ufuncs,
``np.matmul`` and reductions, forward and backward; numba only for erf's loop.

Layout: batch first, then one sample in PyTorch's order — images are NCHW already, 1-D images
(the runtime's ``(N, C, 1, L)``) are viewed as ``(N, C, L)`` on the way in and back on the way
out (:func:`to_torch`, :func:`from_torch`). A constant operand gets a leading batch axis of 1;
operands of different per-sample rank are lined up by size-1 axes after the batch axis, so
broadcasting is per sample, as the shape rules say (:func:`align`).

Every ``*_fwd(layer, xs, **kw) -> (y, cache)`` takes the operands in operand order (runtime
arrays, constants included) and every ``*_bwd(dy, cache) -> [gradient per operand]`` returns
the gradients in that order, each summed back to its operand's shape (a constant's over the
batch too).
"""
from __future__ import annotations

import math

import numpy as np

from cnncalc.layers.tensor import pad_source
from cnncalc.runtime._numba import njit


# ----------------------------------------------------------------------------- layouts
def to_torch(x, shape):
    """A runtime array of spec shape ``shape`` in PyTorch's order (a view)."""
    if shape.__class__ is tuple and len(shape) == 2:  # a 1-D image: (N, C, 1, L) → (N, C, L)
        return x.reshape(x.shape[0], x.shape[1], x.shape[3])
    return x


def from_torch(y, shape):
    """The runtime layout of a result of spec shape ``shape`` (a view)."""
    if shape.__class__ is tuple and len(shape) == 2:
        return y.reshape(y.shape[0], y.shape[1], 1, y.shape[2])
    return y


def align(a, rank):
    """``a`` (batch, *dims) with size-1 axes after the batch axis up to per-sample ``rank``."""
    k = rank - (a.ndim - 1)
    return a if k <= 0 else a.reshape(a.shape[0], *(1,) * k, *a.shape[1:])


def unbroadcast(g, shape):
    """Sum a gradient ``g`` back to ``shape``: an operand's runtime shape, batch axis first
    (lined up with ``g`` by size-1 axes after it, as :func:`align` does)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    tgt = (shape[0], *(1,) * (g.ndim - len(shape)), *shape[1:])
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, tgt)) if b == 1 and a != 1)
    g = g.sum(axis=axes, keepdims=True) if axes else g
    return g.reshape(shape)


def _aligned(xs):
    r = max(x.ndim for x in xs) - 1
    return [align(x, r) for x in xs]


# ----------------------------------------------------------------------------- matmul
def matmul_fwd(a, b):
    """Per-sample ``torch.matmul``: 1-D operands promoted, batch axes broadcast."""
    sa, sb = a.shape, b.shape
    pa, pb = a.ndim == 2, b.ndim == 2  # a 1-D sample
    a2 = a[:, None, :] if pa else a
    b2 = b[:, :, None] if pb else b
    a2, b2 = _aligned([a2, b2])
    with np.errstate(over="ignore", invalid="ignore"):  # (as the elementwise kernels: an overflow is
        y = np.matmul(a2, b2)                          # an inf in the result, which callers check)
    out = y
    if pb:
        out = out[..., 0]
    if pa:
        out = out[..., 0, :] if not pb else out[..., 0]
    return np.ascontiguousarray(out), (a2, b2, sa, sb, y.shape)


def matmul_bwd(dy, cache):
    a2, b2, sa, sb, ys = cache
    g = dy.reshape(ys)
    with np.errstate(over="ignore", invalid="ignore"):
        da = unbroadcast(np.matmul(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(sa)
        db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g), b2.shape).reshape(sb)
    return [da, db]


# ----------------------------------------------------------------------------- elementwise
def binary_fwd(op, a, b):
    a, b = _aligned([a, b])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = _BINARY[op](a, b)
    return y, (op, a, b, y)


_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
           "max": np.maximum, "min": np.minimum}


def binary_bwd(dy, cache, shapes):
    op, a, b, y = cache
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == "add":
            ga, gb = dy, dy
        elif op == "sub":
            ga, gb = dy, -dy
        elif op == "mul":
            ga, gb = dy * b, dy * a
        elif op == "div":
            ga, gb = dy / b, -dy * y / b
        elif op == "pow":  # as torch: d/da = b·a^(b−1), d/db = y·ln a (0 where a = 0, b > 0... as torch)
            ga = dy * b * np.power(a, b - 1)
            gb = dy * y * np.log(np.where(a > 0, a, 1)) * (a > 0)
        else:  # max / min: the gradient goes to the larger / smaller, split evenly on a tie (torch)
            pick = (a > b) if op == "max" else (a < b)
            tie = (a == b) * 0.5
            ga, gb = dy * (pick + tie), dy * ((~pick & (a != b)) + tie)
    return [unbroadcast(np.asarray(ga, dy.dtype), shapes[0]), unbroadcast(np.asarray(gb, dy.dtype), shapes[1])]


def where_fwd(cond, a, b):
    cond, a, b = _aligned([cond, a, b])
    c = cond != 0
    return np.where(c, a, b), (c,)


def where_bwd(dy, cache, shapes):
    (c,) = cache
    return [None, unbroadcast(dy * c, shapes[1]), unbroadcast(dy * ~c, shapes[2])]


@njit
def _erf(flat, o):  # serial loop over the values (numpy has no erf)
    for i in range(flat.size):
        o[i] = math.erf(flat[i])


def erf(x):
    """erf of every value (also GELU's, kernels/activation_ext.py). The kernel sees 1-D arrays
    only: one compilation per dtype, not one per rank as well."""
    out = np.empty_like(x, order="C")
    _erf(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


_UNARY = {"neg": np.negative, "abs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
          "reciprocal": np.reciprocal, "erf": erf, "sin": np.sin, "cos": np.cos, "floor": np.floor,
          "ceil": np.ceil, "round": np.round, "sign": np.sign}
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def unary_fwd(op, x):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = _UNARY[op](x)
    return y, (op, x, y)


def unary_bwd(dy, cache):
    op, x, y = cache
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = {"neg": lambda: -dy, "abs": lambda: dy * np.sign(x), "sqrt": lambda: dy / (2 * y),
             "exp": lambda: dy * y, "log": lambda: dy / x, "reciprocal": lambda: -dy * y * y,
             "erf": lambda: dy * _TWO_OVER_SQRT_PI * np.exp(-x * x), "sin": lambda: dy * np.cos(x),
             "cos": lambda: -dy * np.sin(x)}.get(op, lambda: np.zeros_like(dy))()
    return d.astype(dy.dtype, copy=False)


# ----------------------------------------------------------------------------- reductions
def reduce_fwd(op, x, axes, keepdims):
    """``axes`` are runtime axes (the sample's + 1)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == "sum":
            y = x.sum(axis=axes, keepdims=True)
        elif op == "mean":
            y = x.mean(axis=axes, keepdims=True)
        elif op == "max":
            y = x.max(axis=axes, keepdims=True)
        elif op == "min":
            y = x.min(axis=axes, keepdims=True)
        elif op == "prod":
            y = x.prod(axis=axes, keepdims=True)
        elif op == "l1":
            y = np.abs(x).sum(axis=axes, keepdims=True)
        elif op == "sumsquare":
            y = (x * x).sum(axis=axes, keepdims=True)
        elif op == "l2":
            y = np.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:  # logsumexp
            m = x.max(axis=axes, keepdims=True)
            y = m + np.log(np.exp(x - m).sum(axis=axes, keepdims=True))
    out = y if keepdims else y.reshape([d for i, d in enumerate(y.shape) if i not in axes])
    return np.ascontiguousarray(out), (op, x, y, axes)


def reduce_bwd(dy, cache):
    op, x, y, axes = cache
    g = dy.reshape(y.shape)
    n = math.prod(x.shape[a] for a in axes)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == "sum":
            dx = np.broadcast_to(g, x.shape)
        elif op == "mean":
            dx = np.broadcast_to(g / n, x.shape)
        elif op in ("max", "min"):  # split evenly among ties (torch's amax / amin)
            hit = x == y
            dx = g * hit / hit.sum(axis=axes, keepdims=True)
        elif op == "prod":
            dx = g * _prod_others(x, axes)
        elif op == "l1":
            dx = g * np.sign(x)
        elif op == "sumsquare":
            dx = g * 2 * x
        elif op == "l2":
            dx = np.where(y > 0, g * x / np.where(y > 0, y, 1), 0)
        else:
            dx = g * np.exp(x - y)
    return np.ascontiguousarray(dx, dtype=dy.dtype)


def _prod_others(x, axes):
    """The product of the other reduced values, for every value (zeros allowed)."""
    rest = [a for a in range(x.ndim) if a not in axes]
    xt = np.transpose(x, rest + list(axes))
    shape = xt.shape
    f = xt.reshape(*shape[:len(rest)], -1)
    left = np.cumprod(np.concatenate([np.ones_like(f[..., :1]), f[..., :-1]], axis=-1), axis=-1)
    right = np.flip(np.cumprod(np.concatenate([np.ones_like(f[..., :1]), np.flip(f, -1)[..., :-1]], axis=-1),
                               axis=-1), -1)
    out = (left * right).reshape(shape)
    return np.transpose(out, np.argsort(rest + list(axes)))


def softmax_fwd(x, axis, log=False):
    z = x - x.max(axis=axis, keepdims=True)
    if log:
        y = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
    else:
        e = np.exp(z)
        y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis, log)


def softmax_bwd(dy, cache):
    y, axis, log = cache
    if log:
        return dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- moving values
def take_fwd(x, axis, index, view=False):
    """``np.take`` along runtime ``axis`` with an index array (any shape); one index with
    ``view``: a view (``torch.select``)."""
    idx = np.asarray(index, dtype=np.int64)
    if view:
        return x[(slice(None),) * axis + (int(idx),)], (x.shape, axis, idx)
    return np.take(x, idx, axis=axis), (x.shape, axis, idx)


def take_bwd(dy, cache):
    shape, axis, idx = cache
    dx = np.zeros(shape, dy.dtype)
    moved = np.moveaxis(dx, axis, 0)
    g = np.moveaxis(dy, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    np.add.at(moved, idx, g)
    return dx


def pad_index(n, lo, hi, mode):
    """Source index of every output unit of an axis of n padded by (lo, hi) (layers/tensor.py)."""
    return np.asarray(pad_source(n, lo, hi, mode), dtype=np.int64)


def pad_fwd(x, pads, mode, value=0.0):
    """``pads`` {runtime axis: (lo, hi)}; mode zero/constant (value), reflect or replicate."""
    if mode in ("zero", "constant"):
        widths = [pads.get(a, (0, 0)) for a in range(x.ndim)]
        return np.pad(x, widths, constant_values=value), (mode, pads, x.shape)
    y = x
    for a, (lo, hi) in pads.items():
        y = np.take(y, pad_index(x.shape[a], lo, hi, mode), axis=a)
    return y, (mode, pads, x.shape)


def pad_bwd(dy, cache):
    mode, pads, shape = cache
    if mode in ("zero", "constant"):
        return np.ascontiguousarray(dy[tuple(slice(lo, lo + shape[a]) if a in pads else slice(None)
                                             for a, (lo, _) in ((a, pads.get(a, (0, 0))) for a in range(dy.ndim)))])
    g = dy
    for a, (lo, hi) in reversed(list(pads.items())):
        part = list(g.shape)
        part[a] = shape[a]
        acc = np.zeros(part, dy.dtype)
        np.add.at(np.moveaxis(acc, a, 0), pad_index(shape[a], lo, hi, mode), np.moveaxis(g, a, 0))
        g = acc
    return g


def tile_fwd(x, reps):
    return np.tile(x, (1, *reps)), (x.shape, reps)


def tile_bwd(dy, cache):
    shape, reps = cache
    split = [shape[0]]
    for k, n in zip(reps, shape[1:]):
        split += [k, n]
    g = dy.reshape(split)
    return g.sum(axis=tuple(range(1, len(split), 2)))


# ----------------------------------------------------------------------------- relbias
def relbias_index(grid, stride, offsets: str) -> np.ndarray:
    """The (Nq, Nk) table index of a relbias layer (layers/tensor.py RelBias): per grid axis the
    offset q·s − k of query q (every s-th key position) from key k, |·| for ``abs`` or shifted
    by g − 1 for ``signed``, the digits joined in mixed radix (the first axis most significant)."""
    from cnncalc.layers.tensor import offset_table_size, query_grid

    qg = query_grid(grid, stride)
    digits = offset_table_size(grid, stride, offsets)
    qpos = np.stack(np.meshgrid(*(np.arange(n) * s for n, s in zip(qg, stride)), indexing="ij")).reshape(len(grid), -1)
    kpos = np.stack(np.meshgrid(*(np.arange(g) for g in grid), indexing="ij")).reshape(len(grid), -1)
    rel = qpos[:, :, None] - kpos[:, None, :]
    rel = np.abs(rel) if offsets == "abs" else rel + np.array(grid)[:, None, None] - 1
    idx = np.zeros(rel.shape[1:], dtype=np.int64)
    for d, n in zip(rel, digits):
        idx = idx * n + d
    return idx


def relbias_fwd(x, table, idx):
    """x + table[:, idx] ((heads, Nq, Nk) broadcast over x's leading axes; one head: (Nq, Nk))."""
    b = table[:, idx]
    return x + (b if table.shape[0] > 1 else b[0])


def relbias_bwd(dy, table_shape, idx):
    """dx = dy; dtable[h, t] = the sum of dy over every batch and leading entry and every
    (q, k) whose index is t (np.add.at scatters the gathered positions back)."""
    h = table_shape[0]
    g = dy.reshape(-1, h, *idx.shape).sum(axis=0)
    dt = np.zeros(table_shape, dtype=dy.dtype)
    for k in range(h):
        dt[k] = np.bincount(idx.reshape(-1), weights=g[k].reshape(-1), minlength=table_shape[1])
    return dt
