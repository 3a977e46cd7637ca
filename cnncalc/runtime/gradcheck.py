"""Gradient checks: centred differences in float64 against the executor's analytic gradients.

Two passes:

* **per layer** — each layer alone (op + fused activation), on fresh normal inputs of its
  input shapes, with the scalar ``f = Σ R ⊙ y`` for a fixed random R: the gradient of every
  input and every parameter tensor (all entries, or ``entries`` sampled ones).
* **network** — the whole DAG with the softmax-cross-entropy loss (or ``Σ R ⊙ y`` when the
  output is not a class vector): the input gradient and every parameter tensor, sampled.
  This checks the executor itself: gradients summed over fan-out, concat splits, add
  copies, flatten reshapes.

The error of a tensor is ``‖n − a‖ / max(‖n‖, ‖a‖, 1e-8)`` over the checked entries.
ReLU kinks and max-pool ties are where centred differences are wrong, not the gradient. For one
layer, continuous random inputs make a kink within the step ``h`` improbable, and a failing
tensor is re-drawn (new inputs) up to ``retries`` times — a wrong gradient fails on every draw.

For the whole network a kink within the step is the rule, not the exception: cifar_resnet20 at
16x16 has 94,208 ReLU inputs at batch 2 (batch-normalised: density ~0.4 at zero, so the one
nearest zero is expected ~1e-5 away), and a parameter moved by ``h = 1e-5`` moves thousands of them — one crossing makes the centred
difference of every parameter upstream of it wrong by ~1e-3 (seeds 0 and 1 both failed so,
with correct gradients). So in a tensor that fails, each entry's difference is taken again at
``h/2``: where the two agree (to a tenth of :data:`TOL` of the tensor's norm) the function is
smooth over the step and the new value stands; where they differ a kink lay within the step,
and the step keeps halving (at most :data:`KINK_HALVINGS` times) until two agree. Only ``f``
decides this, never the analytic gradient, so a wrong gradient still fails; an entry that
never settles (a kink closer than ``h/2^(KINK_HALVINGS−1)``, 6e-7 at ``h = 1e-5``) is left out
of the error and counted.

A parameter whose layer names its start (``const_init``: a class token, a position embedding
and a bias table start at 0, patch merging's norm at gamma 1, beta 0, a constant at its
``init:``) is moved off that start by ``0.1·N(0, 1)`` before the checks, as the other
parameters are drawn at random: a constant start is a special point, not a generic one. At a
zero class token plus a zero position embedding, the class token's row reaches the next
LayerNorm with zero variance, where ``LN(t·u) = t/√ε − (var u/2)·t³/ε^1.5 + …``: the centred
difference's truncation error (h² times the third derivative, over 6) is then
``(var u/2)·h²/ε`` of the gradient — about 1e-5 relative at ``h = 1e-5``, ``ε = 1e-5``, far
above :data:`TOL` though the analytic gradient is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnncalc.graph import INPUT
from cnncalc.runtime.executor import Net, random_input

TOL = 1e-7
KINK_HALVINGS = 5


@dataclass
class Check:
    layer: str
    type: str
    tensor: str
    shape: tuple
    checked: int
    rel_error: float
    grad_norm: float
    draws: int = 1
    kinks: int = 0     # entries re-taken at a smaller step: a kink lay within h (network check)
    unsettled: int = 0  # of those, entries left out: no two steps agreed

    @property
    def ok(self) -> bool:
        return self.rel_error <= TOL

    def to_dict(self):
        return {"layer": self.layer, "type": self.type, "tensor": self.tensor, "shape": list(self.shape),
                "checked": self.checked, "rel_error": self.rel_error, "grad_norm": self.grad_norm,
                "draws": self.draws, "kinks": self.kinks, "unsettled": self.unsettled, "ok": self.ok}


def rel_error(num, ana) -> float:
    num, ana = np.ravel(num), np.ravel(ana)
    den = max(np.linalg.norm(num), np.linalg.norm(ana), 1e-8)
    return float(np.linalg.norm(num - ana) / den)


def _sample(rng, size, entries):
    if size <= entries:
        return np.arange(size)
    return np.sort(rng.choice(size, entries, replace=False))


def centred_differences(f, arr, idx, h):
    """``(f(arr + h·e_i) − f(arr − h·e_i)) / 2h`` for each flat index ``i`` of ``idx`` (``arr``
    changed in place and restored)."""
    flat = arr.reshape(-1)
    out = np.empty(len(idx))
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        out[j] = (fp - fm) / (2 * h)
    return out


def settle_kinks(f, arr, idx, num, h, scale):
    """Centred differences of ``f`` at ``arr``'s entries ``idx`` free of kinks within the step
    (module docstring): ``num`` taken at step ``h`` is taken again at ``h/2``, ``h/4``, … for
    the entries whose last two values differ by more than ``TOL·scale/10``. Returns (values,
    entries that moved, positions in ``idx`` that never settled)."""
    num = np.array(num, dtype=float)
    pending = np.arange(len(idx))
    step = h
    moved = 0
    for k in range(KINK_HALVINGS):
        step /= 2
        cur = centred_differences(f, arr, idx[pending], step)
        agree = np.abs(cur - num[pending]) <= 0.1 * TOL * scale
        if k == 0:
            moved = int(np.count_nonzero(~agree))
        num[pending] = cur
        pending = pending[~agree]
        if not len(pending):
            break
    return num, moved, pending


def _network_check(f, arr, grad, idx, h, lossname, tensor) -> Check:
    """One tensor of the network check, its kinks settled if it fails."""
    num = centred_differences(f, arr, idx, h)
    ana = grad.reshape(-1)[idx]
    c = Check("network", lossname, tensor, tuple(arr.shape), len(idx), rel_error(num, ana),
              float(np.linalg.norm(ana)))
    if c.ok:
        return c
    scale = max(np.linalg.norm(num), 1e-8)  # f's own numbers only, never the gradient under test
    num, moved, unsettled = settle_kinks(f, arr, idx, num, h, scale)
    keep = np.setdiff1d(np.arange(len(idx)), unsettled)
    err = rel_error(num[keep], ana[keep]) if len(keep) else float("inf")
    return Check("network", lossname, tensor, tuple(arr.shape), len(idx), err, c.grad_norm,
                 kinks=moved, unsettled=len(unsettled))


def check_layer(net: Net, name: str, in_shapes, *, entries=20, h=1e-6, seed=0, retries=3,
                train=True) -> list[Check]:
    """Check one layer in isolation; ``in_shapes`` are its runtime input shapes."""
    node = net.graph[name]
    index = list(net.graph.nodes).index(name)
    results: dict[str, Check] = {}
    for draw in range(retries + 1):
        rng = np.random.default_rng([seed, index, draw])
        xs = [rng.standard_normal(s) for s in in_shapes]
        y, cache = net.run_node(name, xs, train=train, index=index)
        R = rng.standard_normal(y.shape)
        dxs, dps = net.backward_node(name, R, cache)

        def f():
            return float(np.sum(R * net.run_node(name, xs, train=train, index=index)[0]))

        tensors = [(f"input{'' if len(xs) == 1 else i}", xs[i], dxs[i]) for i in range(len(xs))]
        tensors += [(p, net.params[name][p], dps[p]) for p in net.params[name]]
        failed = False
        for tname, arr, ana in tensors:
            if tname in results and results[tname].ok:
                continue
            idx = _sample(rng, arr.size, entries)
            num = centred_differences(f, arr, idx, h)
            a = np.asarray(ana).reshape(-1)[idx]
            c = Check(name, node.kind, tname, tuple(arr.shape), len(idx), rel_error(num, a),
                      float(np.linalg.norm(a)), draw + 1)
            results[tname] = c
            failed |= not c.ok
        if not failed:
            break
    return list(results.values())


def _network_loss(net: Net, x, labels, R):
    """(f, analytic backward) for the whole network."""
    if R is None:
        def f():
            outs = net.forward(x, train=True)
            from cnncalc.runtime.kernels.loss import softmax_cross_entropy
            total = 0.0
            for name in outs:
                total += softmax_cross_entropy(net.logits(name), labels)[0]
            return total

        def grad():
            return net.loss(x, labels, train=True)[1]
    else:
        def f():
            outs = net.forward(x, train=True)
            return float(sum(np.sum(R[n] * outs[n]) for n in outs))

        def grad():
            outs = net.forward(x, train=True)
            return net.backward({n: R[n] for n in outs})
    return f, grad


def check_network(net: Net, x, *, entries=10, h=1e-5, seed=0, loss="auto") -> list[Check]:
    rng = np.random.default_rng([seed, 99])
    outs = net.forward(x, train=True)
    flat = all(v.ndim == 2 or (v.ndim == 4 and v.shape[2:] == (1, 1)) for v in outs.values())
    classes = {int(np.prod(v.shape[1:])) for v in outs.values()}
    use_ce = loss == "ce" or (loss == "auto" and flat and len(classes) == 1)
    labels = rng.integers(0, min(classes), x.shape[0]) if use_ce else None
    R = None if use_ce else {n: rng.standard_normal(v.shape) for n, v in outs.items()}
    f, grad = _network_loss(net, x, labels, R)
    dx = grad()
    grads = {n: {p: g.copy() for p, g in d.items()} for n, d in net.grads.items()}
    out = []
    lossname = "cross-entropy" if use_ce else "projection"
    out.append(_network_check(f, x, dx, _sample(rng, x.size, entries), h, lossname, "input"))
    for node in net.graph.layers:
        for p, arr in net.params.get(node.name, {}).items():  # (a shared tensor once, at its owner)
            g = grads.get(node.name, {}).get(p)
            if g is None:
                g = np.zeros_like(arr)
            out.append(_network_check(f, arr, g, _sample(rng, arr.size, entries), h, lossname,
                                      f"{node.name}.{p}"))
    return out


def _off_constant_starts(net: Net, seed: int) -> None:
    """Move every parameter that starts at its layer's ``const_init`` value off it (see the
    module docstring): in place, ``+ 0.1·N(0, 1)``."""
    rng = np.random.default_rng([seed, 77])
    for node in net.graph.layers:
        start = getattr(node.layer, "const_init", None)
        if start is None:
            continue
        for p, arr in net.params.get(node.name, {}).items():
            if start(p) is not None:
                arr += 0.1 * rng.standard_normal(arr.shape)


def gradcheck(graph, *, batch=2, conv_algo="direct", entries=20, seed=0, network=True,
              progress=None, loss="auto") -> list[Check]:
    """Check every layer of ``graph`` and then the whole network; returns the checks."""
    net = Net(graph, dtype="float64", conv_algo=conv_algo, seed=seed)
    _off_constant_starts(net, seed)
    rng = np.random.default_rng(seed)
    x = random_input(graph.input_shape, batch, rng)
    net.forward(x, train=True, keep=True)
    vals = net.outputs_seen
    results = []
    for node in graph.layers:
        in_shapes = [vals[s].shape for s in node.inputs]
        results += check_layer(net, node.name, in_shapes, entries=entries, seed=seed)
        if progress:
            progress(node.name)
    if network:
        results += check_network(net, x, entries=max(3, entries // 2), seed=seed, loss=loss)
        if progress:
            progress("network")
    return results


__all__ = ["Check", "gradcheck", "check_layer", "check_network", "settle_kinks", "centred_differences",
           "rel_error", "TOL",
           "KINK_HALVINGS", "INPUT"]
