"""Runtime commands: ``gradcheck``, ``verify`` and ``erf``. They import numpy and numba (through
``cnncalc.runtime``) only when run; the analysis commands never do."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from cnncalc.cli.common import (algo_option, batch_size_option, fail, format_option, hidden_alias, input_option,
                                load_graph, output_option, require_kernels, rounding_option)
from cnncalc.report.render import Column, TableView, emit_json, render, use_rich

@contextmanager
def _progress(total: int, label: str):
    """A rich progress bar on a terminal (stderr), silent otherwise; yields advance(name)."""
    if not use_rich(sys.stderr):
        yield lambda name=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[what]}"), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as prog:
        task = prog.add_task(label, total=total, what="")
        from rich.markup import escape

        from cnncalc.escape import term_text

        # (a layer name is text: neither rich markup such as "[link=…]" nor control characters)
        yield lambda name=None: prog.update(task, advance=1, what=escape(term_text(name or "")))


def _graph(spec, input_shape):
    graph = load_graph(spec, input_shape)
    graph.infer(input_shape)
    require_kernels(graph)
    return graph


def refuse_if_too_big(graph, batch: int, command: str) -> None:
    """Refuse up front what the machine could not hold (cnncalc.limits.check_memory)."""
    from cnncalc import limits

    limits.check_memory(graph, batch=batch, command=command)


# ------------------------------------------------------------------------------ gradcheck
@click.command()
@click.argument("spec")
@format_option()
@input_option
@rounding_option
@algo_option
@batch_size_option(2)
@click.option("--entries", type=click.IntRange(min=1), default=20, show_default=True,
              help="Entries checked per tensor (sampled at random in bigger tensors).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--all-rows", "show_all", is_flag=True, help="List every tensor, not only the worst per layer.")
@hidden_alias("--all", "show_all", is_flag=True)
def gradcheck(spec, fmt, input_shape, conv_algo, batch, entries, seed, show_all):
    """Centred differences in float64 against the runtime's analytic gradients.

    Every layer alone (its inputs and parameter tensors), then the whole network with the
    softmax-cross-entropy loss. Passes when every relative error is at most 1e-7 (exit 0),
    else exit 1. Where a ReLU or max kink lies within the step of the network check (deep
    nets have many), a failing tensor's differences are taken again at smaller steps until two
    agree; the table says how many entries that took.

    \b
    Examples:
      cnncalc gradcheck lenet5
      cnncalc gradcheck vgg16 --input 32x32x3 --conv-algo im2col
    """
    graph = _graph(spec, input_shape)
    refuse_if_too_big(graph, batch, "gradcheck")
    from cnncalc.runtime.gradcheck import TOL, gradcheck as run

    with _progress(len(graph.layers) + 1, "gradcheck") as advance:
        checks = run(graph, batch=batch, conv_algo=conv_algo, entries=entries, seed=seed, progress=advance)
    ok = all(c.ok for c in checks)
    if fmt == "json":
        emit_json({"name": graph.name, "input": list(graph.input_shape), "conv_algo": conv_algo,
                   "tolerance": TOL, "ok": ok, "checks": [c.to_dict() for c in checks]})
    else:
        rows = checks if show_all else _worst(checks)
        view = TableView(
            title=f"{graph.name} — gradient check (float64, centred differences, conv {conv_algo})",
            columns=[Column("layer", "Layer", "left"), Column("type", "Type", "left", style="dim", drop=1),
                     Column("tensor", "Tensor", "left"), Column("checked", "Entries"),
                     Column("rel_error", "Rel. error", fmt=lambda v: f"{v:.1e}"),
                     Column("status", "", "left")],
            rows=[{**c.to_dict(), "status": "ok" if c.ok else "FAIL"} for c in rows],
            notes=[f"{sum(c.ok for c in checks)} of {len(checks)} tensors within {TOL:g}"
                   + ("" if show_all else "; the worst tensor per layer is shown (--all-rows for every one)")]
            + _kink_notes(checks))
        render(view, fmt)
    sys.exit(0 if ok else 1)


def _kink_notes(checks) -> list[str]:
    moved = sum(c.kinks for c in checks)
    if not moved:
        return []
    left = sum(c.unsettled for c in checks)
    tensors = sum(1 for c in checks if c.kinks)
    return [f"{moved} {'entry' if moved == 1 else 'entries'} of {tensors} tensor{'' if tensors == 1 else 's'} "
            "taken again at a smaller step: a ReLU or max kink lay within the step of the network check"
            + (f"; {left} never settled and {'is' if left == 1 else 'are'} left out" if left else "")]


def _worst(checks):
    best = {}
    for c in checks:
        key = c.layer if c.layer != "network" else ("network", c.tensor)
        if c.layer == "network" or key not in best or c.rel_error > best[key].rel_error:
            best[key] = c
    return list(best.values())


# ------------------------------------------------------------------------------ verify
@click.command()
@click.argument("spec")
@format_option()
@input_option
@rounding_option
@algo_option
@batch_size_option(2)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-fields", is_flag=True, help="Skip the receptive-field checks.")
@click.option("--rf-units", type=click.Choice(["centre", "corners", "all"]), default="corners", show_default=True,
              help="Units whose field is checked per layer: the centre; + the first and last corner; "
                   "+ all four corners.")
@click.option("--rf-every-layer", is_flag=True,
              help="Also check single-input pointwise layers (their field is their input's).")
@click.option("--all-rows", "show_all", is_flag=True, help="List every check, not only the differences.")
@hidden_alias("--all", "show_all", is_flag=True)
def verify(spec, fmt, input_shape, conv_algo, batch, seed, no_fields, rf_units, rf_every_layer, show_all):
    """Run SPEC and check every number the analyzer claims.

    Output shapes, allocated parameters and BN state, activation bytes held after a float32
    forward pass (per layer and in total), and the receptive field of the centre and corner
    units of every layer but single-input pointwise ones (support of a one-hot gradient
    through a linearised float32 copy, float64 where float32 could underflow; one backward
    pass per layer, a unit per batch item). A progress bar on a terminal; when stderr is not
    a terminal, one line per check group there. Exit 0 when all agree, 1 with a table of
    the differences.

    \b
    Examples:
      cnncalc verify lenet5
      cnncalc verify vgg16 --input 32x32x3
    """
    graph = _graph(spec, input_shape)
    refuse_if_too_big(graph, batch, "verify")
    from cnncalc.runtime import _numba
    from cnncalc.runtime.verify import field_layers, fmt_value, verify as run

    # numba on every core, BLAS on one (a multi-threaded OpenBLAS next to numba's workers
    # ran 10x slower), as train does
    _numba.set_threads()

    with _progress(len(field_layers(graph.infer(), rf_every_layer)), "receptive fields") as advance:
        items, info = run(graph, batch=batch, conv_algo=conv_algo, seed=seed, fields=not no_fields,
                          progress=advance, rf_units=rf_units, rf_every_layer=rf_every_layer,
                          log=None if use_rich(sys.stderr) else lambda line: click.echo(line, err=True))
    bad = [i for i in items if not i.ok]
    kinds = {}
    for i in items:
        k = "receptive field" if i.check.startswith("field") else i.check
        n_ok, n = kinds.get(k, (0, 0))
        kinds[k] = (n_ok + i.ok, n + 1)
    if fmt == "json":
        emit_json({"name": graph.name, "input": list(graph.input_shape), "ok": not bad, "batch": batch,
                   "summary": {k: {"agree": a, "checked": n} for k, (a, n) in kinds.items()},
                   "kernel_cache_bytes": info["kernel_cache_bytes"],
                   "inside_layers_bytes": info["inside_bytes"],
                   "checks": [i.to_dict() for i in (items if show_all else bad)]})
    else:
        rows = items if show_all else bad
        title = (f"{graph.name} — {len(bad)} difference(s) between the analyzer and the runtime" if bad
                 else f"{graph.name} — the runtime agrees with every number the analyzer claims")
        summary = [(k, f"{a} of {n} agree") for k, (a, n) in kinds.items()]
        summary.append(("kernel caches (not claimed)", f"{info['kernel_cache_bytes']:,} B (argmax indices, "
                                                        f"BN x̂, masks)"))
        if info["inside_bytes"]:
            summary.append(("inside layers (not measured)", f"{info['inside_bytes']:,} B of the analyzer's forward "
                                                            "bytes: attention's q, k, v, scores, probabilities; "
                                                            "MLP hidden"))
        if not rows:  # all agree: the summary is the table
            view = TableView(title=title, columns=[Column("check", "Check", "left"), Column("result", "Result", "left")],
                             rows=[{"check": k, "result": v} for k, v in summary])
            render(view, fmt)
            sys.exit(0)
        view = TableView(
            title=title,
            columns=[Column("layer", "Layer", "left"), Column("check", "Check", "left"),
                     Column("claimed", "Analyzer", fmt=fmt_value), Column("measured", "Runtime", fmt=fmt_value),
                     Column("status", "", "left"), Column("note", "Note", "left", style="dim", drop=1)],
            rows=[{**i.__dict__, "status": "ok" if i.ok else "DIFFERS"} for i in rows],
            sections=[(f"checks (batch {batch}, float32; fields in float32, float64 where float32 "
                                f"could underflow)", summary)])
        render(view, fmt)
    sys.exit(1 if bad else 0)


# ------------------------------------------------------------------------------ erf
@click.command()
@click.argument("spec")
@click.option("--layer", "-l", "layer", required=True, help="The layer whose central unit is studied.")
@format_option()
@input_option
@rounding_option
@algo_option
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True,
              help="Random inputs the gradient magnitude is averaged over.")
@click.option("--mass", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              help="Share of the gradient mass whose area is compared with the theoretical field.")
@output_option("Write the figure (.png, .svg: colour map, colour bar, field and mass outlines, "
               "title) or the raw map (.csv, .pgm).", alias="--out")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--seed", type=int, default=0, show_default=True)
def erf(spec, layer, fmt, input_shape, conv_algo, samples, mass, output, force, seed):
    """Effective receptive field (Luo et al., 2016) of the central unit of a layer.

    The mean |d unit / d input| over random inputs and random (He) weights, as a heat map,
    and the share of the theoretical field holding MASS of the gradient.

    \b
    Examples:
      cnncalc erf vgg16 --input 64x64x3 --layer conv4_3
      cnncalc erf lenet5 --layer C3 -o c3.png
      cnncalc erf lenet5 --layer C3 -o c3.svg

    The PNG figure is drawn with matplotlib (pip install 'cnncalc[plot]'); without it the
    PNG has the map, the outlines and the colour bar but no text, and the SVG has everything.
    """
    out = output
    graph = _graph(spec, input_shape)
    if layer not in graph.nodes or layer == "input":
        from cnncalc.layers.base import suggest
        fail(f"no layer named {layer!r} in {graph.name}"
             + (f"; {suggest(layer, [n.name for n in graph.layers], 'layer')}" if graph.layers else ""))
    if out and not out.lower().endswith((".csv", ".png", ".pgm", ".svg")):
        fail(f"--output {out}: write .png, .svg, .csv or .pgm")
    if out:
        from pathlib import Path

        if Path(out).exists() and not force:
            fail(f"--output {out}: the file exists; add --force to replace it")
    if len(graph.input_shape) != 3:
        fail("erf draws a 2-D map: the spec's input must be HxWxC")
    refuse_if_too_big(graph, 1, "erf")
    from cnncalc.runtime.erf import effective_field, heatmap_lines, write_map

    res = effective_field(graph, layer, samples=samples, mass=mass, conv_algo=conv_algo, seed=seed)
    labelled = True
    if out:
        labelled = write_map(res["map"], out, res=res, net=graph.name)
    if fmt == "json":
        emit_json({k: v for k, v in res.items() if k != "map"} | {"map": res["map"].tolist()})
        return
    lines = heatmap_lines(res["map"], res["field"])
    from cnncalc.escape import term_text

    click.echo(f"{term_text(graph.name)} — effective receptive field of {term_text(layer)} unit {res['unit']} "
               f"(mean |gradient| over {samples} inputs)")
    for line in lines:
        click.echo(line)
    (r0, r1), (c0, c1) = res["field"]
    click.echo(f"theoretical field: rows {r0}..{r1}, columns {c0}..{c1} = {res['field_area']} pixels")
    click.echo(f"{mass:.0%} of the gradient mass lies on {res['mass_area']} pixels = "
               f"{res['fraction']:.1%} of the theoretical field")
    click.echo(f"gradient is non-zero on {res['support_area']} pixels")
    if out:
        click.echo(f"wrote {out}")
        if not labelled:
            click.echo("note: without matplotlib the PNG has no title, labels or colour-bar ticks; "
                       "pip install 'cnncalc[plot]' for the labelled figure, or write .svg", err=True)
