"""``cnncalc conv`` / ``pool`` / ``fc``: the lecture's one-layer exercises, one command each.

Each command builds a tiny Graph (input → the layer; ``fc`` on a volume flattens first) out
of the real layer classes and reads every number off them: the shape rule, the parameter
count and the arithmetic are the ones ``summarize`` uses, never a second copy.
"""
from __future__ import annotations

import re

import click

from cnncalc.analysis.report import DTYPES, analyze_graph
from cnncalc.cli.common import batch_option, dtype_option, format_option
from cnncalc.errors import CnnCalcError, SpecError
from cnncalc.graph import Graph, Node
from cnncalc.layers import AvgPool, Conv, Dense, Flatten, MaxPool
from cnncalc.layers.base import MINUS
from cnncalc.report.render import Column, TableView, emit_json, render
from cnncalc.shapes import fmt_int, fmt_shape, numel, parse_shape

class _Rounding(click.Choice):
    """strict|floor|ceil, as on every command that reads a spec; 'exact' (the old spelling)
    is still accepted. The value passed on is the graph's own name for the rule."""

    def __init__(self):
        super().__init__(["strict", "floor", "ceil"])

    def convert(self, value, param, ctx):
        value = super().convert("strict" if value == "exact" else value, param, ctx)
        return "exact" if value == "strict" else value


ROUNDING = _Rounding()


# ------------------------------------------------------------------------------ option parsing
def _input(ctx, param, value):
    try:
        return parse_shape(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _axes(ctx, param, value):
    """``3`` → 3; ``3x5`` → [3, 5] (one value per spatial axis)."""
    if value is None:
        return None
    parts = str(value).lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number (or one per axis, like 3x5)") from None
    return nums[0] if len(nums) == 1 else nums


_PAIR = re.compile(r"^\s*\[?\s*(\d+)\s*,\s*(\d+)\s*\]?\s*$")


def _pad(ctx, param, value):
    """``2`` (every side), ``1x2`` (symmetric, one per axis), ``same``/``valid``, or ``lo,hi`` /
    ``[lo, hi]`` (one-sided: lo before and hi after, on every spatial axis; the way the "does not
    fit" hint writes it). A pair comes back as ``("pair", lo, hi)``: the number of axes is the
    input's, known only when the command runs."""
    if value is None:
        return None
    if str(value).lower() in ("same", "valid"):
        return str(value).lower()
    m = _PAIR.match(str(value))
    if m:
        return ("pair", int(m[1]), int(m[2]))
    try:
        return _axes(ctx, param, value)
    except click.BadParameter:
        raise click.BadParameter(f"{value!r}: give a number, one per axis (1x2), lo,hi such as 0,2 "
                                 f"(one-sided), 'same' or 'valid'") from None


def _pads(pad, input_shape):
    """The layer's ``pad`` argument: a ``lo,hi`` pair applies to every spatial axis."""
    if isinstance(pad, tuple) and pad[0] == "pair":
        return [[pad[1], pad[2]] for _ in range(max(len(input_shape) - 1, 1))]
    return pad


def _groups(ctx, param, value):
    if value is None or value == "depthwise":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a whole number or 'depthwise'") from None


def window_options(f):
    f = click.option("--rounding", type=ROUNDING, default="strict", show_default=True,
                     help="strict: a window that does not fit is an error (the slides' rule); "
                          "floor: PyTorch; ceil: Caffe pooling.")(f)
    f = click.option("--dilation", "-d", callback=_axes, default=None, metavar="D",
                     help="Dilation (default 1).")(f)
    f = click.option("--pad", "-p", callback=_pad, default=None, metavar="P",
                     help="Zero padding: a number (every side), HxW (one per axis), lo,hi (before, after; "
                          "e.g. 0,2 or '[0, 2]'), 'same' or 'valid' (default 0).")(f)
    return f


# ------------------------------------------------------------------------------ the commands
@click.command()
@click.argument("input_shape", metavar="HxWxC", callback=_input)
@click.option("--filters", "-f", type=click.IntRange(min=1), required=True, help="Number of filters F.")
@click.option("--kernel", "-k", callback=_axes, required=True, metavar="K", help="Kernel size: 5 or 3x5.")
@click.option("--stride", "-s", callback=_axes, default=None, metavar="S", help="Stride (default 1).")
@window_options
@click.option("--groups", "-g", callback=_groups, default=None, metavar="G",
              help="Grouped convolution: a number or 'depthwise'.")
@click.option("--no-bias", is_flag=True, help="A convolution without biases.")
@format_option()
@batch_option
@dtype_option
def conv(input_shape, filters, kernel, stride, pad, dilation, rounding, groups, no_bias, fmt, batch, dtype):
    """Output shape, parameters and MACs of one convolution, with the arithmetic.

    HxWxC is height x width x channels, as the slides write it (32x32x3, not 3x32x32);
    two numbers (LxC, e.g. 56x300) are a 1-D signal, 3-D volumes are DxHxWxC.

    \b
    Examples:
      cnncalc conv 32x32x3 --filters 10 --kernel 5 --stride 1 --pad 2
      cnncalc conv 227x227x3 -f 96 -k 11 -s 4
      cnncalc conv 7x7x1 -f 1 -k 3 -s 3        # does not fit: exit 2
      cnncalc conv 7x7x1 -f 1 -k 3 -s 3 --pad 0,2    # one-sided: 0 before, 2 after
      cnncalc conv 56x56x128 -f 128 -k 3 -p 1 --groups 32 --format json
    """
    args = {"filters": filters, "kernel": kernel, "stride": stride, "pad": _pads(pad, input_shape),
            "dilation": dilation, "groups": groups, "bias": False if no_bias else None}
    label = _label("conv", kernel, stride, input_shape)
    _run([("conv", Conv, args)], input_shape, rounding, fmt, batch, dtype, label, window=args)


@click.command()
@click.argument("input_shape", metavar="HxWxC", callback=_input)
@click.option("--kernel", "-k", callback=_axes, required=True, metavar="K", help="Window size: 2, 3 or 3x2.")
@click.option("--stride", "-s", callback=_axes, default=None, metavar="S",
              help="Stride (default: the kernel size).")
@window_options
@click.option("--type", "-t", "kind", type=click.Choice(["max", "avg"]), default="max", show_default=True)
@format_option()
@batch_option
@dtype_option
def pool(input_shape, kernel, stride, pad, dilation, rounding, kind, fmt, batch, dtype):
    """Output shape of a max / average pooling layer (it has no parameters).

    \b
    Examples:
      cnncalc pool 55x55x96 --kernel 3 --stride 2
      cnncalc pool 224x224x64 -k 2
      cnncalc pool 13x13x256 -k 3 -s 2 --type avg --format json
    """
    cls = MaxPool if kind == "max" else AvgPool
    if dilation is not None and cls is AvgPool:
        raise click.BadParameter("average pooling has no dilation", param_hint="--dilation")
    args = {"kernel": kernel, "stride": stride, "pad": _pads(pad, input_shape), "dilation": dilation}
    label = _label(f"{kind}pool", kernel, stride if stride is not None else kernel, input_shape)
    _run([("pool", cls, args)], input_shape, rounding, fmt, batch, dtype, label,
         window={**args, "stride": stride if stride is not None else kernel})


@click.command()
@click.argument("input_shape", metavar="SHAPE", callback=_input)
@click.option("--units", "-u", "-n", type=click.IntRange(min=1), required=True,
              help="Number of output units (neurons).")
@click.option("--no-bias", is_flag=True, help="A layer without biases.")
@format_option()
@batch_option
@dtype_option
def fc(input_shape, units, no_bias, fmt, batch, dtype):
    """Parameters and MACs of a fully connected layer; a volume such as 7x7x512 is flattened first.

    \b
    Examples:
      cnncalc fc 7x7x512 --units 4096
      cnncalc fc 4096 -u 1000 --format json
    """
    chain = []
    if numel(input_shape) != input_shape[-1] or len(input_shape) == 1:
        if len(input_shape) > 1:
            chain.append(("flatten", Flatten, {}))
    chain.append(("fc", Dense, {"units": units, "bias": False if no_bias else None}))
    label = f"fc-{units} on {fmt_shape(input_shape)}"
    _run(chain, input_shape, "exact", fmt, batch, dtype, label)


# ------------------------------------------------------------------------------ shared
def _label(kind, kernel, stride, shape) -> str:
    """``conv 5x5/s1 on 32x32x3``; a 1-D input gets a 1-D kernel and says how it was read:
    ``conv 5/s1 on 32x32 (1-D: length 32, 32 channels)``."""
    nd = max(len(shape) - 1, 1)
    k = "x".join(map(str, kernel)) if isinstance(kernel, list) else "x".join([str(kernel)] * nd)
    s = stride if stride is not None else 1
    s = "x".join(map(str, s)) if isinstance(s, list) else s
    label = f"{kind} {k}/s{s} on {fmt_shape(shape)}"
    if len(shape) == 2:
        label += f" (1-D: length {shape[0]}, {shape[1]} channels)"
    return label


def reading_notes(shape) -> list[str]:
    """What a student may have meant by an input shape that reads as something else: a 1-D
    signal (``32x32`` is L×C) or channels first (``3x32x32`` is C×H×W, not H×W×C)."""
    notes = []
    if len(shape) == 2:
        length, ch = shape
        notes.append(f"{fmt_shape(shape)} is read as a 1-D signal (L×C: length {length}, {ch} channels); "
                     f"for a {length}x{ch} image write {length}x{ch}x1 (grey) or {length}x{ch}x3 (H×W×C)")
    elif len(shape) == 3 and shape[0] <= 4 and min(shape[1], shape[2]) >= 8:
        c, h, w = shape
        notes.append(f"did you mean {h}x{w}x{c}? shapes are H×W×C (channels last), "
                     f"{fmt_shape(shape)} is {h} channels of {c}x{w}")
    return notes


def _fitting_inputs(shape, window) -> list[int] | None:
    """The smallest input sizes, per spatial axis, not below the given ones, on which the
    window fits exactly (AlexNet's 224 → 227); None when padding is 'same'/'valid' or an
    axis would have to grow by more than the stride."""
    nd = len(shape) - 1
    if nd < 1:
        return None

    def each(v, default):
        v = default if v is None else v
        return list(v) if isinstance(v, list) else [v] * nd

    pad = window.get("pad")
    if isinstance(pad, str):
        return None
    try:
        ks, ss, ds = each(window["kernel"], 1), each(window.get("stride"), 1), each(window.get("dilation"), 1)
        if pad is None:
            pads = [0] * nd
        elif isinstance(pad, list):
            pads = [sum(p) if isinstance(p, list) else 2 * p for p in pad]
        else:
            pads = [2 * pad] * nd
        out = []
        for w, k, s, d, p in zip(shape[:-1], ks, ss, ds, pads):
            extent = d * (k - 1) + 1
            need = max(extent - p, w)
            need += (-(need + p - extent)) % s
            out.append(need)
    except (TypeError, ValueError):
        return None
    return out if len(out) == nd and out != list(shape[:-1]) else None


def build(chain, input_shape, rounding="exact", name="calc") -> Graph:
    """input → the layers of ``chain`` (name, class, args), shapes inferred."""
    graph = Graph(name=name, input_shape=tuple(input_shape), rounding=rounding)
    prev = "input"
    for lname, cls, args in chain:
        layer = cls(lname, {k: v for k, v in args.items() if v is not None})
        graph.add(Node(lname, layer, [prev]))
        prev = lname
    graph.infer()
    return graph


def compute(chain, input_shape, rounding="exact", batch=1, dtype="float32") -> dict:
    """Every quantity of the last layer of ``chain`` with its arithmetic (the JSON object)."""
    graph = build(chain, input_shape, rounding)
    report = analyze_graph(graph, batch=batch, dtype=dtype)
    node = graph.layers[-1]
    layer, stats = node.layer, report[node.name]
    arith: dict[str, str] = {}
    notes = []
    for n in graph.layers[:-1]:  # the flatten in front of an fc layer
        notes += [f"{n.kind}: {s}" for s in n.layer.explain_shape()]
    shape_notes = layer.explain_shape()
    arith["shape"] = "; ".join(notes + shape_notes) or f"{fmt_shape(stats.shape)}"
    weights, biases = stats.weights, stats.biases
    out = {"input": list(input_shape), "layer": layer.describe(), "shape": list(stats.shape),
           "params": stats.params, "weights": weights, "biases": biases}
    fan_in = getattr(layer, "fan_in", None) if isinstance(layer, Conv) else None
    if isinstance(layer, Conv):
        k = "*".join(map(str, layer.kernel))
        per = layer.in_channels // layer.groups
        out["weights_per_filter"] = fan_in
        arith["weights_per_filter"] = f"{k}*{per} = {fmt_int(fan_in)}" + (
            f" (C/groups = {layer.in_channels}/{layer.groups} = {per})" if layer.groups > 1 else "")
        if biases:
            arith["params_per_filter"] = f"{k}*{per} + 1 = {fmt_int(fan_in + 1)}"
            out["params_per_filter"] = fan_in + 1
    if isinstance(layer, Conv) and layer.connections is None and weights:
        arith["weights"] = f"({k}*{per})*{layer.filters} = {fmt_int(weights)}"
    elif isinstance(layer, Dense):
        arith["weights"] = f"{fmt_int(layer.in_features)}*{fmt_int(layer.units)} = {fmt_int(weights)}"
    if biases:
        each = "filter" if isinstance(layer, Conv) else "unit"
        arith["biases"] = f"one per {each}: {fmt_int(biases)}"
    if isinstance(layer, Dense) and not shape_notes:
        arith["shape"] = "; ".join(notes + [f"{fmt_int(layer.units)} units"])
    if not layer.param_shapes():
        arith["params"] = f"a {layer.kind} layer has no parameters"
    else:
        arith["params"] = layer.explain_params(True) or f"{fmt_int(weights)} + {fmt_int(biases)}"
    out["macs"] = stats.macs
    out["flops"] = stats.flops
    m = layer.explain_macs()
    if m:
        arith["macs"] = m + (f" per image, *{batch} = {fmt_int(stats.macs)}" if batch > 1 else "")
        arith["flops"] = f"2 * {fmt_int(stats.macs)} = {fmt_int(stats.flops)}"
    else:
        arith["macs"] = "no multiply-accumulates"
    for kind, n in stats.ops.items():
        out[f"{kind}_ops"] = n
    out["activations"] = stats.activations
    out["activation_bytes"] = stats.activation_bytes
    b = f"{batch}*" if batch > 1 else ""
    arith["activations"] = f"{b}{'*'.join(map(str, stats.shape))} = {fmt_int(stats.activations)}"
    arith["activation_bytes"] = f"{fmt_int(stats.activations)} * {DTYPES[dtype]} B ({dtype}) = " \
                                f"{fmt_int(stats.activation_bytes)} B"
    out["batch"], out["dtype"] = batch, dtype
    out["arithmetic"] = arith
    return out


_ROWS = [  # key, label
    ("shape", "output shape"),
    ("weights_per_filter", "weights per filter"),
    ("params_per_filter", "params per filter"),
    ("weights", "weights"),
    ("biases", "biases"),
    ("params", "parameters"),
    ("macs", "MACs (multiply-adds)"),
    ("flops", "FLOPs = 2 × MACs"),
    ("activations", "output memory (elements)"),
    ("activation_bytes", "output memory (bytes)"),
]


def view(obj: dict, title: str) -> TableView:
    rows = []
    for key, label in _ROWS:
        if key not in obj:
            continue
        v = obj[key]
        value = fmt_shape(tuple(v)) if key == "shape" else v
        rows.append({"quantity": label, "key": key, "value": value,
                     "arithmetic": obj["arithmetic"].get(key, "")})
    for key in sorted(k for k in obj if k.endswith("_ops")):
        rows.append({"quantity": key.replace("_", " "), "key": key, "value": obj[key],
                     "arithmetic": ""})
    cols = [Column("quantity", "Quantity", "left"), Column("value", "Value"),
            Column("arithmetic", "Arithmetic", "left")]
    caption = f"batch {obj['batch']}, {obj['dtype']}" if obj["batch"] > 1 else None
    return TableView(title=title, columns=cols, rows=rows, caption=caption)


def _pad_flags(message: str) -> str:
    """The message's pad suggestions as the flags that give them: 'use pad 1, pad [0, 2]
    (one-sided)' → '--pad 1 or --pad 0,2'."""
    flags = [f"--pad {m[1]}" for m in re.finditer(r"use pad (\d+)", message)]
    flags += [f"--pad {m[1]},{m[2]}" for m in re.finditer(r"pad \[(\d+), (\d+)\] \(one-sided\)", message)]
    return " or ".join(flags) or "--pad"


def _run(chain, input_shape, rounding, fmt, batch, dtype, label, window=None):
    notes = reading_notes(input_shape) if window is not None else []
    try:
        obj = compute(chain, input_shape, rounding, batch, dtype)
    except SpecError as e:
        e.layer = label
        hints = list(notes)
        if "does not fit" in e.message or "larger than the padded input" in e.message:
            hints.append(e.hint or (f"change it with {_pad_flags(e.message)} or --stride, or accept a "
                                    f"partial window with --rounding floor (PyTorch) or --rounding ceil (Caffe)"))
            fits = _fitting_inputs(input_shape, window) if window is not None and not notes else None
            if fits and "does not fit" in e.message:
                fit_shape = fmt_shape((*fits, input_shape[-1]))
                hints.append(f"or input {fit_shape}" + (
                    ": AlexNet's conv1 (the paper writes 224x224x3; its arithmetic needs 227x227x3)"
                    if fit_shape == "227x227x3" and input_shape[:2] == (224, 224) else ""))
        elif "spatial ax" in e.message and len(input_shape) == 2:
            hints.append("a 1-D input takes one number per option (-k 5, not -k 5x5)")
        elif e.hint:
            hints.append(e.hint)
        e.hint = "\n  hint: ".join(hints) or None
        raise
    obj["layer"] = label
    if notes:
        obj["notes"] = notes
    if fmt == "json":
        emit_json(obj)
        return
    v = view(obj, label)
    v.notes = [*v.notes, *notes]
    render(v, fmt)


__all__ = ["conv", "pool", "fc", "compute", "build", "MINUS", "CnnCalcError"]
