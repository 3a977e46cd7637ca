"""The layer graph as SVG (pure Python: the base install draws it, no Graphviz, no system package)."""
from __future__ import annotations

from cnncalc.escape import xml_text
from cnncalc.report.graph import (LABEL_PX, LINE_GAP, NAME_PX, PAD_Y, TEXT_PX, GNode, Layout, label_at,
                                  text_width)

FONT = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"
# (fill, stroke) per layer family: pale fills so the dark text stays legible
COLOURS = {
    "input": ("#e8e8e8", "#777777"),
    "conv": ("#dbe8fb", "#3f6fb5"), "dwconv": ("#dbe8fb", "#3f6fb5"), "deconv": ("#dbe8fb", "#3f6fb5"),
    "fc": ("#e9dcf7", "#7b4bb3"),
    "maxpool": ("#dcf2df", "#3d8b4a"), "avgpool": ("#dcf2df", "#3d8b4a"),
    "global_avgpool": ("#dcf2df", "#3d8b4a"), "global_maxpool": ("#dcf2df", "#3d8b4a"),
    "concat": ("#fde7cf", "#c7772a"), "add": ("#fde7cf", "#c7772a"),
    "batchnorm": ("#f1f1f1", "#8a8a8a"), "lrn": ("#f1f1f1", "#8a8a8a"),
    "module": ("#fff6cc", "#a68a00"),
}
DEFAULT = ("#f6f0e6", "#8c7b5a")


def colours(kind: str) -> tuple[str, str]:
    if kind in COLOURS:
        return COLOURS[kind]
    if "pool" in kind:
        return COLOURS["maxpool"]
    return DEFAULT


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


class _Numbers(dict):
    """_f of each coordinate, formatted once (a column of boxes repeats its x, a row its y)."""
    def __missing__(self, x):
        s = self[x] = _f(x)
        return s


class _Memo(dict):
    """``fn`` of each string, worked out once (kinds, shapes and names repeat across boxes,
    edges and labels; one table per picture)."""
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __missing__(self, x):
        s = self[x] = self.fn(x)
        return s


def escape(s: str) -> str:
    """Text of an SVG element: & < > escaped (xml.sax.saxutils.escape without its Python-level
    loop), characters XML 1.0 forbids shown escaped."""
    return xml_text(s).replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(s: str) -> str:
    """xml.sax.saxutils.quoteattr of the XML-safe text, the same bytes, without its Python-level loop."""
    s = escape(s).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' in s:
        if "'" in s:
            return '"%s"' % s.replace('"', "&quot;")
        return "'%s'" % s
    return '"%s"' % s


_escape, _quoteattr = escape, quoteattr


def edge_path(points: list[tuple[float, float]], lr: bool = False, _f=_f) -> str:
    """Straight segments inside a row (stems, lanes), vertical-tangent curves between rows
    (left to right: horizontal-tangent curves between columns)."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{_f(x0)},{_f(y0)}"]
    px, py = x0, y0
    for i, (x, y) in enumerate(rest):
        if (y == py if lr else x == px) or i == 0:
            d.append(f"L{_f(x)},{_f(y)}")
        elif lr:
            mx = (px + x) / 2
            d.append(f"C{_f(mx)},{_f(py)} {_f(mx)},{_f(y)} {_f(x)},{_f(y)}")
        else:
            my = (py + y) / 2
            d.append(f"C{_f(px)},{_f(my)} {_f(x)},{_f(my)} {_f(x)},{_f(y)}")
        px, py = x, y
    return " ".join(d)


def node_svg(n: GNode, _f=_f, escape=escape, quoteattr=quoteattr) -> str:
    fill, stroke = colours(n.kind)
    x0, y0, _, _ = n.box
    out = [f'<g class="node" data-name={quoteattr(n.id)} data-kind={quoteattr(n.kind)}>',
           f"<title>{escape(chr(10).join(n.lines + n.members[1:4] + (['…'] if len(n.members) > 4 else [])))}</title>",
           f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(n.w)}" height="{_f(n.h)}" rx="5" '
           f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>']
    y = y0 + PAD_Y + NAME_PX - 2
    for i, line in enumerate(n.lines):
        cls = "nm" if i == 0 else ("sh" if i == len(n.lines) - 1 else "ty")
        out.append(f'<text class="{cls}" x="{_f(n.x)}" y="{_f(y)}">{escape(line)}</text>')
        y += (TEXT_PX + LINE_GAP) if i < len(n.lines) - 1 else 0
    out.append("</g>")
    return "".join(out)


def to_svg(layout: Layout, *, standalone: bool = True, scale: float = 1.0) -> str:
    """``scale`` multiplies the picture's width and height (the drawing keeps its coordinates)."""
    W, H = layout.width, layout.height
    _f = _Numbers().__getitem__
    escape, quoteattr = _Memo(_escape).__getitem__, _Memo(_quoteattr).__getitem__
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(W * scale)}" height="{_f(H * scale)}" '
            f'viewBox="0 0 {W} {H}" '
            f'class="cnncalc-graph" role="img" aria-label={quoteattr(layout.title)}>')
    style = (f"<style>.cnncalc-graph text{{font-family:{FONT};fill:#1a1a1a;text-anchor:middle}}"
             f".cnncalc-graph .nm{{font-size:{NAME_PX}px;font-weight:bold}}"
             f".cnncalc-graph .ty{{font-size:{TEXT_PX}px;fill:#333}}"
             f".cnncalc-graph .sh{{font-size:{TEXT_PX}px;fill:#0b3d91}}"
             f".cnncalc-graph .el{{font-size:{LABEL_PX}px;fill:#555;text-anchor:start;paint-order:stroke;"
             f"stroke:#fff;stroke-width:3px;stroke-linejoin:round}}"
             f".cnncalc-graph .title{{font-size:14px;font-weight:bold;text-anchor:start}}"
             f".cnncalc-graph .edge{{fill:none;stroke:#666;stroke-width:1.1}}</style>")
    defs = ('<defs><marker id="cnncalc-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>')
    parts = [head, style, defs, f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
             f'<text class="title" x="24" y="30">{escape(layout.title)}</text>', '<g class="edges">']
    for e in layout.edges:
        parts.append(f'<path class="edge" data-src={quoteattr(e.src)} data-dst={quoteattr(e.dst)} '
                     f'd="{edge_path(e.points, layout.direction == "LR", _f)}" marker-end="url(#cnncalc-arrow)">'
                     f"<title>{escape(e.src)} → {escape(e.dst)}: {escape(e.label)}</title></path>")
    parts.append("</g><g class=\"labels\">")
    for n in layout.real_nodes:
        if n.out_label:
            lx, ly = label_at(layout, n)
            parts.append(f'<text class="el" data-src={quoteattr(n.id)} x="{_f(lx)}" '
                         f'y="{_f(ly)}">{escape(n.out_label)}</text>')
    parts.append("</g><g class=\"nodes\">")
    parts += [node_svg(n, _f, escape, quoteattr) for n in layout.real_nodes]
    parts.append("</g></svg>")
    svg = "".join(parts)
    if standalone:
        svg = '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n"
    return svg


__all__ = ["to_svg", "colours", "text_width"]
