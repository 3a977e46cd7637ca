"""The effective-receptive-field figure of ``cnncalc erf --output``: the mean |gradient| map,
upscaled, in the perceptual viridis colour map with a colour bar, the theoretical field
outlined (dashed), the region holding the mass share outlined (solid), and a title with the
layer and the numbers.

* SVG: pure Python + numpy (the base install): the map is an embedded PNG, the rest vector.
* PNG: drawn with matplotlib when it is installed (the ``[plot]`` extra); without it, the
  same picture without text (map, outlines, colour bar) from a small numpy PNG encoder, and
  the command says what to install for the labelled figure.

``res`` is the dict of :func:`cnncalc.runtime.erf.effective_field`.
"""
from __future__ import annotations

import base64
import io
import struct
import zlib
from xml.sax.saxutils import escape

import numpy as np

# viridis (van der Walt & Smith, matplotlib's default colour map) at 17 evenly spaced points,
# interpolated linearly in between: perceptually uniform and readable in grey and by
# colour-blind readers.
VIRIDIS_ANCHORS = np.array([
    (68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139), (51, 99, 141),
    (44, 114, 142), (38, 130, 142), (33, 145, 140), (31, 160, 136), (40, 174, 128), (63, 188, 115),
    (94, 201, 98), (132, 212, 75), (173, 220, 48), (216, 226, 25), (253, 231, 37)], dtype=float)
FIELD_COLOUR = (255, 255, 255)  # the theoretical field: dashed white
MASS_COLOUR = (255, 64, 64)  # the mass-share region: solid red
TARGET_PX = 448  # the map is upscaled (nearest neighbour) to about this many pixels a side


def viridis(t: np.ndarray) -> np.ndarray:
    """RGB uint8 for values in [0, 1]."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0) * (len(VIRIDIS_ANCHORS) - 1)
    i = np.minimum(t.astype(int), len(VIRIDIS_ANCHORS) - 2)
    f = (t - i)[..., None]
    return np.round(VIRIDIS_ANCHORS[i] * (1 - f) + VIRIDIS_ANCHORS[i + 1] * f).astype(np.uint8)


def scale_for(shape) -> int:
    return max(1, TARGET_PX // max(shape))


def mass_mask(m: np.ndarray, k: int) -> np.ndarray:
    """The k largest pixels (the region holding the mass share), ties broken by position."""
    mask = np.zeros(m.shape, dtype=bool)
    if k > 0:
        idx = np.argsort(-m.ravel(), kind="stable")[:k]
        mask.ravel()[idx] = True
    return mask


def mask_edges(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Unit segments (x0, y0, x1, y1) in pixel-corner coordinates between pixels in and out."""
    pad = np.pad(mask, 1)
    hz = pad[:-1, 1:-1] != pad[1:, 1:-1]  # (H+1, W): edge at y between rows y-1 and y
    vt = pad[1:-1, :-1] != pad[1:-1, 1:]  # (H, W+1): edge at x between columns x-1 and x
    ys, xs = np.nonzero(hz)
    segs = [(x, y, x + 1, y) for y, x in zip(ys.tolist(), xs.tolist())]
    ys, xs = np.nonzero(vt)
    segs += [(x, y, x, y + 1) for y, x in zip(ys.tolist(), xs.tolist())]
    return segs


def png_rgb(img: np.ndarray) -> bytes:
    """An 8-bit PNG with zlib only: RGB for an (h, w, 3) array, greyscale for (h, w)."""
    h, w = img.shape[:2]
    img = np.ascontiguousarray(img, dtype=np.uint8)
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    colour = 2 if img.ndim == 3 else 0
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def map_raster(m: np.ndarray, scale: int) -> np.ndarray:
    top = float(m.max()) or 1.0
    rgb = viridis(m / top)
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def _numbers(res) -> tuple[str, str]:
    (r0, r1), (c0, c1) = res["field"]
    fh, fw = r1 - r0 + 1, c1 - c0 + 1
    line1 = (f"theoretical field {fh}x{fw} = {res['field_area']} px (dashed); "
             f"{res['mass']:.0%} of the mass on {res['mass_area']} px = {res['fraction']:.1%} of it (solid)")
    line2 = (f"support {res['support_area']} px; mean |d unit / d input| over {res['samples']} random inputs"
             + (f", conv {res['conv_algo']}" if res.get("conv_algo") else ""))
    return line1, line2


def title_of(res, net: str) -> str:
    return f"{net}: effective receptive field of {res['layer']}, unit {tuple(res['unit'])}"


# ------------------------------------------------------------------------------------------ SVG
def to_svg(res, net: str) -> str:
    m = res["map"]
    H, W = m.shape
    s = scale_for(m.shape)
    img = base64.b64encode(png_rgb(map_raster(m, s))).decode()
    left, top = 24, 86
    mw, mh = W * s, H * s
    cbx = left + mw + 24
    width = max(cbx + 110, 760)
    height = top + mh + 40
    (r0, r1), (c0, c1) = res["field"]
    vmax = float(m.max())
    stops = "".join(f'<stop offset="{i / 16:.4f}" stop-color="rgb{tuple(int(v) for v in VIRIDIS_ANCHORS[i])}"/>'
                    for i in range(17))
    l1, l2 = _numbers(res)
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{left}" y="28" font-size="17" font-weight="bold">{escape(title_of(res, net))}</text>',
           f'<text x="{left}" y="52" font-size="13">{escape(l1)}</text>',
           f'<text x="{left}" y="70" font-size="13" fill="#444">{escape(l2)}</text>',
           f'<image x="{left}" y="{top}" width="{mw}" height="{mh}" style="image-rendering:pixelated" '
           f'href="data:image/png;base64,{img}"/>',
           f'<rect x="{left + c0 * s}" y="{top + r0 * s}" width="{(c1 - c0 + 1) * s}" height="{(r1 - r0 + 1) * s}" '
           f'fill="none" stroke="rgb{FIELD_COLOUR}" stroke-width="2" stroke-dasharray="7 5"/>']
    segs = mask_edges(mass_mask(m, res["mass_area"]))
    if segs:
        d = " ".join(f"M{left + x0 * s},{top + y0 * s}L{left + x1 * s},{top + y1 * s}" for x0, y0, x1, y1 in segs)
        out.append(f'<path d="{d}" fill="none" stroke="rgb{MASS_COLOUR}" stroke-width="2" stroke-linecap="square"/>')
    out.append(f'<defs><linearGradient id="cb" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient></defs>')
    out.append(f'<rect x="{cbx}" y="{top}" width="18" height="{mh}" fill="url(#cb)" stroke="#555"/>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + mh - frac * mh
        out.append(f'<line x1="{cbx + 18}" y1="{y:.1f}" x2="{cbx + 23}" y2="{y:.1f}" stroke="#555"/>')
        out.append(f'<text x="{cbx + 26}" y="{y + 4:.1f}" font-size="11">{frac * vmax:.3g}</text>')
    out.append(f'<text x="{cbx}" y="{top + mh + 18}" font-size="11" fill="#444">mean |gradient|</text>')
    out.append(f'<text x="{left}" y="{top + mh + 18}" font-size="11" fill="#444">input {H}x{W} pixels, '
               f'each drawn {s}x{s}</text>')
    out.append("</svg>\n")
    return "".join(out)


# ------------------------------------------------------------------------------------------ PNG
def to_png(res, net: str) -> tuple[bytes, bool]:
    """(PNG bytes, labelled?) — labelled with matplotlib, a text-free raster without it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return _png_plain(res), False
    return _png_matplotlib(res, net), True


def _png_plain(res) -> bytes:
    m = res["map"]
    s = scale_for(m.shape)
    img = map_raster(m, s)
    H, W = m.shape
    (r0, r1), (c0, c1) = res["field"]
    # dashed field outline
    y0, y1, x0, x1 = r0 * s, (r1 + 1) * s - 1, c0 * s, (c1 + 1) * s - 1
    dash = (np.arange(max(img.shape[:2])) // 6) % 2 == 0
    for y in (y0, y1):
        xs = np.arange(x0, x1 + 1)
        img[y, xs[dash[: len(xs)]]] = FIELD_COLOUR
    for x in (x0, x1):
        ys = np.arange(y0, y1 + 1)
        img[ys[dash[: len(ys)]], x] = FIELD_COLOUR
    for ex0, ey0, ex1, ey1 in mask_edges(mass_mask(m, res["mass_area"])):
        if ey0 == ey1:
            yy = min(ey0 * s, H * s - 1)
            img[max(yy - 1, 0):yy + 1, ex0 * s:ex1 * s] = MASS_COLOUR
        else:
            xx = min(ex0 * s, W * s - 1)
            img[ey0 * s:ey1 * s, max(xx - 1, 0):xx + 1] = MASS_COLOUR
    # colour bar on the right, on white
    gap, bar = 16, 18
    out = np.full((img.shape[0], img.shape[1] + gap + bar + 8, 3), 255, dtype=np.uint8)
    out[:, : img.shape[1]] = img
    ramp = viridis(np.linspace(1, 0, img.shape[0]))
    out[:, img.shape[1] + gap: img.shape[1] + gap + bar] = ramp[:, None, :]
    return png_rgb(out)


def _png_matplotlib(res, net: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    m = res["map"]
    H, W = m.shape
    fig = Figure(figsize=(8.2, 7.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.08, 0.72, 0.74))
    im = ax.imshow(m, cmap="viridis", interpolation="nearest", vmin=0, vmax=float(m.max()) or 1.0,
                   extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    (r0, r1), (c0, c1) = res["field"]
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor="white",
                           linestyle=(0, (4, 3)), linewidth=1.8))
    segs = [((x0 - 0.5, y0 - 0.5), (x1 - 0.5, y1 - 0.5)) for x0, y0, x1, y1 in mask_edges(mass_mask(m, res["mass_area"]))]
    if segs:
        ax.add_collection(LineCollection(segs, colors=[tuple(c / 255 for c in MASS_COLOUR)], linewidths=1.8))
    ax.set_xlabel("input column")
    ax.set_ylabel("input row")
    cax = fig.add_axes((0.83, 0.08, 0.03, 0.74))
    cb = fig.colorbar(im, cax=cax)
    cb.set_label("mean |d unit / d input|")
    l1, l2 = _numbers(res)
    fig.text(0.07, 0.95, title_of(res, net), fontsize=13, fontweight="bold")
    fig.text(0.07, 0.91, l1.replace(" (dashed)", "").replace(" (solid)", ""), fontsize=9.5)
    fig.text(0.07, 0.875, l2, fontsize=9.5, color="#444444")
    ax.legend(handles=[Line2D([], [], color="white", linestyle=(0, (4, 3)), linewidth=1.8, label="theoretical field"),
                       Line2D([], [], color=tuple(c / 255 for c in MASS_COLOUR), linewidth=1.8,
                              label=f"{res['mass']:.0%} of the gradient mass")],
              loc="upper right", fontsize=8.5, facecolor="#333333", labelcolor="white", framealpha=0.85)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, facecolor="white")
    return buf.getvalue()
