"""One table model, four renderings.

``table`` draws a rich table on a terminal and plain aligned text when the output is piped,
when ``NO_COLOR`` is set or when ``TERM=dumb`` (rich is then not even imported);
``csv`` and ``markdown`` are for spreadsheets and reports; ``json`` is each command's own
object (see ``emit_json``).
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

FORMATS = ("table", "json", "csv", "markdown")
BAR_WIDTH = 10
_BLOCKS = " ▏▎▍▌▋▊▉█"


@dataclass
class Column:
    key: str
    header: str
    align: str = "right"  # left | right
    fmt: Callable[[Any], str] | None = None  # for table and markdown; CSV writes raw values
    style: str | None = None


@dataclass
class TableView:
    title: str
    columns: list[Column]
    rows: list[dict]
    footer: list[dict] = field(default_factory=list)  # totals rows, drawn under a rule
    sections: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # key: value blocks
    notes: list[str] = field(default_factory=list)
    caption: str | None = None


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a character: 0.5 → '█████'."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, rem = divmod(eighths, 8)
    return ("█" * full + (_BLOCKS[rem] if rem else "")).ljust(width)


def use_rich(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _cell(col: Column, row: dict) -> str:
    v = row.get(col.key, "")
    if v is None or v == "":
        return ""
    if col.fmt is not None:
        return col.fmt(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(view: TableView, fmt: str = "table", stream=None) -> None:
    stream = stream or sys.stdout
    if fmt == "csv":
        stream.write(to_csv(view))
    elif fmt == "markdown":
        stream.write(to_markdown(view))
    elif fmt == "table":
        if use_rich(stream):
            _rich(view, stream)
        else:
            stream.write(to_plain(view))
    else:  # pragma: no cover - click restricts the choices
        raise ValueError(fmt)


def to_csv(view: TableView) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in view.columns])
    for row in view.rows + view.footer:
        w.writerow([_raw(row.get(c.key, "")) for c in view.columns])
    return buf.getvalue()


def _raw(v):
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return "" if v is None else v


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(view: TableView) -> str:
    out = [f"### {view.title}", ""] if view.title else []
    if view.caption:
        out += [view.caption, ""]
    out.append("| " + " | ".join(_md_escape(c.header) for c in view.columns) + " |")
    out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in view.columns) + "|")
    for row in view.rows:
        out.append("| " + " | ".join(_md_escape(_cell(c, row)) for c in view.columns) + " |")
    for row in view.footer:
        out.append("| " + " | ".join(f"**{_md_escape(_cell(c, row))}**" if _cell(c, row) else ""
                                     for c in view.columns) + " |")
    for title, items in view.sections:
        out += ["", f"**{title}**", ""]
        out += [f"- {k}: {v}" for k, v in items]
    if view.notes:
        out.append("")
        out += [f"> {n}" for n in view.notes]
    return "\n".join(out) + "\n"


def to_plain(view: TableView) -> str:
    cells = [[c.header for c in view.columns]]
    body = [[_cell(c, r) for c in view.columns] for r in view.rows]
    foot = [[_cell(c, r) for c in view.columns] for r in view.footer]
    allrows = cells + body + foot
    widths = [max(len(r[i]) for r in allrows) for i in range(len(view.columns))]

    def line(r):
        parts = [(v.rjust(w) if c.align == "right" else v.ljust(w))
                 for v, w, c in zip(r, widths, view.columns)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = []
    if view.title:
        out.append(view.title)
    if view.caption:
        out.append(view.caption)
    out += [line(cells[0]), rule] + [line(r) for r in body]
    if foot:
        out.append(rule)
        out += [line(r) for r in foot]
    for title, items in view.sections:
        out += ["", title]
        kw = max((len(k) for k, _ in items), default=0)
        out += [f"  {k.ljust(kw)}  {v}" for k, v in items]
    if view.notes:
        out.append("")
        out += [f"note: {n}" for n in view.notes]
    return "\n".join(out) + "\n"


def _rich(view: TableView, stream) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream)
    table = Table(title=view.title or None, caption=view.caption, box=box.SIMPLE_HEAD,
                  show_footer=False, title_justify="left", caption_justify="left",
                  header_style="bold")
    for c in view.columns:
        table.add_column(c.header, justify=c.align, style=c.style, no_wrap=True)
    for i, r in enumerate(view.rows):
        last = i == len(view.rows) - 1
        table.add_row(*[_cell(c, r) for c in view.columns], end_section=last and bool(view.footer))
    for r in view.footer:
        table.add_row(*[_cell(c, r) for c in view.columns], style="bold")
    console.print(table)
    for title, items in view.sections:
        sub = Table(title=title, box=None, show_header=False, title_justify="left",
                    title_style="bold", padding=(0, 2))
        sub.add_column(style="cyan")
        sub.add_column()
        for k, v in items:
            sub.add_row(k, v)
        console.print(sub)
    for n in view.notes:
        console.print(f"[yellow]note:[/yellow] {n}", highlight=False)


def emit_json(obj, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
