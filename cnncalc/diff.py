"""Two networks side by side: which layers changed, and what the change costs.

``diff_graphs(a, b)`` analyses both graphs (the numbers of ``summarize`` and, unless left
out, ``receptive-field``), pairs their layers and returns a :class:`Diff`:

1. **by name** — a layer named the same in both is the same layer (names are unique within
   a spec); of these pairs, the longest run that keeps both specs' order is kept (a longest
   increasing subsequence), so a layer moved elsewhere shows as removed + added;
2. **by structure** — between two consecutive name pairs (or everywhere, ``match="structure"``)
   the unpaired layers are aligned on their sequence of layer types: a longest common
   subsequence in which two layers may pair only if their types are equal, weighted to prefer
   pairs whose description (kernel, stride, filters) and output shape agree too. This pairs
   the layers of two specs whose names differ (an imported model and a hand-written spec).
   Beyond ``MAX_CELLS`` cells of the alignment table, :class:`difflib.SequenceMatcher` aligns
   the types instead (not always the longest; the Diff says so).

Every number is a difference of two ``analyze`` results; nothing here is typed in.
Pure Python: no numba, torch or onnx.
"""
from __future__ import annotations

import difflib
from bisect import bisect_left
from dataclasses import dataclass, field

from cnncalc.analysis.report import Report, analyze_graph
from cnncalc.errors import CnnCalcError
from cnncalc.graph import Graph
from cnncalc.shapes import kind_key

MATCHES = ("auto", "name", "structure")
MAX_CELLS = 1_000_000  # the exact alignment's table (rows x columns) beyond which difflib aligns
QUANTITIES = ("params", "macs", "activations")  # per layer, besides shape and receptive field
SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"


@dataclass
class LayerDiff:
    """One row: a layer of A paired with a layer of B, or a layer of one of them alone."""
    a: object | None  # LayerStats of A (None: added in B)
    b: object | None  # LayerStats of B (None: removed from A)
    matched_by: str | None = None  # "name" | "structure" | None (unpaired)
    rf_a: object = None  # r of the layer's receptive field (int, per-axis list, or None)
    rf_b: object = None
    with_bias: bool = True

    def value(self, side, quantity: str) -> int:
        row = self.a if side == "a" else self.b
        if row is None:
            return 0
        if quantity == "params":
            return row.params if self.with_bias else row.weights
        return getattr(row, quantity)

    def delta(self, quantity: str) -> int:
        return self.value("b", quantity) - self.value("a", quantity)

    @property
    def status(self) -> str:
        if self.a is None:
            return ADDED
        if self.b is None:
            return REMOVED
        a, b = self.a, self.b
        if (a.type != b.type or a.description != b.description or tuple(a.shape) != tuple(b.shape)
                or any(self.delta(q) for q in QUANTITIES) or a.nontrainable != b.nontrainable
                or self.rf_a != self.rf_b):
            return CHANGED
        return SAME

    @property
    def renamed(self) -> bool:
        return self.a is not None and self.b is not None and self.a.name != self.b.name

    def to_dict(self) -> dict:
        a, b = self.a, self.b
        d = {"a": a.name if a else None, "b": b.name if b else None, "status": self.status,
             "matched_by": self.matched_by,
             "type": {"a": a.type if a else None, "b": b.type if b else None},
             "description": {"a": a.description if a else None, "b": b.description if b else None},
             "shape": {"a": list(a.shape) if a else None, "b": list(b.shape) if b else None}}
        kinds = {side: kind_key(row.shape).get("kind") for side, row in (("a", a), ("b", b)) if row is not None}
        if any(kinds.values()):
            d["kind"] = kinds
        for q in QUANTITIES:
            d[q] = {"a": self.value("a", q) if a else None, "b": self.value("b", q) if b else None,
                    "delta": self.delta(q)}
        d["rf"] = {"a": self.rf_a, "b": self.rf_b}
        return d


TOTALS = ("params", "trainable", "nontrainable", "weights", "biases", "macs", "flops",
          "training_macs", "activations", "layers")
MEMORY = ("forward_bytes", "backward_saved_bytes", "params_bytes", "training_total_bytes",
          "inference_peak_bytes")


@dataclass(repr=False)
class Diff:
    a: Report
    b: Report
    layers: list[LayerDiff]
    match: str = "auto"
    aligner: str = "lcs"  # "lcs" (exact) or "difflib" (a big unnamed gap)
    rf: bool = True  # receptive fields were computed (for both)
    rf_out: tuple = (None, None)  # r of each network's last layer
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.layers if r.status == status)

    @property
    def identical(self) -> bool:
        t = all(self.a.totals.get(k) == self.b.totals.get(k) for k in TOTALS)
        return t and all(r.status == SAME for r in self.layers)

    def total(self, key: str) -> tuple[int, int]:
        if key in MEMORY:
            return self.a.memory[key], self.b.memory[key]
        return self.a.totals[key], self.b.totals[key]

    def to_dict(self) -> dict:
        totals = {}
        for k in TOTALS + MEMORY:
            va, vb = self.total(k)
            totals[k] = {"a": va, "b": vb, "delta": vb - va, "percent": percent(va, vb)}
        totals["rf"] = {"a": self.rf_out[0], "b": self.rf_out[1]}
        side = lambda r: {"name": r.name, "source": r.source, "file": r.file,  # noqa: E731
                          "input": list(r.input_shape), **{f"input_{k}": v for k, v in kind_key(r.input_shape).items()}}
        return {"a": side(self.a), "b": side(self.b), "batch": self.a.batch, "dtype": self.a.dtype,
                "biases_counted": self.a.with_bias, "match": self.match, "aligner": self.aligner,
                "receptive_field": self.rf,
                "counts": {s: self.count(s) for s in (SAME, CHANGED, ADDED, REMOVED)}
                | {"by_name": sum(r.matched_by == "name" for r in self.layers),
                   "by_structure": sum(r.matched_by == "structure" for r in self.layers)},
                "identical": self.identical,
                "layers": [r.to_dict() for r in self.layers], "totals": totals}

    def table(self, show_all: bool = False) -> str:
        """The plain table of ``cnncalc diff``."""
        from cnncalc.cli.diff import diff_view
        from cnncalc.report.render import to_plain

        return to_plain(diff_view(self, show_all=show_all))

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """Jupyter: the table of ``cnncalc diff`` (cnncalc.results renders it)."""
        from cnncalc.cli.diff import diff_view
        from cnncalc.results import TABLE_CSS, view_html

        return f'<div class="cnncalc-summary">{TABLE_CSS}{view_html(diff_view(self))}</div>'


def percent(a: int, b: int) -> float | None:
    """The change from a to b in per cent (None when a is 0)."""
    return round(100 * (b - a) / a, 2) if a else None


# ------------------------------------------------------------------------------------ alignment
def _lis(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of ``pairs`` (sorted by i) whose j increase too."""
    tails: list[int] = []  # tails[k]: index into pairs of the smallest j ending a run of k+1
    prev = [-1] * len(pairs)
    for idx, (_, j) in enumerate(pairs):
        k = bisect_left([pairs[t][1] for t in tails], j)
        if k:
            prev[idx] = tails[k - 1]
        if k == len(tails):
            tails.append(idx)
        else:
            tails[k] = idx
    out = []
    idx = tails[-1] if tails else -1
    while idx >= 0:
        out.append(pairs[idx])
        idx = prev[idx]
    return out[::-1]


def _weight(x, y) -> int:
    """How well layer x of A pairs with layer y of B (0: not at all: their types differ)."""
    if x.type != y.type:
        return 0
    return 1 + 2 * (x.description == y.description) + (tuple(x.shape) == tuple(y.shape))


def _align_gap(xs: list, ys: list) -> tuple[list[tuple[int | None, int | None]], bool]:
    """Pairs (i, j) of a weighted longest common subsequence of two runs of layers (by type),
    with the unpaired ones as (i, None) / (None, j), in an order that keeps both sequences."""
    n, m = len(xs), len(ys)
    if not n or not m:
        return [(i, None) for i in range(n)] + [(None, j) for j in range(m)], True
    if n * m > MAX_CELLS:
        sm = difflib.SequenceMatcher(None, [x.type for x in xs], [y.type for y in ys], autojunk=False)
        pairs = [(blk.a + k, blk.b + k) for blk in sm.get_matching_blocks() for k in range(blk.size)]
        exact = False
    else:
        # best[i][j]: the best total weight aligning xs[i:] with ys[j:]
        best = [[0] * (m + 1) for _ in range(n + 1)]
        for i in range(n - 1, -1, -1):
            row, below, x = best[i], best[i + 1], xs[i]
            for j in range(m - 1, -1, -1):
                w = _weight(x, ys[j])
                v = below[j + 1] + w if w else 0
                row[j] = max(v, below[j], row[j + 1])
        pairs, i, j = [], 0, 0
        while i < n and j < m:
            w = _weight(xs[i], ys[j])
            if w and best[i][j] == best[i + 1][j + 1] + w:
                pairs.append((i, j))
                i += 1
                j += 1
            elif best[i][j] == best[i + 1][j]:
                i += 1
            else:
                j += 1
        exact = True
    out: list[tuple[int | None, int | None]] = []
    pi = pj = 0
    for i, j in pairs + [(n, m)]:
        out += [(k, None) for k in range(pi, i)] + [(None, k) for k in range(pj, j)]
        if i < n:
            out.append((i, j))
        pi, pj = i + 1, j + 1
    return out, exact


def align(xs: list, ys: list, match: str = "auto") -> tuple[list[tuple[int | None, int | None, str | None]], bool]:
    """Pair the layers of two reports: [(i, j, how)], i or j None for an unpaired layer."""
    if match not in MATCHES:
        raise CnnCalcError(f"match must be one of {', '.join(MATCHES)}, not {match!r}")
    anchors: list[tuple[int, int]] = []
    if match != "structure":
        pos = {y.name: j for j, y in enumerate(ys)}
        anchors = _lis([(i, pos[x.name]) for i, x in enumerate(xs) if x.name in pos])
    out: list[tuple[int | None, int | None, str | None]] = []
    exact = True
    pi = pj = 0
    for i, j in anchors + [(len(xs), len(ys))]:
        gx, gy = xs[pi:i], ys[pj:j]
        if match == "name":
            gap = [(k, None) for k in range(len(gx))] + [(None, k) for k in range(len(gy))]
        else:
            gap, ok = _align_gap(gx, gy)
            exact = exact and ok
        for a, b in gap:
            out.append((None if a is None else pi + a, None if b is None else pj + b,
                        "structure" if a is not None and b is not None else None))
        if i < len(xs):
            out.append((i, j, "name"))
        pi, pj = i + 1, j + 1
    return out, exact


# ------------------------------------------------------------------------------------ public
def _rf(graph: Graph) -> dict | None:
    from cnncalc.analysis.rf import receptive_fields

    try:
        rep = receptive_fields(graph)
    except CnnCalcError:  # no spatial axes: no receptive field
        return None
    return {d["name"]: d["r"] for d in rep.to_dict()["layers"]}


def diff_graphs(a: Graph, b: Graph, *, batch: int = 1, dtype: str = "float32", bias: bool = True,
                input_shape=None, match: str = "auto", rf: bool = True) -> Diff:
    """Analyse two graphs and pair their layers (see the module's docstring)."""
    ra = analyze_graph(a, batch=batch, dtype=dtype, bias=bias, input_shape=input_shape)
    rb = analyze_graph(b, batch=batch, dtype=dtype, bias=bias, input_shape=input_shape)
    fa = _rf(a) if rf else None
    fb = _rf(b) if rf else None
    pairs, exact = align(ra.layers, rb.layers, match)
    rows = [LayerDiff(ra.layers[i] if i is not None else None, rb.layers[j] if j is not None else None, how,
                      rf_a=fa.get(ra.layers[i].name) if fa and i is not None else None,
                      rf_b=fb.get(rb.layers[j].name) if fb and j is not None else None, with_bias=bias)
            for i, j, how in pairs]
    out = (fa.get(ra.layers[-1].name) if fa and ra.layers else None,
           fb.get(rb.layers[-1].name) if fb and rb.layers else None)
    d = Diff(ra, rb, rows, match=match, aligner="lcs" if exact else "difflib", rf=rf, rf_out=out)
    if not exact:
        d.notes.append(f"more than {MAX_CELLS:,} pairs of unnamed layers to align: difflib's matcher "
                       "paired them by type (a good alignment, not always the longest)")
    if rf and (fa is None) != (fb is None):
        d.notes.append("only one of the two inputs has spatial axes: receptive fields of the other are empty")
    return d


def diff_specs(a, b, **kw) -> Diff:
    """``diff_graphs`` of two spec files, zoo names or .onnx models."""
    from cnncalc.spec.loader import load_spec

    shape = kw.get("input_shape")
    return diff_graphs(load_spec(a, input_shape=shape), load_spec(b, input_shape=shape), **kw)
