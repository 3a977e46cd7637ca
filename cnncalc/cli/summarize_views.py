"""``summarize --symbolic`` (cost as formulas in the input size) and ``summarize --workspace``
(the extra memory of each convolution algorithm): the options, and their views."""
from __future__ import annotations

import click

from cnncalc.escape import term_text
from cnncalc.report.render import Column, TableView, emit_json, render
from cnncalc.shapes import fmt_int

_KEY = "cnncalc.summarize_view"


def _remember(ctx, param, value):
    if value:
        views = ctx.meta.setdefault(_KEY, [])
        views.append(param.name)
    return value


symbolic_option = click.option(
    "--symbolic", is_flag=True, expose_value=False, callback=_remember,
    help="Parameters, MACs and activation memory as exact formulas in the input's H and W, "
         "and the input sizes the network accepts.")
workspace_option = click.option(
    "--workspace", is_flag=True, expose_value=False, callback=_remember,
    help="Extra memory of every conv per algorithm (direct, im2col, Winograd F(2x2,3x3), FFT), "
         "the peak over the network, and the runtime's own choice.")


def requested_view() -> str | None:
    """'symbolic', 'workspace' or None: which of the two views the command line asks for."""
    ctx = click.get_current_context(silent=True)
    views = ctx.meta.get(_KEY, []) if ctx is not None else []
    if len(views) > 1:
        from cnncalc.cli.common import fail

        fail("--symbolic and --workspace are two reports: ask for one at a time")
    return views[0] if views else None


def run_view(view: str, spec, fmt, batch, dtype, input_shape, explain, depth=None, by=None, no_bias=False):
    from cnncalc.cli.common import fail, load_graph

    for flag, given in (("--depth", depth), ("--by", by), ("--no-bias", no_bias)):
        if given:
            fail(f"--{view} does not combine with {flag}")
    graph = load_graph(spec, input_shape)
    if view == "symbolic":
        show_symbolic(graph, fmt, batch, dtype, input_shape, explain)
    else:
        show_workspace(graph, fmt, batch, dtype, input_shape, explain)


def _json(obj: dict, rows, explain: bool) -> None:
    """The report as one JSON object; with --explain each layer's arithmetic as a list."""
    if explain:
        for row, r in zip(obj["layers"], rows):
            row["explain"] = list(r.explain)
    emit_json(obj)


# ------------------------------------------------------------------------------- symbolic
def show_symbolic(graph, fmt, batch, dtype, input_shape, explain):
    from cnncalc.analysis.report import dtype_bytes
    from cnncalc.analysis.symbolic import symbolic

    nb = dtype_bytes(dtype)
    rep = symbolic(graph, batch=batch, nbytes=nb, dtype=dtype, input_shape=input_shape, explain=explain)
    if fmt == "json":
        return _json(rep.to_dict(), rep.layers, explain)
    render(symbolic_view(rep, code=fmt == "markdown"), fmt)
    if explain and fmt != "csv":
        _explain_symbolic(rep, fmt)


def _shape(row) -> str:
    if row.sizes is None:
        return f"[{row.channels.text()}]"
    return " x ".join([s.text() for s in row.sizes] + [str(row.channels)])


def symbolic_view(rep, code: bool = False) -> TableView:
    """The formulas as a table; ``code``: each formula a markdown code span (its ``*`` would
    otherwise read as emphasis)."""
    axes = "x".join(rep.axes)
    per = "" if rep.batch == 1 else f", batch {rep.batch}"
    rows = [{"name": "input", "type": "input", "shape": " x ".join([*rep.axes, str(rep.input_shape[-1])]),
             "params": "0", "macs": "0", "activations": rep.totals["input"].text()}]
    for r in rep.layers:
        rows.append({"name": r.name, "type": r.description, "shape": _shape(r), "params": r.params.text(),
                     "macs": r.macs.text(), "activations": r.activations.text()})
    t = rep.totals
    cols = [Column("name", "Layer", "left"), Column("type", "Type", "left", style="dim", drop=2),
            Column("shape", "Output shape", "left"), Column("params", "Params", "left"),
            Column("macs", f"MACs{per}", "left"), Column("activations", f"Memory (elements{per})", "left")]
    footer = [{"name": "Total", "type": "", "shape": "", "params": t["params"].text(), "macs": "(below)",
               "activations": "(below: input + activations)"}]
    nominal = tuple(rep.input_shape[:-1])
    at = rep.evaluate(nominal) if rep.accepts(nominal) else None
    accepted = [(d.axis, d.text()) for d in rep.domains]
    if rep.fixed:
        accepted.append(("fixed by", f"{', '.join(rep.fixed)}: an fc layer reads as many values as its weights "
                                      "were made for (after a flatten or a fixed-size pool), so the sizes "
                                      "before it are fixed"))
    sections = [
        (f"Accepted input sizes ({axes})", accepted),
        (f"Totals as formulas in {', '.join(rep.axes)} ({rep.dtype}, {rep.nbytes} bytes/element{per})", [
            ("params", t["params"].text()),
            ("MACs", t["macs"].text()),
            ("FLOPs", "2 × MACs"),
            ("input", t["input"].text()),
            ("forward activations", t["activations"].text()),
            ("input + activations (bytes)", t["memory_bytes"].text()),
        ]),
    ]
    if at is not None:
        where = "x".join(map(str, nominal))
        sections.append((f"At the input {where}", [
            ("params", fmt_int(at["params"])), ("MACs", fmt_int(at["macs"])),
            ("input + activations", f"{fmt_int(at['input'] + at['activations'])} elements = "
                                    f"{fmt_int(at['memory_bytes'])} B"),
        ]))
    if code:
        for row in rows + footer:
            for k in ("shape", "params", "macs", "activations"):
                if row[k] and not row[k].startswith("(below"):
                    row[k] = f"`{row[k]}`"
        sections = [(title, [(k, f"`{v}`" if any(ch in v for ch in "*/") else v) for k, v in items])
                    for title, items in sections]
    notes = ["formulas are exact for every accepted size: floor/ceil are integer division, x/n "
             "(exact rounding) is a whole number on the accepted sizes; JSON gives each as integer Python"]
    return TableView(title=f"{rep.name} — cost as a function of the input size ({axes})", columns=cols,
                     rows=rows, footer=footer, sections=sections, notes=notes, caption=rep.source)


def _explain_symbolic(rep, fmt):
    lines = [f"{rep.name}: the shape rules on {', '.join(rep.axes)}", ""]
    for r in rep.layers:
        lines.append(f"{r.name} ({r.description}) → {_shape(r)}")
        lines += [f"    {e}" for e in r.explain]
    lines.append("")
    lines.append("accepted sizes: every constraint below holds")
    for c in rep.constraints:
        lines.append(f"    {c.axis}: {c.text()}   ({c.why})")
    if not rep.constraints:
        lines.append("    (none: every size from 1 up)")
    lines.append("")
    t = rep.totals
    lines.append(f"total MACs = sum of the layers' terms, equal sizes merged = {t['macs'].text()}")
    lines.append(f"total activations = {t['activations'].text()}")
    lines.append(f"memory bytes = {rep.nbytes} * (input {t['input'].text()} + activations)")
    text = "\n".join(map(term_text, lines)) + "\n"  # (names shown escaped)
    if fmt == "markdown":
        text = "```\n" + text + "```\n"
    click.echo(text, nl=False)


# ------------------------------------------------------------------------------ workspace
def show_workspace(graph, fmt, batch, dtype, input_shape, explain):
    from cnncalc.analysis.report import dtype_bytes
    from cnncalc.analysis.workspace import workspace

    rep = workspace(graph, batch=batch, nbytes=dtype_bytes(dtype), dtype=dtype, input_shape=input_shape)
    if fmt == "json":
        return _json(rep.to_dict(), rep.rows, explain)
    render(workspace_view(rep), fmt)
    if explain and fmt != "csv":
        lines = [f"{rep.name}: the arithmetic of each conv's workspace (elements)", ""]
        for r in rep.rows:
            lines.append(f"{r.name} ({r.description}): {_fmt_shape(r.in_shape)} -> {_fmt_shape(r.out_shape)}")
            lines += [f"    {e}" for e in r.explain]
        text = "\n".join(map(term_text, lines)) + "\n"  # (names shown escaped)
        click.echo("```\n" + text + "```\n" if fmt == "markdown" else text, nl=False)


def _fmt_shape(shape) -> str:
    from cnncalc.shapes import fmt_shape

    return fmt_shape(shape)


def _mb(elements: int, nbytes: int) -> str:
    b = elements * nbytes
    return f"{fmt_int(elements)} elements = {fmt_int(b)} B = {b / 1e6:,.2f} MB ({b / 2**20:,.2f} MiB)"


def workspace_view(rep) -> TableView:
    from cnncalc.analysis.workspace import KEEP_BYTES, WINOGRAD

    dash = lambda v: "—" if v is None else fmt_int(v)  # noqa: E731
    rows = [{"name": r.name, "type": r.description, "shape": _fmt_shape(r.out_shape), "direct": r.direct,
             "im2col": r.im2col, "winograd": r.winograd, "fft": r.fft, "runtime_algo": r.runtime_algo,
             "runtime": r.runtime} for r in rep.rows]
    per = "" if rep.batch == 1 else f", batch {rep.batch}"
    cols = [Column("name", "Layer", "left"), Column("type", "Type", "left", style="dim", drop=2),
            Column("shape", "Output shape", "right", drop=1),
            Column("direct", "direct"), Column("im2col", "im2col"), Column("winograd", "Winograd", fmt=dash),
            Column("fft", "FFT"), Column("runtime_algo", "runtime", "left"), Column("runtime", "runtime ws")]
    peaks = rep.peaks()
    nb = rep.nbytes
    sections = [(f"Peak over the network (elements{per}; {rep.dtype}, {nb} bytes/element; MB = 10^6 B, MiB = 2^20 B)", [
        (k, f"{_mb(v, nb)}" + (f" at {n}" if n else "")) for k, (v, n) in
        ((label, peaks[key]) for label, key in (("direct", "direct"), ("im2col", "im2col"),
                                                ("Winograd F(2x2,3x3)", "winograd"), ("FFT", "fft"),
                                                ("runtime (its own choice per conv)", "runtime")))])]
    notes = [
        "workspace = extra memory besides input, weights and output, in elements; each conv frees its "
        "workspace when it returns, so the network's peak is the largest one",
        "im2col = k*k*C_in x H_out*W_out per image; FFT = rfft2 spectra of the input, filters and "
        "products at the next 5-smooth padded size (2 reals per complex) + the inverse transform",
        f"Winograd: {WINOGRAD}: tiles = ceil(H_out/2)*ceil(W_out/2); 16*tiles*(C_in + C_out) per image "
        "+ 16*C_out*C_in/groups filters; only 3x3, stride 1",
        "runtime ws: what cnncalc's runtime allocates for its choice (padded input copy included; "
        "its depthwise kernel: per running thread; its winograd is F(4x4,3x3), 36 values per tile "
        "and filter, a few images at a time, the batch's transformed input kept for the weight "
        f"gradient up to {KEEP_BYTES >> 20} MiB: not the textbook F(2x2,3x3) column)",
    ]
    if rep.skipped:
        notes.append(f"not covered: {', '.join(rep.skipped[:6])}{', ...' if len(rep.skipped) > 6 else ''} "
                     "(transposed, locally connected or 3-D convolutions)")
    if not rep.rows:
        notes.append("this network has no 2-D or 1-D convolutions")
    return TableView(title=f"{rep.name} — convolution workspace per algorithm (elements{per})", columns=cols,
                     rows=rows, sections=sections, notes=notes, caption=rep.source)
