"""``cnncalc diff A B``: layer-by-layer and total differences of two networks."""
from __future__ import annotations

import click

from cnncalc._gc import paused_gc
from cnncalc.cli.common import (batch_option, dtype_option, format_option, input_option,
                                load_graph, rounding_option)
from cnncalc.report.render import Column, TableView, emit_json, render
from cnncalc.shapes import fmt_int, fmt_shape, human


@click.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@format_option()
@batch_option
@dtype_option
@input_option
@rounding_option
@click.option("--no-bias", is_flag=True, help="Count weights only (the VGG table's 'not counting biases').")
@click.option("--match", type=click.Choice(["auto", "name", "structure"]), default="auto", show_default=True,
              help="Pair layers by name, by structure (aligning their sequences of layer types), or "
                   "both: names first, structure between them.")
@click.option("--all-rows", "show_all", is_flag=True, help="List unchanged layers too (the table shows changes only).")
@click.option("--no-rf", is_flag=True,
              help="Leave out receptive fields (their analysis takes minutes on 1000-layer residual nets).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when the networks differ (as git diff --exit-code).")
def diff(a, b, fmt, batch, dtype, input_shape, no_bias, match, show_all, no_rf, exit_code):
    """What changes from network A to network B: every layer whose shape, parameters, MACs,
    memory or receptive field differs, and the totals (B − A, and in per cent of A).

    A and B are spec files, zoo names or .onnx models. Layers are paired by name, and where
    names differ (an imported model against a written spec) by aligning their sequences of
    layer types. Rows: changed, added (only in B), removed (only in A); a pair matched by
    structure whose names differ shows both names.

    \b
    Examples:
      cnncalc diff resnet18 examples/diff/resnet18_wide3.yaml   # what widening stage 3 costs
      cnncalc diff resnet18 resnet34 --no-rf
      cnncalc diff vgg16 vgg16 --no-bias --format json
      cnncalc diff mobilenet_v2 model.onnx --match structure --all-rows
    """
    with paused_gc():
        _diff(a, b, fmt, batch, dtype, input_shape, no_bias, match, show_all, no_rf, exit_code)


def _diff(a, b, fmt, batch, dtype, input_shape, no_bias, match, show_all, no_rf, exit_code):
    from cnncalc.diff import diff_graphs

    ga = load_graph(a, input_shape)
    gb = load_graph(b, input_shape)
    d = diff_graphs(ga, gb, batch=batch, dtype=dtype, bias=not no_bias, input_shape=input_shape,
                    match=match, rf=not no_rf)
    if fmt == "json":
        emit_json(d.to_dict())
    else:
        render(diff_view(d, show_all=show_all or fmt == "csv", wide=fmt == "csv"), fmt)
    if exit_code and not d.identical:
        click.get_current_context().exit(1)


def signed(v: int) -> str:
    return "0" if v == 0 else f"{v:+,}"


def _arrow(x: str, y: str) -> str:
    return x if x == y else f"{x} → {y}"


def _pct(a: int, b: int) -> str:
    from cnncalc.diff import percent

    p = percent(a, b)
    return "" if p is None or a == b else f" ({p:+.2f}%)"


def _rf_text(v) -> str:
    if v is None:
        return ""
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def diff_view(d, show_all: bool = False, wide: bool = False) -> TableView:
    """The rows of ``d`` as a table: compact (a → b cells, deltas) or wide (one column per
    number, for CSV)."""
    rows = []
    for r in d.layers:
        if not show_all and r.status == "same":
            continue
        a, b = r.a, r.b
        if wide:
            row = {"a": a.name if a else "", "b": b.name if b else "", "status": r.status,
                   "matched_by": r.matched_by or "",
                   "type_a": a.description if a else "", "type_b": b.description if b else "",
                   "shape_a": fmt_shape(a.shape) if a else "", "shape_b": fmt_shape(b.shape) if b else ""}
            for q in ("params", "macs", "activations"):
                row[f"{q}_a"] = r.value("a", q) if a else ""
                row[f"{q}_b"] = r.value("b", q) if b else ""
                row[f"{q}_delta"] = r.delta(q)
            row["rf_a"], row["rf_b"] = _rf_text(r.rf_a), _rf_text(r.rf_b)
        else:
            name = _arrow(a.name, b.name) if a and b else (a or b).name
            status = r.status + (" (by structure)" if r.matched_by == "structure" and r.renamed else "")
            desc = _arrow(a.description, b.description) if a and b else (a or b).description
            shape = (_arrow(fmt_shape(a.shape), fmt_shape(b.shape)) if a and b
                     else fmt_shape((a or b).shape))
            params = (_arrow(fmt_int(r.value("a", "params")), fmt_int(r.value("b", "params"))) if a and b
                      else fmt_int(r.value("a" if a else "b", "params")))
            rf = (_arrow(_rf_text(r.rf_a), _rf_text(r.rf_b)) if a and b
                  else _rf_text(r.rf_a if a else r.rf_b))
            row = {"name": name, "status": status, "type": desc, "shape": shape, "params": params,
                   "d_params": signed(r.delta("params")), "d_macs": signed(r.delta("macs")),
                   "d_activations": signed(r.delta("activations")), "rf": rf}
        rows.append(row)
    if wide:
        keys = list(rows[0]) if rows else ["a", "b", "status"]
        cols = [Column(k, k, "left" if not k.endswith(("_a", "_b", "_delta")) or k.startswith(("type", "shape", "rf"))
                       else "right") for k in keys]
        return TableView(title="", columns=cols, rows=rows)
    mem = "Δ memory (elements)" if d.a.batch == 1 else f"Δ memory (elements, batch {d.a.batch})"
    pname = "Params" if d.a.with_bias else "Weights"
    cols = [Column("name", "Layer", "left"), Column("status", "Change", "left", style="dim"),
            Column("type", "Type", "left", drop=4), Column("shape", "Output shape", "right", kind="text"),
            Column("params", pname, "right", kind="text", drop=3), Column("d_params", f"Δ {pname.lower()}"),
            Column("d_macs", "Δ MACs"), Column("d_activations", mem, drop=2),
            Column("rf", "RF r", "right", kind="text", drop=1)]
    if not d.rf:
        cols.pop()
    ta, tb = d.a.totals, d.b.totals
    pkey = "params" if d.a.with_bias else "weights"
    footer = [{"name": "Total (B − A)", "status": "", "type": "", "shape": "",
               "params": _arrow(fmt_int(ta[pkey]), fmt_int(tb[pkey])),
               "d_params": signed(tb[pkey] - ta[pkey]), "d_macs": signed(tb["macs"] - ta["macs"]),
               "d_activations": signed(tb["activations"] - ta["activations"]),
               "rf": _arrow(_rf_text(d.rf_out[0]), _rf_text(d.rf_out[1]))}]
    lines = []
    for label, key in (("params", pkey), ("trainable", "trainable"), ("non-trainable (BN statistics)", "nontrainable"),
                       ("mult-adds (MACs)", "macs"), ("FLOPs = 2 × MACs", "flops"),
                       ("training MACs per step", "training_macs"),
                       ("activations (elements)", "activations"), ("layers", "layers")):
        va, vb = d.total(key)
        lines.append((label, f"{fmt_int(va)} → {fmt_int(vb)}   {signed(vb - va)}{_pct(va, vb)}"))
    nb = d.a.memory["bytes_per_element"]
    mem_lines = []
    for label, key in (("forward activations", "forward_bytes"), ("backward keeps", "backward_saved_bytes"),
                       ("parameters (+ BN state)", "params_bytes"), ("estimated training total", "training_total_bytes"),
                       ("inference peak", "inference_peak_bytes")):
        va, vb = d.total(key)
        mem_lines.append((label, f"{va / 1e6:,.2f} MB → {vb / 1e6:,.2f} MB   {_signed_mb(vb - va)}{_pct(va, vb)}"))
    if d.rf:
        mem_lines.append(("receptive field of the output (r)",
                          _arrow(_rf_text(d.rf_out[0]) or "none", _rf_text(d.rf_out[1]) or "none")))
    sections = [("Totals: A → B   B − A (per cent of A)", lines),
                (f"Memory ({d.a.dtype}, {nb} bytes/element, batch {d.a.batch}; MB = 10^6 B)", mem_lines)]
    n = {s: d.count(s) for s in ("same", "changed", "added", "removed")}
    by_s = sum(1 for r in d.layers if r.matched_by == "structure")
    notes = [f"{n['changed']} changed, {n['added']} added, {n['removed']} removed, {n['same']} unchanged"
             + ("" if show_all or not n["same"] else " (not listed; --all-rows lists them)")
             + f"; paired {sum(1 for r in d.layers if r.matched_by == 'name')} by name, {by_s} by structure"]
    notes += d.notes
    if d.identical:
        notes.insert(0, "the two networks count the same in every layer")
    caption = f"A: {d.a.file or d.a.name}  ({fmt_shape(d.a.input_shape)})\nB: {d.b.file or d.b.name}  ({fmt_shape(d.b.input_shape)})"
    title = f"{d.a.name} → {d.b.name}: {human(abs(tb[pkey] - ta[pkey]))} {'more' if tb[pkey] >= ta[pkey] else 'fewer'} " \
            f"{pname.lower()}, {human(abs(tb['macs'] - ta['macs']))} {'more' if tb['macs'] >= ta['macs'] else 'fewer'} MACs"
    return TableView(title=title, columns=cols, rows=rows, footer=footer, sections=sections, notes=notes,
                     caption=caption)


def _signed_mb(nbytes: int) -> str:
    return "0" if nbytes == 0 else f"{nbytes / 1e6:+,.2f} MB"
