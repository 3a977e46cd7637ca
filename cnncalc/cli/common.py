"""Options and helpers shared by the commands."""
from __future__ import annotations

import click

from cnncalc.analysis.report import DTYPES
from cnncalc.errors import CnnCalcError
from cnncalc.report.render import FORMATS
from cnncalc.shapes import parse_shape


def _shape(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_shape(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def format_option(choices=FORMATS):
    return click.option("--format", "-F", "fmt", type=click.Choice(choices), default="table",
                        show_default=True,
                        help="table: rich on a terminal, plain text when piped or NO_COLOR is set.")


input_option = click.option("--input", "input_shape", metavar="HxWxC", callback=_shape,
                            help="Override the spec's input, e.g. 7x7x3 or 32x32x3.")
batch_option = click.option("--batch", "-b", type=click.IntRange(min=1), default=1, show_default=True,
                            help="Batch size: activation memory and MACs scale with it.")
dtype_option = click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32",
                            show_default=True, help="Bytes per element for memory figures.")


def load_graph(ref: str, input_shape=None):
    """A spec file, zoo name or .onnx model (``input_shape`` sizes an ONNX model's dynamic input)."""
    from cnncalc.spec.loader import load_spec

    return load_spec(ref, input_shape=input_shape)


def fail(message: str, code: int = 2):
    err = CnnCalcError(message)
    err.exit_code = code
    raise err
