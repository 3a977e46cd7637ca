"""``cnncalc fit``: will it fit? The largest batch (or square input) whose training step fits a
memory budget, and tables over batch sizes and input sizes. Every figure is the peak of the
training step's liveness walk (cnncalc.analysis.memory.training_step) plus a fixed overhead."""
from __future__ import annotations

import click

from cnncalc._gc import paused_gc
from cnncalc.analysis.memory import training_step
from cnncalc.analysis.report import analyze_graph
from cnncalc.cli.common import dtype_option, format_option, input_option, load_graph, rounding_option
from cnncalc.cli.training_memory import parse_bytes, setup, training_options, usage_error
from cnncalc.errors import CnnCalcError, SpecError
from cnncalc.report.render import Column, TableView, emit_json, render
from cnncalc.shapes import Tensor, fmt_int, fmt_shape

# What a training process spends besides its tensors, on a CUDA GPU: the CUDA context with
# PyTorch's kernels loaded lazily (about 300-500 MiB), cuDNN and cuBLAS handles and workspaces
# (tens to a few hundred MiB), and the caching allocator's rounding of blocks into 2 MiB and
# 20 MiB segments. 1 GiB covers them on current cards; measure yours (nvidia-smi's use minus
# torch.cuda.memory_allocated()) and pass --overhead, or --overhead 0 for the tensors alone.
DEFAULT_OVERHEAD = "1GiB"
MAX_BATCH = 1 << 24
MAX_SIDE = 1 << 14


def _gib(n: int) -> str:
    return f"{n / 2**30:,.2f} GiB"


class _Model:
    """The training step of one spec at any batch and input size (analyses cached per input)."""

    def __init__(self, graph, dtype: str, opts: dict):
        self.graph, self.dtype, self.opts = graph, dtype, opts
        self.base_input = graph.input_shape
        self._per_input: dict = {}

    def _analysis(self, shape):
        got = self._per_input.get(shape)
        if got is None:
            self.graph.infer(shape)
            rep = analyze_graph(self.graph, batch=1, dtype=self.dtype, input_shape=shape)
            got = self._per_input[shape] = ({r.name: r.macs for r in rep.layers if r.macs},
                                            rep.memory["bytes_per_element"])
        return got

    def step(self, batch: int, shape=None):
        shape = tuple(shape or self.base_input)
        macs1, nbytes = self._analysis(shape)
        self.graph.infer(shape)
        layers = {n.name: n.layer for n in self.graph.layers}

        def dx(node, flows):
            lay = layers[node.name]
            return (lay.input_grad_macs(flows) if lay.input_grad_macs is not None else macs1[node.name]) * batch

        step = training_step(self.graph, batch, dtype_bytes=nbytes, macs={k: v * batch for k, v in macs1.items()},
                             input_grad_macs=dx, **self.opts)
        if (self.opts["freeze"] or self.opts["trainable"]) and not step.trainable_params:
            raise usage_error("--freeze/--trainable leave no layer with trainable parameters",
                               hint="a prefix matches a layer's name or a module containing it; "
                                    "see `cnncalc summarize SPEC` for the names")
        return step

    def square(self, side: int):
        shape = self.base_input
        if shape.__class__ is Tensor or len(shape) != 3:
            raise CnnCalcError(f"--max-input and input= sizes need an image input (HxWxC); this spec's "
                               f"input is {fmt_shape(shape)}")
        return (side, side, shape[-1])

    def accepts(self, shape) -> bool:
        try:
            self.graph.infer(shape)
            return True
        except SpecError:
            return False


def _largest_batch(model: _Model, budget: int, shape=None) -> tuple[int, list]:
    """The largest batch whose step fits ``budget`` (0 if not even 1), and the steps tried
    that bracket it."""
    one = model.step(1, shape)
    if one.peak > budget:
        return 0, [(1, one)]
    lo, hi = 1, 2
    probe = {1: one}
    while hi <= MAX_BATCH:
        probe[hi] = model.step(hi, shape)
        if probe[hi].peak > budget:
            break
        lo, hi = hi, hi * 2
    else:
        return lo, [(lo, probe[lo])]
    while hi - lo > 1:  # peak grows with the batch: bisect between a fit and a miss
        mid = (lo + hi) // 2
        probe[mid] = model.step(mid, shape)
        if probe[mid].peak <= budget:
            lo = mid
        else:
            hi = mid
    return lo, [(lo, probe[lo]), (hi, probe[hi])]


def _largest_side(model: _Model, batch: int, budget: int) -> tuple[int, list]:
    """The largest square input side (that the network accepts) whose step fits ``budget``."""
    def valid_at_or_above(s):
        for t in range(s, min(s + 64, MAX_SIDE) + 1):
            if model.accepts(model.square(t)):
                return t
        return None

    def fits(s):
        t = valid_at_or_above(s)
        return t is not None and model.step(batch, model.square(t)).peak <= budget

    lo = 1
    if not fits(lo):
        return 0, []
    hi = 2
    while hi <= MAX_SIDE and fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    best = valid_at_or_above(lo)
    # the largest accepted side that fits: at or above lo, below the first miss
    s = best
    t = s
    while t is not None and t < hi + 64:
        nxt = valid_at_or_above(t + 1)
        if nxt is None or model.step(batch, model.square(nxt)).peak > budget:
            break
        s = t = nxt
    rows = [(s, model.step(batch, model.square(s)))]
    nxt = valid_at_or_above(s + 1)
    if nxt is not None:
        rows.append((nxt, model.step(batch, model.square(nxt))))
    return s, rows


def _parse_sweep(words) -> dict:
    axes = {}
    for w in words:
        key, sep, vals = w.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("batch", "input"):
            raise usage_error(f"--sweep: cannot read {w[:40]!r}",
                               hint="write batch=1,8,32 and/or input=128,224,320 (square sides)")
        if key in axes:
            raise CnnCalcError(f"--sweep: {key}= is given twice")
        try:
            values = [int(v) for v in vals.split(",") if v.strip()]
        except ValueError:
            raise CnnCalcError(f"--sweep: {key}= takes whole numbers separated by commas, got {vals[:40]!r}") from None
        limit = MAX_BATCH if key == "batch" else MAX_SIDE
        if not values or any(not 1 <= v <= limit for v in values):
            raise CnnCalcError(f"--sweep: {key}= values must be between 1 and {limit:,}")
        if len(values) > 64:
            raise CnnCalcError(f"--sweep: at most 64 values per axis, {key}= has {len(values)}")
        axes[key] = values
    return axes


@click.command()
@click.argument("spec")
@click.argument("sweep_axes", nargs=-1, metavar="[batch=B,... input=S,...]")
@click.option("--memory", "memory", required=True, metavar="SIZE",
              help="The memory budget: 24GiB, 16GB, 80GiB (GB = 10^9 B, GiB = 2^30 B).")
@click.option("--overhead", default=DEFAULT_OVERHEAD, show_default=True, metavar="SIZE",
              help="Fixed memory a training process spends besides its tensors (CUDA context, cuDNN/cuBLAS "
                   "workspaces, allocator rounding); 0 for the tensors alone.")
@click.option("--batch", "-b", type=click.IntRange(min=1), default=None,
              help="With --max-input: the batch size to fit.")
@click.option("--max-input", is_flag=True, help="The largest square input (SxSxC) that fits at --batch.")
@click.option("--sweep", is_flag=True,
              help="A table over batch sizes and input sizes: --sweep batch=1,8,32 input=128,224,320.")
@training_options
@dtype_option
@input_option
@rounding_option
@format_option()
@click.option("--explain", is_flag=True, help="Show the arithmetic of the answer.")
def fit(spec, sweep_axes, memory, overhead, batch, max_input, sweep, fmt, dtype, input_shape, explain, **training):
    """Will it fit? The largest batch whose training step fits a memory budget.

    The memory of a step is the peak of a liveness walk over forward then backward (the tensors
    PyTorch's autograd keeps, activation and parameter gradients, parameters and optimizer state
    for the chosen optimizer and precision) plus a fixed --overhead.

    \b
    Examples:
      cnncalc fit resnet50 --memory 24GiB --optimizer adamw --precision bf16-mixed
      cnncalc fit resnet50 --memory 8GiB --batch 16 --max-input
      cnncalc fit resnet50 --memory 24GiB --sweep batch=1,8,32,128 input=128,224,320
      cnncalc fit vgg16 --memory 11GiB --checkpoint-segments 4 --format json
    """
    with paused_gc():
        _fit(spec, sweep_axes, memory, overhead, batch, max_input, sweep, fmt, dtype, input_shape, explain, training)


def _fit(spec, sweep_axes, memory, overhead, batch, max_input, sweep, fmt, dtype, input_shape, explain, training):
    budget = parse_bytes(memory, "--memory")
    over = 0 if str(overhead).strip() in ("0", "0B") else parse_bytes(overhead, "--overhead")
    if sweep_axes and not sweep:
        raise usage_error(f"unexpected argument {sweep_axes[0][:40]!r}", hint="axes go after --sweep: "
                           "--sweep batch=1,8,32 input=128,224")
    if sweep and max_input:
        raise CnnCalcError("--sweep and --max-input are two different questions: give one")
    if max_input and batch is None:
        raise CnnCalcError("--max-input needs --batch B (the batch to fit)")
    if batch is not None and not max_input and not sweep:
        raise CnnCalcError("--batch goes with --max-input (the largest input at that batch); without it "
                           "fit finds the largest batch")
    opts = setup(training)
    graph = load_graph(spec, input_shape)
    graph.infer(input_shape)
    model = _Model(graph, dtype, opts)
    left = budget - over
    if left <= 0:
        raise CnnCalcError(f"--overhead {_gib(over)} leaves nothing of --memory {_gib(budget)}")
    setup_text = (f"{opts['optimizer']}, {opts['precision']}"
                  + (f", checkpoint every {opts['checkpoint_every']}" if opts["checkpoint_every"] else "")
                  + (f", {opts['checkpoint_segments']} checkpoint segments" if opts["checkpoint_segments"] else "")
                  + (f", freeze {' '.join(opts['freeze'])}" if opts["freeze"] else "")
                  + (f", train only {' '.join(opts['trainable'])}" if opts["trainable"] else ""))
    base = {"spec": graph.name, "memory_bytes": budget, "overhead_bytes": over,
            "setup": {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}}

    def row(b, shape, step):
        total = step.peak + over
        return {"batch": b, "input": fmt_shape(shape), "peak_bytes": step.peak, "total_bytes": total,
                "total": _gib(total), "training_macs": step.training_macs, "peak_at": step.peak_layer,
                "peak_parts": dict(step.peak_parts), "peak_transients": step.transient_note(),
                "fits": "yes" if total <= budget else "no"}

    cols = [Column("batch", "Batch"), Column("input", "Input"),
            Column("total", f"Memory (+ {_gib(over)} overhead)"),
            Column("training_macs", "Training MACs / step", fmt=fmt_int),
            Column("fits", f"Fits {_gib(budget)}", "left")]
    if sweep:
        axes = _parse_sweep(sweep_axes)
        if not axes:
            raise usage_error("--sweep needs batch=… and/or input=…", hint="--sweep batch=1,8,32 input=128,224,320")
        rows = []
        for side in axes.get("input", [None]):
            shape = graph.input_shape if side is None else model.square(side)
            if side is not None and not model.accepts(shape):
                for b in axes.get("batch", [1]):
                    rows.append({"batch": b, "input": fmt_shape(shape), "peak_bytes": None, "total_bytes": None,
                                 "total": "-", "training_macs": None, "peak_at": None, "peak_parts": None,
                                 "fits": "no: the network does not accept this input"})
                continue
            for b in axes.get("batch", [1]):
                rows.append(row(b, shape, model.step(b, shape)))
        title = f"{graph.name} — training memory ({setup_text})"
        answer = None
    elif max_input:
        side, tried = _largest_side(model, batch, left)
        rows = [row(batch, model.square(s), st) for s, st in tried]
        answer = {"input_side": side}
        title = (f"{graph.name} — largest square input at batch {batch} for {_gib(budget)} ({setup_text}): "
                 + (f"{side}x{side}" if side else "none fits"))
    else:
        best, tried = _largest_batch(model, left)
        rows = [row(b, graph.input_shape, st) for b, st in tried]
        answer = {"batch": best}
        title = (f"{graph.name} — largest batch for {_gib(budget)} ({setup_text}): "
                 + (str(best) if best else "not even a batch of 1"))
    if fmt == "json":
        emit_json({**base, **({"answer": answer} if answer is not None else {}),
                   "rows": [{k: v for k, v in r.items() if k != "total"} for r in rows]})
        return
    notes = [f"memory = the peak of one training step (liveness walk over forward then backward) + "
             f"{fmt_int(over)} B overhead; budget {fmt_int(budget)} B"]
    render(TableView(title=title, columns=cols, rows=rows, notes=notes), fmt)
    if explain and fmt != "csv":
        lines = []
        for r in rows:
            if r["peak_bytes"] is None:
                continue
            op = "≤" if r["total_bytes"] <= budget else ">"
            lines.append(f"batch {r['batch']}, input {r['input']}: peak {fmt_int(r['peak_bytes'])} B (at {r['peak_at']})"
                         f" + overhead {fmt_int(over)} B = {fmt_int(r['total_bytes'])} B {op} {fmt_int(budget)} B")
            lines.append("    peak = " + " + ".join(f"{k} {fmt_int(v)}" for k, v in r["peak_parts"].items()))
            if r.get("peak_transients"):
                lines.append("    " + r["peak_transients"])
        if answer and "batch" in answer and len(rows) == 2:
            lines.append(f"batch {rows[0]['batch']} fits and batch {rows[1]['batch']} does not: the peak grows "
                         f"with the batch, so {rows[0]['batch']} is the largest")
        from cnncalc.escape import term_text

        text = "\n".join(map(term_text, lines)) + "\n"  # (a layer name cannot drive the terminal)
        click.echo("```\n" + text + "```" if fmt == "markdown" else text, nl=fmt != "markdown")
