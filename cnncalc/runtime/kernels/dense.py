"""Fully connected layer: ``y = x @ W.T + b`` (numpy GEMM; see conv.py for why no njit GEMM).

``dense_forward(x, w, b=None) -> (y, cache)``  -- ``x (N, in)``, ``w (out, in)``, ``b (out,)``
``dense_backward(dout, cache, need_dx=True, need_dw=True) -> (dx, dw, db)`` -- ``db`` None
    without bias; skipped gradients are None.
An ``(N, C, H, W)`` input is flattened C-major (``x.reshape(N, -1)``), and ``dx`` gets
the input's shape back.
"""
from __future__ import annotations

from cnncalc.runtime.kernels._util import as_float


def dense_forward(x, w, b=None):
    x = as_float(x)
    shape = x.shape
    x2 = x.reshape(shape[0], -1)
    w = as_float(w, x.dtype)
    if w.shape[1] != x2.shape[1]:
        raise ValueError(f"dense: input features {x2.shape[1]} != weight in {w.shape[1]}")
    y = x2 @ w.T
    if b is not None:
        y += as_float(b, x.dtype)
    return y, (x2, w, b is not None, shape)


def dense_backward(dout, cache, need_dx=True, need_dw=True):
    """``(dx, dw, db)``; ``need_dx=False`` / ``need_dw=False`` skip (return None for) those."""
    x2, w, has_b, shape = cache
    dout = as_float(dout, x2.dtype)
    dx = (dout @ w).reshape(shape) if need_dx else None
    dw = dout.T @ x2 if need_dw else None
    db = dout.sum(axis=0) if has_b and need_dw else None
    return dx, dw, db
