"""Names are written by whoever wrote the spec, the ONNX file or the submission: every output
encodes them for its own reader, through the functions here (one encoder per reader).

* :func:`term_text` — the terminal (rich and plain tables, errors, ``--explain``, graph
  labels): C0/C1 control characters, DEL, the Unicode line/paragraph separators and the bidi
  overrides are shown escaped (``\\x1b``, ``\\n``, ``\\u202e``), as git and ls show them, so
  a name cannot move the cursor, clear the screen, write the clipboard (OSC 52) or reorder
  what is shown around it.
* :func:`one_line` — the same escapes, plus the backslash doubled: a one-line form that can be
  read back without ambiguity (``a\\nb`` is a newline, ``a\\\\nb`` two characters).
* :func:`comment_text` / :func:`py_docstring_text` — text inside a ``#`` comment (of generated
  Python source or YAML) or a ``\"\"\"`` docstring: it cannot end the comment or the string.
* :func:`csv_cell` — a cell starting with ``= + - @`` TAB or CR gets a leading ``'`` (OWASP's
  CSV-injection advice), so no spreadsheet takes it for a formula; the ``csv`` module still
  quotes commas, quotes and newlines; other control characters are shown escaped.
* :func:`xml_text` — characters XML 1.0 forbids (C0 controls but TAB/LF/CR, U+FFFE/U+FFFF,
  lone surrogates) become a visible ``\\x01``; ElementTree escapes ``& < > "``.
* :func:`md_cell` — markdown: control characters (newlines included) shown escaped, and
  ``\\ ` * _ [ ] < > | ~ &`` backslash-escaped, so a name can neither add a row or a column nor
  open a tag or a link; :func:`md_text` escapes only what can add a row or a column or open a
  tag (``| < > \\`` and control characters), for reports whose names are layer names.
* :func:`json_script` — JSON embedded in an HTML ``<script>``: ``<``, ``>``, ``&``, U+2028 and
  U+2029 written as ``\\u`` escapes (valid JSON, and no ``</script`` or ``<!--`` can appear).

This module imports nothing from cnncalc (every renderer may use it).
"""
from __future__ import annotations

import re

# C0, DEL, C1; the Unicode line and paragraph separators; the bidi embeddings, overrides,
# isolates and marks ("Trojan Source", CVE-2021-42574); lone surrogates (no UTF-8 for them)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def has_control(s: str) -> bool:
    """True if ``s`` holds a character :func:`term_text` escapes."""
    return _CONTROL.search(s) is not None


def term_text(s) -> str:
    """``s`` with control characters shown escaped (``\\x1b``, ``\\n``): safe to print."""
    s = "" if s is None else str(s)
    return _CONTROL.sub(_escape, s) if _CONTROL.search(s) else s


def error_text(e) -> str:
    """An error message for the terminal: each of its lines with control characters escaped
    (the message's own line breaks are kept)."""
    return "\n".join(term_text(line) for line in str(e).split("\n"))


def one_line(s) -> str:
    """``s`` on one line, unambiguously: backslashes doubled, control characters escaped."""
    s = "" if s is None else str(s)
    if "\\" in s:
        s = s.replace("\\", "\\\\")
    return term_text(s)


def comment_text(s) -> str:
    """Text for a ``#`` comment of generated Python source or YAML: one line (no LF, CR, NEL,
    U+2028/2029), no NUL, no bidi control (nothing in it can end the comment or change how
    the code around it reads); backslashes doubled, as :func:`one_line` writes them."""
    return one_line(s)


def py_docstring_text(s) -> str:
    """Text for the inside of a (non-raw) ``\"\"\"`` string literal of generated source: the
    string's value shows ``s`` as :func:`one_line` does; no quote or backslash can end it."""
    return one_line(s).replace("\\", "\\\\").replace('"', '\\"')


CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")  # -42, -0.5, 1e-07: numbers, not formulas
_CSV_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def csv_cell(v):
    """A CSV cell no spreadsheet runs: text starting with = + - @ TAB or CR gets a leading '.
    Control characters but TAB and LF are shown escaped (a CR inside a cell is not quoted by
    the ``csv`` module and ends the row for many readers). Numbers are returned as they are
    (a negative number is a number, not a formula)."""
    if not isinstance(v, str):
        return v
    if v.startswith(CSV_TRIGGERS) and not _NUMBER.fullmatch(v):
        v = "'" + v
    return _CSV_CONTROL.sub(_escape, v) if _CSV_CONTROL.search(v) else v


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(s) -> str:
    """``s`` with the characters XML 1.0 forbids shown escaped (the document stays well-formed)."""
    s = "" if s is None else str(s)
    return _XML_ILLEGAL.sub(_escape, s) if _XML_ILLEGAL.search(s) else s


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_MD_STRUCT = re.compile(r"([\\<>|])")


def md_cell(s) -> str:
    """``s`` as one markdown table cell (or one line of text): it cannot end the row, add a
    column, or start a tag, a link or emphasis."""
    return _MD_SPECIAL.sub(r"\\\1", term_text(s))


def md_text(s) -> str:
    """``s`` as one markdown table cell of a report: it cannot end the row, add a column or
    open an HTML tag (``conv1_1`` stays ``conv1_1``)."""
    s = term_text(s)
    return _MD_STRUCT.sub(r"\\\1", s) if _MD_STRUCT.search(s) else s


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_dumps(obj, **kw) -> str:
    """``json.dumps(obj, ensure_ascii=False, **kw)``; if a string holds a lone surrogate (a
    YAML "\\ud800" escape makes one) the text cannot be written as UTF-8: then every non-ASCII
    character is written as a \\u escape (the same JSON value)."""
    import json

    text = json.dumps(obj, ensure_ascii=False, **kw)
    return json.dumps(obj, ensure_ascii=True, **kw) if _SURROGATE.search(text) else text


def json_encoder():
    """A compact ``json_dumps``: the C encoder, ``ensure_ascii=False`` unless the text would hold
    a lone surrogate (then \\u escapes: the same JSON value). For writers that encode a
    document piece by piece."""
    import json

    plain = json.JSONEncoder(ensure_ascii=False).encode
    ascii_ = json.JSONEncoder(ensure_ascii=True).encode

    def encode(obj) -> str:
        text = plain(obj)
        return ascii_(obj) if _SURROGATE.search(text) else text

    return encode


_JSON_SCRIPT = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_SCRIPT_RE = re.compile("[<>&\u2028\u2029]")


def json_script(text: str) -> str:
    """JSON text made safe inside an HTML ``<script>`` element: the same JSON value, with
    ``< > &`` U+2028 U+2029 as ``\\u`` escapes (inside JSON they can only occur in strings)."""
    return _JSON_SCRIPT_RE.sub(lambda m: _JSON_SCRIPT[m.group()], text)


__all__ = ["json_dumps", "json_encoder", "has_control", "term_text", "error_text", "one_line", "comment_text", "py_docstring_text", "csv_cell", "CSV_TRIGGERS",
           "xml_text", "md_cell", "md_text", "json_script"]
