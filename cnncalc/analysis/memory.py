"""Tensor liveness over the graph: the inference peak with buffer reuse, and the peak of
activation gradients during backward.

A tensor lives from the step that produces it to the last step that reads it; views
(flatten, dropout at inference, identity) alias the tensor they read and extend its life.
Graph outputs live to the end.
"""
from __future__ import annotations

from cnncalc.graph import INPUT, Graph


def tensor_intervals(graph: Graph, sizes: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Root tensor name → (first step, last step, elements). Steps are topological indices."""
    base: dict[str, str] = {}  # a view → the tensor it aliases (any other tensor is its own)
    start: dict[str, int] = {}
    last: dict[str, int] = {}
    # steps are visited in order, so a tensor's last reader so far is the current step
    step = 0
    for name, node in graph.nodes.items():
        layer = node.layer
        inputs = node.inputs
        if layer is not None and layer.view:
            src = inputs[0]
            base[name] = base.get(src, src)
        else:
            start[name] = last[name] = step
        if len(inputs) == 1:
            src = inputs[0]
            last[base.get(src, src)] = step
        else:
            for src in inputs:
                last[base.get(src, src)] = step
        step += 1
    end = step - 1
    for out in graph.outputs:
        last[base.get(out, out)] = end
    return {b: (lo, last[b], sizes[b]) for b, lo in start.items()}


def peak(intervals: dict[str, tuple[int, int, int]], n_steps: int, skip: set[str] = frozenset()) -> tuple[int, int]:
    """Largest sum of live tensor sizes over the steps, and the step where it happens."""
    delta = [0] * (n_steps + 1)
    for name, (lo, hi, size) in intervals.items():
        if name in skip:
            continue
        delta[lo] += size
        delta[hi + 1] -= size
    best, where, live = 0, 0, 0
    for step in range(n_steps):
        live += delta[step]
        if live > best:
            best, where = live, step
    return best, where


def inference_peak(graph: Graph, sizes: dict[str, int], intervals=None) -> tuple[int, str]:
    iv = tensor_intervals(graph, sizes) if intervals is None else intervals
    best, where = peak(iv, len(graph.nodes))
    return best, list(graph.nodes)[where]


def gradient_peak(graph: Graph, sizes: dict[str, int], intervals=None) -> int:
    """During backward the gradient of a tensor lives over the same steps as the tensor
    (from its last reader's backward to its producer's); the input needs no gradient."""
    iv = tensor_intervals(graph, sizes) if intervals is None else intervals
    best, _ = peak(iv, len(graph.nodes), skip={INPUT})
    return best
