"""``cnncalc graph``: the layer DAG as a picture (SVG, PNG, Graphviz DOT, Mermaid)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from cnncalc.cli.common import fail, input_option, load_graph, rounding_option

SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}
GRAPH_FORMATS = ["svg", "png", "dot", "mermaid"]
PNG_EXTRA = "pip install 'cnncalc[plot]'   (or: pip install matplotlib)"

output_option = click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
                             help="The file to write; its suffix chooses the format.")
force_option = click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")


def write_output(path: str, data: bytes | str, force: bool) -> None:
    """Write atomically; never replace a user's file without --force (exit 2 instead)."""
    from cnncalc.fsutil import atomic_write_bytes

    p = Path(path)
    if p.is_dir():
        fail(f"--output {path}: is a directory; give a file name")
    if not p.parent.exists():
        fail(f"--output {path}: the directory {p.parent} does not exist")
    if p.exists() and not force:
        fail(f"--output {path}: the file exists; add --force to replace it")
    atomic_write_bytes(p, data.encode("utf-8") if isinstance(data, str) else data)


def chosen_format(output: str | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    if output is None:
        return "svg"
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        fail(f"--output {output}: cannot tell the format from the suffix {suffix or '(none)'!r}; "
             f"use .svg, .png, .dot or .mmd, or --format {'|'.join(GRAPH_FORMATS)}")
    return SUFFIXES[suffix]


@click.command()
@click.argument("spec")
@output_option
@click.option("--format", "-F", "fmt", type=click.Choice(GRAPH_FORMATS), default=None,
              help="Override the format the suffix implies (default: svg to stdout without --output).")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Collapse module instances and blocks: one box per name prefix of this depth "
                   "(as summarize --depth).")
@input_option
@rounding_option
@force_option
def graph(spec, output, fmt, depth, input_shape, force):
    """Draw the layer graph of SPEC top to bottom: one box per layer (name, type with kernel and
    stride, output shape), edges labelled with the tensor shape, branches side by side.

    SVG, DOT and Mermaid need nothing beyond the base install; PNG uses matplotlib
    (pip install 'cnncalc[plot]'). Without --output the SVG (or DOT/Mermaid text) goes to stdout.

    \b
    Examples:
      cnncalc graph lenet5 -o lenet5.svg
      cnncalc graph googlenet --depth 1 -o googlenet.png
      cnncalc graph resnet50 --depth 2 -o resnet50.mmd      # Mermaid, for a README
      cnncalc graph vgg16 --format dot | dot -Tpdf > vgg16.pdf
    """
    kind = chosen_format(output, fmt)
    if kind == "png" and output is None:
        fail("a PNG needs a file: add --output FILE.png")
    if output and Path(output).exists() and not force:
        fail(f"--output {output}: the file exists; add --force to replace it")
    g = load_graph(spec)
    g.infer(input_shape)
    from cnncalc.report.graph import layout_graph, to_dot, to_mermaid

    layout = layout_graph(g, depth)
    if kind == "svg":
        from cnncalc.report.svg import to_svg

        data: bytes | str = to_svg(layout)
    elif kind == "dot":
        data = to_dot(layout)
    elif kind == "mermaid":
        data = to_mermaid(layout)
    else:
        data = png_bytes(layout)
    if output is None:
        sys.stdout.write(data if isinstance(data, str) else data.decode())
        return
    write_output(output, data, force)
    n = len(layout.real_nodes)
    click.echo(f"wrote {output} ({kind}, {n} boxes, {len(layout.edges)} edges, "
               f"{layout.width}x{layout.height} px)")


def png_bytes(layout) -> bytes:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail(f"a PNG needs matplotlib, which is not installed: {PNG_EXTRA}; "
             "or write .svg, which needs nothing")
    from cnncalc.report.graph_png import render_png

    return render_png(layout)
