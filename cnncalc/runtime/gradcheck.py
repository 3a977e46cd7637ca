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
ReLU kinks and max-pool ties are where centred differences are wrong, not the gradient:
continuous random inputs make a tie within the step ``h`` improbable, and a failing tensor is
re-drawn (new inputs) up to ``retries`` times — a wrong gradient fails on every draw.

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

    @property
    def ok(self) -> bool:
        return self.rel_error <= TOL

    def to_dict(self):
        return {"layer": self.layer, "type": self.type, "tensor": self.tensor, "shape": list(self.shape),
                "checked": self.checked, "rel_error": self.rel_error, "grad_norm": self.grad_norm,
                "draws": self.draws, "ok": self.ok}


def rel_error(num, ana) -> float:
    num, ana = np.ravel(num), np.ravel(ana)
    den = max(np.linalg.norm(num), np.linalg.norm(ana), 1e-8)
    return float(np.linalg.norm(num - ana) / den)


def _sample(rng, size, entries):
    if size <= entries:
        return np.arange(size)
    return np.sort(rng.choice(size, entries, replace=False))


def _numeric(f, arr, idx, h):
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
            num = _numeric(f, arr, idx, h)
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
    idx = _sample(rng, x.size, entries)
    num = _numeric(f, x, idx, h)
    ana = dx.reshape(-1)[idx]
    out.append(Check("network", lossname, "input", tuple(x.shape), len(idx), rel_error(num, ana),
                     float(np.linalg.norm(ana))))
    for node in net.graph.layers:
        for p, arr in net.params.get(node.name, {}).items():  # (a shared tensor once, at its owner)
            g = grads.get(node.name, {}).get(p)
            if g is None:
                g = np.zeros_like(arr)
            idx = _sample(rng, arr.size, entries)
            num = _numeric(f, arr, idx, h)
            ana = g.reshape(-1)[idx]
            out.append(Check("network", lossname, f"{node.name}.{p}", tuple(arr.shape), len(idx),
                             rel_error(num, ana), float(np.linalg.norm(ana))))
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


__all__ = ["Check", "gradcheck", "check_layer", "check_network", "rel_error", "TOL", "INPUT"]
