"""What the ONNX importer's driver and its rewrites share: the spec item being built, the
refusal a rewrite raises, and the small argument helpers (windows, pads, compact lists).

A rewrite (:mod:`cnncalc.interop.onnx.rewrites`) talks to the driver through the
:class:`~cnncalc.interop.onnx.importer.Importer` it is given (``imp``): ``imp.attr``,
``imp.const``, ``imp.shape``, ``imp.emit``, ``imp.alias``, ``imp.single_use``, ``imp.learned``,
``imp.constant``, and its tables (``consts``, ``layer_of``, ``by_name``, ``params``,
``pending``, ``skip``, ``nodes``, ``consumers``, ``n_consumers``, ``index``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Item:
    """One spec layer being built."""
    kind: str
    args: dict
    name: str
    inputs: list[str]  # spec layer names ("input" for the network input)
    raw: str = ""  # the ONNX node name it came from


class Unmapped(Exception):
    """No exact form for this node (``why``); ``hard``: the model is invalid there (no opaque layer)."""
    def __init__(self, op, node, why="", hard=False):
        super().__init__(why)
        self.op, self.node, self.why, self.hard = op, node, why, hard


def show(name: str, limit: int = 120) -> str:
    """A name for a message: control characters escaped, long names shortened, quoted."""
    s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(name))
    return repr(s[:limit] + ("..." if len(s) > limit else ""))


def spec_shape(dims) -> tuple:
    """ONNX dims without the batch (C, H, W) → spec (H, W, C)."""
    dims = tuple(int(d) for d in dims)
    if len(dims) == 1:
        return dims
    return (*dims[1:], dims[0])


def axes_arg(imp, node, ins, pos=1):
    a = imp.attr(node, "axes")
    if a is None and len(ins) > pos and ins[pos] is not None:
        a = ins[pos].tolist()
    return a


def compact(vals):
    vals = [int(v) for v in vals]
    return vals[0] if len(set(vals)) == 1 else vals


def pads_arg(lo, hi):
    if all(a == b for a, b in zip(lo, hi)):
        return compact(lo)
    return [[int(a), int(b)] for a, b in zip(lo, hi)]


def window(imp, node, in_sp, kernel, *, default_stride=1):
    nd = len(kernel)
    strides = list(imp.attr(node, "strides", [default_stride] * nd))
    dil = list(imp.attr(node, "dilations", [1] * nd))
    pads = list(imp.attr(node, "pads", [0] * (2 * nd)))
    if (len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd or any(v < 1 for v in (*strides, *dil, *kernel))
            or any(p < 0 for p in pads)):
        raise Unmapped(node.op_type, node.name, f"an invalid window (kernel {list(kernel)}, strides {strides}, "
                        f"dilations {dil}, pads {pads}): each must be ≥ 1 (pads ≥ 0), one per spatial axis",
                        hard=True)
    lo, hi = pads[:nd], pads[nd:]
    auto = imp.attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for n, k, s, d in zip(in_sp, kernel, strides, dil):
            ext = d * (k - 1) + 1
            total = max((-(-n // s) - 1) * s + ext - n, 0)
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        lo, hi = [0] * nd, [0] * nd
    return strides, dil, lo, hi


def rounding(imp, in_sp, kernel, strides, dil, lo, hi, ceil=False):
    inexact = any((n + a + b - (d * (k - 1) + 1)) % s for n, k, s, d, a, b in
                  zip(in_sp, kernel, strides, dil, lo, hi))
    if not inexact:
        return None
    return "ceil" if ceil else "floor"


def nchw(imp, tensor, node):
    s = imp.shape(tensor)
    if s is None:
        raise Unmapped(node.op_type, node.name, f"the shape of {tensor!r} is unknown")
    return s


def consumer(imp, tensor, op):
    """The index of the one node that reads ``tensor``, if it is an ``op``; else None."""
    if not imp.single_use(tensor):
        return None
    ks = [k for k in imp.consumers.get(tensor, ()) if k > imp.index]
    return ks[0] if len(ks) == 1 and imp.nodes[ks[0]].op_type == op else None
