"""Tensor liveness over the graph: the inference peak with buffer reuse, and the peak of
activation gradients during backward.

A tensor lives from the step that produces it to the last step that reads it; views
(flatten, dropout at inference, identity) alias the tensor they read and extend its life.
Graph outputs live to the end.
"""
from __future__ import annotations

from itertools import accumulate

from cnncalc.graph import INPUT, Graph


def tensor_intervals(graph: Graph, sizes: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Root tensor name → (first step, last step, elements). Steps are topological indices."""
    root: dict[str, int] = {}  # name → the step that made the tensor it is (a view: its input's)
    last: list[int] = []  # step → the last step that reads the tensor it made, so far
    # steps are visited in order, so a tensor's last reader so far is the current step
    step = 0
    for name, node in graph.nodes.items():
        layer = node.layer
        inputs = node.inputs
        last.append(step)
        if layer is not None and layer.view:
            root[name] = root[inputs[0]]
        else:
            root[name] = step
        if len(inputs) == 1:
            last[root[inputs[0]]] = step
        else:
            for src in inputs:
                last[root[src]] = step
        step += 1
    end = step - 1
    for out in graph.outputs:
        last[root[out]] = end
    return {name: (r, last[r], sizes[name]) for i, (name, r) in enumerate(root.items()) if r == i}


def live_sizes(intervals: dict[str, tuple[int, int, int]], n_steps: int) -> list[int]:
    """The sum of the live tensors' sizes at each step."""
    delta = [0] * (n_steps + 1)
    for lo, hi, size in intervals.values():
        delta[lo] += size
        delta[hi + 1] -= size
    del delta[n_steps]
    return list(accumulate(delta))


def _highest(live: list[int]) -> tuple[int, int]:
    """The largest value and the first step that has it ((0, 0) when nothing is live)."""
    best = max(live, default=0)
    return (best, live.index(best)) if best > 0 else (0, 0)


def peaks(graph: Graph, sizes: dict[str, int], intervals=None) -> tuple[int, str, int]:
    """The inference peak (the largest sum of live tensors over the steps, and the layer
    where it happens) and the gradient peak. During backward the gradient of a tensor lives
    over the same steps as the tensor (from its last reader's backward to its producer's)
    and the input needs none: the live gradients are the live tensors without the input's
    interval."""
    iv = tensor_intervals(graph, sizes) if intervals is None else intervals
    live = live_sizes(iv, len(graph.nodes))
    best, where = _highest(live)
    lo, hi, size = iv[INPUT]
    grad = live if not size else live[:lo] + [v - size for v in live[lo:hi + 1]] + live[hi + 1:]
    return best, list(graph.nodes)[where], _highest(grad)[0]


# ------------------------------------------------------------------ what backward keeps
# layers whose inputs torch's autocast casts to half: under mixed precision the fp32 graph
# input they read is kept as a half copy, and their weights' half copies are kept too
_AUTOCAST_HALF = frozenset(("conv", "dwconv", "deconv", "local", "fc", "matmul"))


class Saved:
    """What autograd keeps for backward, layer by layer (see cnncalc.analysis.saved).

    ``per_layer[name]``: the bytes that layer adds (a storage already kept by an earlier layer
    counts there); ``keeps[name]``: (storage key, bytes, what) per tensor the layer keeps, the
    storages counted once in ``total``. ``first[key]`` is the earliest layer (in forward order)
    that keeps storage ``key``: backward frees the storage after that layer's backward.
    ``rg[name]``: does the layer's output require a gradient. ``roots[name]``: the storage a
    layer's output lives in (views share their source's), ``sizes[root]`` its bytes."""

    __slots__ = ("per_layer", "keeps", "total", "first", "rg", "roots", "sizes", "weight_copies", "hidden")

    def __init__(self):
        self.per_layer: dict[str, int] = {}
        self.keeps: dict[str, list] = {}
        self.total = 0
        self.first: dict = {}
        self.rg: dict[str, bool] = {}
        self.roots: dict[str, str] = {}
        self.sizes: dict = {}
        self.weight_copies = 0
        self.hidden: dict = {}  # key of a tensor made for backward → its bytes


def saved_tensors(graph: Graph, batch: int, act_bytes: int, *, input_bytes: int | None = None,
                  trainable=None, mixed: bool = False) -> Saved:
    """Walk the layers in forward order and collect what each keeps for backward.

    ``trainable(name)`` says whether a layer's parameters are trained (default: all are);
    ``mixed``: torch autocast (activations in ``act_bytes``, the graph input in
    ``input_bytes``, conv/linear/matmul read half copies of their fp32 inputs and weights)."""
    from cnncalc.analysis.saved import DTYPE_BYTES, layer_saves
    from cnncalc.shapes import numel

    ib = act_bytes if input_bytes is None else input_bytes
    s = Saved()
    roots, sizes, rg, first = s.roots, s.sizes, s.rg, s.first
    roots[INPUT] = INPUT
    sizes[INPUT] = numel(graph.input_shape) * batch * ib
    rg[INPUT] = False
    cache: dict = {}
    for step, node in enumerate(graph.layers):
        layer, name, ins = node.layer, node.name, node.inputs
        has_params = bool(layer.param_shapes())
        w = has_params and (trainable is None or trainable(name))
        r = [rg[i] for i in ins]
        rg[name] = w or any(r)
        out_elems = numel(layer.out_shape) * batch
        if layer.view and layer.kind != "dropout":  # (dropout is a view at inference only)
            roots[name] = roots[ins[0]]
        else:
            roots[name] = name
            sizes[name] = out_elems * act_bytes
        key = (id(layer), tuple(r), w)
        entries = cache.get(key)
        if entries is None:
            entries = cache[key] = layer_saves(layer, r, w)
        added = 0
        keeps = []
        for k, e in enumerate(entries):
            tag = e[0]
            if tag == "in":
                src = roots[ins[e[1]]]
                if mixed and src == INPUT and layer.kind in _AUTOCAST_HALF:
                    sk, size, what = ("half", INPUT), sizes[INPUT] // ib * act_bytes, "half copy of the input"
                else:
                    sk, size, what = src, sizes[src], f"input {ins[e[1]]}" if len(ins) > 1 else "input"
            elif tag == "out":
                sk, size, what = roots[name], sizes[roots[name]], "output"
            elif tag == "pre":
                sk, size, what = (name, "pre"), out_elems * act_bytes, "output before the activation"
            else:
                _, per, fixed, dt, what = e
                sk = (name, k)
                size = (per * batch + fixed) * (act_bytes if dt == "act" else DTYPE_BYTES[dt])
                s.hidden[sk] = size
            keeps.append((sk, size, what))
            if sk not in first:
                first[sk] = step
                added += size
        if mixed and layer.kind in _AUTOCAST_HALF and rg[name]:
            s.weight_copies += sum(numel(sh) for sh, role in layer.param_shapes().values()
                                   if role == "weight") * act_bytes
        s.per_layer[name] = added
        s.keeps[name] = keeps
        s.total += added
    return s
