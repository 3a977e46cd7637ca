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


def peaks(graph: Graph, sizes: dict[str, int], intervals=None, internal=None) -> tuple[int, str, int]:
    """The inference peak (the largest sum of live tensors over the steps, and the layer
    where it happens) and the gradient peak. During backward the gradient of a tensor lives
    over the same steps as the tensor (from its last reader's backward to its producer's)
    and the input needs none: the live gradients are the live tensors without the input's
    interval. ``internal`` {layer: values} adds what a layer writes inside itself (attention's
    q, k, v, scores and probabilities) at its own step: live while it runs (and their gradients
    while its backward runs)."""
    iv = tensor_intervals(graph, sizes) if intervals is None else intervals
    live = live_sizes(iv, len(graph.nodes))
    if internal:
        steps = {name: k for k, name in enumerate(graph.nodes)}
        for name, n in internal.items():
            live[steps[name]] += n
    best, where = _highest(live)
    lo, hi, size = iv[INPUT]
    grad = live if not size else live[:lo] + [v - size for v in live[lo:hi + 1]] + live[hi + 1:]
    return best, list(graph.nodes)[where], _highest(grad)[0]
