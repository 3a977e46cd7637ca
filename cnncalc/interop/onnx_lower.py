"""ONNX node → low-level spec items: the importer's fallback for every node no pattern lifts.

One public function::

    lower(op_type, attrs, inputs, *, name, n_outputs=1, opset=17) -> Lowered

* ``op_type`` / ``attrs``: the node's op and attributes as plain Python values
  (``onnx.helper.get_attribute_value``: ints, floats, lists; bytes are decoded).
* ``inputs``: one :class:`Operand` per node input (``None`` for an omitted optional input):
  an activation (``value is None``) names the spec layer it comes from (``name``) and gives
  its ONNX shape at the import batch (batch axis first; ``batched=False`` when a reshape has
  folded the batch into axis 0, as MobileViT's unfolding does); a constant gives its
  ``value`` (an initializer, a Constant node, a folded subgraph) and whether it is a
  ``learned`` parameter (counted as parameters; otherwise a buffer, non-trainable state, or —
  at most 16 values — a number written in the spec, counted nowhere). The caller decides
  ``learned`` (the PyTorch exporter names parameters after their module; ``--torch`` knows).
* Returns :class:`Lowered`: ``items`` (spec layers in order, each with its own parameters and
  buffers, named ``name`` for the one that yields the node's output and ``name.<what>`` for
  helpers: the caller keeps those names free), ``outputs`` (per node output: the item name and whether its axis 0 is the batch),
  and ``constants`` (a node that only makes a constant: Constant, Identity/Cast of a constant
  — the caller keeps the value for the nodes that read it).
* Raises :class:`Unlowered` (``op``, ``reason``) for what has no exact low-level form; the
  importer collects them into its refusal (or, with ``--opaque``, keeps an opaque layer).

Axes: ONNX axis a ≥ 1 of a batched activation is the spec's axis a − 1 (PyTorch order); a
node that moves, reduces or broadcasts the batch axis is refused. Example::

    >>> low = lower("MatMul", {}, [Operand((1, 196, 96), name="ln"),
    ...                           Operand((96, 384), value=w, learned=True)], name="fc1")
    >>> low.items[0].as_spec()
    {'matmul': None, 'const': {'index': 1, 'shape': [96, 384], 'learned': True}, 'name': 'fc1', 'inputs': ['ln']}
    >>> low.items[0].params                                  # {'const1': w}

Covered (opset 11–18): MatMul, Gemm, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice,
Split, Concat, Gather (constant indices), Expand, Tile, Add, Sub, Mul, Div, Pow, Max, Min,
Sqrt, Exp, Log, Erf, Neg, Abs, Reciprocal, Sin, Cos, Floor, Ceil, Round, Sign, Tanh, Sigmoid,
Relu, LeakyRelu, Elu, Selu (PyTorch's constants), Softplus, HardSigmoid (α = 1/6), HardSwish,
Gelu, Mish, Clip, PRelu (per channel of an image, or shared), Reduce{Mean, Sum, Max, Min,
Prod, L1, L2, SumSquare, LogSumExp}, Softmax, LogSoftmax, Pad, LayerNormalization,
Constant, Identity, Cast (to a float type), Dropout, Where (a constant condition).

Out (``--opaque``): ops without a counting rule or on non-float values — Conv and the other
high-level ops the importer lifts itself; Einsum, Loop/If/Scan, LSTM/GRU/RNN, TopK, ArgMax,
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
    batched: bool = True
    name: str = ""

    @property
    def const(self) -> bool:
        return self.value is not None

    @property
    def sample(self) -> tuple:
        """An activation's per-sample shape."""
        return tuple(self.shape[1:]) if self.batched else tuple(self.shape)


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
    outputs: list = field(default_factory=list)  # per node output: (item name, batched)
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
        if a == 0:
            self.refuse("it works on the batch axis (axis 0)")
        return a - 1 if o.batched else a

    def const_spec(self, o: Operand, index: int, rank: int, item: str) -> tuple[dict, dict, dict]:
        """A constant operand as a ``const:`` entry (per-sample shape: leading size-1 axes that
        line up with the batch axis dropped) and its tensor for params or state."""
        v = np.asarray(o.value)
        if v.dtype.kind not in "fiub":
            self.refuse(f"a constant of type {v.dtype} is not a float tensor")
        shape = tuple(v.shape)
        while len(shape) > rank:
            if shape[0] != 1:
                self.refuse(f"the constant {tuple(v.shape)} broadcasts over the batch axis")
            shape = shape[1:]
        v = v.astype(np.float64 if v.dtype == np.float64 else np.float32).reshape(shape)
        if not o.learned and v.size <= LITERAL_MAX:
            lit = v.tolist()
            return {"index": index, "value": lit}, {}, {}
        spec = {"index": index, "shape": list(shape), "learned": bool(o.learned)}
        tensors = {f"const{index}": v}
        return spec, (tensors if o.learned else {}), ({} if o.learned else tensors)

    def emit(self, kind, args, inputs, *, last=True, what="", consts=(), rank=None):
        """Add an item; ``consts`` are (index, Operand) pairs, ``rank`` the per-sample rank the
        constants line up against."""
        name = self.name if last else f"{self.name}.{what or kind}"
        params, state, specs = {}, {}, []
        for index, o in consts:
            spec, p, s = self.const_spec(o, index, rank, name)
            specs.append(spec)
            params.update(p)
            state.update(s)
        args = dict(args)
        if specs:
            args["const"] = specs[0] if len(specs) == 1 else specs
        self.out.items.append(SpecItem(kind, args, name, list(inputs), params, state))
        return name

    def done(self, item_name=None, batched=True):
        self.out.outputs.append((item_name or self.name, batched))
        return self.out


# ----------------------------------------------------------------------------- the ops
def _elementwise(n: _Node, kind, args):
    """A broadcasting op of activations and constants (one activation at least)."""
    ins = [o for o in n.ins if o is not None]
    acts = [o for o in ins if not o.const]
    if not acts:
        n.refuse("every input is a constant (fold it)")
    if len({len(o.shape) for o in acts}) > 1 or len({o.batched for o in acts}) > 1:
        n.refuse("activations of different ranks would broadcast the batch axis against another")
    rank = len(acts[0].sample)
    consts = [(k, o) for k, o in enumerate(ins) if o.const]
    n.emit(kind, args, [o.name for o in acts], consts=consts, rank=rank)
    return n.done(batched=acts[0].batched)


def _binary(op):
    def f(n: _Node):
        ins = [o for o in n.ins if o is not None]
        if len(ins) == 2:
            return _elementwise(n, "binary", {"op": op})
        if op not in ("max", "min") or len(ins) < 2:
            n.refuse(f"{len(ins)} inputs")
        # variadic Max/Min: a chain of pairs, constants folded first
        consts = [o for o in ins if o.const]
        acts = [o for o in ins if not o.const]
        if len(consts) > 1:
            fold = consts[0].value
            for c in consts[1:]:
                fold = (np.maximum if op == "max" else np.minimum)(fold, c.value)
            consts = [Operand(np.shape(fold), np.asarray(fold))]
        chain = acts + consts
        prev = chain[0]
        for k, o in enumerate(chain[1:]):
            sub = _Node(n.op, {}, [prev, o], n.name if k == len(chain) - 2 else f"{n.name}.{op}{k}", n.opset)
            _elementwise(sub, "binary", {"op": op})
            n.out.items += sub.out.items
            prev = Operand(prev.shape, name=sub.name, batched=prev.batched)
        return n.done(batched=acts[0].batched)
    return f


def _unary(op):
    def f(n: _Node):
        x = n.need_act()
        n.emit("unary", {"op": op}, [x.name])
        return n.done(batched=x.batched)
    return f


def _layer(kind, **fixed):
    """An existing elementwise layer (relu, tanh, …), which reads every kind of tensor."""
    def f(n: _Node):
        x = n.need_act()
        n.emit(kind, dict(fixed), [x.name])
        return n.done(batched=x.batched)
    return f


def _leaky(n):
    x = n.need_act()
    n.emit("leakyrelu", {"alpha": float(n.attr("alpha", 0.01))}, [x.name])
    return n.done(batched=x.batched)


def _elu(n):
    x = n.need_act()
    n.emit("elu", {"alpha": float(n.attr("alpha", 1.0))}, [x.name])
    return n.done(batched=x.batched)


def _selu(n):
    a, g = n.attr("alpha", 1.67326319217681884765625), n.attr("gamma", 1.05070102214813232421875)
    if not (math.isclose(a, 1.6732632423543772, rel_tol=1e-6) and math.isclose(g, 1.0507009873554805, rel_tol=1e-6)):
        n.refuse("a SELU with other constants than PyTorch's")
    return _layer("selu")(n)


def _hardsigmoid(n):
    if not (math.isclose(n.attr("alpha", 0.2), 1 / 6, rel_tol=1e-6) and math.isclose(n.attr("beta", 0.5), 0.5)):
        n.refuse("a HardSigmoid other than PyTorch's relu6(x + 3)/6 (alpha 1/6, beta 1/2)")
    return _layer("hardsigmoid")(n)


def _gelu(n):
    x = n.need_act()
    approx = n.attr("approximate", "none")
    n.emit("gelu", {} if approx == "none" else {"approximate": approx}, [x.name])
    return n.done(batched=x.batched)


def _clip(n):
    x = n.need_act()
    if n.opset < 11:
        lo, hi = n.attr("min"), n.attr("max")
    else:
        lo = n.value(1, "minimum")
        hi = n.value(2, "maximum")
    lo = None if lo is None else float(np.asarray(lo))
    hi = None if hi is None else float(np.asarray(hi))
    if lo == 0.0 and hi == 6.0:
        n.emit("relu6", {}, [x.name])
    elif lo == 0.0 and hi is None:
        n.emit("relu", {}, [x.name])
    else:
        cur = x.name
        if lo is not None:
            cur = n.emit("binary", {"op": "max", "const": {"index": 1, "value": lo}}, [cur], last=hi is None,
                         what="min")
        if hi is not None:
            n.emit("binary", {"op": "min", "const": {"index": 1, "value": hi}}, [cur])
    return n.done(batched=x.batched)


def _prelu(n):
    x = n.need_act()
    slope = np.asarray(n.value(1, "slope"))
    per_channel = (x.batched and len(x.shape) >= 3 and slope.ndim == len(x.shape) - 1 and slope.shape[0] == x.shape[1]
                   and all(d == 1 for d in slope.shape[1:]))
    if slope.size == 1:
        item = n.emit("prelu", {"slopes": "shared"}, [x.name])
    elif per_channel:
        item = n.emit("prelu", {"slopes": "channel"}, [x.name])
    else:
        n.refuse(f"slopes of shape {slope.shape}: one per channel (C, 1, 1) or one in all")
    n.out.items[-1].params = {"weight": slope.reshape(-1).astype(np.float32)}
    return n.done(item, batched=x.batched)


def _matmul(n):
    a, b = n.ins[0], n.ins[1]
    if a.const and b.const:
        n.refuse("both inputs are constants (fold them)")
    if not a.const and not b.const and (len(a.shape) != len(b.shape) or a.batched != b.batched):
        n.refuse("activations of different ranks: their batch axes would not line up")
    if not b.const and b.batched and len(b.shape) == 2:
        n.refuse("B is a 2-D activation: ONNX would contract its batch axis")
    act = b if a.const else a
    consts = [(k, o) for k, o in enumerate((a, b)) if o.const]
    n.emit("matmul", {}, [o.name for o in (a, b) if not o.const], consts=consts, rank=max(len(act.sample), 2))
    return n.done(batched=act.batched)


def _gemm(n):
    a, b, c = (n.ins + [None, None, None])[:3]
    if a is None or a.const or not a.batched or n.attr("transA", 0):
        n.refuse("Gemm reads its batch from A (an activation, not transposed)")
    if b is None or not b.const:
        n.refuse("Gemm's B is an activation (its rows would be the batch)")
    w = np.asarray(b.value)
    w = w.T if n.attr("transB", 0) else w
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    last_mm = c is None and alpha == 1.0
    cur = n.emit("matmul", {}, [a.name], consts=[(1, Operand(w.shape, w, b.learned))], rank=2,
                 last=last_mm, what="matmul")
    if alpha != 1.0:
        cur = n.emit("binary", {"op": "mul", "const": {"index": 1, "value": alpha}}, [cur], last=c is None,
                     what="alpha")
    if c is not None:
        cv = np.asarray(c.value) * beta if c.const else n.refuse("Gemm's C is computed")
        n.emit("binary", {"op": "add"}, [cur], consts=[(1, Operand(cv.shape, cv, c.learned))], rank=1)
    return n.done()


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


def _to_shape(n, x, full, what="reshape"):
    """A reshape of activation x to the ONNX shape ``full`` (batch first, or folded into it)."""
    batched = full[0] == x.shape[0] if x.batched else full[0] == 1
    if x.batched and full[0] != x.shape[0] and full[0] % x.shape[0]:
        n.refuse(f"the batch does not divide axis 0 of {tuple(full)}")
    dims = list(full[1:]) if batched else list(full)
    if not dims:
        n.refuse("the result has no axis per sample")
    if dims == list(x.sample):
        n.emit("identity", {}, [x.name])
    elif len(dims) == 1:
        n.emit("flatten", {}, [x.name])
    else:
        n.emit("reshape", {"shape": dims}, [x.name])
    return n.done(batched=batched)


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


def _squeeze_axes(n, x):
    axes = n.value(1, "axes") if n.opset >= 13 else n.attr("axes")
    if axes is None:  # every size-1 axis but the batch
        return [k for k, d in enumerate(x.shape) if d == 1 and k > 0]
    return [int(a) % len(x.shape) for a in np.asarray(axes).reshape(-1)]


def _squeeze(n):
    x = n.need_act()
    axes = _squeeze_axes(n, x)
    if 0 in axes and x.batched:
        n.refuse("it squeezes the batch axis")
    return _to_shape(n, x, [d for k, d in enumerate(x.shape) if k not in axes])


def _unsqueeze(n):
    x = n.need_act()
    axes = n.value(1, "axes") if n.opset >= 13 else n.attr("axes")
    r = len(x.shape) + len(np.asarray(axes).reshape(-1))
    axes = sorted(int(a) % r for a in np.asarray(axes).reshape(-1))
    if 0 in axes:
        n.refuse("it inserts an axis before the batch")
    full = list(x.shape)
    for a in axes:
        full.insert(a, 1)
    return _to_shape(n, x, full)


def _transpose(n):
    x = n.need_act()
    perm = n.attr("perm") or list(range(len(x.shape)))[::-1]
    if perm[0] != 0:
        n.refuse("it moves the batch axis")
    sp = [p - 1 for p in perm[1:]] if x.batched else list(perm)
    if sp == list(range(len(sp))):
        n.emit("identity", {}, [x.name])
    else:
        n.emit("transpose", {"perm": sp}, [x.name])
    return n.done(batched=x.batched)


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
    sp_axes, s2, e2, st2 = [], [], [], []
    for a, s, e, st in zip(axes, starts, ends, steps):
        ax = n.axis(x, a)
        size = x.sample[ax]
        e = max(min(e, size), -size - 1)  # INT64_MAX and friends: the end of the axis
        s = max(min(s, size), -size - 1)
        sp_axes.append(ax)
        s2.append(s)
        e2.append(e)
        st2.append(st)
    args = {"starts": s2, "ends": e2, "axes": sp_axes}
    if any(st != 1 for st in st2):
        args["steps"] = st2
    n.emit("slice", args, [x.name])
    return n.done(batched=x.batched)


def _split(n):
    n_out = n.n_outputs
    x = n.need_act()
    ax = n.attr("axis", 0)
    a = n.axis(x, ax)
    size = x.sample[a]
    split = n.value(1, "split") if n.opset >= 13 and len(n.ins) > 1 else n.attr("split")
    if split is None:
        k = n.attr("num_outputs", n_out)
        part = -(-size // k)
        split = [part] * (k - 1) + [size - part * (k - 1)]
    sizes = [int(v) for v in np.asarray(split).reshape(-1)]
    for i in range(len(sizes)):
        item = n.emit("split", {"parts": sizes, "part": i, "axis": a}, [x.name], last=False, what=f"part{i}")
        n.out.outputs.append((item, x.batched))
    return n.out


def _concat(n):
    ins = [o for o in n.ins if o is not None]
    acts = [o for o in ins if not o.const]
    if not acts:
        n.refuse("every input is a constant (fold it)")
    a = n.axis(acts[0], n.attr("axis", 0))
    if len(ins) == 1:
        n.emit("identity", {}, [acts[0].name])
        return n.done(batched=acts[0].batched)
    rank = len(acts[0].shape)
    if any(len(o.shape) != rank for o in ins):
        n.refuse("inputs of different ranks")
    consts = [(k, Operand(o.shape[1:] if acts[0].batched else o.shape, np.asarray(o.value)[0]
                          if acts[0].batched else o.value, o.learned)) for k, o in enumerate(ins) if o.const]
    for k, o in enumerate(ins):
        if o.const and acts[0].batched and np.shape(o.value)[0] != 1:
            n.refuse("a constant input with a batch of its own")
    n.emit("concat", {"axis": a}, [o.name for o in acts], consts=consts, rank=len(acts[0].sample))
    return n.done(batched=acts[0].batched)


def _gather(n):
    x = n.need_act()
    idx = n.value(1, "indices")
    if np.asarray(idx).dtype.kind not in "iu":
        n.refuse("float indices")
    a = n.axis(x, n.attr("axis", 0))
    n.emit("gather", {"indices": np.asarray(idx).tolist(), "axis": a}, [x.name])
    return n.done(batched=x.batched)


def _expand(n):
    x = n.need_act()
    target = [int(v) for v in np.asarray(n.value(1, "shape")).reshape(-1)]
    try:
        full = list(np.broadcast_shapes(tuple(x.shape), tuple(target)))
    except ValueError:
        n.refuse(f"{tuple(x.shape)} does not broadcast to {tuple(target)}")
    if len(full) != len(x.shape) or (x.batched and full[0] != x.shape[0]):
        n.refuse("it broadcasts over the batch axis")
    dims = full[1:] if x.batched else full
    if dims == list(x.sample):
        n.emit("identity", {}, [x.name])
    else:
        n.emit("expand", {"shape": dims}, [x.name])
    return n.done(batched=x.batched)


def _tile(n):
    x = n.need_act()
    reps = [int(v) for v in np.asarray(n.value(1, "repeats")).reshape(-1)]
    if x.batched and reps[0] != 1:
        n.refuse("it repeats the batch axis")
    reps = reps[1:] if x.batched else reps
    n.emit("tile", {"repeats": reps}, [x.name])
    return n.done(batched=x.batched)


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
            return n.done(batched=x.batched)
        n.refuse("no axes: it reduces the batch axis too")
    sp = [n.axis(x, int(a)) for a in np.asarray(axes).reshape(-1)]
    keep = bool(n.attr("keepdims", 1))
    if not keep and len(sp) == len(x.sample):
        n.refuse("it reduces every axis of a sample to a scalar")
    n.emit("reduce", {"op": _REDUCE[n.op], "axes": sp, "keepdims": keep}, [x.name])
    return n.done(batched=x.batched)


def _softmax(n):
    x = n.need_act()
    default = -1 if n.opset >= 13 else 1
    a = n.attr("axis", default)
    if n.opset < 13 and a % len(x.shape) != len(x.shape) - 1:
        n.refuse("an opset < 13 softmax over several axes (coerced to 2-D)")
    n.emit("softmax" if n.op == "Softmax" else "logsoftmax", {"axis": n.axis(x, a)}, [x.name])
    return n.done(batched=x.batched)


def _pad(n):
    x = n.need_act()
    mode = n.attr("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("constant", "reflect", "edge"):
        n.refuse(f"mode {mode!r}")
    if n.opset < 11:
        pads, value, axes = n.attr("pads"), n.attr("value", 0.0), None
    else:
        pads = n.value(1, "pads")
        value = n.value(2, "constant value") if len(n.ins) > 2 else None
        axes = n.value(3, "axes") if len(n.ins) > 3 else None
    pads = [int(v) for v in np.asarray(pads).reshape(-1)]
    axes = list(range(len(x.shape))) if axes is None else [int(a) % len(x.shape) for a in np.asarray(axes).reshape(-1)]
    k = len(axes)
    per = {a: (pads[i], pads[i + k]) for i, a in enumerate(axes) if pads[i] or pads[i + k]}
    if any(p < 0 or q < 0 for p, q in per.values()):
        n.refuse("negative pads (a crop)")
    if not per:
        n.emit("identity", {}, [x.name])
        return n.done(batched=x.batched)
    sp = [n.axis(x, a) for a in per]
    value = 0.0 if value is None or np.size(value) == 0 else float(np.asarray(value).reshape(-1)[0])
    args = {"amount": [list(per[a]) for a in per], "axes": sp,
            "mode": {"reflect": "reflect", "edge": "replicate"}.get(mode, "constant" if value else "zero")}
    if value:
        args["value"] = value
    n.emit("padding", args, [x.name])
    return n.done(batched=x.batched)


def _layernorm(n):
    x = n.need_act()
    scale, bias = n.ins[1], n.ins[2] if len(n.ins) > 2 else None
    if scale is None or not scale.const or bias is None or not bias.const:
        n.refuse("a LayerNormalization without a constant scale and bias")
    a = n.axis(x, n.attr("axis", -1))
    eps = float(n.attr("epsilon", 1e-5))
    g, b = np.asarray(scale.value, np.float32), np.asarray(bias.value, np.float32)
    item = n.emit("layernorm", {"axis": a, "eps": eps}, [x.name])
    shape = tuple(x.sample[a:])
    n.out.items[-1].params = {"gamma": np.broadcast_to(g, shape).copy(), "beta": np.broadcast_to(b, shape).copy()}
    return n.done(item, batched=x.batched)


def _where(n):
    cond, a, b = n.ins[:3]
    if not cond.const:
        n.refuse("its condition is computed (only a constant mask has a spec form)")
    acts = [o for o in (a, b) if not o.const]
    if not acts:
        n.refuse("every input is a constant (fold it)")
    if len({len(o.shape) for o in acts}) > 1:
        n.refuse("activations of different ranks")
    rank = len(acts[0].sample)
    c = Operand(np.shape(cond.value), np.asarray(cond.value, np.float32), False)
    consts = [(0, c)] + [(k, o) for k, o in ((1, a), (2, b)) if o.const]
    n.emit("where", {}, [o.name for o in acts], consts=consts, rank=rank)
    return n.done(batched=acts[0].batched)


_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _identity(n):
    x = n.ins[0]
    if n.op == "Cast" and n.attr("to") not in _FLOAT_TYPES:
        n.refuse("a cast to a non-float type")
    if x.const:
        n.out.constants[0] = np.asarray(x.value)
        return n.out
    n.emit("identity", {}, [x.name])
    return n.done(batched=x.batched)


def _dropout(n):
    x = n.need_act()
    n.emit("identity", {}, [x.name])  # an inference graph: dropout is the identity
    return n.done(batched=x.batched)


def _constant(n):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in n.attrs:
            v = n.attrs[key]
            v = v if isinstance(v, np.ndarray) else np.asarray(v)
            n.out.constants[0] = v
            return n.out
    n.refuse("a Constant without a value")


LOWERINGS = {
    "MatMul": _matmul, "Gemm": _gemm, "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Slice": _slice, "Concat": _concat, "Gather": _gather,
    "Expand": _expand, "Tile": _tile,
    **{op: _binary(k) for op, k in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"),
                                    ("Pow", "pow"), ("Max", "max"), ("Min", "min"))},
    **{op: _unary(k) for op, k in (("Sqrt", "sqrt"), ("Exp", "exp"), ("Log", "log"), ("Erf", "erf"),
                                   ("Neg", "neg"), ("Abs", "abs"), ("Reciprocal", "reciprocal"),
                                   ("Sin", "sin"), ("Cos", "cos"), ("Floor", "floor"), ("Ceil", "ceil"),
                                   ("Round", "round"), ("Sign", "sign"))},
    "Tanh": _layer("tanh"), "Sigmoid": _layer("sigmoid"), "Relu": _layer("relu"), "LeakyRelu": _leaky,
    "Elu": _elu, "Selu": _selu, "Softplus": _layer("softplus"), "HardSigmoid": _hardsigmoid,
    "HardSwish": _layer("hardswish"), "Gelu": _gelu, "Mish": _layer("mish"), "Clip": _clip, "PRelu": _prelu,
    **{op: _reduce for op in _REDUCE}, "Softmax": _softmax, "LogSoftmax": _softmax, "Pad": _pad,
    "LayerNormalization": _layernorm, "Where": _where, "Identity": _identity, "Cast": _identity,
    "Dropout": _dropout, "Constant": _constant, "Split": _split,
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
