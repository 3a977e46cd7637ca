"""Kernels of the token layers (cnncalc/layers/attention.py): multi-head and window attention,
forward and backward, in numpy; the projections are the dense kernel's products and the softmax
is the tensor vocabulary's (kernels/tensor.py), so there is one implementation of each.

Layout: batch first, then one sample in PyTorch's order: tokens ``(n, N, C)``, a tensor of token
groups ``(n, …, N, C)``. Window attention follows timm's Swin (and the reference code): the
tokens of the H x W grid are rolled by −shift, split into window x window windows, attended
within each window with a relative position bias, and the shifted windows' wrapped regions
are kept apart by adding −100 to their scores; then put back and rolled by +shift.
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels import tensor as K_t

MASK = -100.0  # what timm and the reference code add to the scores of masked pairs


def rel_index(w: int, cls: bool = False) -> np.ndarray:
    """(w², w²) indices into the (2w − 1)² relative position bias table (Swin's). ``cls`` (BEiT's
    ``gen_relative_position_index``): (1 + w², 1 + w²) for a class token then the w x w window,
    into a table of (2w − 1)² + 3 rows: the class token's query reads row T − 3 at every patch key,
    every patch query reads T − 2 at the class token's key, cls → cls reads T − 1."""
    c = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
    r = c[:, :, None] - c[:, None, :] + (w - 1)
    idx = r[0] * (2 * w - 1) + r[1]
    if not cls:
        return idx
    t = (2 * w - 1) ** 2 + 3
    out = np.empty((w * w + 1, w * w + 1), idx.dtype)
    out[1:, 1:] = idx
    out[0, :] = t - 3
    out[:, 0] = t - 2
    out[0, 0] = t - 1
    return out


def partition(x: np.ndarray, w: int) -> np.ndarray:
    """(B, H, W, C) → (B·H/w·W/w, w², C), windows in row-major order."""
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def unpartition(x: np.ndarray, w: int, h: int, wd: int) -> np.ndarray:
    c = x.shape[-1]
    x = x.reshape(-1, h // w, wd // w, w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def shift_mask(h: int, wd: int, w: int, s: int) -> np.ndarray:
    """(windows, w², w²) additive mask of the shifted windows: MASK between regions the cyclic
    roll brought together, 0 elsewhere (timm's ``calculate_mask``)."""
    img = np.zeros((1, h, wd, 1))
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    mw = partition(img, w)[..., 0]
    return np.where(mw[:, None, :] != mw[:, :, None], MASK, 0.0)


class Plan:
    """What one attention layer needs besides its weights."""

    def __init__(self, heads, dk, dv, scale, window=None, shift=0, grid=None, dtype=np.float64, bias_window=None,
                 cls_bias=False):
        self.h, self.dk, self.dv, self.scale = heads, dk, dv, scale
        self.window, self.shift, self.grid = window, shift, grid
        bw = window or bias_window  # (bias_window: sequences that are windows already, MaxViT)
        self.index = rel_index(bw, cls_bias) if bw else None  # (cls_bias: BEiT's class-token rows)
        self.mask = shift_mask(*grid, window, shift).astype(dtype) if window and shift else None


def _to_windows(x3, plan):
    h, wd = plan.grid
    w, s = plan.window, plan.shift
    xi = x3.reshape(-1, h, wd, x3.shape[-1])
    if s:
        xi = np.roll(xi, (-s, -s), axis=(1, 2))
    return partition(xi, w)


def _from_windows(y, plan):
    h, wd = plan.grid
    s = plan.shift
    yi = unpartition(y, plan.window, h, wd)
    if s:
        yi = np.roll(yi, (s, s), axis=(1, 2))
    return yi.reshape(-1, h * wd, y.shape[-1])


def attention_fwd(x, p, plan):
    """``x`` (n, …, N, C); ``p`` the layer's parameters (qkv_weight, qkv_bias — or q_bias and
    v_bias, ``qkv_bias: qv``: the k part of the bias a fixed zero —, proj_weight, proj_bias,
    rel_pos_table): (y, cache)."""
    lead, (n_tok, c) = x.shape[:-2], x.shape[-2:]
    x3 = x.reshape(-1, n_tok, c)
    if plan.window:
        x3 = _to_windows(x3, plan)
    bp, n, _ = x3.shape
    h, dk, dv = plan.h, plan.dk, plan.dv
    qkv = x3 @ p["qkv_weight"].T
    if "qkv_bias" in p:
        qkv = qkv + p["qkv_bias"]
    elif "q_bias" in p:  # (qkv_bias: qv; qkv is the product's own array: added in place)
        qkv[..., :h * dk] += p["q_bias"]
        qkv[..., 2 * h * dk:] += p["v_bias"]
    q = qkv[..., :h * dk].reshape(bp, n, h, dk).transpose(0, 2, 1, 3)
    k = qkv[..., h * dk:2 * h * dk].reshape(bp, n, h, dk).transpose(0, 2, 1, 3)
    v = qkv[..., 2 * h * dk:].reshape(bp, n, h, dv).transpose(0, 2, 1, 3)
    qs = q * plan.scale
    a = qs @ np.swapaxes(k, -1, -2)
    if plan.index is not None and "rel_pos_table" in p:
        a = a + p["rel_pos_table"][plan.index.reshape(-1)].reshape(n, n, h).transpose(2, 0, 1)
    if plan.mask is not None:
        nw = plan.mask.shape[0]
        a = (a.reshape(-1, nw, h, n, n) + plan.mask[None, :, None]).reshape(bp, h, n, n)
    probs, sm = K_t.softmax_fwd(a, -1)
    o = probs @ v
    ctx = o.transpose(0, 2, 1, 3).reshape(bp, n, h * dv)
    if "proj_weight" in p:
        y = ctx @ p["proj_weight"].T
        if "proj_bias" in p:
            y = y + p["proj_bias"]
    else:
        y = ctx
    if plan.window:
        y = _from_windows(y, plan)
    y = np.ascontiguousarray(y.reshape(*lead, n_tok, y.shape[-1]))
    return y, (x3, qs, k, v, sm, probs, ctx, x.shape)


def attention_bwd(dy, cache, p, plan, need_dx=True):
    """(dx, {parameter: gradient})."""
    x3, qs, k, v, sm, probs, ctx, xshape = cache
    bp, n, _ = x3.shape
    h, dk, dv = plan.h, plan.dk, plan.dv
    d3 = dy.reshape(-1, dy.shape[-2], dy.shape[-1])
    if plan.window:
        d3 = _to_windows(d3, plan)
    g = {}
    if "proj_weight" in p:
        g["proj_weight"] = d3.reshape(-1, d3.shape[-1]).T @ ctx.reshape(-1, h * dv)
        if "proj_bias" in p:
            g["proj_bias"] = d3.reshape(-1, d3.shape[-1]).sum(axis=0)
        dctx = d3 @ p["proj_weight"]
    else:
        dctx = d3
    do = dctx.reshape(bp, n, h, dv).transpose(0, 2, 1, 3)
    dp = do @ np.swapaxes(v, -1, -2)
    dvv = np.swapaxes(probs, -1, -2) @ do
    da = K_t.softmax_bwd(dp, sm)
    if plan.index is not None and "rel_pos_table" in p:
        dt = np.zeros_like(p["rel_pos_table"])
        np.add.at(dt, plan.index.reshape(-1), da.sum(axis=0).transpose(1, 2, 0).reshape(n * n, h))
        g["rel_pos_table"] = dt
    dqs = da @ k
    dk_ = np.swapaxes(da, -1, -2) @ qs
    dq = dqs * plan.scale
    dqkv = np.concatenate([dq.transpose(0, 2, 1, 3).reshape(bp, n, h * dk),
                           dk_.transpose(0, 2, 1, 3).reshape(bp, n, h * dk),
                           dvv.transpose(0, 2, 1, 3).reshape(bp, n, h * dv)], axis=-1)
    f = dqkv.reshape(-1, dqkv.shape[-1])
    g["qkv_weight"] = f.T @ x3.reshape(-1, x3.shape[-1])
    if "qkv_bias" in p:
        g["qkv_bias"] = f.sum(axis=0)
    elif "q_bias" in p:  # (the fixed-zero k bias has no gradient)
        g["q_bias"] = f[:, :h * dk].sum(axis=0)
        g["v_bias"] = f[:, 2 * h * dk:].sum(axis=0)
    dx = None
    if need_dx:
        dx3 = dqkv @ p["qkv_weight"]
        if plan.window:
            dx3 = _from_windows(dx3, plan)
        dx = np.ascontiguousarray(dx3.reshape(xshape))
    return dx, g


def merge_fwd(x, grid):
    """Swin's patch merging rearrangement: (n, H·W, C) → (n, H/2·W/2, 4C) in timm's order
    (x.reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5): the column offset, then the row)."""
    b, _, c = x.shape
    h, w = grid
    y = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 4, 2, 5)
    return np.ascontiguousarray(y.reshape(b, (h // 2) * (w // 2), 4 * c))


def merge_bwd(dy, grid, c):
    b = dy.shape[0]
    h, w = grid
    d = dy.reshape(b, h // 2, w // 2, 2, 2, c).transpose(0, 1, 4, 2, 3, 5)
    return np.ascontiguousarray(d.reshape(b, h * w, c))
