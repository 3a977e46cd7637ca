"""The options that describe a training setup (optimizer, precision, checkpointing, frozen
layers), shared by ``summarize`` and ``fit``, and the memory section they print: every line of
it comes from one liveness walk (cnncalc.analysis.memory.training_step)."""
from __future__ import annotations

import re

import click

from cnncalc.analysis.memory import OPTIMIZERS, PRECISIONS, training_step
from cnncalc.errors import CnnCalcError
from cnncalc.shapes import fmt_int

def usage_error(message: str, hint: str | None = None) -> CnnCalcError:
    """Bad options (exit 2): the message, and what to write instead."""
    return CnnCalcError(message + (f"\n  hint: {hint}" if hint else ""))


TRAINING_KEYS = ("optimizer", "precision", "checkpoint_every", "checkpoint_segments", "freeze", "trainable")


def training_options(f):
    """--optimizer, --precision, --checkpoint-every/--checkpoint-segments, --freeze/--trainable."""
    opts = [
        click.option("--trainable", multiple=True, metavar="PREFIX",
                     help="Fine-tuning: train only layers named PREFIX or inside it (repeatable); the others are frozen."),
        click.option("--freeze", multiple=True, metavar="PREFIX",
                     help="Fine-tuning: freeze the layers named PREFIX or inside it (repeatable; `name*` for any "
                          "continuation): no gradients, no optimizer state; backward stops at the first trained layer."),
        click.option("--checkpoint-segments", type=click.IntRange(min=2), default=None, metavar="K",
                     help="Activation checkpointing in K segments (torch.utils.checkpoint_sequential)."),
        click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Activation checkpointing: a segment every N layers (the last one is not checkpointed)."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                     help="fp32 (default), or torch autocast: half activations, fp32 master weights, "
                          "gradients and optimizer state."),
        click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), default=None,
                     help="Optimizer state per parameter: sgd 0, momentum 1, adam 2, adamw 2, rmsprop 1, "
                          "adagrad 1 (default momentum)."),
    ]
    for o in opts:
        f = o(f)
    return f


def asked(kw: dict) -> bool:
    """Did the user describe a training setup (so the walk is worth its time)?"""
    return any(kw.get(k) for k in TRAINING_KEYS)


def setup(kw: dict) -> dict:
    """The training_step keyword arguments from the options."""
    if kw.get("checkpoint_every") and kw.get("checkpoint_segments"):
        raise CnnCalcError("--checkpoint-every and --checkpoint-segments are two ways to cut the same "
                           "segments: give one")
    return {"optimizer": kw.get("optimizer") or "momentum", "precision": kw.get("precision") or "fp32",
            "checkpoint_every": kw.get("checkpoint_every"), "checkpoint_segments": kw.get("checkpoint_segments"),
            "freeze": tuple(kw.get("freeze") or ()), "trainable": tuple(kw.get("trainable") or ())}


def walk(graph, report, opts: dict):
    """The training step of ``graph`` as analysed in ``report`` (MACs per layer from it)."""
    macs = {r.name: r.macs for r in report.layers if r.macs}
    layers = {n.name: n.layer for n in graph.layers}
    batch = report.batch

    def dx(node, flows):
        lay = layers[node.name]
        if lay.input_grad_macs is not None:
            return lay.input_grad_macs(flows) * batch
        return macs[node.name]

    step = training_step(graph, batch, dtype_bytes=report.memory["bytes_per_element"], macs=macs,
                         input_grad_macs=dx, **opts)
    if opts["freeze"] or opts["trainable"]:
        if not step.trainable_params:
            raise usage_error("--freeze/--trainable leave no layer with trainable parameters",
                               hint="a prefix matches a layer's name or a module containing it (conv1, "
                                    "layer4, block3/conv1); see `cnncalc summarize SPEC` for the names")
    return step


def mem(nbytes: int) -> str:
    return f"{fmt_int(nbytes)} B = {nbytes / 1e6:,.2f} MB ({nbytes / 2**30:,.3f} GiB)"


def section(step, batch: int) -> tuple[str, list[tuple[str, str]]]:
    """('Training step (…)', [(line, value — what it counts)])."""
    rows = [(label, f"{mem(v)}  — {what}") for label, v, what in step.lines]
    extra = step.recompute_macs
    rows.append(("peak, by kind", " + ".join(f"{k} {fmt_int(v)}" for k, v in step.peak_parts.items())
                 + f" = {fmt_int(step.peak)} B"))
    if step.transient_note():
        rows.append(("peak transients", step.transient_note() + " (PyTorch's CPU kernels, one thread; docs/memory.md)"))
    rows.append(("training MACs per step", f"{fmt_int(step.training_macs)}  — forward + input gradients"
                 " (where a gradient flows) + weight gradients (trained layers)"
                 + (f" + recomputed forward {fmt_int(extra)}" if extra else "")))
    title = (f"Training step ({step.optimizer}, {step.precision}, batch {batch}"
             + (f", {step.checkpointed} checkpointed segments" if step.checkpointed else "")
             + (f", {fmt_int(step.frozen_params)} frozen parameters" if step.frozen_params else "")
             + "; MB = 10^6 B, GiB = 2^30 B)")
    return title, rows


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str, what: str = "--memory") -> int:
    """'24GiB', '16 GB', '8000MB', '1.5GiB' → bytes (GB = 10^9, GiB = 2^30)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise usage_error(f"{what}: cannot read {text[:40]!r} as a size",
                           hint="write a number and a unit: 24GiB, 16GB, 8000MiB (GB = 10^9 B, GiB = 2^30 B)")
    value, unit = m.group(1), (m.group(2) or "").lower()
    n = int(float(value) * _UNITS[unit]) if "." in value else int(value) * _UNITS[unit]
    if n <= 0:
        raise CnnCalcError(f"{what} must be more than 0 bytes, got {text!r}")
    return n
