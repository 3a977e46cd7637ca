"""``cnncalc summarize``: the per-layer table and torchinfo-like totals."""
from __future__ import annotations

import click

from cnncalc._gc import paused_gc
from cnncalc.cli.summarize_views import requested_view, run_view, symbolic_option, workspace_option
from cnncalc.cli.common import (batch_option, dtype_option, format_option, input_option,
                                load_graph, rounding_option)
from cnncalc.analysis.report import OP_KINDS, Report, analyze_graph
from cnncalc.cli.training_memory import asked as train_asked
from cnncalc.cli.training_memory import section as train_section
from cnncalc.cli.training_memory import setup as train_setup
from cnncalc.cli.training_memory import training_options
from cnncalc.cli.training_memory import walk as train_walk
from cnncalc.report.render import (CHART_MEMORY, CHART_PARAMS, Column, ColumnRows, TableView, bar,
                                   emit_json, render)
from cnncalc.shapes import fmt_int, fmt_shape, human


@click.command()
@click.argument("spec")
@symbolic_option
@workspace_option
@format_option()
@batch_option
@dtype_option
@input_option
@rounding_option
@click.option("--no-bias", is_flag=True, help="Count weights only (the VGG table's 'not counting biases').")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Collapse module instances and blocks: one row per name prefix of this depth.")
@click.option("--by", "by", type=click.Choice(["type"]), default=None,
              help="Totals per layer type with percentages (MobileNet's Table 2).")
@click.option("--explain", is_flag=True, help="Show the arithmetic behind every number.")
@click.option("--chart/--no-chart", default=True, show_default=True,
              help="Bars showing where memory and parameters sit.")
@click.option("--convention", type=click.Choice(["cnncalc", "torchinfo", "fvcore", "ptflops", "thop", "all"]),
              default=None, help="Also count as torchinfo, fvcore, ptflops or thop count (a column, and what "
                                 "the count is made of); all: the five totals side by side.")
@training_options
def summarize(spec, fmt, batch, dtype, input_shape, no_bias, depth, by, explain, chart, convention, **training):
    """Shapes, parameters, memory and MACs of every layer of SPEC, and the totals.

    SPEC is a YAML file or the name of a shipped spec (see `cnncalc zoo`).

    \b
    Examples:
      cnncalc summarize specs/vgg16.yaml
      cnncalc summarize resnet50 --symbolic      # MACs and memory as formulas in H and W
      cnncalc summarize resnet18 --workspace     # conv memory: im2col, Winograd, FFT
      cnncalc summarize vgg16 --no-bias --explain
      cnncalc summarize vgg16 --batch 64 --dtype float16
      cnncalc summarize alexnet --format json > alexnet.json
      cnncalc summarize vgg16 --input 7x7x3      # does it fit? (no: exit 2)
      cnncalc summarize resnet18 --convention all   # why torchinfo, fvcore, ptflops, thop differ
      cnncalc summarize resnet50 --batch 32 --optimizer adamw --precision bf16-mixed
    """
    # a command that runs once and exits: reference counting frees what it drops, and the
    # cyclic GC would only rescan the thousands of rows a big spec makes, again and again
    view = requested_view()  # --symbolic / --workspace: reports of their own
    if view:
        return run_view(view, spec, fmt, batch, dtype, input_shape, explain, depth=depth, by=by, no_bias=no_bias)
    with paused_gc():
        _summarize(spec, fmt, batch, dtype, input_shape, no_bias, depth, by, explain, chart, convention, training)


def _with_explain(dicts, rows):
    for d, row in zip(dicts, rows):
        d["explain"] = row.explain
        yield d


def _summarize(spec, fmt, batch, dtype, input_shape, no_bias, depth, by, explain, chart, convention=None,
               training=None):
    graph = load_graph(spec, input_shape)
    report = analyze_graph(graph, batch=batch, dtype=dtype, bias=not no_bias,
                           input_shape=input_shape, explain=explain)
    if convention:
        from cnncalc.cli import convention_view as CV

        ccs = CV.counts(graph, report, convention)
    # the training step's liveness walk: only when a training setup is asked for
    step = train_walk(graph, report, train_setup(training)) if training and train_asked(training) else None
    del graph  # (the report holds what is shown: the table reuses the graph's memory)
    if convention and fmt == "json":
        obj = report.to_dict()
        obj["conventions"] = [cc.to_dict() for cc in ccs]
        for row in obj["layers"]:
            row["convention"] = {cc.convention: cc.layers[row["name"]] for cc in ccs}
        emit_json(obj)
        return
    if convention == "all":
        render(CV.comparison_view(report, ccs), fmt)
        return
    if convention:
        if by or depth:
            from cnncalc.cli.common import fail

            fail("--convention shows one row per layer: leave out --by and --depth")
        view = layer_view(report, chart=chart and fmt in ("table", "plain"), extra=CV.column(ccs[0]))
        view.sections.append(CV.section(ccs[0]))
        render(view, fmt)
        return
    if fmt == "json":
        obj = report.to_dict(lazy=True)  # (the rows' dicts made as they are written)
        if step is not None:
            obj["training"] = step.as_dict()
        if by:
            obj["by_type"] = by_type(report)
        if explain:
            obj["layers"] = _with_explain(obj["layers"], report.layers)
        emit_json(obj, rows="layers")
        return
    if by:
        render(by_type_view(report), fmt)
        return
    view = layer_view(report, depth=depth, chart=chart and fmt in ("table", "plain"))
    if step is not None:
        view.sections.append(train_section(step, report.batch))
    render(view, fmt)
    if explain and fmt != "csv":
        _explain(report, fmt)


# ------------------------------------------------------------------------------------- views
def _collapse(report: Report, depth: int) -> list[dict]:
    """Aggregate rows by the first ``depth`` components of their names."""
    out: list[dict] = []
    index: dict[str, dict] = {}
    for r in report.layers:
        parts = r.name.split("/")
        key = "/".join(parts[:depth]) if len(parts) > depth else r.name
        row = index.get(key)
        if row is None:
            row = {"name": key, "type": r.description if key == r.name else "module", "shape": r.shape,
                   "activations": 0, "params": 0, "macs": 0, "saved": 0, "layers": 0}
            index[key] = row
            out.append(row)
        row["shape"] = r.shape
        row["activations"] += 0 if r.view else r.activations
        row["params"] += r.params if report.with_bias else r.weights
        row["macs"] += r.macs
        row["saved"] += r.saved_bytes
        row["layers"] += 1
    for row in out:
        if row["layers"] > 1:
            row["type"] = f"{row['layers']} layers"
    return out


def layer_view(report: Report, depth: int | None = None, chart: bool = True,
               extra: tuple[Column, dict[str, int], int] | None = None) -> TableView:
    """summarize's table; ``extra`` = (a column after MACs, its value per layer name, its total)."""
    t, m = report.totals, report.memory
    pkey = "params" if report.with_bias else "weights"
    cells = ("type", "shape", "activations", "params", "macs", "saved")
    input_cells = ("input", report.input_shape, t["input"], 0, 0, 0)
    if depth:
        rows = _collapse(report, depth)
        names = ["input"] + [r["name"] for r in rows]
        distinct = [input_cells] + [tuple(r[k] for k in cells) for r in rows]
        kinds = list(range(len(distinct)))
    else:
        # a replayed block's rows differ only in their names: each kind of row (the same
        # cells but the name) is formatted once, and a row is its name and its kind
        layers = report.layers
        names = ["input"] + [r.name for r in layers]
        # an opaque layer's MACs are unknown: "?", never a 0 that looks exact
        if report.with_bias:
            keys = [(r.description, r.shape, r.activations, r.weights + r.biases,
                     "?" if r.type == "opaque" else r.macs, r.saved_bytes) for r in layers]
        else:
            keys = [(r.description, r.shape, r.activations, r.weights, "?" if r.type == "opaque" else r.macs,
                     r.saved_bytes) for r in layers]
        index = {input_cells: 0}
        kinds = [0] + [index.setdefault(k, len(index)) for k in keys]
        distinct = list(index)
    shared = {k: list(v) for k, v in zip(cells, zip(*distinct))}
    if chart:
        acts, params = shared["activations"], shared["params"]
        max_mem = max(acts, default=1) or 1
        max_par = max(params, default=1) or 1
        shared["chart"] = [(bar(a / max_mem, 8), bar(p / max_par, 8)) for a, p in zip(acts, params)]
    mem_header = "Memory (elements)" if report.batch == 1 else f"Memory (elements, batch {report.batch})"
    cols = [
        Column("name", "Layer", "left"),
        Column("type", "Type", "left", style="dim", drop=3),
        Column("shape", "Output shape", "right", fmt=fmt_shape),
        Column("activations", mem_header, fmt=lambda v: fmt_int(v), drop=2),
        Column("params", "Params" if report.with_bias else "Weights (no biases)"),
        Column("macs", "MACs", drop=1),
        Column("saved", "Saved (B)", drop=4),  # (the first to go: the classic columns stay)
    ]
    columns = {"name": names}
    if extra is not None:
        cols.insert(next(i for i, c in enumerate(cols) if c.key == "macs") + 1, extra[0])
        columns[extra[0].key] = [0] + [extra[1][n] for n in names[1:]]
    if chart:  # two bars in two colours (plain text: the same bars, side by side)
        cols.append(Column("chart", "memory │ params", "left", kind="chart", drop=1,
                           styles=(CHART_MEMORY, CHART_PARAMS)))
    total_label = "Total" + ("" if report.with_bias else " (no biases)")
    footer = [{"name": total_label, "type": "", "shape": "",
               "activations": t["activations"] + t["input"], "params": t[pkey],
               "macs": f"≥ {fmt_int(t['macs'])}" if t["macs_unknown"] else t["macs"],
               "saved": t["saved_bytes"]}]
    if extra is not None:
        footer[0][extra[0].key] = extra[2]
    nb = m["bytes_per_element"]
    sections = [
        ("Parameters", [
            ("total params", f"{fmt_int(t['trainable'])}  (≈ {human(t['trainable'])})"),
            ("trainable", fmt_int(t["trainable"])),
            ("non-trainable", f"{fmt_int(t['nontrainable'])}  (BN running statistics; "
                              f"Keras' total counts them: {fmt_int(t['params_with_state'])})"),
            ("weights / biases", f"{fmt_int(t['weights'])} / {fmt_int(t['biases'])}"),
        ]),
        ("Operations", [
            ("mult-adds (MACs)", f"{'at least ' if t['macs_unknown'] else ''}{fmt_int(t['macs'])}  (≈ {human(t['macs'])})"
                                 + (f"; the MACs of {len(t['macs_unknown'])} opaque layer(s) are unknown"
                                    if t["macs_unknown"] else "")),
            ("FLOPs = 2 × MACs", f"{fmt_int(t['flops'])}  (≈ {human(t['flops'])})"),
            ("training MACs per step", f"{fmt_int(t['training_macs'])}  (≈ {human(t['training_macs'])}) = "
                                       f"forward + input gradients {fmt_int(t['input_grad_macs'])} + "
                                       f"weight gradients {fmt_int(t['weight_grad_macs'])}"),
        ] + [(f"{k} ops", fmt_int(t["ops"][k])) for k in OP_KINDS if t["ops"].get(k)]),
        (f"Memory ({report.dtype}, {nb} bytes/element, batch {report.batch}; MB = 10^6 B, MiB = 2^20 B)", [
            ("input", _mem(m["input_bytes"], t["input"])),
            ("forward activations", _mem(m["forward_bytes"], t["activations"])),
            ("input + activations", _mem(m["input_bytes"] + m["forward_bytes"], t["input"] + t["activations"])),
            ("saved for backward (as torch's autograd keeps them)", _mem(m["autograd_saved_bytes"])),
            ("activation gradients (peak)", _mem(m["activation_gradient_peak_bytes"])),
            ("parameters (+ BN state)", _mem(m["params_bytes"])),
            ("gradients", _mem(m["gradients_bytes"])),
            ("optimizer state (SGD momentum)", _mem(m["optimizer_bytes"])),
            ("training total, summed", _mem(m["training_total_bytes"])
             + "  (parameters + gradients + momentum + input and every output + gradient peak: "
               "cnncalc's runtime; --optimizer walks a PyTorch step)"),
            ("  rule of thumb: 2 × (input + activations)", _mem(m["rule_of_thumb_bytes"])),
            ("inference peak, buffers reused", _mem(m["inference_peak_activation_bytes"])
             + f" activations at {report.peak_at} (+ parameters = {m['inference_peak_bytes'] / 1e6:,.1f} MB)"),
        ]),
    ]
    caption = report.source
    title = f"{report.name} — input {fmt_shape(report.input_shape)}"
    notes = []
    if not report.with_bias:
        notes.append(f"biases are not counted in the params column ({fmt_int(t['biases'])} biases; "
                     f"with them: {fmt_int(t['trainable'])})")
    opaque = [r.name for r in report.layers if r.type == "opaque"]
    if opaque:
        notes.append(f"WARNING: {len(opaque)} opaque layer(s) ({', '.join(opaque[:5])}{', ...' if len(opaque) > 5 else ''})"
                     f" have unknown MACs: the MAC and FLOP totals are lower bounds")
    return TableView(title=title, columns=cols, rows=ColumnRows(columns, kinds, shared),
                     footer=footer, sections=sections, notes=notes, caption=caption)


def _mem(nbytes: int, elements: int | None = None) -> str:
    el = f"{fmt_int(elements)} elements = " if elements is not None else ""
    return f"{el}{fmt_int(nbytes)} B = {nbytes / 1e6:,.2f} MB ({nbytes / 2**20:,.2f} MiB)"


def by_type(report: Report) -> list[dict]:
    groups: dict[str, dict] = {}
    for r in report.layers:
        # attention's MACs split into its projections and its QKᵀ + AV (each row counts the
        # layer; the parameters go with the first: the projections')
        parts = r.mac_parts if r.mac_parts is not None else {r.type_key: r.macs}
        for i, (key, m) in enumerate(parts.items()):
            g = groups.setdefault(key, {"type": key, "layers": 0, "params": 0, "macs": 0})
            g["layers"] += 1
            if i == 0:
                g["params"] += r.params if report.with_bias else r.weights
            g["macs"] += m
    tp = sum(g["params"] for g in groups.values()) or 1
    tm = sum(g["macs"] for g in groups.values()) or 1
    out = sorted(groups.values(), key=lambda g: (-g["macs"], -g["params"]))
    for g in out:
        g["macs_percent"] = round(100 * g["macs"] / tm, 2)
        g["params_percent"] = round(100 * g["params"] / tp, 2)
    return out


def by_type_view(report: Report) -> TableView:
    rows = by_type(report)
    pct = lambda v: f"{v:.2f}%"  # noqa: E731
    cols = [Column("type", "Type", "left"), Column("layers", "Layers", drop=1),
            Column("macs", "Mult-adds"), Column("macs_percent", "Mult-adds %", fmt=pct),
            Column("params", "Params"), Column("params_percent", "Params %", fmt=pct)]
    t = report.totals
    footer = [{"type": "Total", "layers": len(report.layers), "macs": t["macs"], "macs_percent": 100.0,
               "params": t["params"], "params_percent": 100.0}]
    return TableView(title=f"{report.name} — resources per layer type", columns=cols, rows=rows,
                     footer=footer, caption=report.source)


def _explain(report: Report, fmt: str) -> None:
    lines = [f"{report.name}: the arithmetic behind each row", ""]
    lines.append(f"input: {fmt_shape(report.input_shape)} = {'*'.join(map(str, report.input_shape))} = "
                 f"{fmt_int(report.totals['input'] // report.batch)} values")
    for r in report.layers:
        lines.append(f"{r.name} ({r.description}) → {fmt_shape(r.shape)}")
        lines += [f"    {e}" for e in r.explain]
    t = report.totals
    lines.append("")
    if report.with_bias:
        lines.append(f"total params: {' + '.join(fmt_int(r.params) for r in report.layers if r.params)} = "
                     f"{fmt_int(t['trainable'])}")
    else:  # the rows count weights only: so does their sum
        lines.append(f"total weights (no biases): "
                     f"{' + '.join(fmt_int(r.weights) for r in report.layers if r.weights)} = "
                     f"{fmt_int(t['weights'])}")
    from cnncalc.escape import term_text

    text = "\n".join(map(term_text, lines)) + "\n"  # (a name cannot drive the terminal nor close the fence)
    if fmt == "markdown":
        text = "```\n" + text + "```\n"
    click.echo(text, nl=False)
