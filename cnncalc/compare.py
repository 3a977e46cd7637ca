"""Published tables as data, compared row by row with the exact numbers of a spec.

A table is a CSV file, ``cnncalc/zoo/tables/<table-id>.csv``, one per published table::

    # source: K. Simonyan & A. Zisserman, ICLR 2015, Table 2 (p. 4)
    # spec: vgg16
    # binary: false            (optional: K/M/G = 1024 powers: true, or a list of the
                               quantities that use them, e.g. 'weights, params')
    # input: 224x224x3         (optional: override the spec's input)
    layer,quantity,published,note
    TOTAL,params,138M,
    conv1_1,params,"1,792",the slide's row

Header comments are ``# key: value`` lines before the column line; other ``#`` lines are
comments. An optional ``spec`` column names a row's spec when one table covers several
(VGG's Table 2 covers A–E); an empty cell falls back to the header's ``spec``.

``layer`` selects what a row talks about, tried in this order:

* ``TOTAL`` — the whole network (for ``shape``: the network's output);
* an exact layer name (``conv1_1``, ``inception_3a/1x1``);
* a type key of ``summarize --by type`` (``conv 1x1``, ``conv dw 3x3``, ``fc``);
* a name prefix: the layers named ``<prefix>/…`` (a module instance such as
  ``inception_3a``) or ``<prefix>_…`` (a repeat such as ``conv3`` → ``conv3_1..3``),
  summed (for ``shape``: the last of them);
* a glob with ``*`` (``conv*``), or several selectors joined by `` + `` (``conv1 + pool1``).

``quantity`` is one of QUANTITIES; ``connections`` is LeCun et al.'s (1998) count:
multiply-accumulates + bias additions + pooling additions (C1: 28*28*6*(25 + 1) = 122,304). ``published`` is the value exactly as printed (``138M``,
``159K``, ``3.8x10^9``, ``28x28x256``, ``94.86%``) and matches at the precision written
(:mod:`cnncalc.numbers`). A ``note`` starting with ``discrepancy:`` marks a published value
known to disagree with its own layers: the row is still shown as not matching, with its
reason, but does not make ``compare`` fail. If such a row starts to match, it is reported
as ``STALE`` (and fails) so that the note gets removed.

Pure Python; numbers come from :func:`cnncalc.analyze`, never from the table.
"""
from __future__ import annotations

import csv
import fnmatch
import io
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path

from cnncalc.errors import CnnCalcError
from cnncalc.numbers import parse_quantity, round_as
from cnncalc.shapes import Shape, fmt_int, fmt_shape, parse_shape

QUANTITIES = ("params", "weights", "biases", "macs", "flops", "shape", "activations",
              "params_percent", "macs_percent", "layers", "connections")
COLUMNS = ("layer", "quantity", "published", "note")
HEADER_KEYS = ("source", "spec", "binary", "input", "title", "url")
MATCH, MISMATCH, KNOWN, STALE = "match", "MISMATCH", "known discrepancy", "STALE"
DISCREPANCY_PREFIX = "discrepancy:"
MAX_TERMS = 16  # terms shown in the arithmetic of a sum


class TableError(CnnCalcError):
    """A table file that cannot be read (exit status 2)."""

    def __init__(self, message, file=None, line=None, hint=None):
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(where + message + (f"\n  hint: {hint}" if hint else ""))


# ------------------------------------------------------------------------------------ tables
@dataclass
class TableRow:
    layer: str
    quantity: str
    published: str
    note: str = ""
    spec: str | None = None
    line: int | None = None

    @property
    def known_discrepancy(self) -> bool:
        return self.note.strip().lower().startswith(DISCREPANCY_PREFIX)


@dataclass
class Table:
    id: str
    file: str
    rows: list[TableRow]
    source: str | None = None
    spec: str | None = None
    binary: frozenset = frozenset()  # quantities whose K/M/G are powers of 1024
    input: Shape | None = None
    meta: dict = field(default_factory=dict)

    @property
    def specs(self) -> list[str]:
        return list(dict.fromkeys(r.spec or self.spec for r in self.rows if (r.spec or self.spec)))


def tables_dir():
    return resources.files("cnncalc") / "zoo" / "tables"


def table_ids() -> list[str]:
    d = tables_dir()
    if not d.is_dir():
        return []
    return sorted(p.name[:-4] for p in d.iterdir() if p.name.endswith(".csv"))


def is_table_ref(ref: str) -> bool:
    p = Path(ref)
    if p.suffix.lower() == ".csv":
        return True
    return "/" not in ref and (tables_dir() / f"{ref}.csv").is_file()


def load_table(ref: str | Path) -> Table:
    """A table by path or by id (the file name in ``cnncalc/zoo/tables`` without ``.csv``)."""
    p = Path(ref)
    if p.is_file():
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TableError(f"cannot read the table: {e}", file=str(p)) from None
        return parse_table(text, file=str(p), table_id=p.stem)
    name = str(ref)
    stem = name[:-4] if name.endswith(".csv") else name
    if "/" not in stem and "\\" not in stem:
        cand = tables_dir() / f"{stem}.csv"
        if cand.is_file():
            return parse_table(cand.read_text(encoding="utf-8"), file=f"tables/{stem}.csv", table_id=stem)
    import difflib
    close = difflib.get_close_matches(stem, table_ids(), n=3)
    raise TableError(f"no table file {name!r} and no shipped table of that id",
                     hint=(f"did you mean {', '.join(close)}?" if close else
                           f"shipped tables: {', '.join(table_ids())}"))


def parse_table(text: str, file: str = "<table>", table_id: str = "table") -> Table:
    meta: dict[str, str] = {}
    body: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if not body:  # header comments come before the column line
                kv = s[1:].strip()
                if ":" in kv:
                    k, v = kv.split(":", 1)
                    k = k.strip().lower()
                    if k in HEADER_KEYS:
                        meta[k] = (meta[k] + " " + v.strip()) if k == "source" and k in meta else v.strip()
            continue
        body.append((n, line))
    if not body:
        raise TableError("the table has no column line", file=file,
                         hint="start with 'layer,quantity,published,note'")
    reader = csv.reader(io.StringIO("\n".join(l for _, l in body)))
    rows_raw = list(reader)
    header = [h.strip().lower() for h in rows_raw[0]]
    hline = body[0][0]
    for col in ("layer", "quantity", "published"):
        if col not in header:
            raise TableError(f"the column line has no {col!r} column", file=file, line=hline,
                             hint="columns are layer,quantity,published,note (and optionally spec)")
    unknown = [h for h in header if h not in (*COLUMNS, "spec")]
    if unknown:
        raise TableError(f"unknown column {unknown[0]!r}", file=file, line=hline,
                         hint="columns are layer,quantity,published,note and optionally spec")
    binary = _binary(meta.get("binary", "false"), file)
    shape = None
    if meta.get("input"):
        try:
            shape = parse_shape(meta["input"])
        except ValueError as e:
            raise TableError(str(e), file=file) from None
    rows = []
    for (n, _), cells in zip(body[1:], rows_raw[1:]):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise TableError(f"{len(cells)} cells for {len(header)} columns", file=file, line=n,
                             hint='quote a value that contains a comma: "1,792"')
        d = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        q = d["quantity"].lower()
        if q not in QUANTITIES:
            import difflib
            close = difflib.get_close_matches(q, QUANTITIES, n=1)
            raise TableError(f"unknown quantity {d['quantity']!r}", file=file, line=n,
                             hint=f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(QUANTITIES)}")
        if not d["layer"] or not d["published"]:
            raise TableError("a row needs a layer and a published value", file=file, line=n)
        if q == "shape":
            try:
                parse_shape(d["published"])
            except ValueError as e:
                raise TableError(str(e), file=file, line=n) from None
        else:
            try:
                parse_quantity(d["published"], binary=q in binary)
            except ValueError as e:
                raise TableError(str(e), file=file, line=n) from None
        rows.append(TableRow(d["layer"], q, d["published"], d.get("note", ""), d.get("spec") or None, n))
    if not rows:
        raise TableError("the table has no rows", file=file)
    if not meta.get("spec") and any(r.spec is None for r in rows):
        raise TableError("the table names no spec", file=file,
                         hint="add a '# spec: <zoo name>' header line or a 'spec' column")
    return Table(id=table_id, file=file, rows=rows, source=meta.get("source"), spec=meta.get("spec"),
                 binary=binary, input=shape, meta=meta)


def _binary(text: str, file) -> frozenset:
    """'# binary:' → the quantities whose K/M/G are powers of 1024 (GoogLeNet's Table 1 writes
    parameters with K = 1024 but operations with M = 10^6)."""
    t = text.strip().lower()
    if t in ("true", "yes"):
        return frozenset(QUANTITIES)
    if t in ("false", "no", ""):
        return frozenset()
    qs = {q.strip() for q in t.split(",") if q.strip()}
    bad = sorted(qs - set(QUANTITIES))
    if bad:
        raise TableError(f"'# binary:' is true, false or a list of quantities; {bad[0]!r} is none of them",
                         file=file, hint=f"quantities: {', '.join(QUANTITIES)}")
    return frozenset(qs)


# ------------------------------------------------------------------------------------ results
@dataclass
class RowResult:
    row: TableRow
    spec: str
    status: str
    exact: object  # int, Fraction (percent) or Shape
    printed: str  # what the table would have printed for the exact value
    layers: list[str]
    arithmetic: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (MATCH, KNOWN)

    def exact_text(self) -> str:
        if isinstance(self.exact, tuple):
            return fmt_shape(self.exact)
        if isinstance(self.exact, Fraction):
            return f"{float(self.exact):.4f}%" if self.row.quantity.endswith("_percent") else str(self.exact)
        return fmt_int(self.exact)

    def to_dict(self) -> dict:
        ex = (list(self.exact) if isinstance(self.exact, tuple)
              else [self.exact.numerator, self.exact.denominator] if isinstance(self.exact, Fraction)
              else self.exact)
        d = {"layer": self.row.layer, "quantity": self.row.quantity, "published": self.row.published,
             "spec": self.spec, "exact": ex, "exact_text": self.exact_text(), "printed": self.printed,
             "status": self.status, "note": self.row.note, "layers": self.layers,
             "arithmetic": self.arithmetic}
        if self.row.line:
            d["line"] = self.row.line
        return d


@dataclass
class TableResult:
    table: Table
    results: list[RowResult]

    def count(self, status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def unexpected(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def ok(self) -> bool:
        return self.unexpected == 0

    def summary(self) -> str:
        n, m, k = len(self.results), self.count(MATCH), self.count(KNOWN)
        bad, stale = self.count(MISMATCH), self.count(STALE)
        text = f"{n} rows: {m} match"
        if k:
            text += (f", {k} published row{'s' if k != 1 else ''} disagree{'s' if k == 1 else ''} "
                     f"with {'its' if k == 1 else 'their'} own layers (known discrepanc{'y' if k == 1 else 'ies'})")
        if bad:
            text += f", {bad} UNEXPECTED MISMATCH{'ES' if bad != 1 else ''}"
        if stale:
            text += f", {stale} STALE (listed as discrepancies but now match: remove the note)"
        return text

    def to_dict(self) -> dict:
        t = self.table
        return {"table": t.id, "file": t.file, "source": t.source, "spec": t.spec, "binary": sorted(t.binary),
                "rows": [r.to_dict() for r in self.results],
                "counts": {"rows": len(self.results), "match": self.count(MATCH),
                           "known_discrepancy": self.count(KNOWN), "mismatch": self.count(MISMATCH),
                           "stale": self.count(STALE)},
                "ok": self.ok}


# ------------------------------------------------------------------------------------ comparing
def compare_table(table: Table | str | Path, spec: str | Path | None = None, *, _cache=None) -> TableResult:
    """Compare every row of ``table`` with the exact numbers of its spec.

    ``spec`` replaces the header's spec (rows with their own ``spec`` cell keep it).
    """
    if not isinstance(table, Table):
        table = load_table(table)
    cache = {} if _cache is None else _cache
    out = []
    for row in table.rows:
        ref = row.spec or (str(spec) if spec is not None else table.spec)
        key = (ref, table.input)
        if key not in cache:
            cache[key] = _analyze(ref, table.input)
        out.append(compare_row(row, cache[key], ref, binary=row.quantity in table.binary, file=table.file))
    return TableResult(table, out)


def _analyze(ref, shape):
    from cnncalc.api import analyze  # noqa: PLC0415 - keep `import cnncalc.compare` light

    return analyze(ref, input=shape, explain=True)


def select_layers(report, selector: str, *, file=None, line=None) -> list:
    """The LayerStats a table's ``layer`` cell names (see the module docstring)."""
    sel = selector.strip()
    if sel.upper() == "TOTAL":
        return list(report.layers)
    if " + " in sel:
        out, seen = [], set()
        for part in sel.split(" + "):
            for r in select_layers(report, part, file=file, line=line):
                if r.name not in seen:
                    seen.add(r.name)
                    out.append(r)
        return out
    if sel in report:
        return [report[sel]]
    by_key = [r for r in report.layers if r.type_key == sel]
    if by_key:
        return by_key
    if any(ch in sel for ch in "*?["):
        hits = [r for r in report.layers if fnmatch.fnmatchcase(r.name, sel)]
    else:
        hits = [r for r in report.layers if r.name.startswith(sel + "/")]
        if not hits:
            hits = [r for r in report.layers if r.name.startswith(sel + "_")]
    if hits:
        return hits
    import difflib
    names = [r.name for r in report.layers] + sorted({r.type_key for r in report.layers})
    close = difflib.get_close_matches(sel, names, n=3)
    raise TableError(f"{report.name} has no layer, type or name prefix {sel!r}", file=file, line=line,
                     hint=(f"did you mean {', '.join(repr(c) for c in close)}?" if close
                           else "use TOTAL, a layer name, a type key of 'summarize --by type' or a name prefix"))


def _by_type_totals(report) -> dict:
    """Per-type sums, from the same function as ``summarize --by type``."""
    from cnncalc.cli.summarize import by_type  # noqa: PLC0415

    return {g["type"]: g for g in by_type(report)}


def _arith(lines: list[str], prefix: str) -> str | None:
    for e in lines:
        if e.startswith(prefix + ": "):
            return e[len(prefix) + 2:]
    return None


_TERMS = ("params", "weights", "biases", "macs", "flops", "activations")


def _term(r, quantity: str) -> int:
    if quantity in _TERMS:
        return getattr(r, quantity)
    if quantity == "layers":
        return 1
    if quantity == "connections":
        return r.macs + r.ops.get("bias", 0) + r.ops.get("pool", 0)
    raise KeyError(quantity)


def _sum_arith(layers, quantity: str, total: int) -> list[str]:
    prefix = {"params": "params", "weights": "params", "biases": "params", "macs": "MACs",
              "flops": "MACs", "activations": "memory"}.get(quantity)
    terms = [(r, _term(r, quantity)) for r in layers]
    nonzero = [(r, v) for r, v in terms if v]
    lines = []
    if len(layers) == 1:
        r = layers[0]
        a = _arith(r.explain, prefix) if prefix else None
        if a and quantity in ("weights", "biases"):
            lines.append(f"{r.name}: params {a}, of which {fmt_int(r.weights)} weights "
                         f"and {fmt_int(r.biases)} biases")
        elif a:
            lines.append(f"{r.name}: {quantity if prefix != 'MACs' else 'MACs'} {a}")
        if quantity == "flops":
            lines.append(f"FLOPs = 2 × MACs = 2 × {fmt_int(r.macs)} = {fmt_int(total)}")
        return lines or [f"{r.name}: {fmt_int(total)}"]
    for r, v in nonzero[:MAX_TERMS]:
        a = _arith(r.explain, prefix) if prefix else None
        lines.append(f"{r.name}: {a}" if a and quantity in ("params", "macs", "activations")
                     else f"{r.name}: {fmt_int(v)}")
    if len(nonzero) > MAX_TERMS:
        rest = sum(v for _, v in nonzero[MAX_TERMS:])
        lines.append(f"… {len(nonzero) - MAX_TERMS} more layers: {fmt_int(rest)}")
    shown = " + ".join(fmt_int(v) for _, v in nonzero[:MAX_TERMS])
    if len(nonzero) > MAX_TERMS:
        shown += f" + {fmt_int(sum(v for _, v in nonzero[MAX_TERMS:]))}"
    lines.append(f"sum of {len(nonzero)} layer{'s' if len(nonzero) != 1 else ''}: {shown or '0'} = {fmt_int(total)}")
    return lines


def _shapes_equal(a: Shape, b: Shape) -> bool:
    """Equal, or a flat [N] against 1x1xN (the papers write fc outputs as 1x1x1000)."""
    if tuple(a) == tuple(b):
        return True
    flat, other = (a, b) if len(a) == 1 else (b, a)
    return len(flat) == 1 and other[-1] == flat[0] and all(d == 1 for d in other[:-1])


def compare_row(row: TableRow, report, spec: str, *, binary: bool = False, file=None) -> RowResult:
    layers = select_layers(report, row.layer, file=file, line=row.line)
    names = [r.name for r in layers]
    q = row.quantity
    if q == "shape":
        last = layers[-1]
        exact = tuple(last.shape)
        published = parse_shape(row.published)
        good = _shapes_equal(exact, published)
        printed = fmt_shape(exact)
        arith = [f"{last.name}: {a}" for a in (e[len("shape: "):] for e in last.explain if e.startswith("shape: "))]
        if not arith:
            arith = [f"{last.name}: {printed}"]
    elif q.endswith("_percent"):
        base = q[: -len("_percent")]
        part = sum(_term(r, base) for r in layers)
        total = sum(_term(r, base) for r in report.layers)
        groups = _by_type_totals(report) if base in ("params", "macs") else {}
        if row.layer in groups and row.layer not in report:  # the grouping of summarize --by type
            part = groups[row.layer][base]
        exact = Fraction(100 * part, total or 1)
        pq = parse_quantity(row.published, binary=binary)
        if not pq.percent:
            raise TableError(f"a {q} value is written with '%', got {row.published!r}", file=file, line=row.line)
        good = pq.matches(exact)
        printed = round_as(exact, pq, binary=binary)
        arith = [f"100 × {fmt_int(part)} / {fmt_int(total)} = {float(exact):.4f}%"]
    else:
        exact = sum(_term(r, q) for r in layers)
        pq = parse_quantity(row.published, binary=binary)
        if pq.percent:
            raise TableError(f"{row.published!r} is a percentage; use the quantity {q}_percent",
                             file=file, line=row.line)
        good = pq.matches(exact)
        printed = round_as(exact, pq, binary=binary)
        arith = _sum_arith(layers, q, exact)
    if good:
        status = STALE if row.known_discrepancy else MATCH
    else:
        status = KNOWN if row.known_discrepancy else MISMATCH
    return RowResult(row, spec, status, exact, printed, names, arith)
