"""Argument normalisation shared by the kernel modules (no numba here)."""
from __future__ import annotations

import numpy as np


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def pair(v, name="value"):
    """``3`` -> ``(3, 3)``; ``(2, 1)`` -> ``(2, 1)``."""
    if type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return v  # the executor's normal form: no conversion (a per-call cost in every kernel)
    if np.isscalar(v):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def pads2d(pad):
    """Normalise a 2-D padding spec to ``((top, bottom), (left, right))``.

    Accepts ``p``, ``(ph, pw)`` (symmetric per axis) or ``((t, b), (l, r))``.
    """
    if type(pad) is tuple and len(pad) == 2:  # the executor's normal form first (a per-call cost)
        a, b = pad
        if type(a) is tuple and type(b) is tuple and len(a) == len(b) == 2 and all(
                type(v) is int and v >= 0 for v in (*a, *b)):
            return pad
    if np.isscalar(pad):
        p = int(pad)
        return (p, p), (p, p)
    a, b = pad
    if np.isscalar(a) and np.isscalar(b):
        return (int(a), int(a)), (int(b), int(b))
    (t, bo), (l, r) = a, b
    out = (int(t), int(bo)), (int(l), int(r))
    if min(out[0] + out[1]) < 0:
        raise ValueError(f"negative padding is not supported: {pad!r}")
    return out


def pads1d(pad):
    """Normalise a 1-D padding spec ``p`` or ``(lo, hi)`` to ``(lo, hi)``."""
    if np.isscalar(pad):
        return int(pad), int(pad)
    lo, hi = pad
    return int(lo), int(hi)


def float_dtype(x):
    """float64 stays float64, everything else computes in float32."""
    return np.float64 if np.asarray(x).dtype == np.float64 else np.float32


def as_float(x, dtype=None):
    if type(x) is np.ndarray and x.flags.c_contiguous and (
            x.dtype == dtype if dtype is not None else (x.dtype == _F32 or x.dtype == _F64)):
        return x  # already a contiguous float array of the wanted dtype
    x = np.asarray(x)
    dtype = float_dtype(x) if dtype is None else dtype
    return np.ascontiguousarray(x, dtype=dtype)
