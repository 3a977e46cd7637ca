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


def _rounding(ctx, param, value):
    if value is not None:
        ctx.meta["cnncalc.rounding"] = "exact" if value == "strict" else value
    return value


rounding_option = click.option(
    "--rounding", type=click.Choice(["floor", "ceil", "strict"]), default=None, expose_value=False,
    callback=_rounding, is_eager=True,
    help="Override the spec's rounding rule: floor (PyTorch), ceil (Caffe pooling) or strict "
         "(a window that does not fit is an error). A layer's own 'rounding:' still wins.")


def prepare_graph(graph):
    """Apply the command line's --rounding to a loaded graph and warn (on stderr, never in the
    JSON on stdout) about every layer whose output nothing reads."""
    ctx = click.get_current_context(silent=True)
    rounding = ctx.meta.get("cnncalc.rounding") if ctx is not None else None
    if rounding is not None and rounding != graph.rounding:
        graph.rounding = rounding
        graph.inferred = False
    for name in graph.unconsumed():
        node = graph[name]
        where = f"{graph.file}:{node.line}: " if graph.file and node.line else ""
        click.echo(f"warning: {where}the output of {name!r} is not used by any layer (it is still "
                   f"counted); connect it, remove it, or mark it 'output: true'", err=True)
    return graph


def require_kernels(graph):
    """Exit 2 before any work when the reference runtime cannot execute a layer of ``graph``:
    the analysis knows more layer types than the runtime has kernels for."""
    from cnncalc.runtime import executor

    ops = set(getattr(executor, "OPS", {}))
    acts = set(getattr(executor, "ELEMENTWISE", ()))
    for node in graph.layers:
        layer = node.layer
        missing = None
        if ops and layer.kind not in ops:
            missing = f"layer type {layer.kind!r}"
        elif acts and layer.activation and layer.activation not in acts:
            missing = f"activation {layer.activation!r}"
        if missing:
            where = f"{graph.file}:{node.line}: " if graph.file and node.line else ""
            fail(f"{where}{node.name}: the runtime has no kernel for {missing} yet; the analysis "
                 f"commands (summarize, receptive-field) handle it, train/verify/gradcheck/erf "
                 f"cannot run this spec")
    if len(graph.input_shape) > 3:
        fail(f"the runtime has no kernels for 3-D inputs ({'x'.join(map(str, graph.input_shape))}) "
             f"yet; the analysis commands handle them")


def load_graph(ref: str, input_shape=None):
    """A spec file, zoo name or .onnx model (``input_shape`` sizes an ONNX model's dynamic input)."""
    from cnncalc.spec.loader import load_spec

    return prepare_graph(load_spec(ref, input_shape=input_shape))


def fail(message: str, code: int = 2):
    err = CnnCalcError(message)
    err.exit_code = code
    raise err
