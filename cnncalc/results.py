"""Results for Python and Jupyter: :class:`Summary` (what ``cnncalc.summary`` returns) and the
renderings behind ``_repr_html_`` / ``to_pandas`` of a Graph and a Report.

``print(s)`` is the plain table of ``cnncalc summarize``; in Jupyter ``s`` shows the same table
as HTML with the totals and the layer graph (SVG); ``s.to_pandas()`` is one DataFrame row per
layer (pandas is optional: the method says how to install it). Imported only when used:
``import cnncalc`` never loads this module, pandas, torch or onnx.
"""
from __future__ import annotations

from html import escape

from cnncalc.analysis.report import Report
from cnncalc.graph import Graph
from cnncalc.shapes import fmt_shape

GRAPH_MAX_BOXES = 300  # a notebook's picture collapses modules (depth 1) beyond this many layers
TABLE_CSS = ("<style>.cnncalc-summary table{border-collapse:collapse;font-size:12px}"
             ".cnncalc-summary td,.cnncalc-summary th{padding:2px 8px;border-bottom:1px solid #eee;"
             "white-space:nowrap}.cnncalc-summary td.num,.cnncalc-summary th.num{text-align:right;"
             "font-variant-numeric:tabular-nums}.cnncalc-summary tfoot td{font-weight:bold;"
             "border-top:1px solid #999}.cnncalc-summary .scroll{max-height:480px;overflow:auto}"
             ".cnncalc-summary .muted{color:#666}</style>")

COLUMNS = ("name", "type", "description", "shape", "params", "weights", "biases", "nontrainable",
           "activations", "activation_bytes", "macs", "flops", "training_macs")


class Summary:
    """A network's analysis: ``report`` (the numbers), ``graph`` (the layers), and for a live
    model the ``spec`` it was converted to and ``framework_params``, the parameter count
    ``sum(p.numel() for p in model.parameters())``."""

    def __init__(self, report: Report, graph: Graph, *, spec: str | None = None,
                 framework_params: int | None = None, depth: int | None = None):
        self.report = report
        self.graph = graph
        self.spec = spec
        self.framework_params = framework_params
        self.depth = depth

    # the report's numbers, read through
    @property
    def totals(self) -> dict:
        return self.report.totals

    @property
    def memory(self) -> dict:
        return self.report.memory

    @property
    def layers(self) -> list:
        return self.report.layers

    @property
    def name(self) -> str:
        return self.report.name

    def __getitem__(self, name: str):
        return self.report[name]

    def __iter__(self):
        return iter(self.report.layers)

    def __len__(self) -> int:
        return len(self.report.layers)

    def to_dict(self) -> dict:
        """The object ``cnncalc summarize --format json`` prints."""
        return self.report.to_dict()

    def to_pandas(self):
        return report_frame(self.report)

    def table(self) -> str:
        """The plain table of ``cnncalc summarize`` (``--depth`` if given)."""
        from cnncalc.cli.summarize import layer_view
        from cnncalc.report.render import to_plain

        return to_plain(layer_view(self.report, depth=self.depth, chart=False))

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()

    def svg(self, depth: int | None = None) -> str:
        """The layer graph as SVG (as ``cnncalc graph``)."""
        from cnncalc.report.graph import layout_graph
        from cnncalc.report.svg import to_svg

        return to_svg(layout_graph(self.graph, depth if depth is not None else self.depth), standalone=False)

    def _repr_html_(self) -> str:
        return summary_html(self.report, self.graph, depth=self.depth)


def report_frame(report: Report):
    """One pandas DataFrame row per layer, indexed by layer name."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas, which is not installed: pip install pandas") from None
    rows = []
    for r in report.layers:
        rows.append({"name": r.name, "type": r.type, "description": r.description, "shape": fmt_shape(r.shape),
                     "params": r.params if report.with_bias else r.weights, "weights": r.weights,
                     "biases": r.biases, "nontrainable": r.nontrainable, "activations": r.activations,
                     "activation_bytes": r.activation_bytes, "macs": r.macs, "flops": r.flops,
                     "training_macs": r.training_macs})
    return pd.DataFrame(rows, columns=list(COLUMNS)).set_index("name")


def cell_text(col, v) -> str:
    """A cell as the plain table writes it: the column's format, else ints with commas."""
    if v is None or v == "":
        return ""
    if col.fmt is not None:
        return col.fmt(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, tuple):
        return " ".join(v).rstrip()
    return str(v)


def view_html(view) -> str:
    """A TableView (summarize's table, totals and notes) as an HTML fragment."""
    head = "".join(f'<th class="{"num" if c.align == "right" else ""}">{escape(c.header)}</th>'
                   for c in view.columns)

    def tr(row, tag="td"):
        return "<tr>" + "".join(f'<{tag} class="{"num" if c.align == "right" else ""}">'
                                f'{escape(cell_text(c, row.get(c.key, "")))}</{tag}>' for c in view.columns) + "</tr>"

    body = "".join(tr(r) for r in view.rows)
    foot = "".join(tr(r) for r in view.footer)
    out = [f"<b>{escape(view.title)}</b>"]
    if view.caption:
        out.append(f'<div class="muted">{escape(view.caption)}</div>')
    out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
               f"<tfoot>{foot}</tfoot></table></div>")
    for title, items in view.sections:
        kv = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in items)
        out.append(f"<details><summary>{escape(title)}</summary><table>{kv}</table></details>")
    out += [f'<div class="muted">{escape(n)}</div>' for n in view.notes]
    return "".join(out)


def summary_html(report: Report, graph: Graph | None, depth: int | None = None) -> str:
    """What Jupyter shows for a Summary, a Report or a Graph: the table of ``summarize`` (and
    its totals), then the layer graph."""
    from cnncalc.cli.summarize import layer_view

    parts = ['<div class="cnncalc-summary">', TABLE_CSS,
             view_html(layer_view(report, depth=depth, chart=False))]
    if graph is not None:
        from cnncalc.report.graph import layout_graph
        from cnncalc.report.svg import to_svg

        pic_depth = depth
        note = ""
        if pic_depth is None and len(graph.layers) > GRAPH_MAX_BOXES:
            pic_depth = 1
            note = f'<div class="muted">{len(graph.layers)} layers: the picture collapses modules (depth 1)</div>'
        svg = to_svg(layout_graph(graph, pic_depth), standalone=False)
        parts.append(f'<details open><summary>Graph</summary>{note}<div class="scroll">{svg}</div></details>')
    parts.append("</div>")
    return "".join(parts)
