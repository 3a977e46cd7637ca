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


class Lift:
    """What a ``stage="lift"`` rewrite sees: the spec items one ONNX node was just lowered to
    (:mod:`cnncalc.interop.onnx.lower`), in the importer's item list, right after that node —
    before any later node is imported, so a lift that removes an item frees its name and later
    names are the ones they would have been.

    A lift rewrite ``fn(lift, item) -> bool`` is called for each item the node was lowered to
    whose ``kind`` is one of its ``ops`` (spec layer types: "matmul", "binary", "softmax", …),
    in registry order; it returns True when it rewrote (the next rewrites are not tried on that
    item). It matches over items, walking back through :meth:`producer`; ``node`` is the ONNX
    node (for its constants: ``imp.const(node.input[k])``), ``imp`` the importer. It changes
    the spec only through:

    * :meth:`fold_into` — the item's work is done by an earlier item (an fc takes the bias the
      item added): the item goes, the tensors it held are held by that item;
    * :meth:`replace` — several items (the last of them this node's) become one new item, e.g.
      MatMul · Softmax · MatMul → ``attention``: the new item takes the place of the first
      old one when its inputs are all computed before it (else of the last), and holds the
      tensors the last one held; tensors of the others are no longer readable (a later reader
      is refused, never silently rewired), so check :meth:`uses` first.
    """

    def __init__(self, imp, node, shapes_before: dict):
        self.imp = imp
        self.node = node
        self._shapes_before = shapes_before  # the node's outputs' shapes before it was lowered

    def item(self, name: str):
        """The spec item called ``name`` (None for the network input or a removed item)."""
        return self.imp.by_name.get(name)

    def producer(self, item, k: int = 0):
        """The item that computes ``item``'s input ``k`` (None for the network input)."""
        return self.imp.by_name.get(item.inputs[k]) if k < len(item.inputs) else None

    def uses(self, tensor: str) -> int:
        """How many ONNX nodes (and graph outputs) read ``tensor``."""
        return self.imp.n_consumers[tensor]

    def _tensors(self, item) -> list[str]:
        return [t for t, layer in self.imp.layer_of.items() if layer == item.name]

    def _remove(self, items):
        imp = self.imp
        gone = {id(it) for it in items}
        imp.items[:] = [it for it in imp.items if id(it) not in gone]
        for it in items:
            if imp.by_name.get(it.name) is it:
                del imp.by_name[it.name]
                imp.params.pop(it.name, None)
                imp.state.pop(it.name, None)
                imp.spec_shapes.pop(it.name, None)

    def _hand_over(self, old, new):
        """The tensors ``old`` held are ``new``'s, as if ``new`` had computed them from the start."""
        imp = self.imp
        for t in self._tensors(old):
            imp.layer_of[t] = new.name
            imp.odd.discard(t)
            imp.batch_of.pop(t, None)
            if t in self._shapes_before:
                imp.shapes[t] = self._shapes_before[t]

    def fold_into(self, item, into):
        """Remove ``item``; what it computed is ``into``'s output (``into`` was changed to do it)."""
        self._hand_over(item, into)
        self._remove([item])

    def replace(self, old: list, new, *, params: dict | None = None, state: dict | None = None):
        """Put the spec item ``new`` (an :class:`Item`) in the place of the items ``old``; or a
        list of items, a chain (each reads the one before it, the first reads items before the
        region; the last holds what the last old item held), with ``params`` and ``state`` then
        keyed by the new items' names."""
        imp = self.imp
        chain = new if isinstance(new, list) else [new]
        if not isinstance(new, list):
            params, state = {new.name: params} if params else None, {new.name: state} if state else None
        olds = {it.name for it in old}
        for it in chain:
            if it.name in imp.by_name and it.name not in olds:
                raise ValueError(f"lift: the name {it.name!r} is taken")
        pos = {it.name: k for k, it in enumerate(imp.items)}
        first, last = min(pos[it.name] for it in old), max(pos[it.name] for it in old)
        before = {it.name for it in imp.items[:first]} | {"input"}
        at = first if all(i in before for i in chain[0].inputs) else last + 1
        for it in old:  # (first: a new item may take an old one's name, and then its tensors)
            if pos[it.name] != last:
                for t in self._tensors(it):
                    del imp.layer_of[t]
        self._hand_over(next(it for it in old if pos[it.name] == last), chain[-1])
        self._remove(old)
        at -= sum(1 for it in old if pos[it.name] < at)
        imp.items[at:at] = chain
        for it in chain:
            imp.by_name[it.name] = it
            if params and params.get(it.name):
                imp.params[it.name] = params[it.name]
            if state and state.get(it.name):
                imp.state[it.name] = state[it.name]
            imp.infer_item_shape(it)
        return new
