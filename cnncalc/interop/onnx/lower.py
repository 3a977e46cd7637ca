"""ONNX node → low-level spec items: the importer's fallback for every node no pattern lifts.

One public function::

    lower(op_type, attrs, inputs, *, name, n_outputs=1, opset=17) -> Lowered

* ``op_type`` / ``attrs``: the node's op and attributes as plain Python values
  (``onnx.helper.get_attribute_value``: ints, floats, lists; bytes are decoded).
* ``inputs``: one :class:`Operand` per node input (``None`` for an omitted optional input):
  an activation (``value is None``) names the spec layer it comes from (``name``) and gives
  its ONNX shape at the import batch and ``batch``, the ONNX axis that holds the batch (0
  usually; 1 after timm attention's ``permute(2, 0, 3, 1, 4)``; None when a reshape has folded
  the batch into axis 0, as MobileViT's unfolding does); a constant gives its
  ``value`` (an initializer, a Constant node, a folded subgraph) and whether it is a
  ``learned`` parameter (counted as parameters; otherwise a buffer, non-trainable state, or —
  at most 16 values — a number written in the spec, counted nowhere). The caller decides
  ``learned`` (the PyTorch exporter names parameters after their module; ``--torch`` knows).
* Returns :class:`Lowered`: ``items`` (spec layers in order, each with its own parameters and
  buffers, named ``name`` for the one that yields the node's output and ``name.<what>`` for
  helpers: the caller keeps those names free), ``outputs`` (per node output: the item name and
  its ``batch`` axis),
  and ``constants`` (a node that only makes a constant: Constant, Identity/Cast of a constant
  — the caller keeps the value for the nodes that read it).
* Raises :class:`Unlowered` (``op``, ``reason``) for what has no exact low-level form; the
  importer collects them into its refusal (or, with ``--opaque``, keeps an opaque layer).

Axes: the spec's axes are the ONNX axes without the batch axis (ONNX axis a ≥ 1 is the spec's
a − 1 while the batch is axis 0). A node may move the batch axis (a transpose) and later ones
read it where it is; a node that reduces, slices, broadcasts or reshapes across the batch is
refused. Example::

    >>> low = lower("MatMul", {}, [Operand((1, 196, 96), name="ln"),
    ...                           Operand((96, 384), value=w, learned=True)], name="fc1")
    >>> low.items[0].as_spec()
    {'matmul': None, 'const': {'index': 1, 'shape': [96, 384], 'learned': True}, 'name': 'fc1', 'inputs': ['ln']}
    >>> low.items[0].params, low.outputs                     # ({'const1': w}, [('fc1', 0)])

Covered (opset 11–18): MatMul, Gemm, Einsum (a batched product of two activations), Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice,
Split, Concat, Gather (constant indices), Expand, Tile, Add, Sub, Mul, Div, Pow, Max, Min, Sum (two inputs),
Sqrt, Exp, Log, Erf, Neg, Abs, Reciprocal, Sin, Cos, Floor, Ceil, Round, Sign, Tanh, Sigmoid,
Relu, LeakyRelu, Elu, Selu (PyTorch's constants), Softplus, HardSigmoid (α = 1/6), HardSwish,
Gelu, Mish, Clip, PRelu (per channel of an image, or shared), Reduce{Mean, Sum, Max, Min,
Prod, L1, L2, SumSquare, LogSumExp}, Softmax, LogSoftmax, Pad, LayerNormalization, BatchNormalization (any layout),
Constant, Identity, Cast (to a float type), Dropout, Where (a constant condition).

Out (``--opaque``): ops without a counting rule or on non-float values — Conv and the other
high-level ops the importer lifts itself; other Einsums, Loop/If/Scan, LSTM/GRU/RNN, TopK, ArgMax,
NonZero, Gather/Scatter with computed indices, Resize (lifted), comparisons, random ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LITERAL_MAX = 16  # values a non-learned constant may have to be written in the spec itself


@dataclass
class Operand:
    """One input of an ONNX node (see the module docstring)."""
    shape: tuple
    value: np.ndarray | None = None
    learned: bool = False
    batch: int | None = 0
    name: str = ""
    # computed from constants only (a layer with ``inputs: []`` and the ops after it): the same
    # for every sample, no batch axis of its own (``batch`` None: its whole ONNX shape is the
    # sample's; 0: a leading 1 put in front of it); it broadcasts against an activation as a
    # constant would
    fixed: bool = False

    @property
    def const(self) -> bool:
        return self.value is not None

    @property
    def sample(self) -> tuple:
        """An activation's per-sample shape: its ONNX shape without the batch axis."""
        b = self.batch
        return tuple(self.shape) if b is None else tuple(d for k, d in enumerate(self.shape) if k != b)


@dataclass
class SpecItem:
    """One spec layer: ``{kind: None, **args, name, inputs}`` with its tensors."""
    kind: str
    args: dict
    name: str
    inputs: list
    params: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)

    def as_spec(self) -> dict:
        return {self.kind: None, **self.args, "name": self.name, "inputs": list(self.inputs)}


@dataclass
class Lowered:
    items: list = field(default_factory=list)
    outputs: list = field(default_factory=list)  # per node output: (item name, its batch axis)
    constants: dict = field(default_factory=dict)  # node output index → value


class Unlowered(Exception):
    """A node with no exact low-level form: ``op`` and the ``reason`` to print."""

    def __init__(self, op: str, reason: str):
        super().__init__(f"{op}: {reason}")
        self.op, self.reason = op, reason


# ----------------------------------------------------------------------------- the builder
class _Node:
    """Lowers one node: operand helpers and the items written so far."""

    def __init__(self, op, attrs, inputs, name, opset, n_outputs=1):
        self.op, self.attrs, self.ins, self.name, self.opset = op, attrs, inputs, name, opset
        self.n_outputs = n_outputs
        self.out = Lowered()

    def refuse(self, reason):
        raise Unlowered(self.op, reason)

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    # -- operands ---------------------------------------------------------------------------
    def acts(self):
        return [o for o in self.ins if o is not None and not o.const]

    def need_act(self, k=0) -> Operand:
        o = self.ins[k] if k < len(self.ins) else None
        if o is None or o.const:
            self.refuse("its data input is a constant (fold the constant subgraph first)")
        return o

    def value(self, k, what) -> np.ndarray | None:
        o = self.ins[k] if k < len(self.ins) else None
        if o is None:
            return None
        if not o.const:
            self.refuse(f"its {what} is computed, not a constant")
        return o.value

    def axis(self, o: Operand, a: int) -> int:
        """ONNX axis a of activation o → the spec's (PyTorch order, per sample)."""
        r = len(o.shape)
        if not -r <= a < r:
            self.refuse(f"axis {a} is out of range for rank {r}")
        a %= r
        b = o.batch
        if a == b:  # (folded into axis 0 at the import batch 1, the batch is one sample's axis)
            self.refuse(f"it works on the batch axis (axis {a})")
        return a if b is None else a - (a > b)

    def const_spec(self, o: Operand, index: int, act: Operand | None, matrix: bool = False):
        """A constant operand as a ``const:`` entry and its tensor for params or state. Lined
        up (from the right) against the activation ``act``, the constant's axis at the batch
        axis must be 1 and is dropped; so are leading size-1 axes beyond a sample's rank."""
        v = np.asarray(o.value)
        if v.dtype.kind not in "fiub":
            self.refuse(f"a constant of type {v.dtype} is not a float tensor")
        shape = list(v.shape)
        if act is not None and matrix:  # a matmul operand: only its leading (batch) axes line up
            if len(shape) <= 2:
                act = None
            elif len(act.shape) <= 2:
                self.refuse("a constant with batch axes times a per-sample vector would move the batch")
            else:
                act = Operand((*act.shape[:-2], *shape[-2:]), batch=act.batch)
        if act is not None:
            r, b = len(act.shape), act.batch
            if len(shape) > r:
                self.refuse(f"the constant {tuple(v.shape)} has more axes than the activation")
            if b is not None and len(shape) > r - 1 - b:  # it reaches the batch axis
                k = b - (r - len(shape))
                if shape[k] != 1:
                    self.refuse(f"the constant {tuple(v.shape)} broadcasts over the batch axis")
                del shape[k]
            while len(shape) > len(act.sample) and shape[0] == 1:
                del shape[0]
        v = v.astype(np.float64 if v.dtype == np.float64 else np.float32).reshape(shape)
        if not o.learned and v.size <= LITERAL_MAX:
            return {"index": index, "value": v.tolist()}, {}, {}
        spec = {"index": index, "shape": list(shape), "learned": bool(o.learned)}
        tensors = {f"const{index}": v}
        return spec, (tensors if o.learned else {}), ({} if o.learned else tensors)

    def emit(self, kind, args, inputs, *, last=True, what="", consts=(), act=None):
        """Add an item; ``consts`` are (index, Operand) pairs lined up against the activation
        ``act`` (None: taken as they are)."""
        name = self.name if last else f"{self.name}.{what or kind}"
        params, state, specs = {}, {}, []
        for index, o in consts:
            spec, p, s = self.const_spec(o, index, act, matrix=kind == "matmul")
            specs.append(spec)
            params.update(p)
            state.update(s)
        args = dict(args)
        if specs:
            args["const"] = specs[0] if len(specs) == 1 else specs
        self.out.items.append(SpecItem(kind, args, name, list(inputs), params, state))
        return name

    def done(self, item_name=None, batch=0):
        self.out.outputs.append((item_name or self.name, batch))
        return self.out


# ----------------------------------------------------------------------------- the ops
def _same_layout(n: _Node, acts, broadcast=False):
    """Activations read together: the same rank and batch axis (else ONNX would broadcast the
    batch against another axis). With ``broadcast`` (an elementwise op), a value of constants
    only (``fixed``) may meet an activation of another layout where the spec's broadcasting of
    the per-sample shapes gives what ONNX's gives (Swin V2's position bias, (1, heads, N, N),
    added to the windows' logits, (B·windows, heads, N, N))."""
    live = [o for o in acts if not o.fixed] if broadcast else acts
    live = live or acts
    if len({len(o.shape) for o in live}) > 1 or len({o.batch for o in live}) > 1:
        n.refuse("activations of different ranks or batch axes would broadcast the batch against another axis")
    act = live[0]
    for o in acts:
        if o.fixed and not act.fixed and (len(o.shape) != len(act.shape) or o.batch != act.batch):
            _fits(n, o, act)
    return act


def _fits(n: _Node, f: Operand, act: Operand):
    """A value of constants only ``f`` broadcast against activation ``act`` as per-sample
    shapes (right-aligned, the batch axis left out) gives ONNX's result without the batch axis."""
    try:
        full = np.broadcast_shapes(tuple(act.shape), tuple(f.shape))
        mine = np.broadcast_shapes(tuple(act.sample), tuple(f.sample))
    except ValueError:
        n.refuse(f"{tuple(f.shape)} does not broadcast against {tuple(act.shape)}")
    want = full if act.batch is None else tuple(d for k, d in enumerate(full) if k != act.batch)
    if act.batch not in (0, None) or len(f.sample) > len(act.sample) or tuple(mine) != tuple(want):
        n.refuse(f"a value of constants only {tuple(f.shape)} would broadcast against the batch axis of "
                 f"{tuple(act.shape)}")


def _elementwise(n: _Node, kind, args, ins=None):
    """A broadcasting op of activations and constants (one activation at least)."""
    ins = [o for o in (n.ins if ins is None else ins) if o is not None]
    acts = [o for o in ins if not o.const]
    if not acts:
        n.refuse("every input is a constant (fold it)")
    act = _same_layout(n, acts, broadcast=True)
    consts = [(k, o) for k, o in enumerate(ins) if o.const]
    n.emit(kind, args, [o.name for o in acts], consts=consts, act=act)
    return n.done(batch=act.batch)


def _binary(op):
    def f(n: _Node):
        ins = [o for o in n.ins if o is not None]
        if len(ins) == 2:
            return _elementwise(n, "binary", {"op": op})
        if op not in ("max", "min") or len(ins) < 2:
            n.refuse(f"{len(ins)} inputs")
        # variadic Max/Min: a chain of pairs, the constants folded into one first
        consts = [o for o in ins if o.const]
        acts = [o for o in ins if not o.const]
        act = _same_layout(n, acts)
        if len(consts) > 1:
            fold = np.asarray(consts[0].value)
            for c in consts[1:]:
                fold = (np.maximum if op == "max" else np.minimum)(fold, c.value)
            consts = [Operand(np.shape(fold), np.asarray(fold))]
        chain = acts + consts
        prev = chain[0]
        for k, o in enumerate(chain[1:]):
            last = k == len(chain) - 2
            name = n.emit("binary", {"op": op}, [x.name for x in (prev, o) if not x.const],
                          consts=[(1, o)] if o.const else [], act=act, last=last, what=f"{op}{k}")
            prev = Operand(prev.shape, name=name, batch=act.batch)
        return n.done(batch=act.batch)
    return f


def _one(kind, **fixed):
    """A layer of one activation input and fixed arguments (unary ops, activations)."""
    def f(n: _Node):
        x = n.need_act()
        args = {k: (v(n) if callable(v) else v) for k, v in fixed.items()}
        n.emit(kind, {k: v for k, v in args.items() if v is not None}, [x.name])
        return n.done(batch=x.batch)
    return f


def _selu(n):
    a, g = n.attr("alpha", 1.67326319217681884765625), n.attr("gamma", 1.05070102214813232421875)
    if not (math.isclose(a, 1.6732632423543772, rel_tol=1e-6) and math.isclose(g, 1.0507009873554805, rel_tol=1e-6)):
        n.refuse("a SELU with other constants than PyTorch's")
    return _one("selu")(n)


def _hardsigmoid(n):
    if not (math.isclose(n.attr("alpha", 0.2), 1 / 6, rel_tol=1e-6) and math.isclose(n.attr("beta", 0.5), 0.5)):
        n.refuse("a HardSigmoid other than PyTorch's relu6(x + 3)/6 (alpha 1/6, beta 1/2)")
    return _one("hardsigmoid")(n)


def _clip(n):
    x = n.need_act()
    lo, hi = (n.attr("min"), n.attr("max")) if n.opset < 11 else (n.value(1, "minimum"), n.value(2, "maximum"))
    lo = None if lo is None else float(np.asarray(lo))
    hi = None if hi is None else float(np.asarray(hi))
    if lo == 0.0 and hi == 6.0:
        n.emit("relu6", {}, [x.name])
    elif lo == 0.0 and hi is None:
        n.emit("relu", {}, [x.name])
    else:  # min(max(x, lo), hi)
        cur = x.name
        if lo is not None:
            cur = n.emit("binary", {"op": "max", "const": {"index": 1, "value": lo}}, [cur], last=hi is None,
                         what="min")
        if hi is not None:
            n.emit("binary", {"op": "min", "const": {"index": 1, "value": hi}}, [cur])
    return n.done(batch=x.batch)


def _prelu(n):
    x = n.need_act()
    slope = np.asarray(n.value(1, "slope"))
    per_channel = (x.batch == 0 and len(x.shape) >= 3 and slope.ndim == len(x.shape) - 1
                   and slope.shape[0] == x.shape[1] and all(d == 1 for d in slope.shape[1:]))
    if slope.size != 1 and not per_channel:
        n.refuse(f"slopes of shape {slope.shape}: one per channel (C, 1, 1) or one in all")
    item = n.emit("prelu", {"slopes": "shared" if slope.size == 1 else "channel"}, [x.name])
    n.out.items[-1].params = {"weight": slope.reshape(-1).astype(np.float32)}
    return n.done(item, batch=x.batch)


def _matmul(n):
    a, b = n.ins[0], n.ins[1]
    acts = [o for o in (a, b) if not o.const]
    act = _same_layout(n, acts)
    for o in acts:
        r = len(o.shape)
        if o.batch is None or o.batch < r - 2 or (o is a and r == 2):
            continue
        # the batch as the rows of A (or the columns of B) times a constant: rows stay apart
        # (torchvision's MultiheadAttention projects L x N x E, sequence first)
        if len(acts) == 1 and r >= 2 and o.batch == (r - 2 if o is a else r - 1):
            continue
        n.refuse("the batch axis is one of the two axes the product runs over")
    consts = [(k, o) for k, o in enumerate((a, b)) if o.const]
    n.emit("matmul", {}, [o.name for o in acts], consts=consts, act=act)
    return n.done(batch=act.batch)


def _einsum(n):
    """A two-operand Einsum that is a batched matrix product (MaxViT's attention:
    ``bghid,bghjd->bghij``): every letter is a batch axis (in both operands and the output, in
    the same order), the one contracted axis, or one free axis of each operand. Written as
    transposes to (batch…, i, k) and (batch…, k, j), a matmul and a transpose to the output's
    order, so its MACs are the matmul's."""
    eq = str(n.attr("equation", "")).replace(" ", "")
    if "->" not in eq or "." in eq or len(n.ins) != 2:
        n.refuse(f"the equation {eq!r} is not a product of two operands with an output (no ellipsis)")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    a, b = n.ins
    if len(terms) != 2 or a is None or b is None or a.const or b.const:
        n.refuse("a product of two activations is the form written as low-level ops")
    ta, tb = terms
    if (any(len(set(t)) != len(t) for t in (ta, tb, out)) or len(ta) != len(a.shape) or len(tb) != len(b.shape)
            or not set(out) <= set(ta) | set(tb)):
        n.refuse(f"the equation {eq!r} repeats a letter, sums an axis away or does not fit the operands")
    batch = [c for c in ta if c in tb and c in out]
    k = [c for c in ta if c in tb and c not in out]
    fa, fb = [c for c in ta if c not in tb], [c for c in tb if c not in ta]
    if (len(k) != 1 or len(fa) != 1 or len(fb) != 1 or [c for c in tb if c in batch] != batch
            or [c for c in out if c in batch] != batch or any(c not in out for c in fa + fb)):
        n.refuse(f"the equation {eq!r} is not a batched matrix product (one contracted axis, one free axis each)")
    act = _same_layout(n, [a, b])
    if act.batch not in (None, 0) or (act.batch == 0 and (ta[0] != batch[0] or tb[0] != batch[0] or out[0] != batch[0])):
        n.refuse("the batch axis is not the first axis of both operands and of the output")
    dims = {c: d for t, o in ((ta, a), (tb, b)) for c, d in zip(t, o.shape)}
    if any(dims[c] != d for t, o in ((ta, a), (tb, b)) for c, d in zip(t, o.shape)):
        n.refuse("the operands disagree on an axis' size")
    drop = 0 if act.batch == 0 else None  # (the batch axis is not a sample's: spec perms skip it)

    def spec_perm(perm):
        return [p - 1 for p in perm[1:]] if drop == 0 else list(perm)

    cur = []
    for t, o, order in ((ta, a, batch + fa + k), (tb, b, batch + k + fb)):
        perm = [t.index(c) for c in order]
        if perm == list(range(len(t))):
            cur.append(o.name)
        else:
            cur.append(n.emit("transpose", {"perm": spec_perm(perm)}, [o.name], last=False, what=f"{t}_to_{''.join(order)}"))
    prod = batch + fa + fb
    perm = [prod.index(c) for c in out]
    last = perm == list(range(len(out)))
    mm = n.emit("matmul", {}, cur, last=last, what="matmul")
    if not last:
        n.emit("transpose", {"perm": spec_perm(perm)}, [mm])
    return n.done(batch=act.batch)


def _gemm(n):
    a, b, c = (n.ins + [None, None, None])[:3]
    if a is None or a.const or a.batch not in (0, None) or n.attr("transA", 0):  # (None: rows of one sample)
        n.refuse("Gemm reads its batch from A (an activation, not transposed)")
    if b is None or not b.const:
        n.refuse("Gemm's B is an activation (its rows would be the batch)")
    w = np.asarray(b.value)
    w = w.T if n.attr("transB", 0) else w
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    cur = n.emit("matmul", {}, [a.name], consts=[(1, Operand(w.shape, w, b.learned))], act=a,
                 last=c is None and alpha == 1.0, what="matmul")
    if alpha != 1.0:
        cur = n.emit("binary", {"op": "mul", "const": {"index": 1, "value": alpha}}, [cur], last=c is None,
                     what="alpha")
    if c is not None:
        if not c.const:
            n.refuse("Gemm's C is computed")
        cv = np.asarray(c.value) * beta
        n.emit("binary", {"op": "add"}, [cur], consts=[(1, Operand(cv.shape, cv, c.learned))],
               act=Operand((a.shape[0], w.shape[1]), name=cur, batch=a.batch))
    return n.done(batch=a.batch)


def _resolve_reshape(n, x, target, allowzero):
    out = []
    for k, d in enumerate(int(t) for t in target):
        if d == 0 and not allowzero:
            if k >= len(x.shape):
                n.refuse(f"0 copies axis {k}, which the input does not have")
            out.append(x.shape[k])
        elif d == 0:
            n.refuse("a zero-sized axis")
        else:
            out.append(d)
    total = math.prod(x.shape)
    if out.count(-1) == 1:
        rest = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = total // rest
    if math.prod(out) != total:
        n.refuse(f"cannot reshape {tuple(x.shape)} to {tuple(target)}")
    return out


def _to_shape(n, x, full, at=None):
    """A reshape of activation x to the ONNX shape ``full``: the batch stays outermost (axis 0,
    or folded into it: MobileViT's unfolding and its way back), or, for a squeeze/unsqueeze that
    leaves it alone, at ONNX axis ``at`` of the result (timm attention's q, k, v after
    ``permute(2, 0, 3, 1, 4)`` and ``unbind(0)``)."""
    if at is not None:
        batch = at
        dims = [d for k, d in enumerate(full) if k != at]
    elif x.batch not in (0, None):
        # the batch (1 at the import) inside: kept where the values before it keep their count
        # (torchvision's (L, N, 3E) → (L, N, 3, E)), else folded into its neighbours
        # (q.view(L, N·h, d)): one sample's values either way
        before = math.prod(x.shape[:x.batch])
        j = next((j for j in range(len(full)) if math.prod(full[:j]) == before and full[j] == 1), None)
        batch = j
        dims = [d for k, d in enumerate(full) if k != j] if j is not None else list(full)
    else:
        batch = 0 if full[0] == (x.shape[0] if x.batch == 0 else 1) else None
        dims = list(full[1:]) if batch == 0 else list(full)
    if not dims:
        n.refuse("the result has no axis per sample")
    if dims == list(x.sample):
        n.emit("identity", {}, [x.name])
    elif len(dims) == 1:
        n.emit("flatten", {}, [x.name])
    else:
        n.emit("reshape", {"shape": dims}, [x.name])
    return n.done(batch=batch)


def _reshape(n):
    x = n.need_act()
    target = n.value(1, "shape") if n.opset >= 5 else n.attr("shape")
    return _to_shape(n, x, _resolve_reshape(n, x, list(np.asarray(target).reshape(-1)), n.attr("allowzero", 0)))


def _flatten(n):
    x = n.need_act()
    a = n.attr("axis", 1) % max(len(x.shape), 1)
    if a == 0:
        n.refuse("axis 0 merges the batch into the other axes")
    return _to_shape(n, x, [math.prod(x.shape[:a]), math.prod(x.shape[a:])])


def _squeeze(n):
    x = n.need_act()
    axes = n.value(1, "axes") if n.opset >= 13 else n.attr("axes")
    if axes is None:  # every size-1 axis but the batch
        axes = [k for k, d in enumerate(x.shape) if d == 1 and k != x.batch]
    axes = [int(a) % len(x.shape) for a in np.asarray(axes).reshape(-1)]
    if x.batch in axes:
        n.refuse("it squeezes the batch axis")
    at = None if x.batch in (0, None) else x.batch - sum(a < x.batch for a in axes)
    return _to_shape(n, x, [d for k, d in enumerate(x.shape) if k not in axes], at=at)


def _unsqueeze(n):
    x = n.need_act()
    axes = n.value(1, "axes") if n.opset >= 13 else n.attr("axes")
    r = len(x.shape) + np.size(axes)
    axes = sorted(int(a) % r for a in np.asarray(axes).reshape(-1))
    if 0 in axes and x.batch is None and not x.fixed:  # (of constants only: no batch to keep outermost)
        n.refuse("it inserts an axis before the folded batch")
    full = list(x.shape)
    at = x.batch
    for a in axes:
        full.insert(a, 1)
        if at is not None and a <= at:
            at += 1
    return _to_shape(n, x, full, at=None if x.batch is None or at == 0 else at)


def _transpose(n):
    x = n.need_act()
    r = len(x.shape)
    perm = n.attr("perm")  # absent: the axes reversed; present but empty: refused (onnxruntime does)
    perm = [int(p) for p in (list(range(r))[::-1] if perm is None else perm)]
    if r == 0 or len(perm) != r or sorted(p % r for p in perm if -r <= p < r) != list(range(r)):
        n.refuse(f"its perm {perm[:8]} is not a permutation of the input's {r} axes")
    perm = [p % r for p in perm]
    b = x.batch if x.batch is not None else None
    rest = [k for k in range(r) if k != b]
    sp = [rest.index(p) for p in perm if p != b]
    out = [x.shape[p] for p in perm]
    back = b is None and out[0] == 1 and r > 1  # the folded batch outermost again (torchvision's MHA)
    if sp == list(range(len(sp))):
        n.emit("identity", {}, [x.name], last=not back)
    else:
        n.emit("transpose", {"perm": sp}, [x.name], last=not back)
    if back:
        n.emit("reshape", {"shape": out[1:]} if r > 2 else {}, [n.out.items[-1].name]) if r > 2 else \
            n.emit("flatten", {}, [n.out.items[-1].name])
        return n.done(batch=0)
    return n.done(batch=None if b is None else perm.index(b))


def _slice(n):
    x = n.need_act()
    if n.opset < 10:
        starts, ends, axes, steps = n.attr("starts"), n.attr("ends"), n.attr("axes"), None
    else:
        starts, ends = n.value(1, "starts"), n.value(2, "ends")
        axes, steps = n.value(3, "axes"), n.value(4, "steps")
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    axes = list(range(len(starts))) if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
    args = {"starts": [], "ends": [], "axes": []}
    for a, st, en in zip(axes, starts, ends):
        ax = n.axis(x, a)
        size = x.sample[ax]
        args["axes"].append(ax)  # INT64_MAX and friends: clamped as ONNX clamps them
        args["starts"].append(max(min(st, size), -size - 1))
        args["ends"].append(max(min(en, size), -size - 1))
    if any(st != 1 for st in steps):
        args["steps"] = steps
    n.emit("slice", args, [x.name])
    return n.done(batch=x.batch)


def _split(n):
    x = n.need_act()
    a = n.axis(x, n.attr("axis", 0))
    size = x.sample[a]
    split = n.value(1, "split") if n.opset >= 13 and len(n.ins) > 1 else n.attr("split")
    if split is None:
        k = n.attr("num_outputs", n.n_outputs)
        part = -(-size // k)
        split = [part] * (k - 1) + [size - part * (k - 1)]
    sizes = [int(v) for v in np.asarray(split).reshape(-1)]
    for i in range(len(sizes)):
        item = n.emit("split", {"parts": sizes, "part": i, "axis": a}, [x.name], last=False, what=f"part{i}")
        n.out.outputs.append((item, x.batch))
    return n.out


def _concat(n):
    ins = [o for o in n.ins if o is not None]
    acts = [o for o in ins if not o.const]
    if not acts:
        n.refuse("every input is a constant (fold it)")
    act = _same_layout(n, acts)
    a = n.axis(act, n.attr("axis", 0))
    if len(ins) == 1:
        n.emit("identity", {}, [act.name])
        return n.done(batch=act.batch)
    if any(len(o.shape) != len(act.shape) for o in ins):
        n.refuse("inputs of different ranks")
    # a constant's batch axis has size 1 at the import batch: it is repeated over the batch
    consts = [(k, o) for k, o in enumerate(ins) if o.const]
    n.emit("concat", {"axis": a}, [o.name for o in acts], consts=consts, act=act)
    return n.done(batch=act.batch)


def _gather(n):
    x = n.need_act()
    idx = np.asarray(n.value(1, "indices"))
    if idx.dtype.kind not in "iu":
        n.refuse("float indices")
    ax_onnx = n.attr("axis", 0) % len(x.shape)
    a = n.axis(x, ax_onnx)
    n.emit("gather", {"indices": idx.tolist(), "axis": a}, [x.name])
    b = x.batch
    return n.done(batch=b if b is None or ax_onnx > b else b + idx.ndim - 1)


def _expand(n):
    x = n.need_act()
    target = [int(v) for v in np.asarray(n.value(1, "shape")).reshape(-1)]
    try:
        full = list(np.broadcast_shapes(tuple(x.shape), tuple(target)))
    except ValueError:
        n.refuse(f"{tuple(x.shape)} does not broadcast to {tuple(target)}")
    b = 0 if x.batch is None else x.batch
    if len(full) != len(x.shape) or full[b] != x.shape[b]:
        n.refuse("it broadcasts over the batch axis")
    y = Operand(tuple(full), batch=x.batch)
    if list(y.sample) == list(x.sample):
        n.emit("identity", {}, [x.name])
    else:
        n.emit("expand", {"shape": list(y.sample)}, [x.name])
    return n.done(batch=x.batch)


def _tile(n):
    x = n.need_act()
    reps = [int(v) for v in np.asarray(n.value(1, "repeats")).reshape(-1)]
    b = 0 if x.batch is None else x.batch
    if reps[b] != 1:
        n.refuse("it repeats the batch axis")
    n.emit("tile", {"repeats": reps if x.batch is None else [r for k, r in enumerate(reps) if k != b]}, [x.name])
    return n.done(batch=x.batch)


_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min",
           "ReduceProd": "prod", "ReduceL1": "l1", "ReduceL2": "l2", "ReduceSumSquare": "sumsquare",
           "ReduceLogSumExp": "logsumexp"}


def _reduce(n):
    x = n.need_act()
    axes_in = n.op == "ReduceSum" and n.opset >= 13 or n.opset >= 18
    axes = (n.value(1, "axes") if len(n.ins) > 1 else None) if axes_in else n.attr("axes")
    if axes is None or np.size(axes) == 0:
        if n.attr("noop_with_empty_axes", 0):
            n.emit("identity", {}, [x.name])
            return n.done(batch=x.batch)
        n.refuse("no axes: it reduces the batch axis too")
    onnx_axes = [int(a) % len(x.shape) for a in np.asarray(axes).reshape(-1)]
    sp = [n.axis(x, a) for a in onnx_axes]
    keep = bool(n.attr("keepdims", 1))
    if not keep and len(sp) == len(x.sample):
        n.refuse("it reduces every axis of a sample to a scalar")
    n.emit("reduce", {"op": _REDUCE[n.op], "axes": sp, "keepdims": keep}, [x.name])
    b = x.batch
    return n.done(batch=b if keep or b is None else b - sum(a < b for a in onnx_axes))


def _softmax(n):
    x = n.need_act()
    a = n.attr("axis", -1 if n.opset >= 13 else 1)
    if n.opset < 13 and a % len(x.shape) != len(x.shape) - 1:
        n.refuse("an opset < 13 softmax over several axes (coerced to 2-D)")
    n.emit("softmax" if n.op == "Softmax" else "logsoftmax", {"axis": n.axis(x, a)}, [x.name])
    return n.done(batch=x.batch)


def _pad(n):
    x = n.need_act()
    mode = n.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        n.refuse(f"mode {mode!r}")
    if n.opset < 11:
        pads, value, axes = n.attr("pads"), n.attr("value", 0.0), None
    else:
        pads = n.value(1, "pads")
        value = n.value(2, "constant value") if len(n.ins) > 2 else None
        axes = n.value(3, "axes") if len(n.ins) > 3 else None
    pads = [int(v) for v in np.asarray(pads).reshape(-1)]
    r = len(x.shape)
    axes = list(range(r)) if axes is None else [int(a) % r for a in np.asarray(axes).reshape(-1)]
    k = len(axes)
    per = {a: (pads[i], pads[i + k]) for i, a in enumerate(axes) if pads[i] or pads[i + k]}
    if any(p < 0 or q < 0 for p, q in per.values()):
        n.refuse("negative pads (a crop)")
    if not per:
        n.emit("identity", {}, [x.name])
        return n.done(batch=x.batch)
    value = 0.0 if value is None or np.size(value) == 0 else float(np.asarray(value).reshape(-1)[0])
    args = {"amount": [list(per[a]) for a in per], "axes": [n.axis(x, a) for a in per],
            "mode": {"reflect": "reflect", "edge": "replicate"}.get(mode, "constant" if value else "zero")}
    if value:
        args["value"] = value
    n.emit("padding", args, [x.name])
    return n.done(batch=x.batch)


def _layernorm(n):
    x = n.need_act()
    scale, bias = n.ins[1], n.ins[2] if len(n.ins) > 2 else None
    if scale is None or not scale.const or bias is None or not bias.const:
        n.refuse("a LayerNormalization without a constant scale and bias")
    onnx_axis = n.attr("axis", -1) % len(x.shape)
    a = n.axis(x, onnx_axis)
    if x.batch is not None and x.batch > onnx_axis:
        n.refuse("its statistics run over the batch axis")
    item = n.emit("layernorm", {"axis": a, "eps": float(n.attr("epsilon", 1e-5))}, [x.name])
    shape = tuple(x.sample[a:])
    n.out.items[-1].params = {k: np.broadcast_to(np.asarray(o.value, np.float32), shape).copy()
                              for k, o in (("gamma", scale), ("beta", bias))}
    return n.done(item, batch=x.batch)


def _batchnorm(n):
    """Inference batch norm over ONNX axis 1 of any layout (LeViT's BatchNorm1d over tokens
    flattened with the batch): (x − mean) · 1/√(var + ε) · γ + β, γ and β learned, the
    statistics buffers."""
    x = n.need_act()
    if len(x.shape) < 2 or any(o is None or not o.const for o in n.ins[1:5]):
        n.refuse("statistics or an affine that are not constants")
    if x.batch == 1:
        n.refuse("it normalises over the batch axis")
    c = x.shape[1]
    tail = (1,) * (len(x.shape) - 2)
    gamma, beta, mean, var = (np.asarray(o.value).reshape(-1) for o in n.ins[1:5])
    if any(v.size != c for v in (gamma, beta, mean, var)):
        n.refuse("statistics that are not one per channel")
    inv = 1.0 / np.sqrt(var.astype(np.float64) + float(n.attr("epsilon", 1e-5)))
    steps = [("sub", mean, False, "centre"), ("mul", inv, False, "scale"), ("mul", gamma, n.ins[1].learned, "gamma"),
             ("add", beta, n.ins[2].learned, "beta")]
    cur = x.name
    for k, (op, v, learned, what) in enumerate(steps):
        v = v.reshape((c, *tail))
        cur = n.emit("binary", {"op": op}, [cur], consts=[(1, Operand(v.shape, v, learned))], act=x,
                     last=k == len(steps) - 1, what=what)
    return n.done(batch=x.batch)


def _where(n):
    cond, a, b = n.ins[:3]
    if not cond.const:
        n.refuse("its condition is computed (only a constant mask has a spec form)")
    mask = Operand(np.shape(cond.value), np.asarray(cond.value, np.float32))
    return _elementwise(n, "where", {}, ins=[mask, a, b])


_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _identity(n):
    x = n.ins[0]
    if n.op == "Cast" and n.attr("to") not in _FLOAT_TYPES:
        n.refuse("a cast to a non-float type")
    if x.const:
        n.out.constants[0] = np.asarray(x.value)
        return n.out
    n.emit("identity", {}, [x.name])  # (Dropout: an inference graph's identity)
    return n.done(batch=x.batch)


def _constant(n):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in n.attrs:
            n.out.constants[0] = np.asarray(n.attrs[key])
            return n.out
    n.refuse("a Constant without a value")


LOWERINGS = {
    "MatMul": _matmul, "Gemm": _gemm, "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Slice": _slice, "Split": _split, "Concat": _concat,
    "Gather": _gather, "Expand": _expand, "Tile": _tile, "Einsum": _einsum,
    **{op: _binary(k) for op, k in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"),
                                    ("Pow", "pow"), ("Max", "max"), ("Min", "min"), ("Sum", "add"))},
    **{op: _one("unary", op=k) for op, k in (("Sqrt", "sqrt"), ("Exp", "exp"), ("Log", "log"), ("Erf", "erf"),
                                             ("Neg", "neg"), ("Abs", "abs"), ("Reciprocal", "reciprocal"),
                                             ("Sin", "sin"), ("Cos", "cos"), ("Floor", "floor"),
                                             ("Ceil", "ceil"), ("Round", "round"), ("Sign", "sign"))},
    "Tanh": _one("tanh"), "Sigmoid": _one("sigmoid"), "Relu": _one("relu"),
    "LeakyRelu": _one("leakyrelu", alpha=lambda n: float(n.attr("alpha", 0.01))),
    "Elu": _one("elu", alpha=lambda n: float(n.attr("alpha", 1.0))), "Selu": _selu, "Softplus": _one("softplus"),
    "HardSigmoid": _hardsigmoid, "HardSwish": _one("hardswish"), "Mish": _one("mish"),
    "Gelu": _one("gelu", approximate=lambda n: None if n.attr("approximate", "none") == "none" else "tanh"),
    "Clip": _clip, "PRelu": _prelu,
    **{op: _reduce for op in _REDUCE}, "Softmax": _softmax, "LogSoftmax": _softmax, "Pad": _pad,
    "LayerNormalization": _layernorm, "BatchNormalization": _batchnorm, "Where": _where, "Identity": _identity, "Cast": _identity,
    "Dropout": _identity, "Constant": _constant,
}


def lower(op_type: str, attrs: dict, inputs: list, *, name: str, n_outputs: int = 1, opset: int = 17) -> Lowered:
    """One ONNX node as low-level spec items (see the module docstring)."""
    fn = LOWERINGS.get(op_type)
    if fn is None:
        raise Unlowered(op_type, "no low-level form (an op without a counting rule, or one the importer lifts)")
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (attrs or {}).items()}
    n = _Node(op_type, attrs, list(inputs), name, opset, n_outputs)
    if op_type not in ("Constant", "Identity", "Cast") and all(o is None or o.const for o in n.ins):
        n.refuse("every input is a constant (fold the constant subgraph first)")
    if n_outputs > 1 and op_type not in ("Split", "Dropout", "LayerNormalization"):
        n.refuse(f"{n_outputs} outputs")
    return fn(n)


__all__ = ["lower", "Operand", "SpecItem", "Lowered", "Unlowered", "LOWERINGS", "LITERAL_MAX"]
