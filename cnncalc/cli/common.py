"""Options and helpers shared by the commands."""
from __future__ import annotations

import click

from cnncalc.analysis.report import DTYPES
from cnncalc.escape import term_text
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


def _rounding(ctx, param, value):
    if value is not None:
        ctx.meta["cnncalc.rounding"] = "exact" if value == "strict" else value
    return value


ROUNDING_HELP = ("Override the spec's rounding rule: floor (PyTorch), ceil (Caffe pooling) or strict "
                 "(a window that does not fit is an error). A layer's own 'rounding:' still wins.")


def make_rounding_option(help_text: str = ROUNDING_HELP):
    """``--rounding floor|ceil|strict``; its value is read back with :func:`rounding_override`."""
    return click.option("--rounding", type=click.Choice(["floor", "ceil", "strict"]), default=None,
                        expose_value=False, callback=_rounding, is_eager=True, help=help_text)


rounding_option = make_rounding_option()


def rounding_override() -> str | None:
    """The spec-wide rule --rounding asks for (``exact`` for strict), or None when not given."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("cnncalc.rounding") if ctx is not None else None


def prepare_graph(graph):
    """Apply the command line's --rounding to a loaded graph and warn (on stderr, never in the
    JSON on stdout) about every layer whose output nothing reads."""
    rounding = rounding_override()
    if rounding is not None and rounding != graph.rounding:
        graph.rounding = rounding
        graph.inferred = False
    for name in graph.unconsumed():
        node = graph[name]
        where = f"{term_text(graph.file)}:{node.line}: " if graph.file and node.line else ""
        click.echo(f"warning: {where}the output of {name!r} is not used by any layer (it is still "
                   f"counted); connect it, remove it, or mark it 'output: true'", err=True)
    return graph


def require_kernels(graph):
    """Exit 2 before any work when the reference runtime cannot execute a layer of ``graph``:
    the analysis knows more layer types than the runtime has kernels for."""
    from cnncalc.runtime import _numba, executor

    _numba.announce_compiles()  # a cold kernel cache says so on a terminal (first run only)
    ops = set(getattr(executor, "OPS", {}))
    acts = set(getattr(executor, "FUSED_ACTIVATIONS", getattr(executor, "ELEMENTWISE", ())))
    for node in graph.layers:
        layer = node.layer
        missing = None
        if ops and layer.kind not in ops:
            missing = f"layer type {layer.kind!r}"
        elif acts and layer.activation and layer.activation not in acts:
            missing = f"activation {layer.activation!r}"
        elif len(layer.out_shape or ()) == 4 and layer.kind in getattr(executor, "NO_3D", ()):
            missing = f"3-D layer type {layer.kind!r}"
        if missing:
            where = f"{term_text(graph.file)}:{node.line}: " if graph.file and node.line else ""
            fail(f"{where}{node.name}: the runtime has no kernel for {missing} yet; the analysis "
                 f"commands (summarize, receptive-field) handle it, train/verify/gradcheck/erf "
                 f"cannot run this spec")
    if len(graph.input_shape) > getattr(executor, "MAX_INPUT_RANK", 3):
        fail(f"the runtime has no kernels for 3-D inputs ({'x'.join(map(str, graph.input_shape))}) "
             f"yet; the analysis commands handle them")


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


def load_graph(ref: str, input_shape=None):
    """A spec file, zoo name or .onnx model (``input_shape`` sizes an ONNX model's dynamic input)."""
    from cnncalc.spec.loader import load_spec

    return prepare_graph(load_spec(ref, input_shape=input_shape))


def fail(message: str, code: int = 2):
    err = CnnCalcError(message)
    err.exit_code = code
    raise err


#: the runtime's convolution algorithms, one spelling for train, bench, gradcheck, erf, verify
ALGOS = ["auto", "direct", "im2col", "fft", "winograd"]
ALGO_HELP = ('How convolutions are computed: the lectures\' three ways, or winograd (F(4x4,3x3) for 3x3 '
             'stride-1 ungrouped convs, im2col for the others); auto picks per layer shape.')
algo_option = click.option("--conv-algo", type=click.Choice(ALGOS), default="auto", show_default=True,
                           help=ALGO_HELP)
