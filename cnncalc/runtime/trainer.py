"""The training loop behind ``cnncalc train``: sample a batch, forward, loss, backprop, update.

:class:`Trainer` owns one run: the network (the graph executor), the data, the optimizer (SGD or AdamW),
the learning-rate schedule and the run directory.  The command line only
renders what the trainer reports through its callbacks.

Reproducibility
---------------
Everything random is a pure function of ``--seed`` and the position in the run:

* initial weights: a Generator seeded with ``seed`` (:mod:`cnncalc.runtime.init`);
* the sample order of epoch ``e``: ``BatchIterator(...).epoch(e)`` (seeded ``(seed, e)``);
* dropout masks of step ``(e, b)``: every training step passes ``rng=step_seed(seed, e, b)``
  to the executor, which draws layer ``i``'s mask from ``default_rng([rng, i])``.

So a checkpoint needs no generator state: params, batch-norm state, momentum buffers,
the schedule state and the position ``(epoch, batch)`` are enough for a resumed run to
end bit-identical to an uninterrupted one — also when it was stopped in mid-epoch.

Run directory
-------------
``latest.npz`` (after every epoch, and on Ctrl-C at the current batch), ``best.npz``
(the epoch with the best test accuracy), ``metrics.jsonl`` (one line per completed
epoch, rewritten atomically from the history kept in the checkpoint) and
``summary.json``.  Every file is written atomically (:mod:`cnncalc.fsutil`).

The test split is the only held-out data, so it also serves as the validation set of
``--lr-schedule plateau`` and of the choice of ``best.npz``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cnncalc.errors import CnnCalcError
from cnncalc.fsutil import atomic_write_text
from cnncalc.graph import Graph
from cnncalc.runtime import checkpoint as C
from cnncalc.runtime.data import BatchIterator, Dataset, eval_batches
from cnncalc.runtime.executor import Net
from cnncalc.runtime.init import init_weight, weight_std
from cnncalc.runtime.optim import make_optimizer
from cnncalc.runtime.schedule import make_schedule

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"

#: exit status of a diverged run (NaN/inf loss): the input was valid, the run failed.
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


@dataclass
class TrainOptions:
    """Every option that changes the numbers a run produces (stored in checkpoints)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: str = "step"
    init: str = "he"
    seed: int = 0
    conv_algo: str = "auto"
    normalize: str = "scale"
    data: str | None = None
    input: list[int] | None = None
    rounding: str | None = None     # --rounding: the spec-wide rule the run was built with
    optimizer: str = "sgd"          # sgd | adamw (a checkpoint from before --optimizer: sgd)

    def schedule(self):
        # step: ÷10 at 2/3 of the run (the classic recipe); plateau: ÷10 after 2 stalled epochs
        return make_schedule(self.lr_schedule, self.lr, epochs=self.epochs,
                             step_size=max(1, (2 * self.epochs) // 3), patience=2)


def step_seed(seed: int, epoch: int, batch: int) -> int:
    """The dropout seed of one training step: a pure function of (seed, epoch, batch)."""
    ss = np.random.SeedSequence([int(seed), int(epoch), int(batch)])
    return int(ss.generate_state(1, np.uint64)[0])


# ----------------------------------------------------------------------------- the network
class TrainNet(Net):
    """The executor, plus what training needs to observe without changing it.

    * ``last_outputs``: the outputs of the latest forward (train accuracy for free);
    * ``measure_next``: when set, the next backward first records ``measured_bytes`` —
      the bytes of every distinct array the forward pass kept for backward (the layer
      caches plus the input), i.e. the activation memory held at the training peak.
    """

    measure_next = False
    measured_bytes: int | None = None
    speed_cache_bytes: int | None = None

    def forward(self, x, **kw):
        self._input_kept = x
        out = super().forward(x, **kw)
        self.last_outputs = out
        return out

    def backward(self, douts, **kw):
        if self.measure_next:
            self._measure()
        return super().backward(douts, **kw)

    def loss(self, x, labels, **kw):
        if self.measure_next and self.sub_batched(len(labels)):
            # the step runs as sub-batches: measure what a whole-batch forward keeps (the
            # analyzer's claim is per batch), then discard it; the step's numbers are unchanged
            self.forward(x, train=kw.get("train", True), rng=kw.get("rng"))
            self._measure()
        out = super().loss(x, labels, **kw)
        if self.sub_batched(len(labels)):
            self.last_outputs = dict(self._last_outputs)
        return out

    def _measure(self):
        # the caches also refer to the weights: those are parameters (counted there), not
        # activations; im2col's kept columns are a speed cache, measured on their own
        speed = self.speed_cache_arrays()
        self.measured_bytes = held_bytes([self.cache_arrays(), self._input_kept, self.last_outputs],
                                         exclude=[self.params, getattr(self, "state", None), speed])
        self.speed_cache_bytes = held_bytes(speed)
        self.measure_next = False


try:  # NumPy >= 2
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:  # pragma: no cover - NumPy 1.x
    _byte_bounds = np.byte_bounds


def held_bytes(obj, exclude=None) -> int:
    """Bytes of memory spanned by the arrays reachable from ``obj`` (views counted once), not
    counting the memory of the arrays reachable from ``exclude``."""
    if exclude is not None:
        return held_bytes([obj, exclude]) - held_bytes(exclude)
    spans: list[tuple[int, int]] = []
    seen: set[int] = set()

    def walk(o):
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            if o.size:
                lo, hi = _byte_bounds(o)
                spans.append((lo, hi))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(obj)
    total, end = 0, -1
    for lo, hi in sorted(spans):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


_INIT_KIND = {"conv": "conv", "dwconv": "conv", "deconv": "conv_transpose", "local": "local", "fc": "fc"}


def initialize(net: Net, scheme: str, seed: int) -> None:
    """Re-draw every weight with ``scheme`` (he|xavier|lecun); biases 0; the norms' gamma 1, beta 0
    (batch, layer, group and instance norm, as PyTorch starts them); a tensor whose layer names its
    start (``const_init``: a constant's ``init:``, a class token, a position embedding, a bias
    table start at that value)."""
    rng = np.random.default_rng(seed)
    for node in net.graph.layers:
        layer = node.layer
        start = getattr(layer, "const_init", None)
        for name, (shape, role) in layer.owned_param_shapes().items():
            a = net.params[node.name][name]
            if start is not None and start(name) is not None:
                a[...] = start(name)
            elif layer.kind in ("batchnorm", "layernorm", "groupnorm", "instancenorm"):
                a[...] = 1.0 if name == "gamma" else 0.0
            elif role == "bias":
                a[...] = 0.0
            else:
                kind = _INIT_KIND.get(layer.kind, "fc")
                try:
                    w = init_weight(rng, kind, tuple(shape), scheme, groups=getattr(layer, "groups", 1) or 1,
                                    stride=getattr(layer, "stride", 1) or 1)
                except (ValueError, TypeError):  # layouts init.py does not know (connection tables, 1-D)
                    from cnncalc.runtime.executor import weight_fan_in
                    fan = float(weight_fan_in(layer, tuple(shape)))
                    w = rng.standard_normal(shape) * weight_std(scheme, fan, fan)
                a[...] = w
        for name, a in net.state[node.name].items():
            a[...] = 1.0 if "var" in name else 0.0


def flat(tree: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{node: {name: a}} → {"node/name": a} (the same arrays, not copies)."""
    return {f"{n}/{k}": a for n, d in tree.items() for k, a in d.items()}


def load_flat(tree: dict[str, dict[str, np.ndarray]], values: dict[str, np.ndarray]) -> None:
    """Copy {"node/name": value} into the arrays of ``tree`` (in place: identities kept)."""
    for key, v in values.items():
        node, name = key.rsplit("/", 1)
        tree[node][name][...] = v


def outputs_of(graph: Graph) -> tuple[str, int]:
    """The single output node and its width (the number of classes)."""
    outs = graph.outputs
    if len(outs) != 1:
        raise CnnCalcError(f"train needs a network with one output; this one has {len(outs)} "
                           f"({', '.join(outs)})")
    shape = graph[outs[0]].shape
    return outs[0], int(np.prod(shape))


def logits(net: Net, outs: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Pre-softmax scores of output ``name`` of the latest forward."""
    return net.logits(name)


def cross_entropy(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample softmax cross-entropy of logits ``z`` (float64)."""
    z = z.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return lse - z[np.arange(len(y)), y]


def evaluate_net(net: Net, images, labels, batch_size: int = 256):
    """(mean loss, accuracy, predictions) in eval mode (dropout off, BN running stats)."""
    name, _ = outputs_of(net.graph)
    total, preds = 0.0, []
    for x, y in eval_batches(images, labels, batch_size):
        outs = net.forward(x, train=False)
        z = logits(net, outs, name)
        total += float(cross_entropy(z, y).sum())
        preds.append(z.argmax(axis=1))
    p = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    n = max(1, len(labels))
    return total / n, float((p == labels).sum()) / n, p


# ----------------------------------------------------------------------------- the loop
@dataclass
class Progress:
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    accuracy: float
    images_per_second: float
    seconds: float


@dataclass
class Outcome:
    status: str                      # completed | interrupted | diverged
    message: str = ""
    history: list[dict] = field(default_factory=list)


class Trainer:
    """One training run; see the module docstring."""

    def __init__(self, graph: Graph, data: Dataset, opts: TrainOptions, run_dir: Path, *,
                 spec_text: str, spec_file: str | None, resume: C.Checkpoint | None = None):
        self.graph, self.data, self.opts, self.run_dir = graph, data, opts, Path(run_dir)
        self.spec_text, self.spec_file = spec_text, spec_file
        self.out_name, self.num_classes = outputs_of(graph)
        self.net = TrainNet(graph, dtype="float32", conv_algo=opts.conv_algo, seed=opts.seed)
        initialize(self.net, opts.init, opts.seed)
        self.params = flat(self.net.params)
        self.opt = make_optimizer(opts.optimizer, opts.lr, momentum=opts.momentum, nesterov=opts.nesterov,
                                  weight_decay=opts.weight_decay)
        self.sched = opts.schedule()
        self.batches = BatchIterator(data.train_images, data.train_labels, opts.batch_size, opts.seed)
        self.history: list[dict] = []
        self.best_accuracy, self.best_epoch = -1.0, None
        self.epoch, self.next_batch = 0, 0
        self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.stop_requested = False
        self.measured_bytes: int | None = None
        self.speed_cache_bytes: int | None = None
        if resume is not None:
            self._restore(resume)

    # -- checkpoints --------------------------------------------------------------------
    def _restore(self, ck: C.Checkpoint) -> None:
        load_flat(self.net.params, ck.params)
        load_flat(self.net.state, ck.state)
        self.opt.load_state_dict(ck.optimizer, self.params)
        self.sched.load_state_dict(ck.schedule)
        m = ck.metadata
        self.history = list(m.get("history", []))
        self.best_accuracy = m.get("best_test_accuracy", -1.0)
        self.best_epoch = m.get("best_epoch")
        self.epoch, self.next_batch = ck.epoch, int(m.get("next_batch", 0))
        self.partial = dict(m.get("partial") or self.partial)
        self.measured_bytes = m.get("measured_activation_bytes")
        self.speed_cache_bytes = m.get("speed_cache_bytes")

    def checkpoint(self) -> C.Checkpoint:
        meta = {
            "options": asdict(self.opts), "spec_text": self.spec_text, "spec_file": self.spec_file,
            "data": self.data.metadata(), "history": self.history,
            "best_test_accuracy": self.best_accuracy, "best_epoch": self.best_epoch,
            "next_batch": self.next_batch, "partial": self.partial,
            "measured_activation_bytes": self.measured_bytes,
            "speed_cache_bytes": self.speed_cache_bytes,
        }
        return C.Checkpoint(self.graph.name, C.spec_hash(self.spec_text), self.epoch,
                            {k: a.copy() for k, a in self.params.items()},
                            state={k: a.copy() for k, a in flat(self.net.state).items()},
                            optimizer=self.opt.state_dict(), schedule=self.sched.state_dict(),
                            metadata=meta)

    def _write_metrics(self) -> None:
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.history)
        atomic_write_text(self.run_dir / METRICS, text)

    # -- the loop -----------------------------------------------------------------------
    def run(self, on_batch: Callable[[Progress], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None) -> Outcome:
        # a diverging run overflows on its way to NaN: report that once, clearly, not as warnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._run(on_batch, on_epoch)

    def _run(self, on_batch, on_epoch) -> Outcome:
        o, net = self.opts, self.net
        nb = len(self.batches)
        while self.epoch < o.epochs:
            e = self.epoch
            lr = self.sched.lr(e)
            self.opt.lr = lr
            p = self.partial
            t0 = time.perf_counter() - p["seconds"]
            for b, (x, y) in enumerate(self.batches.epoch(e, self.next_batch), start=self.next_batch):
                net.measure_next = self.measured_bytes is None
                loss, _ = net.loss(x, y, rng=step_seed(o.seed, e, b), input_grad=False)
                if net.measured_bytes is not None and self.measured_bytes is None:
                    self.measured_bytes = net.measured_bytes
                    self.speed_cache_bytes = net.speed_cache_bytes
                if not math.isfinite(loss):
                    return self._diverged(loss, e, b, lr)
                grads = flat(net.grads)
                for k, a in self.params.items():  # a parameter no path from the loss reaches
                    grads.setdefault(k, np.zeros_like(a))
                self.opt.step(self.params, grads)
                pred = logits(net, net.last_outputs, self.out_name).argmax(axis=1)
                p["loss_sum"] += float(loss) * len(y)
                p["correct"] += int((pred == y).sum())
                p["seen"] += len(y)
                self.next_batch = b + 1
                p["seconds"] = time.perf_counter() - t0
                if on_batch:
                    on_batch(Progress(e, o.epochs, b + 1, nb, p["loss_sum"] / p["seen"],
                                      p["correct"] / p["seen"], p["seen"] / max(p["seconds"], 1e-9),
                                      p["seconds"]))
                if self.stop_requested and self.next_batch < nb:
                    return self._interrupted()
            test_loss, test_acc, _ = evaluate_net(net, self.data.test_images, self.data.test_labels)
            if not math.isfinite(test_loss):
                return self._diverged(test_loss, e, nb - 1, lr, where="test loss")
            rec = {"epoch": e + 1, "lr": lr,
                   "train_loss": p["loss_sum"] / max(1, p["seen"]),
                   "train_accuracy": p["correct"] / max(1, p["seen"]),
                   "test_loss": test_loss, "test_accuracy": test_acc,
                   "seconds": round(p["seconds"], 4),
                   "images_per_second": round(p["seen"] / max(p["seconds"], 1e-9), 1)}
            self.sched.end_epoch(e, test_acc)
            is_best = test_acc > self.best_accuracy
            if is_best:
                self.best_accuracy, self.best_epoch = test_acc, e + 1
            rec["best"] = is_best
            self.history.append(rec)
            self.epoch, self.next_batch = e + 1, 0
            self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            C.save_epoch(self.run_dir, self.checkpoint(), is_best)
            self._write_metrics()
            if on_epoch:
                on_epoch(rec)
            if self.stop_requested and self.epoch < o.epochs:
                return self._interrupted()
        return Outcome("completed", history=self.history)

    def _interrupted(self) -> Outcome:
        C.save_epoch(self.run_dir, self.checkpoint(), False)
        self._write_metrics()
        at = (f"epoch {self.epoch + 1}, batch {self.next_batch}" if self.next_batch
              else f"the end of epoch {self.epoch}")
        return Outcome("interrupted", f"interrupted at {at}; saved {self.run_dir / C.LATEST}. "
                                      f"Continue with: cnncalc train --resume {self.run_dir}",
                       self.history)

    def _diverged(self, loss, e, b, lr, where="loss") -> Outcome:
        latest = self.run_dir / C.LATEST
        kept = (f"the last good checkpoint is {latest} (after epoch {self.epoch})" if latest.exists()
                else "no checkpoint was written (it diverged in the first epoch)")
        msg = (f"the {where} became {loss} at epoch {e + 1}, batch {b + 1} (learning rate {lr:g}): "
               f"training diverged and was stopped; {kept}. Lower --lr (e.g. --lr {lr / 10:g}) "
               "or add --weight-decay")
        return Outcome("diverged", msg, self.history)
