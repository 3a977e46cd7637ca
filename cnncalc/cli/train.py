"""``cnncalc train`` and ``cnncalc evaluate``: mini-batch SGD on the reference runtime.

The loop lives in :mod:`cnncalc.runtime.trainer`; this module parses options, turns
library errors into exit status 2, draws the progress and renders the results.

Exit status: 0 done · 1 the run diverged (NaN/inf loss; the last good checkpoint is
kept) · 2 bad input (spec, data, options, run directory) · 130 interrupted by Ctrl-C
(a checkpoint of the current batch was saved; ``--resume`` continues it exactly).
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path

import click

from cnncalc.cli.common import (algo_option, batch_size_option, format_option, input_option, make_rounding_option,
                                output_option, prepare_graph, require_kernels, rounding_option,
                                rounding_override)
from cnncalc.errors import CnnCalcError
from cnncalc.report.render import Column, TableView, emit_json, render, use_rich

# the rule of cnncalc.runtime._numba.default_threads, said without importing numba
THREADS_HELP = ("Threads for the kernels and sub-batches. Default: the cores not busy with other work "
                "when the command starts (usable cores minus the 1-minute load average, rounded, at "
                "least 1; NUMBA_NUM_THREADS when set): on a shared machine a thread that waits for a "
                "busy core makes training slower than 1 thread.")
SCHEDULES = ("step", "plateau", "cosine", "constant")
# training MACs per epoch above which train estimates the duration from the first batches
# (LeNet-5 on 4,000 digits: 4.5e9, a few seconds; VGG-16 at 32x32 on 50,000 images: 2.3e13)
LARGE_EPOCH_MACS = 10**11
# options a resumed run takes from its checkpoint (changing them would break exactness)
FROZEN = ("spec", "data", "batch", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "lr_schedule",
          "init", "seed", "conv_algo", "normalize", "input_shape", "rounding")


class _Fail(CnnCalcError):
    def __init__(self, msg, code=2):
        super().__init__(msg)
        self.exit_code = code


@contextlib.contextmanager
def _user_errors():
    """Library errors about the user's input → CnnCalcError (exit 2, no traceback)."""
    from cnncalc.fsutil import RunDirError
    from cnncalc.runtime.checkpoint import CheckpointError
    from cnncalc.runtime.data import DataError

    try:
        yield
    except (DataError, CheckpointError, RunDirError) as e:
        raise _Fail(str(e)) from None


def _spec_source(ref: str) -> tuple[str, str]:
    """(text, file name) of a spec path or zoo name."""
    from cnncalc.spec.loader import resolve_spec

    res = resolve_spec(ref)
    if isinstance(res, tuple):
        return res[1], res[0]
    from cnncalc.spec.yamlsafe import read_text_file

    return read_text_file(res, "spec"), str(res)  # a regular file of bounded size, or exit 2


def _graph(text: str, file: str, input_shape, rounding: str | None = None):
    """The graph a run trains: ``rounding`` (the run's stored --rounding) is the spec-wide rule
    unless this command line gives its own --rounding."""
    from cnncalc.spec.loader import load_spec_text

    g = prepare_graph(load_spec_text(text, file=file))
    if rounding is not None and rounding_override() is None and g.rounding != rounding:
        g.rounding = rounding
        g.inferred = False
    g.infer(tuple(input_shape) if input_shape else None)
    if len(g.input_shape) != 3:
        raise _Fail(f"{file}: train needs an image input HxWxC, the spec's input is "
                    f"{'x'.join(map(str, g.input_shape))}: use --input HxWxC")
    require_kernels(g)
    return g


def _compiles_done():
    from cnncalc.runtime import _numba

    _numba.compiles_done()


def _threads(n):
    from cnncalc.runtime import _numba

    return _numba.set_threads(n)


# ----------------------------------------------------------------------------- output
class _Out:
    """Progress and per-epoch lines: rich on a terminal, plain lines otherwise."""

    def __init__(self, fmt: str):
        self.stream = sys.stdout if fmt in ("table", "plain") else sys.stderr
        self.rich = fmt == "table" and use_rich(self.stream)
        self.console = None
        self.progress = None
        if self.rich:
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False)

    def line(self, text: str = "", style: str | None = None):
        from cnncalc.escape import error_text

        text = error_text(text)  # (the spec's name, layer names: shown escaped)
        if self.console is not None:
            self.console.print(text, style=style, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start_epoch(self, epoch, epochs, batches, done=0):
        if not self.rich:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}"),
            TextColumn("{task.fields[ips]:,.0f} img/s"), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=batches, completed=done, loss=0.0, acc=0.0, ips=0.0)

    def batch(self, p):
        if self.progress is None:  # plain output: one line per epoch, nothing per batch
            return
        self.progress.update(self.task, completed=p.batch, loss=p.loss, acc=p.accuracy,
                             ips=p.images_per_second)

    def end_epoch(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _epoch_line(r: dict, epochs: int) -> str:
    w = len(str(epochs))
    return (f"epoch {r['epoch']:>{w}}/{epochs}  lr {r['lr']:.3g}  "
            f"train loss {r['train_loss']:.4f} acc {r['train_accuracy']:6.2%}  "
            f"test loss {r['test_loss']:.4f} acc {r['test_accuracy']:6.2%}  "
            f"{r['seconds']:.1f} s  {r['images_per_second']:,.0f} img/s" + ("  *best" if r.get("best") else ""))


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 90:
        return f"{max(seconds, 0):.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _speed(b):
    if not b:
        return "none"
    return (f"{_mib(b)} (im2col's unfolded inputs and Winograd's transformed "
            f"inputs, reused by the weight gradient instead of computing them again; not activations, "
            f"--conv-algo direct keeps none)")


def _mib(b):
    return None if b is None else f"{b / 2**20:.2f} MiB ({b:,} bytes)"


# ----------------------------------------------------------------------------- train
@click.command()
@click.argument("spec_arg", required=False, metavar="[SPEC]")
@click.option("--spec", default=None, metavar="SPEC",
              help="The spec, as an option (same as the SPEC argument).")
@click.option("--data", default=None, metavar="PATH",
              help="IDX directory (MNIST/Fashion-MNIST), CIFAR-10 python batch directory, or .npz with "
                   "images/labels. Default: the bundled 5,000 MNIST digits.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="LeNet-5 on the bundled digits passes 96 % test accuracy by about epoch 10.")
@batch_size_option(64)
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True,
              help="sgd: momentum SGD with coupled L2 decay (PyTorch's SGD); adamw: Adam with decoupled "
                   "weight decay (PyTorch's AdamW, betas 0.9/0.999, eps 1e-8; --momentum does not apply).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Initial learning rate.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True)
@click.option("--nesterov", is_flag=True, help="Nesterov momentum.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True,
              help="Weight decay on weights (not biases / BN): L2 for sgd, decoupled for adamw.")
@click.option("--lr-schedule", type=click.Choice(SCHEDULES), default="step", show_default=True,
              help="step: ÷10 at 2/3 of the epochs; plateau: ÷10 when test accuracy stalls for 2 epochs; "
                   "cosine: to 0 at the last epoch.")
@click.option("--init", type=click.Choice(["he", "xavier", "lecun"]), default="he", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N", help=THREADS_HELP)
@algo_option
@click.option("--normalize", type=click.Choice(["scale", "standardize"]), default="scale", show_default=True,
              help="scale: pixels to [0, 1]; standardize: per-channel mean/std of the training split.")
@input_option
@rounding_option
@output_option("Run directory (default runs/<spec>-<timestamp>); never an existing non-empty one.",
               dir_ok=True, alias="--out")
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
              help="Continue the run in RUN_DIR from its latest.npz (exactly; --epochs may extend it).")
@format_option()
@click.pass_context
def train(ctx, spec_arg, spec, data, epochs, batch, optimizer, lr, momentum, nesterov, weight_decay, lr_schedule, init,
          seed, threads, conv_algo, normalize, input_shape, output, resume_dir, fmt):
    """Train SPEC with mini-batch SGD (or AdamW) on the numba runtime and keep a run directory.

    SPEC is a YAML file or the name of a shipped spec (see `cnncalc zoo`).

    \b
    Examples:
      cnncalc train specs/lenet5.yaml                   # bundled MNIST digits, no download
      cnncalc train lenet5 --epochs 3 --format json > summary.json
      cnncalc train my.yaml --data ~/fashion-mnist --normalize standardize
      cnncalc train --resume runs/lenet5-20250101-120000
    """
    if spec_arg is not None and spec is not None and spec_arg != spec:
        raise _Fail(f"two specs given: {spec_arg} and --spec {spec}; give one")
    spec = spec if spec is not None else spec_arg
    batch_size, out_dir = batch, output
    locks: list = []  # the run directory's lock, released however the command ends
    old_sigint = signal.getsignal(signal.SIGINT)
    try:
        _train(ctx, locks, spec, data, epochs, batch_size, optimizer, lr, momentum, nesterov, weight_decay, lr_schedule,
               init, seed, threads, conv_algo, normalize, input_shape, out_dir, resume_dir, fmt)
    finally:
        for lock in locks:
            lock.release()
        with contextlib.suppress(ValueError, TypeError):  # not the main thread / not a Python handler
            signal.signal(signal.SIGINT, old_sigint)


@contextlib.contextmanager
def _disk_errors(run_dir: Path):
    """A full disk (or quota, read-only file system) while writing the run: exit 2 naming the
    path; every file is written atomically, so the last good checkpoint is intact."""
    from cnncalc.fsutil import DISK_ERRNOS
    from cnncalc.runtime import checkpoint as C

    try:
        yield
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        where = e.filename or run_dir
        latest = run_dir / C.LATEST
        kept = (f"the last good checkpoint {latest} is intact; free some space and continue with "
                f"'cnncalc train --resume {run_dir}'") if latest.exists() else "no checkpoint was written yet"
        raise _Fail(f"cannot write into {where}: {e.strerror}; {kept}") from None


def _train(ctx, locks, spec, data, epochs, batch_size, optimizer, lr, momentum, nesterov, weight_decay, lr_schedule, init,
           seed, threads, conv_algo, normalize, input_shape, out_dir, resume_dir, fmt):
    import numpy as np  # noqa: F401  (the runtime side: numpy/numba are fine here)

    from cnncalc.fsutil import lock_run_dir, prepare_run_dir
    from cnncalc.runtime import checkpoint as C
    from cnncalc.runtime.data import Normalization, load_dataset, prepare
    from cnncalc.runtime.trainer import (EXIT_DIVERGED, EXIT_INTERRUPTED, SUMMARY, Trainer,
                                         TrainOptions)

    out = _Out(fmt)
    ck = None
    with _user_errors():
        if resume_dir:
            given = [p for p in FROZEN if ctx.get_parameter_source(p).name == "COMMANDLINE" and p != "spec"]
            if given:
                names = ", ".join("--" + g.replace("_shape", "").replace("_", "-") for g in given)
                raise _Fail(f"{names} cannot change when resuming (the run continues with the options it "
                            "was started with); drop them, or start a new run with --output DIR")
            if out_dir:
                raise _Fail("--output and --resume exclude each other: a resumed run writes into RUN_DIR")
            run_dir = Path(resume_dir)
            if not run_dir.is_dir():
                raise _Fail(f"--resume {resume_dir}: no such run directory")
            locks.append(lock_run_dir(run_dir))
            from cnncalc.fsutil import remove_stale_temps

            remove_stale_temps(run_dir, (C.LATEST, C.BEST))  # left by a kill -9 mid-write (we hold the lock)
            if not (run_dir / C.LATEST).exists():
                raise _Fail(f"{run_dir} has no checkpoint ({C.LATEST}): the run stopped before its first "
                            f"checkpoint was written, so there is nothing to resume; start it again with "
                            f"'cnncalc train --spec ... --out NEW_DIR' (or delete {run_dir} and reuse its name)")
            ck = C.load_checkpoint(run_dir / C.LATEST)
            m = ck.metadata
            if "options" not in m or "spec_text" not in m:
                raise _Fail(f"{run_dir / C.LATEST} was not written by cnncalc train (no options/spec)")
            if spec is not None and C.spec_hash(_spec_source(spec)[0]) != ck.spec_hash:
                raise _Fail(f"the spec {spec} is not the spec {run_dir} was trained with; drop it to use "
                            "the one stored in the checkpoint")
            o = dict(m["options"])
            if ctx.get_parameter_source("epochs").name == "COMMANDLINE":
                o["epochs"] = epochs
            opts = TrainOptions(**o)
            spec_text, spec_file = m["spec_text"], m.get("spec_file") or ck.spec_name
            if opts.epochs <= ck.epoch and not m.get("next_batch"):
                raise _Fail(f"{run_dir} already completed {ck.epoch} epoch(s); pass --epochs N with N > "
                            f"{ck.epoch} to train further")
        else:
            if spec is None:
                raise _Fail("give a SPEC (a spec file or zoo name, e.g. cnncalc train specs/lenet5.yaml), "
                            "or --resume RUN_DIR")
            if nesterov and momentum == 0:
                raise _Fail("--nesterov needs --momentum > 0")
            if optimizer == "adamw" and (nesterov or ctx.get_parameter_source("momentum").name == "COMMANDLINE"):
                raise _Fail("--momentum and --nesterov are SGD's; AdamW has its own betas (0.9, 0.999)")
            spec_text, spec_file = _spec_source(spec)
            opts = TrainOptions(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                                nesterov=nesterov, weight_decay=weight_decay, lr_schedule=lr_schedule,
                                init=init, seed=seed, conv_algo=conv_algo, normalize=normalize, data=data,
                                input=list(input_shape) if input_shape else None,
                                rounding=rounding_override())
        graph = _graph(spec_text, spec_file, opts.input, opts.rounding)
        from cnncalc import limits

        limits.check_memory(graph, batch=opts.batch_size, command="train")  # before any array exists
        from cnncalc.runtime.trainer import outputs_of

        _, num_outputs = outputs_of(graph)
        ds = load_dataset(opts.data)
        norm = (Normalization.from_dict(ck.metadata["data"]["normalization"]) if ck is not None
                else opts.normalize)
        ds = prepare(ds, graph.input_shape, num_outputs, norm)
        if ck is None:
            if out_dir:
                locks.append(lock_run_dir(out_dir))  # a second train into the same --out stops here
                run_dir = prepare_run_dir(out_dir)
            else:  # runs/<spec>-<timestamp>, with -2, -3... if two runs start in the same second
                base = Path("runs") / f"{Path(spec_file).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
                run_dir, k = base, 1
                while run_dir.exists() and any(run_dir.iterdir()):
                    k += 1
                    run_dir = base.with_name(f"{base.name}-{k}")
                run_dir = prepare_run_dir(run_dir)
                locks.append(lock_run_dir(run_dir))
        else:
            param_shapes = {f"{n.name}/{k}": s for n in graph.layers for k, (s, _) in n.layer.owned_param_shapes().items()}
            state_shapes = {f"{n.name}/{k}": s for n in graph.layers for k, s in n.layer.state_shapes().items()}
            ck = C.load_checkpoint(run_dir / C.LATEST, expected_spec_hash=C.spec_hash(spec_text),
                                   param_shapes=param_shapes, state_shapes=state_shapes)
        n_threads = _threads(threads)
        trainer = Trainer(graph, ds, opts, run_dir, spec_text=spec_text, spec_file=spec_file, resume=ck)

    import cnncalc

    report = cnncalc.analyze(graph, batch=opts.batch_size)
    out.line(f"{'resuming' if ck else 'training'} {graph.name} ({spec_file}): "
             f"{report.totals['trainable']:,} parameters, input {'x'.join(map(str, graph.input_shape))}")
    out.line(ds.describe())
    for msg in ds.messages:
        out.line(f"  {msg}")
    if ds.attribution:
        out.line(f"  {ds.attribution}")
    if opts.optimizer == "adamw":
        opt_text = f"AdamW lr {opts.lr:g} ({opts.lr_schedule}), betas 0.9/0.999, decoupled weight decay"
    else:
        opt_text = (f"SGD lr {opts.lr:g} ({opts.lr_schedule}), momentum {opts.momentum:g}"
                    f"{' nesterov' if opts.nesterov else ''}, weight decay")
    out.line(f"{opt_text} {opts.weight_decay:g}, batch "
             f"{opts.batch_size}, init {opts.init}, seed {opts.seed}, {n_threads} thread(s), conv {opts.conv_algo}")
    out.line(f"run directory: {run_dir}" + (f" (from epoch {ck.epoch + 1}"
                                             + (f", batch {trainer.next_batch + 1})" if trainer.next_batch else ")")
                                             if ck else ""))

    per_image = report.totals["training_macs"] // opts.batch_size
    n_train = len(ds.train_labels)
    out.line(f"work: {per_image:,} training MACs per image (forward + backward) x {n_train:,} images = "
             f"{per_image * n_train:,} per epoch")
    said = {"estimate": False, "first_epoch": False, "compiled": False}
    large = per_image * n_train >= LARGE_EPOCH_MACS
    remaining_epochs = opts.epochs - (ck.epoch if ck else 0)

    def on_batch(p):
        if p.batch == 1 or not said["compiled"]:
            said["compiled"] = True
            _compiles_done()  # the first batch compiled what a cold cache lacked: end that notice
        if out.progress is None and out.rich:
            out.start_epoch(p.epoch, p.epochs, p.batches)
        out.batch(p)
        # a large spec says early how long it will take: after the first batches of the first epoch
        if large and not said["estimate"] and p.batch >= 3 and p.batch < p.batches:
            said["estimate"] = True
            epoch_s = p.seconds / p.batch * p.batches
            out.line(f"expected: about {_duration(epoch_s)} per epoch, {_duration(epoch_s * remaining_epochs)} "
                     f"for {remaining_epochs} epoch(s) (from the first {p.batch} batches)")

    def on_epoch(rec):
        out.end_epoch()
        out.line(_epoch_line(rec, opts.epochs))
        if not said["first_epoch"] and rec["epoch"] < opts.epochs:
            said["first_epoch"] = True
            left = opts.epochs - rec["epoch"]
            out.line(f"expected: {left} more epoch(s) x {rec['seconds']:.1f} s = about "
                     f"{_duration(left * rec['seconds'])}")

    def on_sigint(signum, frame):
        trainer.stop_requested = True
        signal.signal(signal.SIGINT, old)  # a second Ctrl-C stops at once

    old = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        old = None
    t0 = time.perf_counter()
    try:
        with _disk_errors(run_dir):
            outcome = trainer.run(on_batch, on_epoch)
    finally:
        out.end_epoch()
        if old is not None:
            # training is over: a Ctrl-C now must not kill the summary being written (the run
            # finished and its files are complete), so it is ignored until the command returns
            signal.signal(signal.SIGINT, lambda signum, frame: None)
    wall = time.perf_counter() - t0

    summary = _summary(trainer, outcome, report, ds, graph, spec_file, run_dir, n_threads, wall)
    from cnncalc.fsutil import atomic_write_text

    with _disk_errors(run_dir):
        atomic_write_text(run_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    if fmt == "json":
        emit_json(summary)
    else:
        render(_summary_view(summary), fmt)
    if outcome.status == "interrupted":
        click.echo(outcome.message, err=True)
        ctx.exit(EXIT_INTERRUPTED)
    if outcome.status == "diverged":
        click.echo(f"error: {outcome.message}", err=True)
        ctx.exit(EXIT_DIVERGED)


def _summary(trainer, outcome, report, ds, graph, spec_file, run_dir, n_threads, wall) -> dict:
    from dataclasses import asdict

    from cnncalc.runtime import checkpoint as C

    h = trainer.history
    last = h[-1] if h else {}
    part = trainer.partial  # the epoch in progress when Ctrl-C stopped the run
    secs = sum(r["seconds"] for r in h) + part.get("seconds", 0.0)
    imgs = len(ds.train_labels) * len(h) + part.get("seen", 0)
    mem = report.memory
    measured = trainer.measured_bytes
    saved = mem["backward_saved_bytes"]
    if measured is None:
        why = "not measured (no training step ran)"
    elif measured == saved:
        why = "equal: the input and every layer output, as the analyzer counts them"
    elif measured > saved:
        why = (f"the runtime keeps {measured - saved:,} B more: kernel caches the analyzer does not "
               "count as activations (max-pool argmax indices, BN x̂, dropout masks)")
    else:
        inside = sum(r.internal for r in report.layers) * mem["bytes_per_element"]
        why = (f"the runtime keeps {saved - measured:,} B less: some layers keep a smaller cache than "
               "their output (a ReLU keeps a 1-byte mask per value)"
               + (f"; the analyzer's count includes {inside:,} B written inside attention and MLP layers "
                  "(q, k, v, scores, hidden), of which the runtime keeps only what their backward reads"
                  if inside else ""))
    return {
        "status": outcome.status,
        "message": outcome.message or None,
        "spec": graph.name, "spec_file": spec_file, "run_dir": str(run_dir),
        "epochs_completed": len(h), "epochs": trainer.opts.epochs,
        "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
        "test_loss": last.get("test_loss"), "test_accuracy": last.get("test_accuracy"),
        "best_test_accuracy": trainer.best_accuracy if h else None, "best_epoch": trainer.best_epoch,
        "seconds": round(secs, 3), "images": imgs,
        "images_per_second": round(imgs / secs, 1) if secs else None,
        "wall_seconds_this_session": round(wall, 3), "threads": n_threads,
        "parameters": report.totals["trainable"],
        "memory": {
            "batch": trainer.opts.batch_size,
            "measured_activation_bytes": trainer.measured_bytes,
            "measured_what": "distinct arrays the forward pass keeps for backward (layer caches + input), "
                             "measured at the first training step; weights the caches refer to are "
                             "parameters and not counted, conv inputs kept for speed (im2col columns, Winograd "
                             "transforms) are "
                             "speed_cache_bytes",
            "speed_cache_bytes": trainer.speed_cache_bytes,
            "difference": why,
            "predicted_backward_saved_bytes": mem["backward_saved_bytes"],
            "predicted_forward_bytes": mem["forward_bytes"],
            "predicted_activation_gradient_peak_bytes": mem["activation_gradient_peak_bytes"],
            "predicted_training_total_bytes": mem["training_total_bytes"],
            "ratio_measured_to_predicted": (round(trainer.measured_bytes / mem["backward_saved_bytes"], 3)
                                            if trainer.measured_bytes else None),
        },
        "options": asdict(trainer.opts),
        "data": {**ds.metadata(), "description": ds.describe(), "attribution": ds.attribution,
                 "messages": ds.messages},
        "checkpoints": {"latest": str(run_dir / C.LATEST) if (run_dir / C.LATEST).exists() else None,
                        "best": str(run_dir / C.BEST) if (run_dir / C.BEST).exists() else None},
    }


def _summary_view(s: dict) -> TableView:
    rows = [{"what": "train", "loss": s["train_loss"], "accuracy": s["train_accuracy"]},
            {"what": "test", "loss": s["test_loss"], "accuracy": s["test_accuracy"]}]
    f4 = lambda v: f"{v:.4f}"  # noqa: E731
    pct = lambda v: f"{v:.2%}"  # noqa: E731
    m = s["memory"]
    items = [("status", s["status"]), ("epochs", f"{s['epochs_completed']} of {s['epochs']}"),
             ("best test accuracy", f"{s['best_test_accuracy']:.2%} (epoch {s['best_epoch']})"
              if s["best_epoch"] else "-"),
             ("training time", f"{s['seconds']:.1f} s for {s['images']:,} images, "
                               f"{s['images_per_second'] or 0:,.0f} images/s, {s['threads']} thread(s)"),
             (f"activations kept for backward (batch {m['batch']})",
              f"measured {_mib(m['measured_activation_bytes'])}, analyzer {_mib(m['predicted_backward_saved_bytes'])}"
              f": {m['difference']}"),
             ("conv inputs kept for speed", _speed(m.get("speed_cache_bytes"))),
             ("run directory", s["run_dir"])]
    if s["checkpoints"]["best"]:
        items.append(("evaluate with", f"cnncalc evaluate --checkpoint {s['checkpoints']['best']}"))
    return TableView(title=f"{s['spec']}: {s['status']}", columns=[
        Column("what", "", "left"), Column("loss", "loss", fmt=f4), Column("accuracy", "accuracy", fmt=pct)],
        rows=rows, sections=[("run", items)])


# ----------------------------------------------------------------------------- evaluate
@click.command()
@click.option("--checkpoint", "ckpt_path", required=True, metavar="FILE", help="A latest.npz or best.npz.")
@click.option("--data", default=None, metavar="PATH",
              help="Data to evaluate on (its test split); default: the data the run was trained on.")
@click.option("--spec", default=None, metavar="SPEC", help="Default: the spec stored in the checkpoint.")
@batch_size_option(256)
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N", help=THREADS_HELP)
@make_rounding_option(
    "Override the spec's rounding rule (floor, ceil or strict; a layer's own 'rounding:' still wins). "
    "Default: the rule the run was trained with (train --rounding is stored in the checkpoint), else "
    "the spec's.")
@format_option()
def evaluate(ckpt_path, data, spec, batch, threads, fmt):
    """Accuracy and confusion matrix of a checkpoint on a test split.

    \b
    Examples:
      cnncalc evaluate --checkpoint runs/lenet5-20250101-120000/best.npz
      cnncalc evaluate --checkpoint best.npz --data ~/mnist --format json
      cnncalc evaluate --checkpoint best.npz --spec my.yaml --rounding floor
    """
    import numpy as np

    from cnncalc.runtime import checkpoint as C
    from cnncalc.runtime.data import Normalization, load_dataset, prepare
    from cnncalc.runtime.trainer import TrainNet, evaluate_net, flat, load_flat, outputs_of

    with _user_errors():
        ck = C.load_checkpoint(ckpt_path)
        m = ck.metadata
        if spec is not None:
            spec_text, spec_file = _spec_source(spec)
        elif "spec_text" in m:
            spec_text, spec_file = m["spec_text"], m.get("spec_file") or ck.spec_name
        else:
            raise _Fail(f"{ckpt_path} does not store its spec; pass --spec")
        opts = m.get("options", {})
        graph = _graph(spec_text, spec_file, opts.get("input"), opts.get("rounding"))
        from cnncalc import limits

        limits.check_memory(graph, batch=batch, command="evaluate")
        _, num_outputs = outputs_of(graph)
        param_shapes = {f"{n.name}/{k}": s for n in graph.layers for k, (s, _) in n.layer.owned_param_shapes().items()}
        state_shapes = {f"{n.name}/{k}": s for n in graph.layers for k, s in n.layer.state_shapes().items()}
        ck = C.load_checkpoint(ckpt_path, param_shapes=param_shapes, state_shapes=state_shapes)
        norm_d = (m.get("data") or {}).get("normalization")
        norm = Normalization.from_dict(norm_d) if norm_d else opts.get("normalize", "scale")
        ds = load_dataset(data if data is not None else opts.get("data"))
        ds = prepare(ds, graph.input_shape, num_outputs, norm)
        n_threads = _threads(threads)
    net = TrainNet(graph, dtype="float32", conv_algo=opts.get("conv_algo", "auto"))
    load_flat(net.params, ck.params)
    load_flat(net.state, ck.state)
    assert flat(net.params).keys() == ck.params.keys()
    t0 = time.perf_counter()
    loss, acc, pred = evaluate_net(net, ds.test_images, ds.test_labels, batch)
    seconds = time.perf_counter() - t0  # (a cold kernel cache's compilation included)
    _compiles_done()
    k = num_outputs
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (ds.test_labels, pred), 1)
    result = {"checkpoint": str(ckpt_path), "spec": graph.name, "spec_file": spec_file,
              "epoch": ck.epoch, "data": ds.describe(), "num_test": int(len(ds.test_labels)),
              "correct": int(np.trace(cm)), "accuracy": acc, "loss": loss,
              "confusion_matrix": cm.tolist(),
              "per_class_accuracy": [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in range(k)],
              "seconds": round(seconds, 6), "images_per_second": round(len(ds.test_labels) / seconds, 1),
              "batch": batch, "threads": n_threads}
    if fmt == "json":
        emit_json(result)
        return
    # on a narrow terminal: recall and totals go first, then the last classes' columns
    cols = [Column("true", "true \\ predicted", "left")] + [Column(f"p{j}", str(j), drop=1 + j) for j in range(k)] + [
        Column("total", "total", drop=k + 1), Column("recall", "recall", fmt=lambda v: f"{v:.1%}", drop=k + 2)]
    rows = []
    for i in range(k):
        r = {"true": str(i), **{f"p{j}": int(cm[i, j]) for j in range(k)}, "total": int(cm[i].sum())}
        if cm[i].sum():
            r["recall"] = float(cm[i, i] / cm[i].sum())
        rows.append(r)
    footer = [{"true": "predicted", **{f"p{j}": int(cm[:, j].sum()) for j in range(k)},
               "total": int(cm.sum())}]
    view = TableView(title=f"{graph.name}: {acc:.2%} test accuracy ({result['correct']:,} of "
                           f"{result['num_test']:,}), loss {loss:.4f}",
                     columns=cols, rows=rows, footer=footer,
                     notes=[f"checkpoint {ckpt_path} (after epoch {ck.epoch}); data {ds.describe()}",
                            f"inference: {result['images_per_second']:,.0f} images/s ({seconds:.2f} s, batch "
                            f"{batch}, {n_threads} thread(s)); 'cnncalc bench' shows where the time goes"]
                     + list(ds.messages))
    render(view, fmt)
