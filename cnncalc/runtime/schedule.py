"""Learning-rate schedules, per epoch (epochs are 0-based).

Use::

    sched = make_schedule("plateau", lr=0.01, patience=5)
    for epoch in range(start, epochs):
        opt.lr = sched.lr(epoch)          # rate for this epoch's updates
        ... train, evaluate ...
        sched.end_epoch(epoch, val_accuracy)

* ``constant`` — ``lr`` every epoch.
* ``step``     — ``lr · gamma^⌊epoch / step_size⌋``; default gamma 0.1 (÷10 every ``step_size`` epochs).
* ``cosine``   — ``min_lr + (lr - min_lr) · (1 + cos(π · epoch / epochs)) / 2``: starts at ``lr``
  and reaches ``min_lr`` (default 0) at ``epoch == epochs`` (so the last trained epoch,
  ``epochs - 1``, uses a small positive rate — PyTorch's ``CosineAnnealingLR(T_max=epochs)``).
* ``plateau``  — multiply by ``factor`` (default 0.1, i.e. ÷10) once the validation accuracy
  has not improved for ``patience`` consecutive epochs, as AlexNet and ResNet were trained.
  "Improved" means ``metric > best + threshold`` (absolute; default threshold 0).  After a
  reduction the count starts again, so a further ÷10 needs another ``patience`` epochs
  without improvement.  NaN never counts as an improvement.  This is PyTorch's
  ``ReduceLROnPlateau(mode="max", threshold_mode="abs", patience=patience - 1)`` —
  PyTorch reduces only when the count *exceeds* its ``patience``.

``state_dict()`` returns a flat dict of numbers (stored as scalars in checkpoints);
``load_state_dict()`` restores it.  Only ``plateau`` has state beyond its settings.
"""
from __future__ import annotations

import math

__all__ = ["Schedule", "Constant", "StepLR", "Cosine", "Plateau", "make_schedule", "SCHEDULES"]

SCHEDULES = ("constant", "step", "cosine", "plateau")


class Schedule:
    name = "schedule"

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.base_lr = float(lr)

    def lr(self, epoch: int) -> float:
        """Learning rate for the updates of ``epoch``."""
        raise NotImplementedError

    def end_epoch(self, epoch: int, metric: float | None = None) -> None:
        """Report the end of ``epoch`` (and its validation accuracy, for ``plateau``)."""

    def hyperparams(self) -> dict:
        return {"schedule": self.name, "lr": self.base_lr}

    def state_dict(self) -> dict[str, float | int]:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{self.name} schedule has no state, got {sorted(state)}")


class Constant(Schedule):
    name = "constant"

    def lr(self, epoch: int) -> float:
        return self.base_lr


class StepLR(Schedule):
    name = "step"

    def __init__(self, lr: float, step_size: int = 30, gamma: float = 0.1):
        super().__init__(lr)
        if step_size < 1:
            raise ValueError(f"step size must be >= 1 epoch, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def hyperparams(self) -> dict:
        return {**super().hyperparams(), "step_size": self.step_size, "gamma": self.gamma}


class Cosine(Schedule):
    name = "cosine"

    def __init__(self, lr: float, epochs: int, min_lr: float = 0.0):
        super().__init__(lr)
        if epochs < 1:
            raise ValueError(f"cosine schedule needs the total number of epochs (>= 1), got {epochs}")
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def lr(self, epoch: int) -> float:
        t = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t)) / 2

    def hyperparams(self) -> dict:
        return {**super().hyperparams(), "epochs": self.epochs, "min_lr": self.min_lr}


class Plateau(Schedule):
    name = "plateau"

    def __init__(self, lr: float, patience: int = 5, factor: float = 0.1, threshold: float = 0.0,
                 min_lr: float = 0.0):
        super().__init__(lr)
        if patience < 1:
            raise ValueError(f"plateau patience must be >= 1 epoch, got {patience}")
        if not 0 < factor < 1:
            raise ValueError(f"plateau factor must be in (0, 1), got {factor}")
        self.patience, self.factor = int(patience), float(factor)
        self.threshold, self.min_lr = float(threshold), float(min_lr)
        self.current_lr = self.base_lr
        self.best = -math.inf
        self.bad_epochs = 0
        self.reductions = 0

    def lr(self, epoch: int) -> float:
        return self.current_lr

    def end_epoch(self, epoch: int, metric: float | None = None) -> None:
        if metric is None:
            raise ValueError("the plateau schedule needs the epoch's validation accuracy")
        metric = float(metric)
        if metric > self.best + self.threshold:        # False for NaN
            self.best = metric
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            new = max(self.current_lr * self.factor, self.min_lr)
            if new < self.current_lr:
                self.reductions += 1
            self.current_lr = new
            self.bad_epochs = 0

    def hyperparams(self) -> dict:
        return {**super().hyperparams(), "patience": self.patience, "factor": self.factor,
                "threshold": self.threshold, "min_lr": self.min_lr}

    def state_dict(self) -> dict[str, float | int]:
        return {"current_lr": self.current_lr, "best": self.best, "bad_epochs": self.bad_epochs,
                "reductions": self.reductions}

    def load_state_dict(self, state: dict) -> None:
        expected = {"current_lr", "best", "bad_epochs", "reductions"}
        if set(state) != expected:
            raise ValueError(f"plateau schedule state needs {sorted(expected)}, got {sorted(state)}")
        self.current_lr = float(state["current_lr"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.reductions = int(state["reductions"])


def make_schedule(name: str, lr: float, *, epochs: int | None = None, step_size: int = 30,
                  gamma: float = 0.1, patience: int = 5, factor: float = 0.1,
                  threshold: float = 0.0, min_lr: float = 0.0) -> Schedule:
    """Build a schedule by its CLI name (``constant``, ``step``, ``cosine``, ``plateau``)."""
    if name == "constant":
        return Constant(lr)
    if name == "step":
        return StepLR(lr, step_size, gamma)
    if name == "cosine":
        if epochs is None:
            raise ValueError("the cosine schedule needs the total number of epochs")
        return Cosine(lr, epochs, min_lr)
    if name == "plateau":
        return Plateau(lr, patience, factor, threshold, min_lr)
    raise ValueError(f"unknown learning-rate schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
