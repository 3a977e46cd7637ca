"""``cnncalc report``: a self-contained HTML report of a spec."""
from __future__ import annotations

import click

from cnncalc.cli.common import batch_option, dtype_option, fail, input_option, load_graph, rounding_option
from cnncalc.cli.graph import force_option, write_output
from cnncalc.cli.training_memory import training_options


@click.command()
@click.argument("spec")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), required=True,
              help="The .html file to write.")
@batch_option
@dtype_option
@input_option
@rounding_option
@click.option("--no-bias", is_flag=True, help="Count weights only (the VGG table's 'not counting biases').")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Collapse modules in the graph picture (as graph --depth); the table keeps every layer.")
@click.option("--direction", type=click.Choice(["TB", "LR"]), default="TB",
              show_default=True, help="The graph picture top to bottom (TB) or left to right (LR), as graph.")
@click.option("--no-rf", is_flag=True,
              help="Leave out the receptive fields (their analysis takes minutes on 1000-layer residual nets).")
@force_option
@training_options
def report(spec, output, batch, dtype, input_shape, no_bias, depth, direction, no_rf, force, **training):
    """Write one self-contained HTML page about SPEC: the totals and memory lines of summarize,
    the layer graph, the per-layer table (sortable, modules foldable, a click shows the
    arithmetic), bar charts of memory, params and MACs per layer, the receptive-field growth
    and the published tables that cover the spec. No network access, no CDN: open it anywhere.

    \b
    Examples:
      cnncalc report googlenet -o googlenet.html
      cnncalc report resnet50 --depth 2 --batch 32 -o resnet50.html
    """
    if not output.lower().endswith((".html", ".htm")):
        fail(f"--output {output}: the report is HTML; name the file .html")
    from pathlib import Path

    if Path(output).exists() and not force:
        fail(f"--output {output}: the file exists; add --force to replace it")
    page = build_report(spec, batch=batch, dtype=dtype, input_shape=input_shape, bias=not no_bias, depth=depth,
                        with_rf=not no_rf, direction=direction.upper(), training=training)
    write_output(output, page, force)
    click.echo(f"wrote {output} ({len(page.encode()):,} bytes)")


def build_report(spec, *, batch=1, dtype="float32", input_shape=None, bias=True, depth=None,
                 with_rf=True, direction="TB", training=None) -> str:
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.cli.summarize import layer_view
    from cnncalc.errors import CnnCalcError
    from cnncalc.report.graph import group_key, layout_graph
    from cnncalc.report.html import MAX_DRAWN, build_html, too_many_to_draw
    from cnncalc.report.svg import to_svg

    graph = load_graph(spec)
    rep = analyze_graph(graph, batch=batch, dtype=dtype, bias=bias, input_shape=input_shape, explain=True)
    sections = layer_view(rep, chart=False).sections
    boxes = len({group_key(n.name, depth) for n in graph.layers}) + 1  # (and the input)
    if boxes <= MAX_DRAWN:
        svg = to_svg(layout_graph(graph, depth, direction), standalone=False)
    else:
        svg = too_many_to_draw("graph picture", boxes, "Collapse modules with --depth N, or draw it on its own: "
                                                       "cnncalc graph SPEC -o FILE.svg")
    rf = None
    try:
        if not with_rf:
            raise CnnCalcError("left out")
        from cnncalc.analysis.rf import receptive_fields

        rfr = receptive_fields(graph)
        rf = rfr.to_dict()["layers"]
        for row in rf:
            row["explain"] = list(rfr.layers[row["name"]].explain)
    except CnnCalcError:
        rf = None
    # the published tables compare the numbers of a plain summarize: reuse this analysis when
    # it is one (batch 1, float32, with biases), instead of analysing the spec again
    plain = rep if (batch, dtype, bias) == (1, "float32", True) else None
    comparisons = _comparisons(spec, graph, input_shape, plain)
    timeline = _timeline(graph, rep, training or {})
    return build_html(rep.to_dict(), sections=sections, graph_svg=svg, rf=rf, comparisons=comparisons,
                      explain={r.name: r.explain for r in rep.layers}, timeline=timeline)


def _timeline(graph, rep, training: dict) -> str:
    """The SVG of one training step's live bytes (forward, then backward), for the report."""
    from cnncalc.cli.training_memory import setup, walk
    from cnncalc.report.timeline import timeline_svg

    step = walk(graph, rep, setup(training))
    lines = {k: v for k, v, _ in step.lines}
    base = lines["parameters"] + lines["buffers"] + lines["optimizer state"]
    title = (f"Live memory of one training step: batch {rep.batch}, {step.optimizer}, {step.precision}"
             + (f", {step.checkpointed} checkpointed segments" if step.checkpointed else "")
             + f" — peak {step.peak / 2**20:,.1f} MiB")
    return timeline_svg(step, [n.name for n in graph.layers], base, title)


def _comparisons(spec: str, graph, input_shape, rep=None) -> list[dict]:
    """The shipped published tables that cover this zoo spec (rows of other specs left out:
    they are not compared, so their specs are not analysed). ``rep``: this spec's analysis
    with the defaults (explain=True), used for the tables read at the spec's own input."""
    import dataclasses

    if input_shape is not None and tuple(input_shape) != tuple(graph.input_shape):
        return []
    from pathlib import Path

    from cnncalc.compare import compare_table, parse_table, table_ids, tables_dir
    from cnncalc.spec.loader import zoo_names

    stem = spec[:-5] if spec.endswith(".yaml") else spec
    if stem not in zoo_names():
        stem = Path(stem).name
        if stem not in zoo_names() or Path(spec).resolve().parent.name not in ("zoo", "specs"):
            return []
    if rep is not None and not _is_zoo_file(spec, stem):
        rep = None  # a file of the same name elsewhere: the tables compare the zoo's
    out = []
    cache: dict = {}
    for tid in table_ids():
        text = (tables_dir() / f"{tid}.csv").read_text(encoding="utf-8")
        if stem not in text:  # a table covers the specs it names (its header or its spec column)
            continue
        t = parse_table(text, file=f"tables/{tid}.csv", table_id=tid)
        if stem not in t.specs:
            continue
        t = dataclasses.replace(t, rows=[r for r in t.rows if (r.spec or t.spec) == stem])
        if rep is not None and (t.input is None or tuple(t.input) == tuple(graph.input_shape)):
            cache[(stem, t.input)] = rep
        res = compare_table(t, _cache=cache).to_dict()
        keys = ("match", "known discrepancy", "MISMATCH", "STALE")
        n = {k: sum(r["status"] == k for r in res["rows"]) for k in keys}
        res["counts"] = {"rows": len(res["rows"]), "match": n["match"], "known_discrepancy": n["known discrepancy"],
                         "mismatch": n["MISMATCH"], "stale": n["STALE"]}
        out.append(res)
    return out


def _is_zoo_file(spec: str, stem: str) -> bool:
    """Does ``spec`` name the shipped zoo spec ``stem`` (by name, or a file with its text)?"""
    from importlib import resources
    from pathlib import Path

    zoo = resources.files("cnncalc") / "zoo" / f"{stem}.yaml"
    p = Path(spec)
    if p.is_file():
        return p.read_bytes() == zoo.read_bytes()
    return spec in (stem, f"{stem}.yaml")
