"""The layer graph as PNG, drawn with matplotlib (the optional ``[plot]`` extra) from the same
Layout as the SVG: same boxes, same routes, same colours."""
from __future__ import annotations

import io

from cnncalc.errors import CnnCalcError
from cnncalc.report.graph import LABEL_PX, LINE_GAP, NAME_PX, PAD_Y, TEXT_PX, Layout, label_at
from cnncalc.report.svg import colours

MAX_PX = 32000  # Agg draws at most 2^16 pixels a side; stay well inside
PT = 0.72  # points per layout unit (a layout unit is one pixel at 100 dpi)
DPI = 100


def render_png(layout: Layout, dpi: float = DPI) -> bytes:
    """The picture at ``dpi`` (100: one pixel per layout unit; 200: twice as sharp and as large)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path as MPath

    W, H = layout.width, layout.height
    pw, ph = round(W * dpi / DPI), round(H * dpi / DPI)
    if max(pw, ph) > MAX_PX:
        raise CnnCalcError(f"the picture would be {pw}x{ph} pixels, more than a PNG of {MAX_PX} pixels a side: "
                           "collapse modules with --depth 1 or 2, lower --dpi/--scale, or write .svg (any size)")
    if min(pw, ph) < 1:
        raise CnnCalcError(f"the picture would be {pw}x{ph} pixels: raise --dpi/--scale")
    lr = layout.direction == "LR"
    fig = Figure(figsize=(W / DPI, H / DPI), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.axis("off")
    mono = {"family": "monospace"}
    ax.text(24, 30, layout.title, fontsize=14 * PT, fontweight="bold", va="baseline", ha="left", **mono)
    for e in layout.edges:
        pts = e.points
        verts, codes = [pts[0]], [MPath.MOVETO]
        px, py = pts[0]
        for i, (x, y) in enumerate(pts[1:]):
            if (y == py if lr else x == px) or i == 0:
                verts.append((x, y))
                codes.append(MPath.LINETO)
            elif lr:
                mx = (px + x) / 2
                verts += [(mx, py), (mx, y), (x, y)]
                codes += [MPath.CURVE4] * 3
            else:
                my = (py + y) / 2
                verts += [(px, my), (x, my), (x, y)]
                codes += [MPath.CURVE4] * 3
            px, py = x, y
        ax.add_patch(PathPatch(MPath(verts, codes), fill=False, edgecolor="#666666", linewidth=0.8))
        x, y = pts[-1]
        head = [(x - 7, y - 3.5), (x - 7, y + 3.5), (x, y)] if lr else [(x - 3.5, y - 7), (x + 3.5, y - 7), (x, y)]
        ax.add_patch(Polygon(head, closed=True, color="#666666"))
    for n in layout.real_nodes:
        if n.out_label:
            lx, ly = label_at(layout, n)
            ax.text(lx, ly, n.out_label, fontsize=LABEL_PX * PT, color="#555555",
                    ha="left", va="baseline", bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
                    **mono)
    for n in layout.real_nodes:
        fill, stroke = colours(n.kind)
        x0, y0, _, _ = n.box
        ax.add_patch(FancyBboxPatch((x0, y0), n.w, n.h, boxstyle="round,pad=0,rounding_size=5",
                                    facecolor=fill, edgecolor=stroke, linewidth=0.9))
        y = y0 + PAD_Y + NAME_PX - 2
        for i, line in enumerate(n.lines):
            last = i == len(n.lines) - 1
            ax.text(n.x, y, line, ha="center", va="baseline", fontsize=(NAME_PX if i == 0 else TEXT_PX) * PT,
                    fontweight="bold" if i == 0 else "normal",
                    color="#0b3d91" if (last and i) else "#1a1a1a", **mono)
            y += TEXT_PX + LINE_GAP
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
