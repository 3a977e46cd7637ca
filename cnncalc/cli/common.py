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


def batch_size_option(default: int, help_text: str | None = None):
    """``--batch/-b N`` for the runtime commands (``--batch-size`` still works, hidden)."""
    def deco(f):
        f = click.option("--batch", "-b", "batch", type=click.IntRange(min=1), default=default,
                         show_default=True, help=help_text or "Batch size.")(f)
        return hidden_alias("--batch-size", "batch", type=click.IntRange(min=1))(f)
    return deco
dtype_option = click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32",
                            show_default=True, help="Bytes per element for memory figures.")


def output_option(help_text: str, dir_ok: bool = False, alias: str | None = None):
    """``-o/--output PATH``: where a command writes its result (a file; train: a run directory).
    ``alias`` is an old spelling kept working, hidden from --help."""
    def deco(f):
        f = click.option("--output", "-o", "output", default=None, metavar="DIR" if dir_ok else "FILE",
                         type=click.Path(dir_okay=dir_ok, file_okay=not dir_ok), help=help_text)(f)
        if alias:
            f = hidden_alias(alias, "output")(f)
        return f
    return deco


def hidden_alias(flag: str, dest: str, is_flag: bool = False, type=None):
    """An old option spelling that still works but is not listed in --help: its value is
    copied into ``dest`` (the current spelling wins when both are given)."""
    def deco(f):
        import functools

        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(f"_alias_{dest}")
            ctx = click.get_current_context()
            src = ctx.get_parameter_source(dest)
            if value not in (None, False) and (src is None or src.name != "COMMANDLINE"):
                kwargs[dest] = value
                ctx.set_parameter_source(dest, click.core.ParameterSource.COMMANDLINE)
            return f(*args, **kwargs)

        return click.option(flag, f"_alias_{dest}", hidden=True, is_flag=is_flag, type=type,
                            default=False if is_flag else None, expose_value=True)(wrapper)
    return deco


def load_graph(ref: str):
    from cnncalc.spec.loader import load_spec

    return load_spec(ref)


def fail(message: str, code: int = 2):
    err = CnnCalcError(message)
    err.exit_code = code
    raise err
