"""Names in a gradebook are written by students: each output encodes them for its own reader.

A student's name, id, variant, answers and file name reach the instructor's spreadsheet (CSV),
the CI dashboard (JUnit XML), the job summary (markdown) and the terminal. Each function here
makes one such text safe for one reader, and keeps it readable:

* :func:`csv_cell` — a cell starting with ``= + - @`` TAB or CR gets a leading ``'`` (OWASP's
  CSV-injection advice), so no spreadsheet takes it for a formula; the ``csv`` module still
  quotes commas, quotes and newlines; other control characters are shown escaped.
* :func:`xml_text` — characters XML 1.0 forbids (C0 controls but TAB/LF/CR, U+FFFE/U+FFFF,
  lone surrogates) become a visible ``\\x01``; ElementTree escapes ``& < > "``.
* :func:`md_cell` — markdown: control characters (newlines included) shown escaped, and
  ``\\ ` * _ [ ] < > | ~ &`` backslash-escaped, so a name can neither add a row or a column nor
  open a tag or a link.
* :func:`term_text` — the terminal: C0/C1 control characters and DEL shown as ``\\x1b``
  (as git and ls show them), so a name cannot move the cursor, clear the screen or write the
  clipboard (OSC 52).
"""
from __future__ import annotations

import re

from cnncalc.report.render import TableView

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def term_text(s) -> str:
    """``s`` with control characters shown escaped (``\\x1b``, ``\\n``): safe to print."""
    s = "" if s is None else str(s)
    return _CONTROL.sub(_escape, s) if _CONTROL.search(s) else s


_CSV_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def csv_cell(v):
    """A CSV cell no spreadsheet runs: text starting with = + - @ TAB or CR gets a leading '.
    Control characters but TAB and LF are shown escaped (a CR inside a cell is not quoted by
    the ``csv`` module and ends the row for many readers)."""
    if not isinstance(v, str):
        return v
    if v.startswith(CSV_TRIGGERS):
        v = "'" + v
    return _CSV_CONTROL.sub(_escape, v) if _CSV_CONTROL.search(v) else v


def xml_text(s) -> str:
    """``s`` with the characters XML 1.0 forbids shown escaped (the document stays well-formed)."""
    s = "" if s is None else str(s)
    return _XML_ILLEGAL.sub(_escape, s) if _XML_ILLEGAL.search(s) else s


def md_cell(s) -> str:
    """``s`` as one markdown table cell (or one line of text): it cannot end the row, add a
    column, or start a tag, a link or emphasis."""
    return _MD_SPECIAL.sub(r"\\\1", term_text(s))


def terminal_view(view: TableView) -> TableView:
    """A copy of ``view`` whose every text (cells, title, caption, notes, sections) shows
    control characters escaped: what the terminal and plain renderings draw."""
    def cells(rows):
        return [{k: term_text(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]

    return TableView(term_text(view.title), view.columns, cells(view.rows), cells(view.footer),
                     [(term_text(t), [(term_text(k), term_text(v)) for k, v in items]) for t, items in view.sections],
                     [term_text(n) for n in view.notes], None if view.caption is None else term_text(view.caption))


def error_text(e) -> str:
    """An error message for the terminal: each of its lines with control characters escaped."""
    return "\n".join(term_text(line) for line in str(e).split("\n"))


def to_csv(view: TableView) -> str:
    """The table as CSV (``render.to_csv``'s layout: keys as the header), every cell neutralised."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_cell(c.key) for c in view.columns])
    for row in list(view.rows) + list(view.footer):
        w.writerow([csv_cell(_raw(row.get(c.key, ""))) for c in view.columns])
    return buf.getvalue()


def _raw(v):
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return "" if v is None else v


def to_markdown(view: TableView) -> str:
    """The table as GitHub-flavoured markdown (``render.to_markdown``'s layout), every cell,
    the title and every note escaped with :func:`md_cell`."""
    out = [f"### {md_cell(view.title)}", ""] if view.title else []
    if view.caption:
        out += [md_cell(view.caption), ""]
    if view.columns:
        out.append("| " + " | ".join(md_cell(c.header) for c in view.columns) + " |")
        out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in view.columns) + "|")
        for row in view.rows:
            out.append("| " + " | ".join(md_cell(cell_text(c, row.get(c.key, ""))) for c in view.columns) + " |")
    for title, items in view.sections:
        out += ["", f"**{md_cell(title)}**", ""]
        out += [f"- {md_cell(k)}: {md_cell(v)}" for k, v in items]
    if view.notes:  # one quoted paragraph per note
        out += ["", "\n>\n".join(f"> {md_cell(n)}" for n in view.notes)]
    return "\n".join(out) + "\n"


def cell_text(col, v) -> str:
    """A cell as the table and markdown show it (the column's ``fmt``; ints with separators)."""
    if v is None or v == "":
        return ""
    if col.fmt is not None:
        return col.fmt(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


__all__ = ["term_text", "terminal_view", "error_text", "csv_cell", "xml_text", "md_cell", "to_csv", "to_markdown", "CSV_TRIGGERS"]
