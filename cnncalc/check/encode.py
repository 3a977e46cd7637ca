"""Names in a gradebook are written by students: each output encodes them for its own reader
(with the encoders of :mod:`cnncalc.escape`, shared by every renderer).

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

from cnncalc.escape import CSV_TRIGGERS, csv_cell, error_text, md_cell, term_text, xml_text
# (the terminal and CSV renderings of report.render escape every table with cnncalc.escape:
# the gradebook uses them as they are)
from cnncalc.report.render import TableView, cell_text, terminal_view, to_csv


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


__all__ = ["term_text", "terminal_view", "error_text", "csv_cell", "xml_text", "md_cell", "to_csv", "to_markdown", "CSV_TRIGGERS"]
