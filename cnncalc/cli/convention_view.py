"""``summarize --convention NAME``: the number another counter prints, and what it is made of."""
from __future__ import annotations

from cnncalc.analysis.conventions import CALLS, CONVENTIONS, VERSIONS, ConventionCount, count
from cnncalc.report.render import Column, TableView
from cnncalc.shapes import fmt_int, human

CONVENTION_CHOICES = [*CONVENTIONS, "all"]


def counts(graph, report, convention: str) -> list[ConventionCount]:
    names = CONVENTIONS if convention == "all" else (convention,)
    return [count(graph, report, c) for c in names]


def column(cc: ConventionCount) -> tuple[Column, dict[str, int], int]:
    """summarize's extra column: the convention's count of each layer, and the total."""
    return Column("convention", f"{cc.convention} {cc.unit.split(' (')[0]}", drop=1), cc.layers, cc.total


def section(cc: ConventionCount) -> tuple[str, list[tuple[str, str]]]:
    tool = f"{cc.convention} {VERSIONS[cc.convention]}" if cc.convention in VERSIONS else cc.convention
    items = [(part, fmt_int(v)) for part, v in cc.parts.items()]
    items.append((f"= {cc.unit}", f"{fmt_int(cc.total)}  (≈ {human(cc.total)})"))
    items.append(("params", f"{fmt_int(cc.params)}  (model.parameters(); buffers not counted)"))
    items.append(("the tool's own call", CALLS[cc.convention]))
    if cc.not_modelled:
        items.append(("no rule for", ", ".join(cc.not_modelled) + " (counted as cnncalc's MACs)"))
    return (f"Convention: {tool} — what it counts", items)


def comparison_view(report, ccs: list[ConventionCount]) -> TableView:
    """One row per convention: its total, how it differs from cnncalc's MACs, and of what."""
    base = report.totals["macs"]
    rows = []
    for cc in ccs:
        extra = [f"{part} {fmt_int(v)}" for part, v in cc.parts.items()
                 if not part.startswith(("conv/fc/matmul MACs", "conv/fc MACs"))]
        rows.append({"convention": cc.convention, "unit": cc.unit.split(" (")[0], "total": cc.total,
                     "difference": cc.total - base,
                     "percent": f"{100 * (cc.total - base) / base:+.3f}%" if base else "",
                     "params": cc.params, "counts": "; ".join(extra) or "conv/fc/matmul MACs only"})
    cols = [Column("convention", "Convention", "left"), Column("unit", "Unit", "left", drop=2),
            Column("total", "Count"), Column("difference", "− cnncalc MACs", fmt=lambda v: f"{v:+,}" if v else "0"),
            Column("percent", "%", drop=1), Column("params", "Params", drop=3),
            Column("counts", "Counted besides MACs (no bias unless named)", "left")]
    notes = [f"{cc.convention}: {CALLS[cc.convention]}" for cc in ccs if cc.convention != "cnncalc"]
    notes.append("each counter run on the network written as torchvision writes it (nn modules for "
                 "activations, pooling and norms; out += identity); N = batch "
                 f"{report.batch} (ptflops: one sample); see docs/counting.md")
    missing = sorted({k for cc in ccs for k in cc.not_modelled})
    if missing:
        notes.append(f"no rule for {', '.join(missing)}: counted as cnncalc's MACs")
    return TableView(title=f"{report.name} — input {'x'.join(map(str, report.input_shape))}: "
                           "one network, five counters", columns=cols, rows=rows, notes=notes,
                     caption=report.source)
