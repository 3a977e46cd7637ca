"""Resampling along spatial axes: upsample (nearest, (bi/tri)linear), adaptive average and
max pooling, crop, padding (zero, reflect, replicate) — any number of spatial axes.

Everything linear here is separable: output = the input with one small matrix ``M``
(``out × in``) applied along each spatial axis in turn, and the backward applies the
transposes in reverse order.  The matrices follow PyTorch's ``F.interpolate`` /
``adaptive_*_pool`` index rules exactly:

* nearest: output o reads ⌊o·In/Out⌋;
* linear, ``align_corners``: source o·(In − 1)/(Out − 1); otherwise (o + ½)·In/Out − ½
  clamped at 0 (with ``scale_factor`` PyTorch uses 1/factor, the same ratio); weights
  1 − λ, λ on ⌊src⌋ and min(⌊src⌋ + 1, In − 1);
* adaptive average: window ⌊i·In/Out⌋ .. ⌈(i + 1)·In/Out⌉, weight 1/size;
* reflect / replicate padding: the index numpy's ``pad`` reads (PyTorch's too).

``axes`` are runtime axis numbers (2.. for ``(N, C, *spatial)``); a 1-D tensor carried as
``(N, C, 1, L)`` passes ``axes=(3,)``.  Adaptive max pooling is separable as well (the max
over a box is the max over each axis in turn); its gradient goes to the first maximum.
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels._util import as_float


def nearest_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), (np.arange(n_out) * n_in) // n_out] = 1
    return m


def linear_matrix(n_in, n_out, align_corners=False):
    o = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = o * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        src = np.maximum((o + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1 - lam)
    np.add.at(m, (np.arange(n_out), i1), lam)
    return m


def adaptive_windows(n_in, n_out):
    return [((i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)) for i in range(n_out)]


def adaptive_avg_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for i, (s, e) in enumerate(adaptive_windows(n_in, n_out)):
        m[i, s:e] = 1.0 / (e - s)
    return m


def pad_matrix(n_in, lo, hi, mode):
    """The (n_in + lo + hi) × n_in selection matrix of zero / reflect / replicate padding."""
    idx = np.arange(-lo, n_in + hi)
    m = np.zeros((idx.size, n_in))
    if mode == "reflect":
        src = np.abs(idx)
        src = np.where(src > n_in - 1, 2 * (n_in - 1) - src, src)
    elif mode == "replicate":
        src = np.clip(idx, 0, n_in - 1)
    else:
        keep = (idx >= 0) & (idx < n_in)
        m[np.nonzero(keep)[0], idx[keep]] = 1
        return m
    m[np.arange(idx.size), src] = 1
    return m


def _apply(x, m, ax):
    y = np.tensordot(x, m.astype(x.dtype, copy=False), axes=([ax], [1]))
    return np.moveaxis(y, -1, ax)


def axis_linear_forward(x, mats, axes):
    """Apply ``mats[i]`` along runtime axis ``axes[i]``; returns (y, cache)."""
    x = as_float(x)
    y = x
    for m, ax in zip(mats, axes):
        if m is not None:
            y = _apply(y, m, ax)
    return np.ascontiguousarray(y), (mats, axes)


def axis_linear_backward(dout, cache):
    mats, axes = cache
    dx = as_float(dout)
    for m, ax in reversed(list(zip(mats, axes))):
        if m is not None:
            dx = _apply(dx, m.T, ax)
    return np.ascontiguousarray(dx)


def adaptive_max_forward(x, sizes, axes):
    x = as_float(x)
    steps = []
    y = x
    for n_out, ax in zip(sizes, axes):
        wins = adaptive_windows(y.shape[ax], n_out)
        parts, args = [], []
        for s, e in wins:
            sl = np.take(y, np.arange(s, e), axis=ax)
            a = np.argmax(sl, axis=ax)
            parts.append(np.expand_dims(np.take_along_axis(sl, np.expand_dims(a, ax), ax).squeeze(ax), ax))
            args.append(a + s)
        steps.append((y.shape, ax, np.stack(args, axis=ax)))
        y = np.concatenate(parts, axis=ax)
    return y, steps


def adaptive_max_backward(dout, steps):
    dx = as_float(dout)
    for shape, ax, arg in reversed(steps):
        g = np.zeros(shape, dx.dtype)
        # scatter each output's gradient to its argmax along ax (windows may overlap: add)
        idx = list(np.indices(arg.shape, sparse=True))
        idx[ax] = arg
        np.add.at(g, tuple(idx), dx)
        dx = g
    return dx


def crop_forward(x, crops, axes):
    sl = [slice(None)] * x.ndim
    for (lo, hi), ax in zip(crops, axes):
        sl[ax] = slice(lo, x.shape[ax] - hi)
    return x[tuple(sl)], (x.shape, tuple(sl))


def crop_backward(dout, cache):
    shape, sl = cache
    dx = np.zeros(shape, dout.dtype)
    dx[sl] = dout
    return dx


def zero_pad_forward(x, pads, axes):
    x = as_float(x)
    width = [(0, 0)] * x.ndim
    for p, ax in zip(pads, axes):
        width[ax] = p
    y = np.pad(x, width)
    return y, crop_forward(y, pads, axes)[1]


def zero_pad_backward(dout, cache):
    shape, sl = cache
    return np.ascontiguousarray(dout[sl])
