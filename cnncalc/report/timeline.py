"""The memory timeline of one training step as an SVG: live bytes after each layer's forward,
then after each layer's backward (in reverse), from the liveness walk
(cnncalc.analysis.memory.training_step). The parameters, buffers and optimizer state that live
through the whole step are the band at the bottom; the peak is marked."""
from __future__ import annotations

from html import escape

from cnncalc.shapes import fmt_int

MAX_COLUMNS = 600  # steps drawn as hover columns: a longer walk is shown as the max per bucket


def _bytes(v: int) -> str:
    for div, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if v >= div:
            return f"{v / div:,.2f} {unit}"
    return f"{v} B"


def timeline_svg(step, names: list[str], base: int, title: str) -> str:
    """``step``: a TrainingStep; ``names``: the layers in forward order; ``base``: the bytes
    live through the whole step (drawn as a band)."""
    values = step.timeline
    n = len(names)
    total = len(values)
    if not total:
        return ""
    per = -(-total // MAX_COLUMNS)  # steps per column
    cols = []
    for a in range(0, total, per):
        chunk = values[a:a + per]
        k = max(range(len(chunk)), key=chunk.__getitem__)
        cols.append((a + k, chunk[k]))
    left, top, h, cw = 92, 30, 220, max(1.0, min(8.0, 1100 / len(cols)))
    W = int(left + len(cols) * cw + 30)
    H = top + h + 52
    vmax = max(values) or 1

    def y(v):
        return top + h - v / vmax * h

    def label(i):
        return f"forward {names[i]}" if i < n else f"backward {names[total - 1 - i]}"

    parts = [f'<svg class="chart timeline" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>']
    # axes and the forward | backward divide
    parts.append(f'<line x1="{left}" y1="{top + h}" x2="{left + len(cols) * cw}" y2="{top + h}" stroke="#999"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#999"/>')
    parts.append(f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{escape(_bytes(vmax))}</text>')
    parts.append(f'<text x="{left - 6}" y="{top + h}" text-anchor="end">0</text>')
    mid = left + (n / per) * cw
    parts.append(f'<line x1="{mid:.1f}" y1="{top - 6}" x2="{mid:.1f}" y2="{top + h}" stroke="#555" '
                 f'stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{mid - 6:.1f}" y="{top + h + 16}" text-anchor="end">forward →</text>')
    parts.append(f'<text x="{mid + 6:.1f}" y="{top + h + 16}">← backward (layers in reverse)</text>')
    # the whole-step band (parameters, buffers, optimizer state)
    yb = y(base)
    parts.append(f'<rect x="{left}" y="{yb:.1f}" width="{len(cols) * cw:.1f}" height="{top + h - yb:.1f}" '
                 f'fill="#c7772a" fill-opacity="0.35"><title>parameters, buffers and optimizer state: '
                 f'{fmt_int(base)} B ({escape(_bytes(base))}), live through the whole step</title></rect>')
    # the live bytes: one column per bucket of steps, hover for the layer and the bytes
    pts = []
    for j, (i, v) in enumerate(cols):
        x = left + j * cw
        yy = y(v)
        pts.append(f"{x:.1f},{yy:.1f} {x + cw:.1f},{yy:.1f}")
        parts.append(f'<rect x="{x:.1f}" y="{yy:.1f}" width="{cw:.2f}" height="{top + h - yy:.1f}" '
                     f'fill="{"#3f6fb5" if i < n else "#7b4bb3"}" fill-opacity="0.55">'
                     f'<title>{escape(label(i))}: {fmt_int(v)} B ({escape(_bytes(v))}) live</title></rect>')
    parts.append(f'<polyline fill="none" stroke="#1d2f55" stroke-width="1" points="{" ".join(pts)}"/>')
    # the peak
    px = left + (step.peak_step // per) * cw + cw / 2
    parts.append(f'<circle cx="{px:.1f}" cy="{y(step.peak):.1f}" r="4" fill="#b00020"><title>peak: '
                 f'{fmt_int(step.peak)} B at the {escape(label(step.peak_step))}</title></circle>')
    anchor = "end" if px > left + len(cols) * cw * 0.6 else "start"
    dx = -8 if anchor == "end" else 8
    parts.append(f'<text x="{px + dx:.1f}" y="{y(step.peak) + 4:.1f}" text-anchor="{anchor}" fill="#b00020">'
                 f'peak {escape(_bytes(step.peak))} ({escape(label(step.peak_step))})</text>')
    parts.append(f'<text x="{left}" y="{H - 10}">steps: {n} forward then {n} backward'
                 + (f", {per} steps per column (the highest shown)" if per > 1 else "")
                 + "; hover a column for its layer</text></svg>")
    return "".join(parts)
