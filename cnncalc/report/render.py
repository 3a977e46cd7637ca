"""One table model, four renderings.

``table`` draws a rich table on a terminal and plain aligned text when the output is piped,
when ``NO_COLOR`` is set or when ``TERM=dumb`` (rich is then not even imported);
``csv`` and ``markdown`` are for spreadsheets and reports; ``json`` is each command's own
object (see ``emit_json``).
"""
from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Callable

from cnncalc._record import FACTORY, Record
from cnncalc.escape import csv_cell, has_control, md_text, term_text
from cnncalc.shapes import Tensor, fmt_shape

FORMATS = ("table", "plain", "json", "csv", "markdown")
BAR_WIDTH = 10
CHART_MEMORY, CHART_PARAMS = "cyan", "magenta"  # the two bars of summarize's chart
_BLOCKS = " ▏▎▍▌▋▊▉█"


class Column(Record):
    """One column of a table. (Repr and equality as a dataclass's; see cnncalc._record.)"""
    _fields = ("key", "header", "align", "fmt", "style", "kind", "drop", "styles")
    __match_args__ = _fields

    def __init__(self, key: str, header: str, align: str = "right",
                 fmt: Callable[[Any], str] | None = None, style: str | None = None,
                 kind: str | None = None, drop: int = 0, styles: tuple[str, ...] | None = None):
        self.key = key
        self.header = header
        self.align = align  # left | right
        self.fmt = fmt  # for table and markdown; CSV writes raw values
        self.style = style
        # On a narrow terminal: "number" cells (the default for right-aligned columns) are never
        # cut or wrapped; "text" cells (left-aligned) wrap at spaces, long words fold; "chart"
        # columns go first. ``drop`` > 0 lets the column be left out when the table does not
        # fit: the highest first (the chart is always dropped before any other column). 0 =
        # always shown.
        self.kind = kind
        self.drop = drop
        self.styles = styles  # chart cells given as tuples: one style per part

    @property
    def kind_(self) -> str:
        return self.kind or ("number" if self.align == "right" else "text")


class ColumnRows(Sequence):
    """A table's rows kept column by column: ``rows[i]`` is row i as a dict, as in a list of
    dicts, and ``column(key)`` a whole column as a list. A 3,000-row summarize table is built
    and drawn a column at a time, without a dict per row.

    Rows may also share cells: with ``kinds`` (one int per row) and ``shared`` (per key, one
    value per kind), row i's cell of a shared key is ``shared[key][kinds[i]]``. Every kind
    has a row. The plain table then formats, pads and joins each kind's cells once."""
    __slots__ = ("_columns", "_n", "kinds", "n_kinds", "_shared")

    def __init__(self, columns: dict[str, list], kinds: list[int] | None = None,
                 shared: dict[str, list] | None = None):
        lengths = {len(v) for v in columns.values()}
        if kinds is not None:
            lengths.add(len(kinds))
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self._columns = columns
        self._n = lengths.pop() if lengths else 0
        shared = shared or {}
        self.n_kinds = 0
        if shared:
            n_kinds = {len(v) for v in shared.values()}
            self.n_kinds = n_kinds.pop()
            if kinds is None or n_kinds or set(kinds) != set(range(self.n_kinds)):
                raise ValueError("shared cells need kinds 0 … K-1, each with a row, and K values per key")
            if shared.keys() & columns.keys():
                raise ValueError(f"a key both shared and per row: {sorted(shared.keys() & columns.keys())}")
        self.kinds = kinds if shared else None
        self._shared = shared

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError("row index out of range")
        row = {k: v[i] for k, v in self._columns.items()}
        if self._shared:
            kind = self.kinds[i]
            row.update({k: v[kind] for k, v in self._shared.items()})
        return row

    def column(self, key: str) -> list | None:
        """Every row's cell of ``key`` (None if no row has one)."""
        vals = self._columns.get(key)
        if vals is None and key in self._shared:
            vals = list(map(self._shared[key].__getitem__, self.kinds))
        return vals

    def shared(self, key: str) -> list | None:
        """One cell per kind, if ``key`` is a shared column."""
        return self._shared.get(key)

    def __add__(self, other) -> list[dict]:
        return [*self, *other]

    def __eq__(self, other):
        if isinstance(other, (ColumnRows, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"ColumnRows({list(self)!r})"


@dataclass(init=False, repr=False, eq=False)
class TableView(Record):
    """What a report shows: a table, its totals rows, key: value sections and notes. (A
    dataclass whose __init__, repr and == are written out as @dataclass writes them: generating
    them costs every cold start about 5 M instructions.)"""
    title: str
    columns: list[Column]
    rows: list[dict] | ColumnRows
    footer: list[dict] = field(default_factory=list)  # totals rows, drawn under a rule
    sections: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # key: value blocks
    notes: list[str] = field(default_factory=list)
    caption: str | None = None

    def __init__(self, title: str, columns: list[Column], rows: list[dict] | ColumnRows, footer: list[dict] = FACTORY,
                 sections: list[tuple[str, list[tuple[str, str]]]] = FACTORY, notes: list[str] = FACTORY,
                 caption: str | None = None):
        self.title = title
        self.columns = columns
        self.rows = rows
        self.footer = [] if footer is FACTORY else footer
        self.sections = [] if sections is FACTORY else sections
        self.notes = [] if notes is FACTORY else notes
        self.caption = caption


TableView._fields = TableView.__match_args__  # (set by @dataclass: the fields in order)


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a character: 0.5 → '█████'."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    key = (eighths, width)
    out = _BARS.get(key)
    if out is None:  # one string per length: a 3,000-row table draws few distinct bars
        full, rem = divmod(eighths, 8)
        out = _BARS[key] = ("█" * full + (_BLOCKS[rem] if rem else "")).ljust(width)
    return out


_BARS: dict[tuple[int, int], str] = {}


def use_rich(stream=None) -> bool:
    """Rich on a terminal; plain when piped, with NO_COLOR or TERM=dumb. FORCE_COLOR (as rich and
    many tools read it) forces rich output into a pipe; its width is then $COLUMNS (default 80)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def _cell(col: Column, row: dict) -> str:
    return _fmt(col, row.get(col.key, ""))


def cell_text(col: Column, v) -> str:
    """A cell as every table format shows it: the column's ``fmt``, ints with separators,
    booleans as yes/no, chart parts joined."""
    if v is None or v == "":
        return ""
    if col.fmt is not None:
        return col.fmt(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, tuple):  # chart parts
        return " ".join(v).rstrip()
    return str(v)


_fmt = cell_text


def format_cell(col: Column, v) -> str:
    """A cell's text as every rendering writes it: the column's format, else ints with commas
    (for renderings outside this module, such as the notebook's HTML)."""
    return _fmt(col, v)


def _term_cells(vals: list) -> list:
    """``vals`` with every text that holds a control character escaped (the list itself when
    none does: one scan of the joined texts)."""
    texts = [v for v in vals if v.__class__ is str]
    if not texts or not has_control("".join(texts)):
        return vals
    return [term_text(v) if v.__class__ is str else v for v in vals]


def terminal_view(view: TableView) -> TableView:
    """``view`` with every text (cells, headers, title, caption, notes, sections) showing
    control characters escaped (``\\x1b``): what the rich and plain tables draw. Names come
    from specs, ONNX files and submissions; none may drive the terminal. Returns ``view``
    itself when nothing needs escaping."""
    rows = view.rows
    if rows.__class__ is ColumnRows:
        cols = {c.key: rows.column(c.key) for c in view.columns}
        new = {k: _term_cells(v) for k, v in cols.items() if v is not None and rows.shared(k) is None}
        shared = {c.key: rows.shared(c.key) for c in view.columns if rows.shared(c.key) is not None}
        new_shared = {k: _term_cells(v) for k, v in shared.items()}
        if any(new[k] is not cols[k] for k in new) or any(new_shared[k] is not shared[k] for k in shared):
            rows = ColumnRows(new, rows.kinds if new_shared else None, new_shared or None)
    else:
        rows = _term_rows(rows)
    footer = _term_rows(view.footer)
    columns = view.columns
    if any(has_control(c.header) for c in columns):
        columns = [Column(c.key, term_text(c.header), c.align, c.fmt, c.style, c.kind, c.drop, c.styles)
                   for c in columns]
    texts = [view.title or "", view.caption or "", *view.notes,
             *(t for title, items in view.sections for t in (title, *(x for kv in items for x in kv)))]
    if rows is view.rows and footer is view.footer and columns is view.columns and not has_control(
            "".join(map(str, texts))):
        return view
    return TableView(term_text(view.title) if view.title else view.title, columns, rows, footer,
                     [(term_text(t), [(term_text(k), term_text(v)) for k, v in items]) for t, items in view.sections],
                     [term_text(n) for n in view.notes], None if view.caption is None else term_text(view.caption))


def _term_rows(rows: list[dict]) -> list[dict]:
    out, changed = [], False
    for r in rows:
        if any(v.__class__ is str and has_control(v) for v in r.values()):
            r = {k: term_text(v) if v.__class__ is str else v for k, v in r.items()}
            changed = True
        out.append(r)
    return out if changed else rows


def render(view: TableView, fmt: str = "table", stream=None) -> None:
    stream = stream or sys.stdout
    if fmt in ("plain", "table"):
        view = terminal_view(view)
    if fmt == "plain":
        write_plain(view, stream)
    elif fmt == "csv":
        stream.write(to_csv(view))
    elif fmt == "markdown":
        stream.write(to_markdown(view))
    elif fmt == "table":
        if use_rich(stream):
            _rich(view, stream)
        else:
            write_plain(view, stream)
    else:  # pragma: no cover - click restricts the choices
        raise ValueError(fmt)


def to_csv(view: TableView) -> str:
    buf = io.StringIO()
    import csv

    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_cell(c.key) for c in view.columns])
    for row in view.rows + view.footer:  # (a cell no spreadsheet runs: cnncalc.escape.csv_cell)
        w.writerow([csv_cell(_raw(row.get(c.key, ""))) for c in view.columns])
    return buf.getvalue()


def _raw(v):
    if v.__class__ is Tensor:  # tokens, a tensor: as they print (never like an image)
        return fmt_shape(v)
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return "" if v is None else v


_md_escape = md_text  # a cell cannot end its row, add a column or open a tag


def to_markdown(view: TableView) -> str:
    out = [f"### {md_text(view.title)}", ""] if view.title else []
    if view.caption:
        out += [md_text(view.caption), ""]
    out.append("| " + " | ".join(_md_escape(c.header) for c in view.columns) + " |")
    out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in view.columns) + "|")
    for row in view.rows:
        out.append("| " + " | ".join(_md_escape(_cell(c, row)) for c in view.columns) + " |")
    for row in view.footer:
        out.append("| " + " | ".join(f"**{_md_escape(_cell(c, row))}**" if _cell(c, row) else ""
                                     for c in view.columns) + " |")
    for title, items in view.sections:
        out += ["", f"**{md_text(title)}**", ""]
        out += [f"- {md_text(k)}: {md_text(v)}" for k, v in items]
    if view.notes:
        out.append("")
        out += [f"> {md_text(n)}" for n in view.notes]
    return "\n".join(out) + "\n"


_SAME = frozenset((int, str, tuple, type(None)))  # types whose equal values format alike
_STR = {str}


def _column(col: Column, rows: list[dict] | ColumnRows) -> tuple[list[str], int]:
    """``[_cell(col, r) for r in rows]`` and the longest of them."""
    key = col.key
    if rows.__class__ is ColumnRows:
        vals = rows.column(key)
        if vals is None:
            vals = [""] * len(rows)
    else:
        try:
            vals = list(map(itemgetter(key), rows))
        except KeyError:  # (a row without this cell: empty)
            vals = [r.get(key, "") for r in rows]
    return _texts(col, vals)


def _texts(col: Column, vals: list) -> tuple[list[str], int]:
    """``[_fmt(col, v) for v in vals]`` and the longest of them, each distinct value
    formatted (and measured) once: summarize draws 3,000-row tables of a few distinct values."""
    types = set(map(type, vals))
    if types == _STR and col.fmt is None:  # text as it is (e.g. 3,000 distinct layer names)
        texts = vals
    elif types <= _SAME and (tuple not in types or _plain_tuples(vals)):
        # (no bools or floats, in tuples neither: 1 == True and (True, 1) == (1, 1), 0.0 == -0.0)
        done = {v: _fmt(col, v) for v in set(vals)}
        return list(map(done.__getitem__, vals)), max(map(len, done.values()), default=0)
    else:
        texts = [_fmt(col, v) for v in vals]
    return texts, max(map(len, texts), default=0)


def _plain_tuples(vals: list) -> bool:
    """Every tuple among ``vals`` holds only ints (not bools) and strs: equal tuples format alike."""
    return _TUPLE_ITEMS.issuperset(map(type, chain.from_iterable(v for v in vals if v.__class__ is tuple)))


_TUPLE_ITEMS = frozenset((int, str))


def _plain_lines(cols: list[list[str]], widths: list[int], right: list[bool],
                 kinds: list[int] | None = None) -> list[str]:
    """The rows given column by column, each cell padded to its column's width, two spaces
    between cells, no trailing spaces. Every column but the first repeats a few distinct
    combinations: each is joined once. (With ``kinds``, the columns after the first hold one
    cell per kind, and row i shows kind ``kinds[i]``.)"""
    first = cols[0]
    firsts = list(map(str.rjust if right[0] else str.ljust, first, [widths[0]] * len(first)))
    if len(cols) == 1:
        return [a.rstrip() for a in firsts]
    rest_w, rest_r = widths[1:], right[1:]
    # (each distinct rest of a line is made once, with the two spaces before it; a line
    # whose rest is empty is its first cell without trailing spaces)
    if kinds is not None:
        per_kind = [_rest(k, rest_w, rest_r) for k in zip(*cols[1:])]
        rest = list(map(per_kind.__getitem__, kinds))
        empty = "" in per_kind
    else:
        keys = list(zip(*cols[1:]))
        rests = {k: _rest(k, rest_w, rest_r) for k in set(keys)}
        rest = list(map(rests.__getitem__, keys))
        empty = "" in rests.values()
    if empty:
        return [a + b if b else a.rstrip() for a, b in zip(firsts, rest)]
    return list(map(str.__add__, firsts, rest))


def _rest(cells: tuple[str, ...], widths: list[int], right: list[bool]) -> str:
    """The cells after a line's first, padded, each after two spaces ("" if all are empty)."""
    text = "  ".join([v.rjust(w) if r else v.ljust(w) for v, w, r in zip(cells, widths, right)]).rstrip()
    return "  " + text if text else ""


def _by_kind(rows, columns: list[Column]) -> bool:
    """Only the first of ``columns`` varies within a kind of ``rows`` (ColumnRows whose other
    columns are shared by kind)."""
    return (rows.__class__ is ColumnRows and rows.kinds is not None
            and all(rows.shared(c.key) is not None for c in columns[1:]))


def _body(columns: list[Column], rows) -> tuple[list[tuple[list[str], int]], list[int] | None]:
    """Each column's cells and width; when only the first column varies within a kind of
    rows, the other columns' cells are one per kind."""
    if _by_kind(rows, columns):
        return [_column(columns[0], rows)] + [_texts(c, rows.shared(c.key)) for c in columns[1:]], rows.kinds
    return [_column(c, rows) for c in columns], None


def to_plain(view: TableView) -> str:
    return "\n".join(plain_lines(view)) + "\n"


def write_plain(view: TableView, stream) -> None:
    """``stream.write(to_plain(view))``, a block of lines at a time: a 3,000-row table never
    exists as one string (nor as its encoded bytes), which would be new memory to map."""
    lines = plain_lines(view)
    for i in range(0, max(len(lines), 1), 256):
        stream.write("\n".join(lines[i:i + 256]) + "\n")


def plain_lines(view: TableView) -> list[str]:
    """The lines of ``to_plain(view)``."""
    columns = view.columns
    out = []
    if view.title:
        out.append(view.title)
    if view.caption:
        out.append(view.caption)
    if columns:
        head = [[c.header] for c in columns]
        body, kinds = _body(columns, view.rows)
        foot = [_column(c, view.footer) for c in columns]
        widths = [max(len(h[0]), b[1], f[1]) for h, b, f in zip(head, body, foot)]
        body, foot = [b[0] for b in body], [f[0] for f in foot]
        right = [c.align == "right" for c in columns]
        rule = "  ".join("-" * w for w in widths)
        out += _plain_lines(head, widths, right)
        out.append(rule)
        if view.rows:
            out += _plain_lines(body, widths, right, kinds)
        if view.footer:
            out.append(rule)
            out += _plain_lines(foot, widths, right)
    else:  # no columns: an empty header, a rule and an empty line per row
        out += ["", ""] + [""] * len(view.rows)
        if view.footer:
            out.append("")
            out += [""] * len(view.footer)
    for title, items in view.sections:
        out += ["", title]
        kw = max((len(k) for k, _ in items), default=0)
        out += [f"  {k.ljust(kw)}  {v}" for k, v in items]
    if view.notes:
        out.append("")
        out += [f"note: {n}" for n in view.notes]
    return out


# ------------------------------------------------------------------------------ terminal layout
_TABLE_OVERHEAD = (3, 1)  # rich's SIMPLE_HEAD box: 1 + (2 padding + 1 divider) per column


def _table_width(widths) -> int:
    return sum(widths) + _TABLE_OVERHEAD[0] * len(widths) + _TABLE_OVERHEAD[1]


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


# a number inside text: 1,849,688,064 · 0.57 · 1e-07 · 224x224x64 · -42..153 · (0,0) — not conv5_3
# (a pattern, compiled by re on first use: only a terminal's layout needs it)
_NUMBER = r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?:(?:x|\.\.)[-−]?\d+)*%?(?![\w])"


def _longest_number(text: str) -> int:
    return max((len(m.group()) for m in re.finditer(_NUMBER, text)), default=0)


class Layout:
    """Which columns a table shows at a terminal width, and how wide each is. (A plain class:
    a dataclass costs every cold start about 1 ms to create, and only a terminal needs this.)"""
    __slots__ = ("columns", "widths", "dropped", "natural_width")

    def __init__(self, columns: list[Column], widths: list[int], dropped: list[Column], natural_width: int):
        self.columns, self.widths, self.dropped = columns, widths, dropped
        self.natural_width = natural_width  # the width at which nothing is dropped, wrapped or shortened

    def note(self, width: int) -> str | None:
        if not self.dropped:
            return None
        names = ", ".join(_name(c) for c in self.dropped)
        return (f"not shown at {width} columns: {names}; see every column with --format plain "
                f"or in a terminal at least {self.natural_width} columns wide")


def _name(c: Column) -> str:
    return "chart" if c.kind == "chart" else (c.header or c.key)


TEXT_MIN = 12  # a text column is never squeezed below this (or its longest word, if shorter)


def layout(view: TableView, width: int) -> Layout:
    """Fit ``view`` into ``width`` terminal columns. Number (and chart) columns keep every word
    whole; text columns wrap at spaces, down to their longest word (at most 2 × TEXT_MIN, at
    least TEXT_MIN; longer words fold onto the next line without losing a character). If that
    is not enough the chart goes first, then the columns with the highest ``drop``; as a last
    resort text columns fold further, never below their longest number. The room left is
    shared out. tests/test_widths.py checks that no number is cut at 60–200 columns."""
    cols = list(view.columns)
    cells = {id(c): _layout_cells(c, view) for c in cols}
    natural, minimum, floor = {}, {}, {}
    for c in cols:
        body = cells[id(c)]
        natural[id(c)] = max(max((len(v) for v in body), default=0), len(c.header))
        word = max(_longest_word(c.header), max((_longest_word(v) for v in body), default=0))
        if c.kind_ == "text":
            minimum[id(c)] = min(natural[id(c)], max(min(word, TEXT_MIN * 2), TEXT_MIN))
            floor[id(c)] = max(4, max((_longest_number(v) for v in body), default=0))
        else:  # numbers and charts: every word whole (a cell or header may wrap at its spaces)
            minimum[id(c)] = floor[id(c)] = word
    natural_width = _table_width([natural[id(c)] for c in cols])
    dropped: list[Column] = []
    order = sorted([c for c in cols if c.kind == "chart"], key=lambda c: -c.drop) + sorted(
        [c for c in cols if c.kind != "chart" and c.drop > 0], key=lambda c: -c.drop)
    kept = list(cols)
    while _table_width([minimum[id(c)] for c in kept]) > width and order:
        c = order.pop(0)
        kept.remove(c)
        dropped.append(c)
    widths = [minimum[id(c)] for c in kept]
    while _table_width(widths) > width:  # still too wide: fold the widest text column further
        text = [i for i, c in enumerate(kept) if c.kind_ == "text" and widths[i] > floor[id(c)]]
        if not text:
            break
        i = max(text, key=lambda j: widths[j])
        widths[i] -= 1
    spare = width - _table_width(widths)
    # share the room left fairly: columns that lack little get all of it, the rest split evenly
    want = [max(natural[id(c)] - w, 0) for c, w in zip(kept, widths)]
    needy = sorted((i for i in range(len(kept)) if want[i]), key=lambda j: want[j])
    for n, i in enumerate(needy):
        if spare <= 0:
            break
        give = min(want[i], spare // (len(needy) - n) or spare)
        widths[i] += give
        spare -= give
    return Layout(kept, widths, dropped, natural_width)


def _layout_cells(col: Column, view: TableView) -> list[str]:
    """The cells of ``col`` a layout must fit: every row's and the footer's (a column that rows
    share by kind: each kind's cell once, since every kind has a row)."""
    rows, foot = view.rows, [_cell(col, r) for r in view.footer]
    if rows.__class__ is ColumnRows and rows.shared(col.key) is not None:
        return _texts(col, rows.shared(col.key))[0] + foot
    if rows.__class__ is ColumnRows:
        return _column(col, rows)[0] + foot
    return [_cell(col, r) for r in rows] + foot


def render_rich(view: TableView, stream, width: int | None = None) -> None:
    """Draw ``view`` with rich on ``stream`` (its terminal width, or ``width``)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream, width=width)
    W = console.width
    lay = layout(view, W)

    def cell(c: Column, r: dict):
        v = r.get(c.key, "")
        if c.styles and isinstance(v, tuple):
            t = Text(no_wrap=True)
            for i, (part, st) in enumerate(zip(v, c.styles)):
                if i:
                    t.append(" ")
                t.append(part, style=st)
            t.rstrip()
            return t
        return Text(_cell(c, r), overflow="fold")

    def draw(body) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_footer=False, header_style="bold")
        for c, w in zip(lay.columns, lay.widths):
            table.add_column(Text(c.header, overflow="fold"), justify=c.align, style=c.style, width=w,
                             no_wrap=False, overflow="fold")
        for i, r in enumerate(body):
            last = i == len(body) - 1
            table.add_row(*[cell(c, r) for c in lay.columns], end_section=last and bool(view.footer))
        for r in view.footer:
            table.add_row(*[cell(c, r) for c in lay.columns], style="bold")
        return table

    if view.title:
        console.print(Text(view.title, style="italic"), overflow="fold")
    if view.caption:
        console.print(Text(view.caption, style="dim"), overflow="fold")
    # (a legacy Windows console is driven by calls, not by the escape codes captured here)
    by_kind = None if console.legacy_windows else _rows_by_kind(view, lay)
    text = None
    if by_kind is not None:  # one row per kind through rich, then every row from its kind's line
        with console.capture() as capture:
            console.print(draw(by_kind[0]))
        text = _expand_kinds(capture.get(), view, lay, by_kind[1])
    if text is None:
        console.print(draw(view.rows))
    else:
        console.file.write(text)
    note = lay.note(W)
    if note:
        console.print(Text("note: ", style="yellow") + Text(note), overflow="fold")
    for title, items in view.sections:
        console.print()
        sub = Table(title=Text(title), box=None, show_header=False, title_justify="left",
                    title_style="bold", padding=(0, 2))
        kw = max((len(k) for k, _ in items), default=1)
        vw = max((_longest_word(v) for _, v in items), default=1)
        vmax = max((len(v) for _, v in items), default=1)
        key_w = min(kw, max(min(kw, 12), min(W - 8 - vw, W * 2 // 5)))  # keys wrap before values
        sub.add_column(style="cyan", width=key_w, overflow="fold")
        sub.add_column(overflow="fold", width=max(min(vmax, W - 8 - key_w), 1))
        for k, v in items:  # (Text: a name is never read as rich markup such as "[link=…]")
            sub.add_row(Text(k), Text(v))
        console.print(sub)
    for n in view.notes:
        console.print(Text("note: ", style="yellow") + Text(n), overflow="fold")


def _rows_by_kind(view: TableView, lay: Layout):
    """Rows whose cells after the first are shared by kind (summarize's 3,000-row tables) are
    drawn by rich once per kind, a placeholder in the first cell, and each row is then its
    kind's line with its own first cell: rich takes ~1 ms a row. Only when every first cell is
    printable ASCII that fits its column (no wrapping), and the first column is unstyled.
    Returns (the kinds' rows, the placeholders) or None (draw every row)."""
    rows = view.rows
    if not lay.columns or not _by_kind(rows, lay.columns) or len(rows) <= 2 * rows.n_kinds:
        return None
    first, w = lay.columns[0], lay.widths[0]
    if first.style or first.styles or rows.shared(first.key) is not None:
        return None
    names = rows.column(first.key)
    if names is None or not all(v.__class__ is str for v in names):
        return None
    joined = "".join(names)
    if not (joined.isascii() and joined.isprintable()) or max(map(len, names), default=0) > w:
        return None
    n_kinds = rows.n_kinds
    marks = [_placeholder(k, w) for k in range(n_kinds)]
    if marks[-1] is None:
        return None
    kind_rows = [{first.key: marks[k], **{c.key: rows.shared(c.key)[k] for c in lay.columns[1:]}}
                 for k in range(n_kinds)]
    return kind_rows, marks


def _placeholder(k: int, width: int) -> str | None:
    """A first cell no name is: '@' then kind k in base 36, '@'-padded to ``width``."""
    digits = ""
    while True:
        k, d = divmod(k, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
        if not k:
            break
    return ("@" + digits).rjust(width, "@") if len(digits) < width else None


def _expand_kinds(drawn: str, view: TableView, lay: Layout, marks: list[str]) -> str | None:
    """The table rich drew with one row per kind, with every row of ``view`` in place of the
    kinds' rows: row i is its own first cell, then the rest of kind i's line. None if the
    kinds' rows did not come out as one line each, in order, each starting with its mark."""
    lines = drawn.split("\n")
    at = [i for i, line in enumerate(lines) if line.startswith("  @")]
    if len(at) != len(marks) or at != list(range(at[0], at[0] + len(marks))):
        return None
    # a line with text but a blank first cell, after the first kind's: a row that wrapped
    blank = "  " + " " * len(marks[0])
    if any(line.startswith(blank) and re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in lines[at[0]:]):
        return None
    tails = []
    for i, mark in zip(at, marks):
        if not lines[i].startswith("  " + mark):
            return None
        tails.append(lines[i][2 + len(mark):])
    w, first = lay.widths[0], lay.columns[0]
    names = view.rows.column(first.key)
    pad = str.rjust if first.align == "right" else str.ljust
    body = list(map("  {}{}".format, map(pad, names, [w] * len(names)),
                    map(tails.__getitem__, view.rows.kinds)))
    return "\n".join(lines[:at[0]] + body + lines[at[-1] + 1:])


_rich = render_rich  # the name render() uses


def emit_json(obj, stream=None, *, rows: str | None = None) -> None:
    """Write ``obj`` as JSON, indented by 2 (json.dumps' own bytes).

    ``rows``: the key of a per-layer list that grows with the network (an analysis report).
    Then, unless the stream is a terminal, the object goes out as one compact line made by
    json's C encoder (the indented form is made by its pure-Python encoder: ~4x the time on
    a 3,000-layer net) with the rows encoded 256 at a time, so that the whole text never
    exists at once and ``obj[rows]`` may be any iterable of dicts (a generator keeps memory
    flat). The bytes are exactly ``json.dumps(obj, ensure_ascii=False)`` + newline; a terminal
    (a human reading) gets the indented form as before. ``| jq .`` or ``| python -m json.tool``
    indents a piped one."""
    stream = stream or sys.stdout
    from cnncalc.escape import json_dumps, json_encoder

    if rows is None or _isatty(stream):
        if rows is not None and not isinstance(obj[rows], list):
            obj = {**obj, rows: list(obj[rows])}
        stream.write(json_dumps(obj, indent=2) + "\n")
        return
    keys = list(obj)
    at = keys.index(rows)
    head = {k: obj[k] for k in keys[:at]}
    tail = {k: obj[k] for k in keys[at + 1:]}
    dumps = json_encoder()
    # '{"a": 1, "rows": [' ... '], "b": 2}': the compact encoder's own separators
    stream.write((dumps(head)[:-1] + ", " if head else "{") + dumps(rows) + ": [")
    batch: list = []
    first = True
    for row in obj[rows]:
        batch.append(row)
        if len(batch) == 256:
            stream.write(("" if first else ", ") + dumps(batch)[1:-1])
            batch, first = [], False
    if batch:
        stream.write(("" if first else ", ") + dumps(batch)[1:-1])
    stream.write("]" + (", " + dumps(tail)[1:] if tail else "}") + "\n")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
