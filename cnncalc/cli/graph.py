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
@click.option("--direction", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB",
              show_default=True, help="TB: top to bottom; LR: left to right (wide screens, slides).")
@click.option("--dpi", type=click.FloatRange(min=10, max=1200), default=None,
              help="PNG resolution (100: one pixel per unit of the layout, 300 for print).")
@click.option("--scale", type=click.FloatRange(min=0.1, max=12), default=None,
              help="Enlarge the picture: PNG pixels (--scale 2 = --dpi 200) or SVG width and height.")
@input_option
@rounding_option
@force_option
def graph(spec, output, fmt, depth, direction, dpi, scale, input_shape, force):
    """Draw the layer graph of SPEC top to bottom (or left to right): one box per layer (name,
    type with kernel and stride, output shape; a collapsed module: its layers and parameters),
    edges labelled with the tensor shape, branches side by side.

    SVG, DOT and Mermaid need nothing beyond the base install; PNG uses matplotlib
    (pip install 'cnncalc[plot]'). Without --output the SVG (or DOT/Mermaid text) goes to stdout.

    \b
    Examples:
      cnncalc graph lenet5 -o lenet5.svg
      cnncalc graph googlenet --depth 1 -o googlenet.png --dpi 200
      cnncalc graph resnet18 --depth 1 --direction LR -o resnet18.svg
      cnncalc graph resnet50 --depth 2 -o resnet50.mmd      # Mermaid, for a README
      cnncalc graph vgg16 --format dot | dot -Tpdf > vgg16.pdf
    """
    kind = chosen_format(output, fmt)
    if kind == "png" and output is None:
        fail("a PNG needs a file: add --output FILE.png")
    if dpi is not None and scale is not None:
        fail("give --dpi or --scale, not both (--scale 2 is --dpi 200)")
    if dpi is not None and kind != "png":
        fail(f"--dpi sets a PNG's resolution; for {kind} use --scale" if kind == "svg" else
             f"--dpi sets a PNG's resolution; {kind} text has none")
    if scale is not None and kind not in ("png", "svg"):
        fail(f"--scale enlarges a PNG or an SVG; {kind} text has no size")
    if output and Path(output).exists() and not force:
        fail(f"--output {output}: the file exists; add --force to replace it")
    g = load_graph(spec)
    g.infer(input_shape)
    from cnncalc.report.graph import layout_graph, to_dot, to_mermaid

    layout = layout_graph(g, depth, direction.upper())
    if kind == "svg":
        from cnncalc.report.svg import to_svg

        data: bytes | str = to_svg(layout, scale=scale or 1.0)
    elif kind == "dot":
        data = to_dot(layout)
    elif kind == "mermaid":
        data = to_mermaid(layout)
    else:
        data = png_bytes(layout, dpi if dpi is not None else 100 * (scale or 1.0))
    if output is None:
        sys.stdout.write(data if isinstance(data, str) else data.decode())
        return
    write_output(output, data, force)
    n = len(layout.real_nodes)
    f = (dpi / 100 if dpi is not None else scale or 1.0) if kind in ("png", "svg") else 1.0
    size = f"{round(layout.width * f)}x{round(layout.height * f)} px"
    click.echo(f"wrote {output} ({kind}, {n} boxes, {len(layout.edges)} edges, {size})")


def png_bytes(layout, dpi: float = 100) -> bytes:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail(f"a PNG needs matplotlib, which is not installed: {PNG_EXTRA}; "
             "or write .svg, which needs nothing")
    from cnncalc.report.graph_png import render_png

    return render_png(layout, dpi)
