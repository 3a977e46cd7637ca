"""SGD with momentum, Nesterov and L2 weight decay (and :class:`AdamW`), in place on dicts of NumPy arrays.

The update is PyTorch's ``torch.optim.SGD`` (dampening 0), per parameter ``p`` with
gradient ``∇``, learning rate ``lr``, momentum ``μ``, weight decay ``λ``::

    g = ∇ + λ·p                 # coupled L2 decay (only for decayed parameters)
    b = μ·b + g                 # momentum buffer; b = g on the first step
    d = g + μ·b  if nesterov    # PyTorch's Nesterov form
      = b        otherwise
    p = p - lr·d

Weight decay is the *coupled* form (added to the gradient, so it is scaled by ``lr`` and
passes through the momentum buffer), as in PyTorch's ``SGD(weight_decay=...)`` and in
the AlexNet/ResNet papers — not AdamW-style decoupled decay.

By default only parameters with ``ndim >= 2`` (conv, locally-connected and fc weights)
are decayed; 1-D parameters — biases and batch-norm ``gamma``/``beta`` — are not, the
usual practice since shrinking them towards 0 does not regularise the function the
network computes.  (PyTorch decays everything unless told otherwise; pass
``decay=lambda name, p: True`` for that.)

``params`` and ``grads`` are ``{name: ndarray}`` dicts with the same keys and shapes;
parameters are updated in place (the arrays keep their identity), gradients are not
modified.  Momentum buffers are kept in the parameter's dtype.

A contiguous float parameter whose gradient has its dtype is updated by one numba pass
(:func:`_update`): the same operations, each rounded to the parameter's dtype in the same
order as the numpy form it replaces (no fused multiply-add: numba runs without fastmath),
so the same bits, without the ~7 numpy calls and temporaries per tensor (LeNet-5's ten
tensors: ~0.2 ms a step, a few per cent of a batch-64 step).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from cnncalc.runtime._numba import njit

__all__ = ["SGD", "AdamW", "OPTIMIZERS", "make_optimizer", "default_decay"]


@njit
def _update(p, grad, buf, lr, mu, wd, first, nesterov):
    """One SGD step of the flat arrays ``p`` and ``buf`` (``mu == 0``: ``buf`` is unused)
    from ``grad``, element by element in the order of the numpy form in :meth:`SGD.step`:
    ``g = grad + wd*p``; ``buf = g`` (first step) or ``buf = mu*buf + g``; ``d = g +
    mu*buf`` (Nesterov) or ``buf``; ``p = p - lr*d``. ``lr``, ``mu``, ``wd`` are scalars
    of ``p``'s dtype (``wd`` 0 when the parameter is not decayed)."""
    for i in range(p.shape[0]):
        g = grad[i]
        if wd != 0:
            g = g + wd * p[i]
        if mu != 0:
            if first:
                b = g
            else:
                b = buf[i] * mu
                b = b + g
            buf[i] = b
            d = g + mu * b if nesterov else b
        else:
            d = g
        p[i] = p[i] - lr * d


def default_decay(name: str, param: np.ndarray) -> bool:
    """Decay weights (``ndim >= 2``), not biases or batch-norm parameters (1-D)."""
    return param.ndim >= 2



def _same_keys(params, grads) -> None:
    """Every parameter has a gradient and every gradient a parameter (an optimizer's step)."""
    if params.keys() != grads.keys():
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        raise ValueError(f"params and grads differ: no gradient for {missing}, "
                         f"gradient without parameter {extra}")

class SGD:
    """Stochastic gradient descent; see the module docstring for the exact update."""

    def __init__(self, lr: float, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0,
                 decay: Callable[[str, np.ndarray], bool] = default_decay):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        if weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.decay = decay
        self.steps = 0
        self.buffers: dict[str, np.ndarray] = {}

    def hyperparams(self) -> dict:
        """JSON-able description (for checkpoint metadata)."""
        return {"optimizer": "sgd", "lr": self.lr, "momentum": self.momentum,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
             lr: float | None = None) -> None:
        """Apply one update to every parameter in ``params`` (in place)."""
        _same_keys(params, grads)
        lr = self.lr if lr is None else float(lr)
        mu, wd = self.momentum, self.weight_decay
        for name, p in params.items():
            grad = grads[name]
            if grad.shape != p.shape:
                raise ValueError(f"gradient of {name} has shape {grad.shape}, parameter has {p.shape}")
            buf = self.buffers.get(name)
            if (p.dtype == grad.dtype and p.dtype in (np.float32, np.float64) and p.flags.c_contiguous
                    and grad.flags.c_contiguous and p.flags.writeable
                    and (buf is None or (buf.dtype == p.dtype and buf.flags.c_contiguous))):
                self._fused(name, p, grad, lr)
                continue
            g = grad.astype(p.dtype, copy=True)
            if wd and self.decay(name, p):
                g += p.dtype.type(wd) * p
            if mu:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = g.copy()
                else:
                    buf *= p.dtype.type(mu)
                    buf += g
                if self.nesterov:
                    g += p.dtype.type(mu) * buf
                else:
                    g = buf
            p -= p.dtype.type(lr) * g
        self.steps += 1

    def _fused(self, name, p, grad, lr):
        """:meth:`step` of one parameter by :func:`_update` (the same bits)."""
        t = p.dtype.type
        mu = self.momentum
        wd = self.weight_decay if self.weight_decay and self.decay(name, p) else 0.0
        buf = self.buffers.get(name) if mu else None
        first = mu != 0 and buf is None
        if first:
            buf = self.buffers[name] = np.empty_like(p)
        _update(p.reshape(-1), grad.reshape(-1), p.reshape(-1) if buf is None else buf.reshape(-1),
                t(lr), t(mu), t(wd), first, self.nesterov)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{key: ndarray}`` state: ``steps`` and ``momentum_buffer/<name>``."""
        state = {"steps": np.array(self.steps, dtype=np.int64)}
        for name, buf in self.buffers.items():
            state[f"momentum_buffer/{name}"] = buf.copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray],
                        params: Mapping[str, np.ndarray] | None = None) -> None:
        """Restore :meth:`state_dict` output; with ``params``, check names and shapes."""
        buffers = {}
        for key, value in state.items():
            if key == "steps":
                continue
            if not key.startswith("momentum_buffer/"):
                raise ValueError(f"unknown optimizer state entry {key!r}")
            name = key[len("momentum_buffer/"):]
            if params is not None:
                if name not in params:
                    raise ValueError(f"optimizer state has a momentum buffer for {name!r}, "
                                     "which is not a parameter of this network")
                if params[name].shape != value.shape:
                    raise ValueError(f"momentum buffer of {name!r} has shape {value.shape}, "
                                     f"parameter has {params[name].shape}")
                value = value.astype(params[name].dtype)
            buffers[name] = np.array(value, copy=True)
        self.buffers = buffers
        self.steps = int(state["steps"]) if "steps" in state else 0


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), PyTorch's
    ``torch.optim.AdamW`` (``amsgrad=False``), per parameter ``p`` with gradient ``∇`` at step
    ``t`` (1-based), learning rate ``lr``, betas ``β1, β2``, ``eps`` and weight decay ``λ``::

        p = p - lr·λ·p                      # decoupled decay (only for decayed parameters)
        m = β1·m + (1 - β1)·∇
        v = β2·v + (1 - β2)·∇²
        p = p - lr/(1 - β1^t) · m / (√v / √(1 - β2^t) + eps)

    Only weights (``ndim >= 2``) are decayed by default, as with :class:`SGD` (PyTorch decays
    every parameter of a group; timm and DeiT exclude biases and norms, as here).
    The moments are kept in the parameter's dtype; ``steps`` counts the updates (``t``)."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0,
                 decay: Callable[[str, np.ndarray], bool] = default_decay):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.decay = decay
        self.steps = 0
        self.exp_avg: dict[str, np.ndarray] = {}
        self.exp_avg_sq: dict[str, np.ndarray] = {}

    def hyperparams(self) -> dict:
        return {"optimizer": "adamw", "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
             lr: float | None = None) -> None:
        """Apply one update to every parameter in ``params`` (in place)."""
        _same_keys(params, grads)
        lr = self.lr if lr is None else float(lr)
        b1, b2 = self.betas
        t = self.steps + 1
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        for name, p in params.items():
            grad = grads[name]
            if grad.shape != p.shape:
                raise ValueError(f"gradient of {name} has shape {grad.shape}, parameter has {p.shape}")
            f = p.dtype.type
            g = grad.astype(p.dtype, copy=False)
            if self.weight_decay and self.decay(name, p):
                p *= f(1.0 - lr * self.weight_decay)
            m = self.exp_avg.get(name)
            if m is None:
                m = self.exp_avg[name] = np.zeros_like(p)
                self.exp_avg_sq[name] = np.zeros_like(p)
            v = self.exp_avg_sq[name]
            m *= f(b1)
            m += f(1.0 - b1) * g
            v *= f(b2)
            v += f(1.0 - b2) * (g * g)
            denom = np.sqrt(v) / f(math.sqrt(c2)) + f(self.eps)
            p -= f(lr / c1) * (m / denom)
        self.steps += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{key: ndarray}`` state: ``steps``, ``exp_avg/<name>``, ``exp_avg_sq/<name>``."""
        state = {"steps": np.array(self.steps, dtype=np.int64)}
        for name, m in self.exp_avg.items():
            state[f"exp_avg/{name}"] = m.copy()
            state[f"exp_avg_sq/{name}"] = self.exp_avg_sq[name].copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray],
                        params: Mapping[str, np.ndarray] | None = None) -> None:
        """Restore :meth:`state_dict` output; with ``params``, check names and shapes."""
        moments: dict[str, dict[str, np.ndarray]] = {"exp_avg": {}, "exp_avg_sq": {}}
        for key, value in state.items():
            if key == "steps":
                continue
            kind, _, name = key.partition("/")
            if kind not in moments or not name:
                raise ValueError(f"unknown AdamW state entry {key!r} (a checkpoint of another optimizer?)")
            if params is not None:
                if name not in params:
                    raise ValueError(f"optimizer state has {kind} for {name!r}, "
                                     "which is not a parameter of this network")
                if params[name].shape != value.shape:
                    raise ValueError(f"{kind} of {name!r} has shape {value.shape}, "
                                     f"parameter has {params[name].shape}")
                value = value.astype(params[name].dtype)
            moments[kind][name] = np.array(value, copy=True)
        if moments["exp_avg"].keys() != moments["exp_avg_sq"].keys():
            raise ValueError("AdamW state: exp_avg and exp_avg_sq name different parameters")
        self.exp_avg, self.exp_avg_sq = moments["exp_avg"], moments["exp_avg_sq"]
        self.steps = int(state["steps"]) if "steps" in state else 0


OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(name: str, lr: float, *, momentum: float = 0.9, nesterov: bool = False,
                   weight_decay: float = 0.0):
    """``sgd`` (:class:`SGD`) or ``adamw`` (:class:`AdamW`, default betas and eps)."""
    if name == "sgd":
        return SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZERS)}")
