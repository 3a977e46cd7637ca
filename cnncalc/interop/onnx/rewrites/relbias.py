"""A learned table read by query-key offsets and added to attention logits: LeViT's and
EfficientViT-M's ``attention_biases[:, attention_bias_idxs]`` as torch.onnx.export writes it,
into cnncalc's ``relbias`` layer (its parameters the table's, not the values it is read at).

Two forms reach ONNX:

* unfolded: ``Gather(table (heads, T), index (Nq, Nk), axis=1)`` — the index a constant,
  recognised when it is exactly a relbias rule's (a grid of the keys, a query stride, abs or
  signed offsets: :func:`cnncalc.runtime.kernels.tensor.relbias_index`) and T is that rule's
  table size; EfficientViT-M then takes one head's row (``Gather(·, h, axis=0)``). Nothing is
  emitted there: the read is *pending* until the ``Add`` to the logits (any other reader leaves
  it unimported, and the node is refused);
* folded (``do_constant_folding`` evaluated the Gather): ``Add(logits, C)`` with a learned
  initializer C of (heads, Nq, Nk) followed by the Softmax: the table is rebuilt from C when
  exactly one smallest rule agrees with every entry of C (entries of one offset are equal) and
  the table is smaller than C. A C whose values do not decide it (all equal: an untrained table
  of zeros) stays what it was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnncalc.interop.onnx.common import Unmapped
from cnncalc.interop.onnx.rewrites import rewrite


@dataclass(frozen=True)
class TableRead:
    """A pending read of a table by a relbias rule: ``table`` (heads, T) and the rule."""
    table: np.ndarray
    grid: tuple
    stride: tuple
    offsets: str


def _divisor_pairs(n: int):
    return [(a, n // a) for a in range(1, n + 1) if n % a == 0]


def candidates(nq: int, nk: int):
    """Every relbias rule of 1- and 2-axis grids with Nk keys and Nq queries: (grid, stride,
    offsets, T), smallest table first."""
    from cnncalc.layers.tensor import offset_table_size, query_grid

    out = []
    for grid in [(nk,), *_divisor_pairs(nk)]:
        if len(grid) == 2 and 1 in grid:
            continue  # (the 1-axis grid already)
        for stride in _strides(grid):
            if math.prod(query_grid(grid, stride)) != nq:
                continue
            for offsets in ("abs", "signed"):
                out.append((grid, stride, offsets, math.prod(offset_table_size(grid, stride, offsets))))
    return sorted(out, key=lambda c: c[3])


def _strides(grid):
    if len(grid) == 1:
        return [(s,) for s in range(1, grid[0] + 1)]
    return [(a, b) for a in range(1, grid[0] + 1) for b in range(1, grid[1] + 1)]


def _index(grid, stride, offsets):
    from cnncalc.runtime.kernels.tensor import relbias_index

    return relbias_index(grid, stride, offsets)


def rule_of_index(idx: np.ndarray, t: int):
    """The relbias rule whose index is exactly ``idx`` (Nq, Nk) over a table of ``t`` entries, or None."""
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        return None
    for grid, stride, offsets, size in candidates(*idx.shape):
        if size == t and np.array_equal(_index(grid, stride, offsets), idx):
            return grid, stride, offsets
    return None


def rule_of_values(c: np.ndarray):
    """(table (heads, T), grid, stride, offsets) of a folded read ``c`` (heads, Nq, Nk): the
    smallest rule whose every offset holds one value in ``c``, when it is the only one of its
    size, smaller than ``c``, and the values are not all equal; else None."""
    c3 = c.reshape(-1, *c.shape[-2:])
    if np.all(c3 == c3.reshape(-1)[0]):
        return None
    found = []
    for grid, stride, offsets, size in candidates(*c3.shape[1:]):
        if found and size > found[0][3]:
            break
        if c3.shape[0] * size >= c3.size:
            break
        idx = _index(grid, stride, offsets)
        table = np.zeros((c3.shape[0], size), c3.dtype)
        table[:, idx] = c3  # (the last write of each offset; checked equal to every read below)
        if np.array_equal(table[:, idx], c3):
            found.append((grid, stride, offsets, size, table))
    if len(found) != 1:
        return None
    grid, stride, offsets, _, table = found[0]
    return table, grid, stride, offsets


def _tables(imp) -> dict:
    if not hasattr(imp, "relbias_reads"):
        imp.relbias_reads = {}
    return imp.relbias_reads


@rewrite("Gather", family="relbias", name="relbias_table", stage="region",
         lifts="(a pending relbias table read)")
def relbias_table(imp, i) -> bool:
    """A learned (heads, T) table gathered along T by a constant (Nq, Nk) index that is exactly a
    relbias rule's (LeViT's, EfficientViT-M's attention_bias_idxs), or one head's row of such a
    read: held until the Add to the logits (relbias_add)."""
    node = imp.nodes[i]
    reads = _tables(imp)
    data, index = node.input[0], node.input[1] if len(node.input) > 1 else ""
    idx = imp.const(index)
    if idx is None or not node.output[0]:
        return False
    axis = imp.attr(node, "axis", 0)
    if data in reads:  # one head (EfficientViT-M: attn_bias[head_idx]) or a list of them
        r = reads[data]
        if axis != 0 or idx.ndim > 1 or idx.dtype.kind not in "iu":
            return False
        rows = r.table[np.asarray(idx).reshape(-1) % r.table.shape[0]]
        reads[node.output[0]] = TableRead(rows, r.grid, r.stride, r.offsets)
        return True
    table = imp.const(data)
    if table is None or not imp.learned(data) or table.ndim != 2 or axis not in (1, -1):
        return False
    rule = rule_of_index(np.asarray(idx), table.shape[1])
    if rule is None:
        return False
    reads[node.output[0]] = TableRead(table, *rule)
    return True


@rewrite("Add", family="relbias", name="relbias_add", stage="region", lifts="relbias")
def relbias_add(imp, i) -> bool:
    """Attention logits plus a table read by query-key offsets (a pending relbias_table read, or
    a folded learned (heads, Nq, Nk) initializer whose values a relbias rule explains, when the
    sum goes to a Softmax): one relbias layer holding the table."""
    node = imp.nodes[i]
    if len(node.input) != 2:
        return False
    reads = _tables(imp)
    j = next((k for k, t in enumerate(node.input) if t in reads), None)
    if j is not None:
        r = reads[node.input[j]]
        bias_shape = imp.shape(node.input[j])
    else:
        j = next((k for k, t in enumerate(node.input) if imp.const(t) is not None), None)
        if j is None or not imp.learned(node.input[j]) or not _to_softmax(imp, node):
            return False
        c = imp.const(node.input[j])
        if c.ndim not in (2, 3) or c.dtype.kind != "f":
            return False
        got = rule_of_values(c)
        if got is None:
            return False
        r = TableRead(*got)
        bias_shape = c.shape
    x = node.input[1 - j]
    xs = imp.shape(x)
    heads = r.table.shape[0]
    nq = math.prod(-(-g // s) for g, s in zip(r.grid, r.stride))
    want = (heads, nq, math.prod(r.grid)) if heads > 1 else (nq, math.prod(r.grid))
    batch = imp.batch_of.get(x, 0)
    if (xs is None or bias_shape is None or x in imp.consts or len(xs) < len(want) + 1
            or tuple(xs[-len(want):]) != want or batch is None or batch >= len(xs) - len(want)
            or np.broadcast_shapes(tuple(xs), tuple(bias_shape)) != tuple(xs)):
        return False
    try:
        imp.emit(node, "relbias", {"relbias": list(r.grid), "heads": heads,
                                   **({"stride": list(r.stride)} if any(s != 1 for s in r.stride) else {}),
                                   "offsets": r.offsets},
                 [x], params={"table": np.ascontiguousarray(r.table, np.float32)})
    except Unmapped:
        return False
    out = node.output[0]
    imp.batch_of[out] = batch
    if x in imp.odd:
        imp.odd.add(out)
    return True


def _to_softmax(imp, node) -> bool:
    """The Add's result is read by one Softmax (the attention logits)."""
    readers = imp.consumers.get(node.output[0], [])
    return len(readers) == 1 and imp.nodes[readers[0]].op_type == "Softmax" \
        and node.output[0] not in imp.output_names
