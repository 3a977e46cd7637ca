"""Effective receptive field (Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive
Field in Deep Convolutional Neural Networks", NIPS 2016): the mean |∂ unit / ∂ input| of the
central unit of a layer over random inputs, with the network's random (He) weights.

Its size is given as the share of the theoretical (analytic, clipped) field that holds
``mass`` (95 %) of the gradient: the smallest set of pixels, largest first.
"""
from __future__ import annotations

import io

import numpy as np

from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.runtime.executor import Net

SHADES = " ░▒▓█"
# A pixel is in the support when its mean |gradient| exceeds this share of the map's maximum.
# Exact zeros stay zero with the direct and im2col convolutions, but an FFT convolution leaves
# round-off of about 1e-16 of the largest value on every pixel; float64 arithmetic of a real
# gradient through the networks we ship stays far above 1e-9 of the maximum.
SUPPORT_RTOL = 1e-9


def effective_field(graph, layer, *, samples=8, mass=0.95, conv_algo="auto", seed=0):
    net = Net(graph, dtype="float64", conv_algo=conv_algo, seed=seed)
    rng = np.random.default_rng(seed)
    H, W, C = graph.input_shape
    acc = np.zeros((H, W))
    for _ in range(samples):
        x = rng.standard_normal((1, C, H, W))
        y = net.forward(x, upto=layer)[layer]
        d = np.zeros_like(y)
        if y.ndim == 4:
            unit = (y.shape[2] // 2, y.shape[3] // 2)
            d[0, :, unit[0], unit[1]] = 1.0
        else:
            unit = (0, 0)
            d[0, :] = 1.0
        dx = net.backward({layer: d})
        acc += np.abs(dx[0]).sum(axis=0)
    acc /= samples
    top = float(acc.max()) if acc.size else 0.0
    tol = SUPPORT_RTOL * top
    acc = np.where(acc > tol, acc, 0.0)  # round-off is not support: neither counted nor shaded
    rep = receptive_fields(graph)
    nd_unit = tuple(unit[: len(rep[layer].axes)])
    field = unit_field(rep, layer, nd_unit).clipped
    (r0, r1), (c0, c1) = field
    field_area = (r1 - r0 + 1) * (c1 - c0 + 1)
    vals = np.sort(acc.ravel())[::-1]
    total = vals.sum()
    if total > 0:
        k = int(np.searchsorted(np.cumsum(vals), mass * total) + 1)
    else:
        k = 0
    return {"layer": layer, "unit": list(unit), "field": [list(field[0]), list(field[1])],
            "field_area": int(field_area), "mass": mass, "mass_area": k,
            "fraction": k / field_area if field_area else 0.0,
            "support_area": int(np.count_nonzero(acc)), "support_rtol": SUPPORT_RTOL,
            "samples": samples, "conv_algo": conv_algo, "map": acc}


def heatmap_lines(m, field, max_width=64):
    """The map cropped to the theoretical field (plus a 1-pixel frame), in unicode shades."""
    (r0, r1), (c0, c1) = field
    r0, c0 = max(r0 - 1, 0), max(c0 - 1, 0)
    r1, c1 = min(r1 + 1, m.shape[0] - 1), min(c1 + 1, m.shape[1] - 1)
    crop = m[r0:r1 + 1, c0:c1 + 1]
    step = max(1, -(-crop.shape[1] // max_width))
    if step > 1:  # block-average down to the terminal width
        h, w = crop.shape[0] // step * step, crop.shape[1] // step * step
        crop = crop[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    top = crop.max() or 1.0
    levels = np.clip(np.ceil(crop / top * (len(SHADES) - 1)), 0, len(SHADES) - 1).astype(int)
    wide = 2 if crop.shape[1] * 2 <= max_width else 1
    return ["".join(SHADES[v] * wide for v in row) for row in levels]


def to_gray(m):
    top = m.max() or 1.0
    return np.round(m / top * 255).astype(np.uint8)


def png_bytes(gray: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG, written with zlib only (no Pillow)."""
    from cnncalc.report.erf_figure import png_rgb

    return png_rgb(gray)


def write_map(m, path: str, *, res=None, net: str = "") -> bool:
    """Write the map: .png/.svg as the figure (cnncalc.report.erf_figure) when ``res`` is given,
    .csv/.pgm as raw values. Returns False when the PNG had to go without text (no matplotlib)."""
    from cnncalc.fsutil import atomic_write_bytes

    low = path.lower()
    labelled = True
    if low.endswith(".csv"):
        buf = io.StringIO()
        np.savetxt(buf, m, delimiter=",", fmt="%.6g")
        data = buf.getvalue().encode()
    elif low.endswith((".png", ".svg")) and res is not None:
        from cnncalc.report import erf_figure

        if low.endswith(".svg"):
            data = erf_figure.to_svg(res, net).encode()
        else:
            data, labelled = erf_figure.to_png(res, net)
    elif low.endswith(".png"):
        data = png_bytes(to_gray(m))
    elif low.endswith(".pgm"):
        g = to_gray(m)
        data = f"P5\n{g.shape[1]} {g.shape[0]}\n255\n".encode() + g.tobytes()
    else:
        raise ValueError(path)
    atomic_write_bytes(path, data)
    return labelled
