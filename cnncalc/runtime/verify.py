"""``verify``: run the network and check every number the analyzer claims.

* **shape** — each layer's output shape in the runtime against ``Report[layer].shape``;
* **params / state** — the elements the executor allocated (from ``param_shapes()`` /
  ``state_shapes()``) against the report's per-layer and total counts;
* **activation bytes** — the bytes of each layer's output buffer actually held after a
  float32 forward pass of the batch (0 when the output is a view of its input) against
  ``activation_bytes``, and their sums against ``forward_bytes`` and (with the input)
  ``backward_saved_bytes``; kernel caches beyond the outputs (max-pool argmax, BN x̂,
  dropout masks) are reported, not compared: the analyzer does not claim them;
* **receptive field** — a linearised float32 copy (identity activations, average pooling for
  max, positive weights; float64 where float32 could underflow) back-propagates a one-hot gradient from one position of the layer
  (every channel) to the input; the bounding box of the non-zero input gradient must equal
  ``unit_field(...).support`` (the hull of the pixels reached by taps that land on real
  units at every layer; taps in the padding see zeros) and no pixel may lie outside it. Units: the centre and the two
  corners (``rf_units``: centre | corners | all = the four corners) of every layer except
  single-input pointwise ones (their field is their input's; ``rf_every_layer`` checks them
  too), all units of a layer in one backward pass, one per batch item.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnncalc.analysis.report import analyze_graph
from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.graph import INPUT
from cnncalc.runtime.executor import Net, random_input, spec_shape, to_runtime
from cnncalc.shapes import fmt_shape


@dataclass
class Item:
    layer: str
    check: str
    claimed: object
    measured: object
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.claimed == self.measured

    def to_dict(self):
        def j(v):
            return list(v) if isinstance(v, tuple) else v
        return {"layer": self.layer, "check": self.check, "claimed": j(self.claimed),
                "measured": j(self.measured), "ok": self.ok, **({"note": self.note} if self.note else {})}


def _root(a):
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return a


def _owned_bytes(y, xs) -> int:
    """Bytes of the buffer a layer's output keeps alive; 0 for a view of an input."""
    if any(np.shares_memory(y, x) for x in xs):
        return 0
    return _root(y).nbytes


def check_counts_and_memory(graph, *, batch=2, conv_algo="auto", seed=0, report=None):
    report = report or analyze_graph(graph, batch=batch, dtype="float32")
    net = Net(graph, dtype="float32", conv_algo=conv_algo, seed=seed)
    items: list[Item] = []
    for node in graph.layers:
        row = report[node.name]
        items.append(Item(node.name, "params", row.params, net.param_count(node.name)))
        if row.nontrainable or net.state_count(node.name):
            items.append(Item(node.name, "state", row.nontrainable, net.state_count(node.name)))
    x = random_input(graph.input_shape, batch, np.random.default_rng(seed), "float32")
    net.forward(x, train=False, keep=True)
    vals = net.outputs_seen
    fwd = 0
    known = {id(_root(vals[INPUT]))}
    for node in graph.layers:
        row = report[node.name]
        y = vals[node.name]
        items.append(Item(node.name, "shape", tuple(row.shape), spec_shape(y, net.nd[node.name])))
        owned = _owned_bytes(y, [vals[s] for s in node.inputs])
        items.append(Item(node.name, "activation bytes", row.activation_bytes if not row.view else 0, owned,
                          "a view of its input" if row.view else ""))
        fwd += owned
        known.add(id(_root(y)))
    for d in net.params.values():
        known.update(id(_root(a)) for a in d.values())
    extra: dict[int, int] = {}
    for a in net.cache_arrays():
        r = _root(a)
        if id(r) not in known:
            extra[id(r)] = r.nbytes
    t, m = report.totals, report.memory
    items += [
        Item("(total)", "params", t["trainable"], net.param_count()),
        Item("(total)", "state", t["nontrainable"], net.state_count()),
        Item("(total)", "forward bytes", m["forward_bytes"], fwd),
        Item("(total)", "backward saved bytes", m["backward_saved_bytes"], fwd + vals[INPUT].nbytes),
    ]
    info = {"kernel_cache_bytes": sum(extra.values()), "batch": batch, "dtype": "float32"}
    return items, info


def _support_box(g):
    """Per axis (lo, hi) of the non-zero entries of a (C, H, W) / (C, 1, L) gradient, and the mask."""
    mask = np.any(g != 0, axis=0)
    box = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        nz = np.nonzero(np.any(mask, axis=other) if other else mask)[0]
        box.append((int(nz[0]), int(nz[-1])) if len(nz) else None)
    return tuple(box), mask


RF_UNITS = ("centre", "corners", "all")


def _units(ns, which):
    """The units of a layer whose field is checked: centre; + the two corners; or all corners too."""
    picks = {tuple(n // 2 for n in ns)}
    if which in ("corners", "all"):
        picks |= {tuple(0 for _ in ns), tuple(n - 1 for n in ns)}
    if which == "all" and len(ns) == 2:
        picks |= {(0, ns[1] - 1), (ns[0] - 1, 0)}
    return sorted(picks)


def field_layers(graph, every=False):
    """The layers whose field is checked: all but single-input pointwise layers (activations,
    BN, dropout, channel shuffle/split, ...), whose field is their input's and is checked there.
    Merges, windowed and global layers, and the outputs, are always checked."""
    out = []
    for node in graph.layers:
        pointwise = node.layer.rf_windows() is None and len(node.inputs) == 1 and node.kind != "flatten"
        if every or not pointwise or node.name in graph.outputs:
            out.append(node)
    return out


def _unit_grads(net, vals, node, picks):
    """Input gradients of one-hot seeds at ``picks`` of ``node``, one unit per batch item."""
    y = vals[node.name]
    if y.ndim == 2 and node.kind == "flatten" and vals[node.inputs[0]].ndim >= 4:
        d4 = np.zeros_like(vals[node.inputs[0]])  # flatten is pointwise: C-major position
        for b, unit in enumerate(picks):
            if d4.ndim == 5:
                d4[(b, slice(None), *unit)] = 1.0
            else:
                d4[b, :, unit[0] if len(unit) == 2 else 0, unit[-1]] = 1.0
        d = d4.reshape(y.shape)
    else:
        d = np.zeros_like(y)
        for b, unit in enumerate(picks):
            if y.ndim == 2:
                d[b, :] = 1.0
            elif net.nd[node.name] == 1:
                d[b, :, 0, unit[-1]] = 1.0
            else:  # 2-D and 3-D: every spatial index of the unit
                d[(b, slice(None), *unit)] = 1.0
    return net.backward({node.name: d}, keep_cache=True, params=False)


def _may_underflow(g) -> bool:
    """True when a float32 gradient comes within 2^40 of the smallest normal float32: a path
    product that small could have flushed to zero, so the support is recomputed in float64."""
    if g.dtype != np.float32:
        return False
    nz = g[g != 0]
    return bool(nz.size) and float(np.abs(nz).min()) < float(np.finfo(np.float32).tiny) * 2.0 ** 40


def check_fields(graph, *, seed=0, conv_algo="im2col", progress=None, units="corners", every_layer=False):
    """Receptive-field checks through the linearised copy, in float32.

    One backward pass per layer: the units are seeded on separate batch items (the linear copy
    never mixes samples: BN runs on its running statistics), only parameter-free data gradients
    are formed, and the pass stops at the layer's ancestors (the rest get no gradient).

    float32 is enough for the claim checked — *which* input pixels get a non-zero gradient:
    weights and inputs are positive, so every path adds a positive term and nothing cancels; a
    sum of positive float32 terms is zero only if every term underflowed. A layer whose
    gradient comes near the underflow range (:func:`_may_underflow`) is redone in float64.
    """
    if units not in RF_UNITS:
        raise ValueError(f"units must be one of {RF_UNITS}, got {units!r}")
    if conv_algo in ("fft", "auto"):
        conv_algo = "im2col"  # exact zeros: FFT leaves 1e-17 noise everywhere
    rep = receptive_fields(graph)
    nodes = field_layers(graph, every_layer)
    per_layer = {n.name: _units([a.n for a in rep[n.name].axes], units) for n in nodes}
    k = max((len(u) for u in per_layer.values()), default=1)
    x1 = random_input(graph.input_shape, 1, np.random.default_rng(seed)) ** 2 + 1.0  # positive
    passes = {}

    def field_pass(dtype):
        """(net, every node's output) of the linearised copy in ``dtype``, built once."""
        if dtype not in passes:
            net = Net(graph, dtype=dtype, conv_algo=conv_algo, seed=seed, linear=True)
            net.forward(np.repeat(x1, k, axis=0).astype(dtype), keep=True)
            passes[dtype] = (net, dict(net.outputs_seen))
        return passes[dtype]

    net, vals = field_pass("float32")
    in_nd = net.nd[INPUT]
    items: list[Item] = []
    for node in nodes:
        gs = _unit_grads(net, vals, node, per_layer[node.name])
        if gs is not None and _may_underflow(gs):  # float32 too narrow here: redo in float64
            gs = _unit_grads(*field_pass("float64"), node, per_layer[node.name])
        picks = per_layer[node.name]
        if gs is None:
            continue
        for b, unit in enumerate(picks):
            g = gs[b]
            if in_nd == 1:
                g = g[:, None, :] if g.ndim == 2 else g
            box, mask = _support_box(g)
            if in_nd == 1:
                box = box[1:]
            elif in_nd == 0:
                box = ()
            # the pixels the unit depends on: taps landing in any layer's padding see zeros, so
            # they are dropped (a dilated kernel larger than its input: README, Conventions)
            claimed = unit_field(rep, node.name, unit).support
            claimed = tuple(tuple(c) if c is not None else None for c in claimed)
            uname = ",".join(map(str, unit))
            items.append(Item(node.name, f"field of unit ({uname})", claimed, box,
                              f"support fills {_box_fill(mask, box, in_nd):.0%} of its box"))
        if progress:
            progress(node.name)
    return items


def _box_fill(mask, box, nd):
    if not box or any(b is None for b in box):
        return 0.0
    if nd == 1:
        m = mask[0, box[0][0]:box[0][1] + 1]
    else:
        m = mask[tuple(slice(lo, hi + 1) for lo, hi in box)]
    return float(m.mean())


def verify(graph, *, batch=2, conv_algo="auto", seed=0, fields=True, progress=None, rf_units="corners",
           rf_every_layer=False, log=None):
    """All checks; returns (items, info). ``log(line)``, when given, gets one line per check
    group as it completes (the CLI prints them on stderr when it is not a terminal)."""
    import time

    graph.infer()
    t = time.perf_counter()
    items, info = check_counts_and_memory(graph, batch=batch, conv_algo=conv_algo, seed=seed)
    if log:
        log(f"verify: params, state, shapes and memory: {len(items)} checks, "
            f"{sum(not i.ok for i in items)} differences ({time.perf_counter() - t:.1f} s)")
    if fields:
        t = time.perf_counter()
        got = check_fields(graph, seed=seed, conv_algo=conv_algo, progress=progress, units=rf_units,
                           every_layer=rf_every_layer)
        items += got
        if log:
            log(f"verify: receptive fields: {len(got)} units, {sum(not i.ok for i in got)} differences "
                f"({time.perf_counter() - t:.1f} s)")
    return items, info


def fmt_value(v) -> str:
    if isinstance(v, tuple) and v and all(isinstance(a, tuple) or a is None for a in v):
        return " x ".join("∅" if a is None else f"[{a[0]}, {a[1]}]" for a in v)
    if isinstance(v, tuple):
        return fmt_shape(v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
