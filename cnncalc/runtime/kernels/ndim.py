"""Convolution, transposed convolution and pooling on any number of spatial axes (numpy).

The runtime's 1-D and 2-D layers use the tuned kernels of :mod:`.conv` and :mod:`.pool`;
3-D inputs ``(N, C, D, H, W)`` (video, volumes) use these, which are written once for
``d`` spatial axes: im2col as one strided view per kernel offset (``prod(kernel)`` copies,
no Python loop over positions), a batched GEMM per group, and col2im as the adjoint (the
same views, accumulated).  A transposed convolution is the data gradient of the
convolution with the roles of input and output exchanged (PyTorch's definition), so it
reuses the same three functions.

Arguments: ``stride``, ``dilation`` tuples of d ints; ``pads`` d pairs ``(lo, hi)``;
weights ``(F, C/groups, *kernel)`` (conv) and ``(C, F/groups, *kernel)`` (transposed).
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels._util import as_float


def _window(xp, off, stride, dil, out):
    return xp[(Ellipsis, *(slice(i * d, i * d + s * (o - 1) + 1, s)
                           for i, s, d, o in zip(off, stride, dil, out)))]


def _pad(x, pads):
    if not any(lo or hi for lo, hi in pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), *pads))


def out_size(shape, kernel, stride, pads, dil):
    return tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                 for n, k, s, (lo, hi), d in zip(shape, kernel, stride, pads, dil))


def _cols(xp, kernel, stride, dil, out, groups):
    """(N, G, Cg·K, O) column matrix of the padded input."""
    N, C = xp.shape[:2]
    K = len(list(np.ndindex(*kernel)))
    cols = np.empty((N, C, K, *out), xp.dtype)
    for j, off in enumerate(np.ndindex(*kernel)):
        cols[:, :, j] = _window(xp, off, stride, dil, out)
    return cols.reshape(N, groups, (C // groups) * K, -1)


def _col2im(dcols, padded_shape, kernel, stride, dil, out):
    N, C = padded_shape[:2]
    dcols = dcols.reshape(N, C, -1, *out)
    dxp = np.zeros(padded_shape, dcols.dtype)
    for j, off in enumerate(np.ndindex(*kernel)):
        _window(dxp, off, stride, dil, out)[...] += dcols[:, :, j]
    return dxp


def _unpad(dxp, pads):
    return dxp[(slice(None), slice(None), *(slice(lo, dxp.shape[2 + i] - hi) for i, (lo, hi) in enumerate(pads)))]


def conv_forward(x, w, b=None, stride=None, pads=None, dil=None, groups=1):
    x = as_float(x)
    w = as_float(w, x.dtype)
    d = x.ndim - 2
    stride, dil = stride or (1,) * d, dil or (1,) * d
    pads = pads or ((0, 0),) * d
    kernel = w.shape[2:]
    xp = _pad(x, pads)
    out = out_size(x.shape[2:], kernel, stride, pads, dil)
    cols = _cols(xp, kernel, stride, dil, out, groups)
    F = w.shape[0]
    wm = w.reshape(groups, F // groups, -1)
    y = np.matmul(wm, cols).reshape(x.shape[0], F, *out)
    if b is not None:
        y += as_float(b, x.dtype).reshape(1, F, *(1,) * d)
    return y, (cols, w, x.shape, xp.shape, stride, pads, dil, groups, b is not None)


def conv_data_grad(dy, w, padded_shape, pads, stride, dil, groups):
    N, F = dy.shape[:2]
    out = dy.shape[2:]
    wm = w.reshape(groups, F // groups, -1)
    dyr = dy.reshape(N, groups, F // groups, -1)
    dcols = np.matmul(wm.transpose(0, 2, 1), dyr)
    return _unpad(_col2im(dcols, padded_shape, w.shape[2:], stride, dil, out), pads)


def conv_backward(dout, cache, need_dx=True, need_dw=True):
    cols, w, x_shape, p_shape, stride, pads, dil, groups, has_b = cache
    dy = as_float(dout, w.dtype)
    N, F = dy.shape[:2]
    dx = conv_data_grad(dy, w, p_shape, pads, stride, dil, groups) if need_dx else None
    dw = db = None
    if need_dw:
        dyr = dy.reshape(N, groups, F // groups, -1)
        dw = np.matmul(dyr, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
        db = dy.reshape(N, F, -1).sum(axis=(0, 2)) if has_b else None
    return dx, dw, db


def conv_transpose_forward(x, w, b=None, stride=None, pads=None, dil=None, groups=1, output_padding=None):
    """PyTorch's conv_transpose: out = (In − 1)·s − lo − hi + d(k − 1) + 1 + output_padding."""
    x = as_float(x)
    w = as_float(w, x.dtype)
    d = x.ndim - 2
    stride, dil = stride or (1,) * d, dil or (1,) * d
    pads = pads or ((0, 0),) * d
    op = output_padding or (0,) * d
    kernel = w.shape[2:]
    N, F = x.shape[0], w.shape[1] * groups
    padded = (N, F, *((n - 1) * s + dd * (k - 1) + 1 + o
                      for n, s, dd, k, o in zip(x.shape[2:], stride, dil, kernel, op)))
    y = np.ascontiguousarray(conv_data_grad(x, w, padded, pads, stride, dil, groups))
    if b is not None:
        y += as_float(b, x.dtype).reshape(1, F, *(1,) * d)
    return y, (x, w, stride, pads, dil, groups, b is not None)


def conv_transpose_backward(dout, cache):
    x, w, stride, pads, dil, groups, has_b = cache
    dy = as_float(dout, x.dtype)
    d = x.ndim - 2
    dyp = _pad(dy, pads)
    out = x.shape[2:]
    cols = _cols(dyp, w.shape[2:], stride, dil, out, groups)
    C = w.shape[0]
    dx = np.matmul(w.reshape(groups, C // groups, -1), cols).reshape(x.shape)
    xr = x.reshape(x.shape[0], groups, C // groups, -1)
    dw = np.matmul(xr, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    db = dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=(0, 2)) if has_b else None
    del d
    return dx, dw, db


def maxpool_forward(x, kernel, stride, pads, out):
    """Max over windows (padding never wins); windows may reach past the input (ceil rule)."""
    x = as_float(x)
    hi = [max(0, (o - 1) * s + k - (n + lo)) for n, k, s, (lo, _), o in zip(x.shape[2:], kernel, stride, pads, out)]
    full = tuple((lo, h) for (lo, _), h in zip(pads, hi))
    xp = np.pad(x, ((0, 0), (0, 0), *full), constant_values=-np.inf)
    ones = (1,) * len(kernel)
    y = None
    for off in np.ndindex(*kernel):
        v = _window(xp, off, stride, ones, out)
        y = v.copy() if y is None else np.maximum(y, v)
    return y, ("max", x.shape, xp, y, kernel, stride, full, out)


def avgpool_forward(x, kernel, stride, pads, out, count_include_pad=True):
    x = as_float(x)
    hi = [max(0, (o - 1) * s + k - (n + lo)) for n, k, s, (lo, _), o in zip(x.shape[2:], kernel, stride, pads, out)]
    full = tuple((lo, h) for (lo, _), h in zip(pads, hi))
    xp = np.pad(x, ((0, 0), (0, 0), *full))
    # the divisor: window cells inside the input (or inside the spec's padding with count_include_pad)
    mask = np.zeros((1, 1, *xp.shape[2:]), x.dtype)
    inner = tuple(slice(0 if count_include_pad else lo, (lo + n + sh) if count_include_pad else lo + n)
                  for n, (lo, sh) in zip(x.shape[2:], pads))
    mask[(0, 0, *inner)] = 1
    ones = (1,) * len(kernel)
    y = np.zeros((*x.shape[:2], *out), x.dtype)
    cnt = np.zeros((1, 1, *out), x.dtype)
    for off in np.ndindex(*kernel):
        y += _window(xp, off, stride, ones, out)
        cnt += _window(mask, off, stride, ones, out)
    inv = 1.0 / np.maximum(cnt, 1)
    return y * inv, ("avg", x.shape, inv, kernel, stride, full, out)


def pool_backward(dout, cache):
    dout = as_float(dout)
    if cache[0] == "max":
        _, xshape, xp, y, kernel, stride, full, out = cache
        ones = (1,) * len(kernel)
        dxp = np.zeros(xp.shape, dout.dtype)
        taken = np.zeros(y.shape, bool)
        for off in np.ndindex(*kernel):
            hit = (_window(xp, off, stride, ones, out) == y) & ~taken
            taken |= hit
            _window(dxp, off, stride, ones, out)[...] += np.where(hit, dout, 0)
        return np.ascontiguousarray(_unpad(dxp, full))
    _, xshape, inv, kernel, stride, full, out = cache
    ones = (1,) * len(kernel)
    g = dout * inv
    dxp = np.zeros((*xshape[:2], *(n + lo + hi for n, (lo, hi) in zip(xshape[2:], full))), dout.dtype)
    for off in np.ndindex(*kernel):
        _window(dxp, off, stride, ones, out)[...] += g
    return np.ascontiguousarray(_unpad(dxp, full))
